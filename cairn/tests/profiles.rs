//! Certificate profiles (draft-ietf-acme-profiles): the directory advertises Let's Encrypt's
//! 2026 set, newOrder selects one, the certificate follows it, unknown names are refused.

mod common;

use common::{TestCa, pem_chain, verify_chain};
use instant_acme::{ChallengeType, Identifier, NewOrder};
use time::Duration;

#[allow(clippy::unwrap_used)] // test helper: a parse failure is a test failure
fn lifetime_and_cn(pem: &str) -> (Duration, Option<String>) {
    let info = cairn_x509::CertInfo::from_der(&pem_chain(pem)[0]).unwrap();
    (info.not_after - info.not_before, info.common_name)
}

#[tokio::test]
async fn profiles_set_lifetime_and_common_name() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let mut names: Vec<_> = account.profiles().map(|p| p.name.to_owned()).collect();
    names.sort();
    assert_eq!(names, ["classic", "shortlived", "tlsserver"]);

    let ids = [Identifier::Dns("profiles.example.com".into())];
    let (pem, _) = ca
        .issue_with_profile(&account, &ids, ChallengeType::Http01, None)
        .await;
    let (life, cn) = lifetime_and_cn(&pem);
    assert_eq!(
        life,
        Duration::days(90) - Duration::seconds(1),
        "classic is the default"
    );
    assert_eq!(cn.as_deref(), Some("profiles.example.com"));

    let (pem, _) = ca
        .issue_with_profile(&account, &ids, ChallengeType::Http01, Some("shortlived"))
        .await;
    let (life, cn) = lifetime_and_cn(&pem);
    assert_eq!(life, Duration::hours(160) - Duration::seconds(1));
    assert_eq!(cn, None, "shortlived has no common name");
    verify_chain(&ca.server.root_path, &pem, "profiles.example.com");

    let (pem, _) = ca
        .issue_with_profile(&account, &ids, ChallengeType::Http01, Some("tlsserver"))
        .await;
    assert_eq!(
        lifetime_and_cn(&pem).0,
        Duration::days(45) - Duration::seconds(1)
    );
}

#[tokio::test]
async fn ip_addresses_only_on_shortlived_and_unknown_profiles_refused() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ip = [Identifier::Ip("127.0.0.1".parse().unwrap())];
    let Err(err) = account.new_order(&NewOrder::new(&ip)).await else {
        panic!("classic must refuse IP identifiers");
    };
    assert!(
        format!("{err:?}").contains("unsupportedIdentifier"),
        "{err:?}"
    );
    let (pem, _) = ca.issue(&account, &ip, ChallengeType::Http01).await;
    verify_chain(&ca.server.root_path, &pem, "127.0.0.1");

    let dns = [Identifier::Dns("unknown-profile.example.com".into())];
    let Err(err) = account
        .new_order(&NewOrder::new(&dns).profile("forever"))
        .await
    else {
        panic!("an unknown profile must be refused");
    };
    assert!(format!("{err:?}").contains("invalidProfile"), "{err:?}");
}

#[tokio::test]
async fn profile_extended_key_usages_come_from_config() {
    use cairn_ra::ExtendedKeyUsage;
    let ca = TestCa::start_with(|cfg| {
        let p = cfg.ra.profiles.get_mut("tlsserver").unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
    })
    .await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("eku.example.com".into())];
    let eku_of = |pem: &str| {
        use der::Decode;
        let der = pem_chain(pem).remove(0);
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        let exts = cert.tbs_certificate().extensions().unwrap();
        let ext = exts
            .iter()
            .find(|e| e.extn_id.to_string() == "2.5.29.37")
            .unwrap();
        let eku =
            x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes()).unwrap();
        eku.0.iter().map(|o| o.to_string()).collect::<Vec<_>>()
    };
    let (pem, _) = ca
        .issue_with_profile(&account, &ids, ChallengeType::Http01, Some("tlsserver"))
        .await;
    assert_eq!(eku_of(&pem), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    let (pem, _) = ca
        .issue_with_profile(&account, &ids, ChallengeType::Http01, Some("shortlived"))
        .await;
    assert_eq!(
        eku_of(&pem),
        ["1.3.6.1.5.5.7.3.1"],
        "serverAuth only by default"
    );
}
