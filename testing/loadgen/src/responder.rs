//! The built-in http-01 responder: answers `GET /.well-known/acme-challenge/{token}` with the key
//! authorization the load generator published, whatever the Host.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

type Tokens = Arc<RwLock<HashMap<String, String>>>;

/// A running http-01 responder.
#[derive(Debug)]
pub struct Http01Responder {
    tokens: Tokens,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Http01Responder {
    /// Listens on `addr` (port 0: any free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Http01Responder> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let tokens = Tokens::default();
        let app = Router::new()
            .route("/.well-known/acme-challenge/{token}", get(answer))
            .with_state(tokens.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("http-01 responder stopped: {e}");
            }
        });
        Ok(Http01Responder { tokens, addr, task })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn add(&self, token: &str, key_authorization: String) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), key_authorization);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }
}

impl Drop for Http01Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(tokens): State<Tokens>,
    Path(token): Path<String>,
) -> Result<String, StatusCode> {
    tokens
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&token)
        .cloned()
        .ok_or(StatusCode::NOT_FOUND)
}
