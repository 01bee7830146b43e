//! `cairn serve`'s listeners are bounded by `[server.limits]` (issue 14, finding 2): idle and
//! unfinished connections to the ACME (TLS), public and metrics listeners are closed after their
//! timeouts while the CA keeps answering, and a listener at its connection cap closes new
//! connections at once. The health endpoints say ready and live.

mod common;

use common::TestCa;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long the server keeps `stream` open without a byte from us (`None`: still open at
/// `limit`).
async fn open_for(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

async fn start() -> TestCa {
    TestCa::start_with(|cfg| {
        let l = &mut cfg.server.limits;
        l.handshake_timeout = time::Duration::seconds(1);
        l.header_timeout = time::Duration::seconds(1);
        l.idle_timeout = time::Duration::seconds(1);
        l.max_connections = 12;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_every_listener_are_closed_while_the_ca_answers() {
    let ca = start().await;
    let s = &ca.server;
    let listeners: [(&str, SocketAddr); 3] = [
        ("acme", s.acme_addr),
        ("public", s.public_addr),
        ("metrics", s.metrics_addr),
    ];
    let mut idle = Vec::new();
    for (name, addr) in listeners {
        for _ in 0..5 {
            let stream = TcpStream::connect(addr).await.unwrap();
            idle.push((name, tokio::spawn(open_for(stream, Duration::from_secs(6)))));
        }
    }
    // The CA answers meanwhile (each round a new client, so a new connection).
    let root = reqwest::Certificate::from_pem(&std::fs::read(&s.root_path).unwrap()).unwrap();
    for _ in 0..5 {
        let client = reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let dir = client.get(&s.directory_url).send().await.unwrap();
        assert!(dir.status().is_success());
        let live = client
            .get(format!("http://{}/health/live", s.metrics_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, task) in idle {
        let closed = task.await.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("an idle {name} connection stayed open"));
        assert!(
            closed >= Duration::from_millis(900),
            "{name}: closed at once ({closed:?}), not by a timeout"
        );
    }
    let ready = reqwest::get(format!("http://{}/health/ready", s.metrics_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_listener_at_its_cap_closes_new_connections_at_once() {
    let ca = start().await;
    let addr = ca.server.public_addr;
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let over = TcpStream::connect(addr).await.unwrap();
    let closed = open_for(over, Duration::from_millis(500)).await;
    assert!(closed.is_some(), "a connection over the cap stayed open");
    drop(held);
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_is_not_ready_when_a_local_ct_log_stops_but_stays_live() {
    let ca = TestCa::start_with(|cfg| {
        cfg.ct.enabled = true;
        cfg.ct.local_logs = true;
        cfg.ct.local_period_ms = 50;
    })
    .await;
    let metrics = ca.server.metrics_addr;
    let get = |path: &'static str| async move {
        let r = reqwest::get(format!("http://{metrics}{path}"))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(get("/health").await, (200, "ready\n".into()));
    ca.server.ct.local_logs[0].shutdown().await;
    let (status, body) = get("/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("ct: log"), "{body}");
    assert_eq!(get("/health").await.0, 503);
    assert_eq!(get("/health/live").await.0, 200);
}
