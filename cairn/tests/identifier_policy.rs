//! Identifier policy per account (private PKI): an EAB key carries an allow-list with
//! pre-validated patterns; the account bound with it issues for its names without any
//! challenge (the authorizations are stored valid with no challenges), is refused outside
//! them, and a second account with another policy cannot issue the first one's names. An
//! account's own policy replaces its EAB key's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a test failure
mod common;

use cairn_core::{AccountId, AccountPolicy, AuthzId, PolicyEntry};
use cairn_sa::{SqlStorage, StorageAuthority};
use common::{TestCa, csr_for, verify_chain};
use instant_acme::{
    Account, ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

async fn storage(ca: &TestCa) -> SqlStorage {
    let data_dir = ca.dir.path().join("data");
    SqlStorage::open_sqlite_in(&data_dir)
        .await
        .unwrap()
        .with_eab_seal(cairn::data_dir::eab_seal(&data_dir).unwrap())
}

/// What `cairn admin eab new --pre-validated <pattern>` does.
async fn eab_key(ca: &TestCa, kid: &str, hmac: u8, pre_validated: &str) {
    let s = storage(ca).await;
    let key = cairn_core::EabKey {
        key_id: kid.into(),
        hmac_key: vec![hmac; 32],
        created_at: time::OffsetDateTime::now_utc(),
        bound_account: None,
    };
    s.new_eab_key(&key).await.unwrap();
    let policy = AccountPolicy {
        entries: vec![PolicyEntry::new(pre_validated, true).unwrap()],
    };
    s.set_eab_identifier_policy(kid, Some(&policy))
        .await
        .unwrap();
}

async fn account_with(ca: &TestCa, kid: &str, hmac: u8) -> Account {
    let eab = ExternalAccountKey::new(kid.into(), &[hmac; 32]);
    let (account, _) = Account::builder_with_root(&ca.server.tls_root_path)
        .unwrap()
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            ca.directory().to_owned(),
            Some(&eab),
        )
        .await
        .unwrap();
    account
}

fn account_id(account: &Account) -> AccountId {
    AccountId(account.id().rsplit('/').next().unwrap().to_owned())
}

async fn rejected(account: &Account, name: &str) {
    let ids = [Identifier::Dns(name.into())];
    match account.new_order(&NewOrder::new(&ids)).await {
        Err(instant_acme::Error::Api(p)) => assert_eq!(
            p.r#type.as_deref(),
            Some("urn:ietf:params:acme:error:rejectedIdentifier"),
            "{p:?}"
        ),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("{name} was accepted"),
    }
}

#[tokio::test]
async fn eab_bound_accounts_issue_their_names_without_challenges_and_nothing_else() {
    let ca = TestCa::start().await;
    eab_key(&ca, "team-a", 1, "*.team-a.corp.example").await;
    eab_key(&ca, "team-b", 2, "*.team-b.corp.example").await;
    let a = account_with(&ca, "team-a", 1).await;
    let b = account_with(&ca, "team-b", 2).await;

    // Team A's names: ready at once, no challenge answered.
    let ids = [
        Identifier::Dns("www.team-a.corp.example".into()),
        Identifier::Dns("*.team-a.corp.example".into()),
    ];
    let mut order = a.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Ready);
    let authz_urls: Vec<String> = order
        .state()
        .authorizations
        .iter()
        .map(|a| a.url.clone())
        .collect();
    let (csr, _key) = csr_for(&ids);
    order.finalize_csr(&csr).await.unwrap();
    let pem = order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    verify_chain(&ca.server.root_path, &pem, "api.team-a.corp.example");
    // Stored as pre-validated: valid, with no challenges; no challenge lookup was made (CAA,
    // type 257, is still checked at finalize).
    let s = storage(&ca).await;
    for url in &authz_urls {
        let id = AuthzId(url.rsplit('/').next().unwrap().to_owned());
        let authz = s.get_authorization(&id).await.unwrap();
        assert_eq!(authz.status, cairn_core::AuthzStatus::Valid);
        assert!(authz.challenges.is_empty(), "{authz:?}");
    }
    let history = ca.chall.dns_request_history("www.team-a.corp.example");
    assert!(
        history.iter().all(|e| e.question.qtype == 257),
        "{history:?}"
    );
    assert!(
        ca.chall
            .dns_request_history("_acme-challenge.www.team-a.corp.example")
            .is_empty()
    );
    assert!(
        ca.chall
            .http_request_history("www.team-a.corp.example")
            .is_empty()
    );

    // Outside the policy: refused, for A and for B.
    rejected(&a, "www.team-b.corp.example").await;
    rejected(&a, "team-a.corp.example").await;
    rejected(&b, "www.team-a.corp.example").await;
    rejected(&a, "www.example.com").await;

    // B issues its own names.
    let ids = [Identifier::Dns("db.team-b.corp.example".into())];
    let mut order = b.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Ready);
}

#[tokio::test]
async fn an_accounts_own_policy_replaces_its_eab_keys_and_plain_entries_need_a_challenge() {
    let ca = TestCa::start().await;
    eab_key(&ca, "team-a", 1, "*.team-a.corp.example").await;
    let a = account_with(&ca, "team-a", 1).await;
    // What `cairn admin account policy --account <id> --allow db.corp.example` does.
    let own = AccountPolicy {
        entries: vec![PolicyEntry::new("db.corp.example", false).unwrap()],
    };
    let s = storage(&ca).await;
    s.set_account_identifier_policy(&account_id(&a), Some(&own))
        .await
        .unwrap();
    rejected(&a, "www.team-a.corp.example").await;
    // Allowed but not pre-validated: a normal pending order, validated by a challenge.
    let ids = [Identifier::Dns("db.corp.example".into())];
    let mut order = a.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Pending);
    let status = ca
        .authorize(&mut order, instant_acme::ChallengeType::Http01)
        .await;
    assert_eq!(status, OrderStatus::Ready);
    // Cleared: the EAB key's policy applies again.
    s.set_account_identifier_policy(&account_id(&a), None)
        .await
        .unwrap();
    let ids = [Identifier::Dns("x.team-a.corp.example".into())];
    let mut order = a.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Ready);
}
