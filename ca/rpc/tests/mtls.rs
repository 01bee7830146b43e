//! The VA over gRPC with mutual TLS: an allowed client's calls reach the VA and its answers come
//! back whole; a client whose identity the service does not allow, a client with a certificate
//! from another CA, and a call to a peer that is down all fail as the transport errors they are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use cairn_api::va::{CaaCheck, ValidationAuthority, ValidationOutcome, ValidationRequest};
use cairn_core::{ChallengeType, Identifier, Problem, ProblemType};
use cairn_rpc::va::RemoteVa;
use cairn_rpc::{AllowedClients, RpcClientConfig, RpcError, dev_pki, server, tls, va};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Succeeds for token "good", fails with `unauthorized` otherwise; CAA forbids "forbidden.test".
#[derive(Default)]
struct TokenVa {
    calls: AtomicUsize,
}

#[async_trait]
impl ValidationAuthority for TokenVa {
    async fn validate(&self, req: ValidationRequest) -> ValidationOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ValidationOutcome {
            records: Vec::new(),
            error: (req.token != "good")
                .then(|| Problem::unauthorized(format!("wrong token {}", req.token))),
        }
    }

    async fn check_caa(&self, identifier: &Identifier, _check: &CaaCheck) -> Result<(), Problem> {
        if identifier.value == "forbidden.test" {
            Err(Problem::new(ProblemType::Caa, "CAA forbids issuance"))
        } else {
            Ok(())
        }
    }
}

fn request(token: &str) -> ValidationRequest {
    ValidationRequest {
        identifier: Identifier::dns("example.test"),
        challenge: ChallengeType::Http01,
        token: token.to_owned(),
        key_authorization: format!("{token}.thumb"),
        caa: None,
    }
}

fn caa() -> CaaCheck {
    CaaCheck {
        wildcard: false,
        ca_identities: vec!["cairn.test".into()],
        account: None,
        method: Some(ChallengeType::Http01),
    }
}

async fn start_va(dir: &Path, allowed: &[&str]) -> (String, Arc<TokenVa>) {
    let fake = Arc::new(TokenVa::default());
    let router = va::router(fake.clone()).into_router(AllowedClients(
        allowed.iter().map(|s| dev_pki::identity(s)).collect(),
    ));
    let tls = tls::server_config(&dev_pki::files(dir, "va")).unwrap();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(server::serve(
        socket,
        "va-rpc",
        tls,
        router,
        std::future::pending(),
    ));
    (format!("https://{addr}"), fake)
}

fn client(dir: &Path, url: &str, name: &str) -> RemoteVa {
    let config = RpcClientConfig {
        url: url.to_owned(),
        server_name: dev_pki::identity("va"),
        tls: dev_pki::files(dir, name),
        timeout: time::Duration::seconds(5),
    };
    RemoteVa::new("test", &config).unwrap()
}

fn services(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn allowed_client_gets_the_vas_answers_whole() {
    let dir = tempfile::tempdir().unwrap();
    dev_pki::generate(dir.path(), &services(&["va", "ra"])).unwrap();
    let (url, fake) = start_va(dir.path(), &["ra"]).await;
    let remote = client(dir.path(), &url, "ra");

    let ok = remote.validate(request("good")).await;
    assert_eq!(ok.error, None);
    let bad = remote.validate(request("bad")).await;
    let problem = bad.error.unwrap();
    assert_eq!(problem.typ, ProblemType::Unauthorized);
    assert_eq!(problem.detail, "wrong token bad");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    assert_eq!(
        remote.check_caa(&Identifier::dns("ok.test"), &caa()).await,
        Ok(())
    );
    let refused = remote
        .check_caa(&Identifier::dns("forbidden.test"), &caa())
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::Caa);
}

#[tokio::test]
async fn client_identity_not_on_the_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    dev_pki::generate(dir.path(), &services(&["va", "ra", "wfe"])).unwrap();
    let (url, fake) = start_va(dir.path(), &["ra"]).await;
    let config = RpcClientConfig {
        url,
        server_name: dev_pki::identity("va"),
        tls: dev_pki::files(dir.path(), "wfe"),
        timeout: time::Duration::seconds(5),
    };
    let raw = cairn_rpc::RpcClient::new(va::SERVICE, &config).unwrap();
    let err = raw
        .call::<_, ValidationOutcome>("Validate", request("good"))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::PermissionDenied(_)), "{err:?}");
    // The RemoteVa wrapper turns it into a failed validation, never a success.
    let remote = client(
        dir.path(),
        &format!("https://{}", config.url.trim_start_matches("https://")),
        "wfe",
    );
    let outcome = remote.validate(request("good")).await;
    assert_eq!(outcome.error.unwrap().typ, ProblemType::ServerInternal);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0, "the VA never ran");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_in_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    dev_pki::generate(dir.path(), &services(&["va", "ra"])).unwrap();
    // Same identity "ra", but issued by a different CA; the client trusts the real CA so the
    // server's certificate checks out, only the client's does not.
    dev_pki::generate(other.path(), &services(&["ra"])).unwrap();
    let (url, fake) = start_va(dir.path(), &["ra"]).await;
    let mut files = dev_pki::files(other.path(), "ra");
    files.ca = dir.path().join("internal-ca.pem");
    let config = RpcClientConfig {
        url,
        server_name: dev_pki::identity("va"),
        tls: files,
        timeout: time::Duration::seconds(5),
    };
    let raw = cairn_rpc::RpcClient::new(va::SERVICE, &config).unwrap();
    let err = raw
        .call::<_, ValidationOutcome>("Validate", request("good"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Unavailable(_) | RpcError::Status { .. }),
        "{err:?}"
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn peer_down_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    dev_pki::generate(dir.path(), &services(&["va", "ra"])).unwrap();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", socket.local_addr().unwrap());
    drop(socket);
    let config = RpcClientConfig {
        url,
        server_name: dev_pki::identity("va"),
        tls: dev_pki::files(dir.path(), "ra"),
        timeout: time::Duration::seconds(5),
    };
    let raw = cairn_rpc::RpcClient::new(va::SERVICE, &config).unwrap();
    let err = raw
        .call::<_, ValidationOutcome>("Validate", request("good"))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Unavailable(_)), "{err:?}");
}

#[test]
fn bad_service_names_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = dev_pki::generate(dir.path(), &services(&["ok", "not a label"])).unwrap_err();
    assert!(err.to_string().contains("not a label"), "{err}");
    let err = tls::server_config(&dev_pki::files(dir.path(), "missing")).unwrap_err();
    assert!(err.to_string().contains("internal-ca.pem"), "{err}");
}
