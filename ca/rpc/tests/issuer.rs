//! The issuer over gRPC with mutual TLS, in front of a real `LocalIssuer`: the client knows who
//! the issuer is and its chains without asking again, certificates, CRLs and OCSP responses
//! come back signed by the issuer's keys, the issuer's own refusals (a lint error, a CertID or
//! CRL scope that is not its own) stay what they are, and an issuer that is down is
//! `Unavailable`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_api::issuer::{CertUsage, CertificateIssuer, CrlRequest, IssueRequest, IssuerError};
use cairn_core::{Identifier, Serial};
use cairn_issuer::{CaHierarchy, KeyAlgorithm, LocalIssuer};
use cairn_ocsp::asn1::CertId;
use cairn_ocsp::{CertStatus, HashAlgorithm, IssuerHashes, ResponseParams};
use cairn_rpc::issuer::RemoteIssuer;
use cairn_rpc::{AllowedClients, RpcClientConfig, RpcError, dev_pki, server, tls};
use cairn_x509::{CertInfo, CrlEntry};
use der::asn1::OctetString;
use der::{Decode, Encode};
use rcgen::PublicKeyData;
use std::path::Path;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::serial_number::SerialNumber;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn config(pki: &Path, url: String) -> RpcClientConfig {
    RpcClientConfig {
        url,
        server_name: dev_pki::identity("ca"),
        tls: dev_pki::files(pki, "ra"),
        timeout: Duration::seconds(5),
    }
}

/// A `LocalIssuer` with a fresh hierarchy in `dir`, served to "ra" until `stop` is sent: the
/// issuer, the client configuration and `stop`.
async fn start(
    dir: &Path,
) -> (
    Arc<LocalIssuer>,
    RpcClientConfig,
    tokio::sync::oneshot::Sender<()>,
) {
    let pki = dir.join("pki");
    dev_pki::generate(&pki, &["ca".to_owned(), "ra".to_owned()]).unwrap();
    let h = CaHierarchy::load_or_create(&dir.join("ca"), KeyAlgorithm::EcdsaP256, now()).unwrap();
    let local = Arc::new(LocalIssuer::new(h, Default::default(), Vec::new()).unwrap());
    let router = cairn_rpc::issuer::router(local.clone())
        .into_router(AllowedClients(vec![dev_pki::identity("ra")]));
    let tls = tls::server_config(&dev_pki::files(&pki, "ca")).unwrap();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", socket.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(socket, "ca-rpc", tls, router, async move {
        let _ = stopped.await;
    }));
    (local, config(&pki, url), stop)
}

