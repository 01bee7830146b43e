//! `--log-format json`: the binary writes one JSON object per line, and every ACME request ends
//! with a line carrying its request ID, endpoint, account ID, order ID and outcome. Without the
//! flag the same line is plain text. Runs the real `cairn serve` and reads its stderr.
//! `--otlp-endpoint`: the same request spans reach an OTLP/HTTP collector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use instant_acme::{Account, Identifier, NewAccount, NewOrder};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cairn_test_services::free_port()))
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
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
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

/// A stand-in OpenTelemetry collector: `POST /v1/traces` with an OTLP protobuf body, decoded
/// and kept; anything else is a 404 (and the test would see no spans).
async fn otlp_collector() -> (
    SocketAddr,
    std::sync::Arc<
        std::sync::Mutex<
            Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
        >,
    >,
) {
    use axum::routing::post;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/v1/traces",
        post({
            let got = got.clone();
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let got = got.clone();
                async move {
                    assert_eq!(
                        headers.get("content-type").unwrap(),
                        "application/x-protobuf"
                    );
                    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP request");
                    got.lock().unwrap().push(req);
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

#[tokio::test]
async fn otlp_export_sends_each_acme_request_span_with_its_fields() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    let (collector, got) = otlp_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector}");
    let mut s = serve(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    let client = http_client(dir.path());
    let acme = format!("https://localhost:{}", s.acme.port());
    assert_eq!(
        client
            .get(format!("{acme}/directory"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let bad = client
        .post(format!("{acme}/acme/new-order"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 415);
    // A clean stop flushes the batch (SIGTERM: `cairn serve` shuts down gracefully).
    let pid = s.child.id().unwrap();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
        .await
        .expect("cairn serve stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let requests = got.lock().unwrap().clone();
    let spans: Vec<_> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .inspect(|rs| {
            let service = rs
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .iter()
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.clone());
            assert_eq!(service, Some(Any::StringValue("cairn".into())));
        })
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|s| s.name == "acme_request")
        .collect();
    let attr = |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        span.attributes.iter().find(|a| a.key == key).and_then(|a| {
            match a.value.as_ref()?.value.as_ref()? {
                Any::StringValue(v) => Some(v.clone()),
                Any::IntValue(v) => Some(v.to_string()),
                other => Some(format!("{other:?}")),
            }
        })
    };
    let directory = spans
        .iter()
        .find(|s| attr(s, "endpoint").as_deref() == Some("/directory"))
        .unwrap_or_else(|| panic!("no /directory span among {spans:#?}"));
    assert_eq!(attr(directory, "method").as_deref(), Some("GET"));
    let refused = spans
        .iter()
        .find(|s| attr(s, "endpoint").as_deref() == Some("/acme/new-order"))
        .unwrap_or_else(|| panic!("no /acme/new-order span among {spans:#?}"));
    assert_eq!(attr(refused, "method").as_deref(), Some("POST"));
    // The request's closing log line is an event of its span, with the outcome.
    let line = refused
        .events
        .iter()
        .find(|e| e.name == "ACME request")
        .unwrap_or_else(|| panic!("no request event in {refused:#?}"));
    let field = |key: &str| {
        line.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone()?.value)
    };
    assert_eq!(
        field("outcome"),
        Some(Any::StringValue("client_error".into()))
    );
    // tracing-opentelemetry carries unsigned integers as strings (a u64 may not fit OTLP's
    // signed integer).
    let status = match field("status") {
        Some(Any::IntValue(v)) => v.to_string(),
        Some(Any::StringValue(v)) => v,
        other => panic!("status is {other:?}"),
    };
    assert_eq!(status, "415");
    // Each request is its own trace.
    assert_ne!(directory.trace_id, refused.trace_id);
    assert_eq!(refused.trace_id.len(), 16);
}

#[test]
fn an_otlp_endpoint_that_is_not_http_is_a_one_line_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--otlp-endpoint", "grpc://collector:4317", "serve"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'grpc://collector:4317'")
            && stderr.contains("--otlp-endpoint")
            && stderr.contains("http:// or https://"),
        "{stderr}"
    );
}
