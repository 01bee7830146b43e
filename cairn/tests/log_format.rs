//! `--log-format json`: the binary writes one JSON object per line, and every ACME request ends
//! with a line carrying its request ID, endpoint, account ID, order ID and outcome. Without the
//! flag the same line is plain text. Runs the real `cairn serve` and reads its stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use instant_acme::{Account, Identifier, NewAccount, NewOrder};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Serve {
    child: Child,
    acme: SocketAddr,
}

/// Starts `cairn [extra] serve` in `dir` (stderr to `dir/stderr.log`) and waits until ready.
async fn serve(dir: &Path, extra: &[&str]) -> Serve {
    let (acme, metrics, public) = (free_port(), free_port(), free_port());
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(extra)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &acme.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--public-listen", &public.to_string()])
        .arg("--no-dap")
        .env_remove("RUST_LOG")
        .env_remove("CAIRN_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("cairn serve starts");
    let health = format!("http://{metrics}/health");
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(&health).await
            && r.status() == 200
        {
            return Serve { child, acme };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "cairn serve not ready:\n{}",
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    );
}

/// An ACME client trusting the server's TLS root.
fn http_client(dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(dir.join("data/ca/tls-root.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

async fn stop(mut s: Serve, dir: &Path) -> String {
    s.child.kill().await.unwrap();
    std::fs::read_to_string(dir.join("stderr.log")).unwrap()
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_request_account_order_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--log-format", "json"]).await;
    let directory = format!("https://localhost:{}/directory", s.acme.port());
    let (account, _) = Account::builder_with_root(dir.path().join("data/ca/tls-root.pem"))
        .unwrap()
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory,
            None,
        )
        .await
        .unwrap();
    let order = account
        .new_order(&NewOrder::new(&[Identifier::Dns(
            "logs.example.com".into(),
        )]))
        .await
        .unwrap();
    let order_id = order.url().rsplit('/').next().unwrap().to_owned();
    let account_id = account.id().rsplit('/').next().unwrap().to_owned();
    // A client mistake: not JOSE.
    let bad = http_client(dir.path())
        .post(format!(
            "https://localhost:{}/acme/new-order",
            s.acme.port()
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 415);
    let stderr = stop(s, dir.path()).await;

    let events: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}")))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e.is_object() && e["level"].is_string())
    );
    let requests: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "ACME request")
        .collect();
    let find = |endpoint: &str, status: u64| {
        requests
            .iter()
            .find(|e| e["span"]["endpoint"] == endpoint && e["status"] == status)
            .unwrap_or_else(|| panic!("no {endpoint} {status} line in:\n{stderr}"))
    };

    let created = find("/acme/new-order", 201);
    assert_eq!(created["outcome"], "ok");
    assert_eq!(created["span"]["account_id"], account_id.as_str());
    assert_eq!(created["span"]["order_id"], order_id.as_str());
    assert_eq!(created["span"]["method"], "POST");
    let request_id = created["span"]["request_id"].as_str().unwrap();
    assert!(
        request_id.len() == 16 && request_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{request_id}"
    );

    let account_line = find("/acme/new-acct", 201);
    assert_eq!(account_line["span"]["account_id"], account_id.as_str());

    let refused = find("/acme/new-order", 415);
    assert_eq!(refused["outcome"], "client_error");
    assert_eq!(refused["problem"], "urn:ietf:params:acme:error:malformed");
    assert!(refused["span"].get("account_id").is_none());

    let ids: std::collections::HashSet<&str> = requests
        .iter()
        .map(|e| e["span"]["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), requests.len(), "request IDs repeat");
}

#[tokio::test]
async fn logs_are_text_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]).await;
    let resp = http_client(dir.path())
        .get(format!("https://localhost:{}/directory", s.acme.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stderr = stop(s, dir.path()).await;
    let line = stderr
        .lines()
        .find(|l| l.contains("ACME request"))
        .unwrap_or_else(|| panic!("no request line in:\n{stderr}"));
    assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    assert!(
        line.contains("endpoint=/directory") && line.contains("status=200"),
        "{line}"
    );
}

#[test]
fn an_unknown_log_format_is_a_one_line_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--log-format", "yaml", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'yaml'") && stderr.contains("--log-format"),
        "{stderr}"
    );
}
