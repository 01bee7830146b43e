//! A fresh PostgreSQL schema per test, and a TCP proxy in front of PostgreSQL that can cut the
//! database off (every connection dropped, new ones closed at once) and bring it back: a real
//! database outage for the CA, with nothing test-only in the CA.

// The schema name is built from a prefix and the process ID only, so the dynamic SQL is safe.
use sqlx::AssertSqlSafe;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A schema created for one test; drop it with [`Schema::drop`].
pub struct Schema {
    pub name: String,
    /// The database URL with this schema as the search path.
    pub url: String,
    pub admin: sqlx::PgPool,
}

impl Schema {
    /// Creates `<prefix>_<pid>` afresh in the database at `base`.
    pub async fn create(base: &str, prefix: &str) -> Schema {
        let name = format!("{prefix}_{}", std::process::id());
        let admin = sqlx::PgPool::connect(base)
            .await
            .expect("connect to PostgreSQL");
        for sql in [
            format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
            format!("CREATE SCHEMA {name}"),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .unwrap();
        }
        Schema {
            url: with_search_path(base, &name),
            name,
            admin,
        }
    }

    pub async fn drop(self) {
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&self.admin)
            .await
            .unwrap();
    }
}

/// `url` with `schema` as the connection's search path.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// A TCP proxy to one upstream address, which can be switched off and on.
pub struct OutageProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    relays: Arc<std::sync::Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl OutageProxy {
    pub async fn start(upstream: SocketAddr) -> OutageProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let relays = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let accept = {
            let (up, relays) = (up.clone(), relays.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Closed at once: the client's connect fails fast (no retry until a
                        // timeout, as a refused connection would get).
                        drop(client);
                        continue;
                    }
                    relays.lock().unwrap().spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            })
        };
        OutageProxy {
            addr,
            up,
            relays,
            accept,
        }
    }

    /// Cuts every connection and closes new ones until [`OutageProxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.relays.lock().unwrap().abort_all();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` (a postgres:// URL) pointed at this proxy instead of its host and port.
    pub fn route(&self, url: &str) -> String {
        let mut u = reqwest::Url::parse(url).unwrap();
        u.set_host(Some(&self.addr.ip().to_string())).unwrap();
        u.set_port(Some(self.addr.port())).unwrap();
        u.to_string()
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.relays.lock().unwrap().abort_all();
    }
}

/// The host and port of a postgres:// URL, resolved.
pub fn upstream(url: &str) -> SocketAddr {
    let u = reqwest::Url::parse(url).unwrap();
    let host = u.host_str().unwrap_or("localhost").to_owned();
    let port = u.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap()
}