fn request(spki_der: Vec<u8>, validity: Duration) -> IssueRequest {
    let not_before = now() - Duration::hours(1);
    IssueRequest {
        serial: Serial::random(),
        spki_der,
        identifiers: vec![Identifier::dns("example.com")],
        common_name: Some("example.com".into()),
        not_before,
        not_after: not_before + validity,
        profile_validity: Duration::days(90),
        usage: CertUsage::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_crls_and_ocsp_are_signed_by_the_remote_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (local, config, _stop) = start(dir.path()).await;
    let remote = RemoteIssuer::connect(&config).await.unwrap();
    let identity = local.identity();
    assert_eq!(remote.identity(), identity);
    assert_eq!(
        remote.chains(&identity.issuer_id),
        local.chains(&identity.issuer_id)
    );
    assert!(!remote.chains(&identity.issuer_id).is_empty());
    assert!(remote.chains("no-such-issuer").is_empty());

    // A certificate for the requested key and names, issued by the intermediate.
    let key = rcgen::KeyPair::generate().unwrap();
    let req = request(key.subject_public_key_info(), Duration::days(30));
    let issued = remote.issue(req.clone()).await.unwrap();
    assert_eq!(issued.issuer_id, identity.issuer_id);
    let info = CertInfo::from_der(&issued.der).unwrap();
    assert_eq!(info.spki_der, req.spki_der);
    assert_eq!(info.identifiers, req.identifiers);
    let intermediate = CertInfo::from_der(&identity.issuer_certificate_der).unwrap();
    assert_eq!(info.issuer_der, intermediate.subject_der);

    // The issuer's own refusal: longer than the profile allows is a lint error, not a transport
    // failure.
    let too_long = request(key.subject_public_key_info(), Duration::days(120));
    let err = remote.issue(too_long).await.unwrap_err();
    assert!(matches!(&err, IssuerError::Lint(_)), "{err:?}");

    // A CRL shard with its entry.
    let entries = [CrlEntry {
        serial: vec![0x12, 0x34],
        revoked_at: now() - Duration::hours(2),
        reason: 1,
    }];
    let crl = |issuer_id| CrlRequest {
        issuer_id,
        shard: 3,
        number: 9,
        this_update: now(),
        next_update: now() + Duration::days(7),
        entries: &entries,
    };
    let der = remote.sign_crl(&crl(&identity.issuer_id)).await.unwrap();
    let list: CertificateList = CertificateList::from_der(&der).unwrap();
    assert_eq!(
        list.tbs_cert_list.issuer.to_der().unwrap(),
        intermediate.subject_der
    );
    assert_eq!(list.tbs_cert_list.revoked_certificates.unwrap().len(), 1);
    let refused = remote.sign_crl(&crl("someone-else")).await;
    assert!(
        matches!(refused, Err(IssuerError::InvalidRequest(_))),
        "{refused:?}"
    );

    // An OCSP answer for one of its certificates, revoked with a reason, and the nonce echoed.
    let hashes = IssuerHashes::from_certificate(&identity.issuer_certificate_der).unwrap();
    let (name, key_hash) = hashes.get(HashAlgorithm::Sha256).unwrap();
    let cert_id = CertId {
        hash_algorithm: HashAlgorithm::Sha256.algorithm_identifier(),
        issuer_name_hash: OctetString::new(name.to_vec()).unwrap(),
        issuer_key_hash: OctetString::new(key_hash.to_vec()).unwrap(),
        serial_number: SerialNumber::new(&[0x0a, 0x0b]).unwrap(),
    };
    let revoked_at = now() - Duration::hours(1);
    let params = ResponseParams {
        cert_id: &cert_id,
        status: CertStatus::Revoked {
            revoked_at,
            reason: Some(CrlReason::KeyCompromise),
        },
        produced_at: now(),
        this_update: now(),
        next_update: now() + Duration::days(4),
        nonce: None,
    };
    let der = remote.sign_ocsp(&params).await.unwrap();
    let parsed = cairn_ocsp::parse_response(&der).unwrap();
    let single = parsed.single().unwrap();
    assert_eq!(single.cert_id, cert_id);
    let basic = parsed.basic.as_ref().unwrap();
    assert!(basic.signature.raw_bytes().len() > 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_cannot_connect_and_a_down_issuer_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let (_local, config, stop) = start(dir.path()).await;
    let remote = RemoteIssuer::connect(&config).await.unwrap();

    // Not on the list: the "ca" certificate itself is valid, but only "ra" may call.
    let mut other = config.clone();
    other.tls = dev_pki::files(&dir.path().join("pki"), "ca");
    let err = RemoteIssuer::connect(&other).await.unwrap_err();
    assert!(matches!(err, RpcError::PermissionDenied(_)), "{err:?}");

    // A listener that is gone.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut down = config.clone();
    down.url = format!("https://{}", socket.local_addr().unwrap());
    drop(socket);
    let err = RemoteIssuer::connect(&down).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable(_)), "{err:?}");

    // A connected client whose issuer stopped: the call fails as Unavailable.
    stop.send(()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut outcome = remote
        .issue(request(key.subject_public_key_info(), Duration::days(30)))
        .await;
    for _ in 0..50 {
        if outcome.is_err() {
            break;
        }
        // The listener drains the open connection first; the next calls must fail.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        outcome = remote
            .issue(request(key.subject_public_key_info(), Duration::days(30)))
            .await;
    }
    assert!(
        matches!(outcome, Err(IssuerError::Unavailable(_))),
        "{outcome:?}"
    );
}

/// `cairn ca serve` with `[[ca.issuers]]`: an `IssuerSet` behind the service. The client learns
/// every issuer (the CRL updater and the OCSP responder sign for each) and each one's chains,
/// and the remote set picks the issuer by the certificate key's family as the local one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_set_is_served_with_every_issuer_and_picks_by_key_family() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    dev_pki::generate(&pki, &["ca".to_owned(), "ra".to_owned()]).unwrap();
    let issuer = |name: &str, algorithm| {
        let h = CaHierarchy::load_or_create(&dir.path().join(name), algorithm, now()).unwrap();
        LocalIssuer::new(h, Default::default(), Vec::new()).unwrap()
    };
    let (ecdsa, rsa) = (
        issuer("ecdsa", KeyAlgorithm::EcdsaP256),
        issuer("rsa", KeyAlgorithm::Rsa2048),
    );
    let set = Arc::new(
        cairn_issuer::IssuerSet::new(ecdsa)
            .with_issuer(rsa, false)
            .unwrap(),
    );
    let router = cairn_rpc::issuer::router(set.clone())
        .into_router(AllowedClients(vec![dev_pki::identity("ra")]));
    let tls = tls::server_config(&dev_pki::files(&pki, "ca")).unwrap();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", socket.local_addr().unwrap());
    tokio::spawn(server::serve(
        socket,
        "ca-rpc",
        tls,
        router,
        std::future::pending(),
    ));

    let remote = RemoteIssuer::connect(&config(&pki, url)).await.unwrap();
    let identities = set.identities();
    assert_eq!(identities.len(), 2);
    assert_eq!(remote.identities(), identities);
    assert_eq!(remote.identity(), set.identity());
    for identity in &identities {
        assert!(!remote.chains(&identity.issuer_id).is_empty());
        assert_eq!(
            remote.chains(&identity.issuer_id),
            set.chains(&identity.issuer_id)
        );
    }

    // An ECDSA key and an RSA key each get the issuer of their family.
    let ec_key = rcgen::KeyPair::generate().unwrap();
    let rsa_key = cairn_x509::SigningKey::generate(KeyAlgorithm::Rsa2048).unwrap();
    let mut issuers = Vec::new();
    for spki in [
        ec_key.subject_public_key_info(),
        rsa_key.spki_der().to_vec(),
    ] {
        let issued = remote
            .issue(request(spki, Duration::days(30)))
            .await
            .unwrap();
        let identity = identities
            .iter()
            .find(|i| i.issuer_id == issued.issuer_id)
            .expect("issued by one of the set");
        let info = CertInfo::from_der(&issued.der).unwrap();
        let intermediate = CertInfo::from_der(&identity.issuer_certificate_der).unwrap();
        assert_eq!(info.issuer_der, intermediate.subject_der);
        issuers.push(issued.issuer_id);
    }
    assert_ne!(issuers[0], issuers[1], "one issuer per key family");
}
