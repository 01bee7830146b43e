//! Every listener counts its requests by route template, method and status (the series the
//! SLI recording rules in `deploy/prometheus/` read): a real listener on loopback, a recorder
//! of the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use cairn_listen::{Limits, Listener};
use tokio::net::TcpListener;

fn app() -> Router {
    Router::new()
        .route("/things/{id}", get(|| async { "thing" }))
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
}

#[test]
fn requests_are_counted_by_listener_route_method_and_status() {
    // A recorder of this test's own on a current-thread runtime, so the listener's tasks
    // record into it and nothing else does.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let listener = Listener::new(socket, "test", Limits::default());
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(listener.serve(app(), async {
                let _ = stopped.await;
            }));
            let client = reqwest::Client::new();
            let send = |method: &str, path: &str| {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                client
                    .request(method, format!("http://{addr}{path}"))
                    .send()
            };
            assert_eq!(send("GET", "/things/1").await.unwrap().status(), 200);
            assert_eq!(send("GET", "/things/2").await.unwrap().status(), 200);
            assert_eq!(send("GET", "/broken").await.unwrap().status(), 500);
            assert_eq!(send("GET", "/nowhere/x1").await.unwrap().status(), 404);
            assert_eq!(send("BREW", "/things/3").await.unwrap().status(), 405);
            let _ = stop.send(());
            task.await.unwrap();
        })
    });
    let text = handle.render();
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    let series = |endpoint: &str, method: &str, status: u16| {
        format!(
            "cairn_http_requests_total{{listener=\"test\",endpoint=\"{endpoint}\",method=\"{method}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(
        value(&series("/things/{id}", "GET", 200)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&series("/broken", "GET", 500)), Some(1.0), "{text}");
    assert_eq!(value(&series("unmatched", "GET", 404)), Some(1.0), "{text}");
    assert_eq!(
        value(&series("/things/{id}", "other", 405)),
        Some(1.0),
        "{text}"
    );
    // Paths and made-up methods never become label values.
    for leaked in ["/things/1", "nowhere", "BREW"] {
        assert!(
            !text.contains(leaked),
            "{leaked} leaked into labels:\n{text}"
        );
    }
    assert!(
        text.contains("cairn_http_request_seconds_count{listener=\"test\",endpoint=\"/broken\"}")
            || text.contains("cairn_http_request_seconds{listener=\"test\",endpoint=\"/broken\""),
        "latency missing:\n{text}"
    );
}
