//! Slow and idle clients against a real listener on loopback: slowloris (request heads and
//! bodies trickled a byte at a time, TLS handshakes never finished), idle connections and a
//! flood over the connection cap. Well-behaved requests keep being answered throughout, every
//! slow connection is closed after its timeout, and connections over the cap are closed at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::{get, post};
use cairn_listen::{Limits, Listener};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

fn limits() -> Limits {
    let mut l = Limits::default();
    l.handshake_timeout = Duration::from_millis(400);
    l.header_timeout = Duration::from_millis(400);
    l.body_timeout = Duration::from_millis(400);
    l.idle_timeout = Duration::from_millis(600);
    l.max_connections = 64;
    l.max_body_bytes = 1024;
    l.shutdown_grace = Duration::from_secs(2);
    l
}

fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: bytes::Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
}

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits, tls: Option<Arc<rustls::ServerConfig>>) -> Running {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = Listener::new(socket, "test", limits);
    if let Some(tls) = tls {
        listener = listener.with_tls(tls);
    }
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listener.serve(app(), async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

/// Waits until the server closes `stream` (EOF or reset), discarding what it sends; returns the
/// time it took, or `None` if it stays open for `limit`.
async fn closed_within(
    mut stream: tokio::io::ReadHalf<TcpStream>,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
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

/// Opens a connection that sends `head` and then `trickle` one byte per 50 ms (forever,
/// repeating its last byte), and reports how long the server kept it open.
fn slow_client(
    addr: SocketAddr,
    head: &'static [u8],
    trickle: &'static [u8],
) -> tokio::task::JoinHandle<Option<Duration>> {
    tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, mut write) = tokio::io::split(stream);
        let writer = tokio::spawn(async move {
            if write.write_all(head).await.is_err() {
                return;
            }
            for i in 0.. {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let b = trickle[i.min(trickle.len() - 1)..][..1].to_vec();
                if write.write_all(&b).await.is_err() {
                    return;
                }
            }
        });
        let closed = closed_within(read, Duration::from_secs(5)).await;
        writer.abort();
        closed
    })
}

fn assert_closed_after_timeout(name: &str, closed: Vec<Option<Duration>>, timeout: Duration) {
    for (i, c) in closed.into_iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("{name} #{i} was never closed"));
        assert!(
            c >= timeout.mul_f32(0.9),
            "{name} #{i} closed too early ({c:?}): refused, not timed out"
        );
        // Generous: CI machines are shared; what matters is that it closes at all.
        assert!(
            c < timeout + Duration::from_secs(2),
            "{name} #{i} closed late ({c:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_floods_are_closed_while_good_requests_are_answered() {
    let limits = limits();
    let server = start(limits.clone(), None).await;
    let addr = server.addr;

    // 20 request heads trickled a byte at a time, 10 bodies trickled the same way, 20 idle
    // connections that never send a byte.
    let heads: Vec<_> = (0..20)
        .map(|_| {
            slow_client(
                addr,
                b"GET /ok HTTP/1.1\r\n",
                b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            )
        })
        .collect();
    let bodies: Vec<_> = (0..10)
        .map(|_| {
            slow_client(
                addr,
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
                b"a",
            )
        })
        .collect();
    let mut idle = Vec::new();
    for _ in 0..20 {
        let (read, write) = tokio::io::split(TcpStream::connect(addr).await.unwrap());
        idle.push((
            tokio::spawn(closed_within(read, Duration::from_secs(5))),
            write,
        ));
    }

    // Meanwhile, well-behaved clients (a new connection each time) are answered promptly.
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let resp = client
            .get(format!("http://{addr}/ok"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "ok");
        let resp = client
            .post(format!("http://{addr}/echo"))
            .body(vec![b'a'; 100])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "100");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered >= 5, "only {answered} good rounds");

    let mut closed = Vec::new();
    for h in heads {
        closed.push(h.await.unwrap());
    }
    assert_closed_after_timeout("slow request head", closed, limits.header_timeout);
    let mut closed = Vec::new();
    for b in bodies {
        closed.push(b.await.unwrap());
    }
    assert_closed_after_timeout("slow request body", closed, limits.body_timeout);
    let mut closed = Vec::new();
    for (r, _write) in idle {
        closed.push(r.await.unwrap());
    }
    // Idle: the watchdog, or hyper's header timer, whichever comes first.
    assert_closed_after_timeout("idle connection", closed, limits.header_timeout);

    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_slots_come_back() {
    let mut limits = limits();
    limits.max_connections = 4;
    let server = start(limits.clone(), None).await;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept those four before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let (read, _w) = tokio::io::split(TcpStream::connect(addr).await.unwrap());
        let closed = closed_within(read, Duration::from_millis(300)).await;
        assert!(closed.is_some(), "a connection over the cap stayed open");
    }
    // The held connections time out, and their slots serve new clients.
    tokio::time::sleep(limits.idle_timeout * 2).await;
    let resp = reqwest::get(format!("http://{addr}/ok")).await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "ok");
    drop(held);
    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_refused_with_413() {
    let server = start(limits(), None).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/echo", server.addr))
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

fn tls_config() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(config), cert.der().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_never_finished_are_closed_while_https_is_answered() {
    let limits = limits();
    let (config, root) = tls_config();
    let server = start(limits.clone(), Some(config)).await;
    let addr = server.addr;
    // Silent after connecting, and a ClientHello record header that never gets its body.
    let silent: Vec<_> = (0..10).map(|_| slow_client(addr, b"", b"")).collect();
    let partial: Vec<_> = (0..10)
        .map(|_| slow_client(addr, &[0x16, 0x03, 0x01, 0x02, 0x00], &[0x01]))
        .collect();
    let client = |h2: bool| {
        let b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_der(&root).unwrap())
            .timeout(Duration::from_secs(1));
        if h2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        }
        .build()
        .unwrap()
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1000) {
        for h2 in [false, true] {
            let resp = client(h2)
                .get(format!("https://localhost:{}/ok", addr.port()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.text().await.unwrap(), "ok");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut closed = Vec::new();
    for c in silent.into_iter().chain(partial) {
        closed.push(c.await.unwrap());
    }
    assert_closed_after_timeout("unfinished handshake", closed, limits.handshake_timeout);
    server.stop.send(()).unwrap();
    server.task.await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_refuses_new_ones() {
    let server = start(limits(), None).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        reqwest::get(format!("http://{addr}/slow"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap(), "slow");
    server.task.await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
