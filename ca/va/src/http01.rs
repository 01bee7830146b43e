//! http-01 (RFC 8555 §8.3): fetch the key authorization over HTTP, following a bounded number of
//! redirects to ports 80 and 443 only, and recording every hop.

use crate::{Va, connect_order, reject};
use bytes::Bytes;
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType, ValidationRecord};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::{Host, Url};

/// Redirects followed at most (as Boulder).
pub const MAX_REDIRECTS: usize = 10;

/// Bytes of response body read at most.
pub const MAX_BODY: usize = 128 * 1024;

/// A checked fetch target.
struct Target {
    https: bool,
    host: Host<String>,
    /// The port in the URL (80 or 443).
    logical_port: u16,
}

fn connection(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::Connection, detail)
}

/// Checks a URL we are about to fetch: the first one (`redirect == false`) or a redirect
/// target. Redirects to IP literals are refused (as Let's Encrypt does): a redirect may only
/// name a host, whose addresses then pass the address policy like any other DNS answer.
/// Exposed for fuzzing through [`check_redirect_target`].
fn check_target(url: &Url, redirect: bool) -> Result<Target, Problem> {
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(connection(format!(
                "Fetching {url}: Invalid protocol scheme in redirect target. Only \"http\" and \"https\" protocol schemes are supported, not {other:?}"
            )));
        }
    };
    let logical_port = url.port_or_known_default().unwrap_or(0);
    if logical_port != 80 && logical_port != 443 {
        return Err(connection(format!(
            "Fetching {url}: Invalid port in redirect target. Only ports 80 and 443 are supported, not {logical_port}"
        )));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) => {
            let id = Identifier::dns(d).normalized().map_err(|_| {
                connection(format!(
                    "Fetching {url}: Invalid host in redirect target {d:?}. Only domain names and IP addresses are supported"
                ))
            })?;
            if id.is_wildcard() {
                return Err(connection(format!(
                    "Fetching {url}: Invalid host in redirect target {d:?}"
                )));
            }
            Host::Domain(id.value)
        }
        Some(Host::Ipv4(_) | Host::Ipv6(_)) if redirect => {
            return Err(connection(format!(
                "Fetching {url}: Invalid host in redirect target: redirects to IP addresses are not followed, only to host names"
            )));
        }
        Some(Host::Ipv4(a)) => Host::Ipv4(a),
        Some(Host::Ipv6(a)) => Host::Ipv6(a),
        None => {
            return Err(connection(format!(
                "Fetching {url}: redirect target has no host"
            )));
        }
    };
    Ok(Target {
        https,
        host,
        logical_port,
    })
}

/// Checks a redirect target the way http-01 validation does before following it (scheme,
/// port 80/443, a host name and not an IP literal, no wildcard). `Ok` with the host name to
/// resolve. A pure function over untrusted input, for fuzzing.
pub fn check_redirect_target(current: &Url, location: &str) -> Result<String, Problem> {
    let next = current.join(location).map_err(|_| {
        connection(format!(
            "Fetching {current}: the redirect Location is not a valid URL"
        ))
    })?;
    let target = check_target(&next, true)?;
    match target.host {
        Host::Domain(d) => Ok(d),
        Host::Ipv4(_) | Host::Ipv6(_) => Err(Problem::internal()),
    }
}

/// The first URL of an http-01 validation.
fn initial_url(identifier: &Identifier, token: &str) -> Result<Url, Problem> {
    let host = match identifier.typ {
        IdentifierType::Dns => identifier.value.clone(),
        IdentifierType::Ip => match identifier.ip_addr() {
            Some(IpAddr::V6(a)) => format!("[{a}]"),
            Some(IpAddr::V4(a)) => a.to_string(),
            None => return Err(Problem::malformed("invalid IP identifier")),
        },
    };
    Url::parse(&format!("http://{host}/.well-known/acme-challenge/{token}"))
        .map_err(|_| Problem::malformed("cannot form the http-01 URL for this identifier"))
}

/// The outcome of one HTTP exchange.
enum Fetched {
    Redirect(Option<String>),
    Status(u16),
    Body(Bytes),
    TooLarge,
}

async fn exchange<IO>(io: IO, url: &Url, user_agent: &str) -> Result<Fetched, Problem>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| connection(format!("Fetching {url}: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let req = http::Request::get(path)
        .header(http::header::HOST, host_header)
        .header(http::header::USER_AGENT, user_agent)
        .header(http::header::ACCEPT, "*/*")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| connection(format!("Fetching {url}: cannot form the request")))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| connection(format!("Fetching {url}: {e}")))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Ok(Fetched::Redirect(loc));
        }
        if status != http::StatusCode::OK {
            return Ok(Fetched::Status(status.as_u16()));
        }
        match Limited::new(resp.into_body(), MAX_BODY).collect().await {
            Ok(c) => Ok(Fetched::Body(c.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Ok(Fetched::TooLarge),
            Err(e) => Err(connection(format!(
                "Fetching {url}: error reading the response body: {e}"
            ))),
        }
    }
    .await;
    driver.abort();
    result
}

impl Va {
    /// Maps a URL port (80/443) to the port actually dialled: `http01_port` for 80 and
    /// `tlsalpn01_port` for 443 (the same in production; test servers listen elsewhere).
    fn dial_port(&self, logical: u16) -> u16 {
        if logical == 443 {
            self.config.tlsalpn01_port
        } else {
            self.config.http01_port
        }
    }

    /// Connects to one hop, trying the first IPv6 then the first IPv4 address.
    async fn connect(
        &self,
        url: &Url,
        addrs: &[IpAddr],
        port: u16,
        record: &mut ValidationRecord,
    ) -> Result<TcpStream, Problem> {
        let mut last = None;
        for ip in connect_order(addrs) {
            record.address_used = Some(ip.to_string());
            match tokio::time::timeout(
                self.config.timeout,
                TcpStream::connect(SocketAddr::new(ip, port)),
            )
            .await
            {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %ip, port, "http-01 connect failed");
                    last = Some(if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        connection(format!("Fetching {url}: Connection refused"))
                    } else {
                        connection(format!("Fetching {url}: Error connecting"))
                    });
                }
                Err(_) => {
                    last = Some(connection(format!(
                        "Fetching {url}: Timeout during connect (likely firewall problem)"
                    )))
                }
            }
        }
        Err(last.unwrap_or_else(|| connection(format!("Fetching {url}: no address to connect to"))))
    }

    /// Performs http-01 validation, pushing one record per hop into `records`.
    pub(crate) async fn validate_http01(
        &self,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        let mut url = initial_url(identifier, token)?;
        let mut seen: HashSet<String> = HashSet::new();
        let mut redirects = 0usize;
        loop {
            seen.insert(url.to_string());
            let target = check_target(&url, redirects > 0)?;
            let port = self.dial_port(target.logical_port);
            let (hostname, resolved, addrs) = match &target.host {
                Host::Domain(d) => {
                    let (resolved, permitted) = self.resolve_permitted(d).await?;
                    (d.clone(), resolved, permitted)
                }
                Host::Ipv4(a) => (a.to_string(), vec![IpAddr::V4(*a)], vec![IpAddr::V4(*a)]),
                Host::Ipv6(a) => (a.to_string(), vec![IpAddr::V6(*a)], vec![IpAddr::V6(*a)]),
            };
            records.push(ValidationRecord {
                url: Some(url.to_string()),
                hostname: Some(hostname.clone()),
                port: Some(port.to_string()),
                addresses_resolved: resolved.iter().map(IpAddr::to_string).collect(),
                ..Default::default()
            });
            for ip in &addrs {
                self.check_address(*ip)?;
            }
            let record = records.last_mut().ok_or_else(Problem::internal)?;
            let tcp = self.connect(&url, &addrs, port, record).await?;
            let fetched = if target.https {
                let name = match &target.host {
                    Host::Domain(d) => ServerName::try_from(d.clone()),
                    Host::Ipv4(a) => Ok(ServerName::from(IpAddr::V4(*a))),
                    Host::Ipv6(a) => Ok(ServerName::from(IpAddr::V6(*a))),
                }
                .map_err(|_| connection(format!("Fetching {url}: invalid TLS server name")))?;
                let tls = tokio_rustls::TlsConnector::from(self.https_tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        Problem::new(
                            ProblemType::Tls,
                            format!("Fetching {url}: TLS handshake failed: {e}"),
                        )
                    })?;
                exchange(tls, &url, &self.config.user_agent).await?
            } else {
                exchange(tcp, &url, &self.config.user_agent).await?
            };
            match fetched {
                Fetched::Redirect(None) => {
                    return Err(connection(format!(
                        "Fetching {url}: redirect without a Location header"
                    )));
                }
                Fetched::Redirect(Some(loc)) => {
                    let next = url.join(&loc).map_err(|_| {
                        connection(format!(
                            "Fetching {url}: the redirect Location is not a valid URL"
                        ))
                    })?;
                    if seen.contains(next.as_str()) {
                        return Err(connection(format!(
                            "Fetching {url}: Redirect loop detected"
                        )));
                    }
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(connection(format!(
                            "Fetching {url}: Too many redirects (more than {MAX_REDIRECTS})"
                        )));
                    }
                    url = next;
                }
                Fetched::Status(code) => {
                    return Err(reject(format!("Invalid response from {url}: {code}")));
                }
                Fetched::TooLarge => {
                    return Err(reject(format!(
                        "Invalid response from {url}: the body is larger than {MAX_BODY} bytes"
                    )));
                }
                Fetched::Body(body) => {
                    // Never echo the body: the detail goes back to the client, and the body
                    // is whatever the server sent (RFC 8555 §8.3 allows trailing whitespace).
                    let got = body.trim_ascii_end();
                    if got == key_authorization.as_bytes() {
                        return Ok(());
                    }
                    return Err(reject(format!(
                        "The key authorization file from {url} did not match this challenge: the response body ({} bytes) is not the expected key authorization ({} bytes)",
                        body.len(),
                        key_authorization.len()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked() {
        let ok = Url::parse("https://Example.COM/x").unwrap();
        let t = check_target(&ok, true).unwrap();
        assert!(t.https);
        assert_eq!(t.logical_port, 443);
        assert_eq!(t.host, Host::Domain("example.com".to_string()));
        for bad in [
            "ftp://example.com/x",
            "http://example.com:8080/x",
            "https://example.com:8443/x",
            "http://localhost/x",
        ] {
            let u = Url::parse(bad).unwrap();
            let p = check_target(&u, true).err().unwrap();
            assert_eq!(p.typ, ProblemType::Connection, "{bad}");
        }
        // The first URL of an IP identifier is an IP literal (checked by the address policy).
        assert!(check_target(&Url::parse("http://10.0.0.1/x").unwrap(), false).is_ok());
        assert!(check_target(&Url::parse("http://[::1]:443/x").unwrap(), false).is_ok());
    }

    #[test]
    fn redirects_to_ip_literals_are_refused() {
        let here = Url::parse("http://example.com/.well-known/acme-challenge/t").unwrap();
        for loc in [
            "http://10.0.0.1/x",
            "http://127.0.0.1/x",
            "https://169.254.169.254/latest/meta-data/",
            "http://[::1]/x",
            "http://[::ffff:10.0.0.1]/x",
            "http://8.8.8.8/x",
            "http://0x7f000001/x",
            "http://2130706433/x",
        ] {
            let p = check_redirect_target(&here, loc).unwrap_err();
            assert_eq!(p.typ, ProblemType::Connection, "{loc}");
            assert!(
                p.detail.contains("IP addresses are not followed"),
                "{loc}: {}",
                p.detail
            );
        }
        assert_eq!(
            check_redirect_target(&here, "https://Other.example.com/y").unwrap(),
            "other.example.com"
        );
        assert_eq!(
            check_redirect_target(&here, "/relative").unwrap(),
            "example.com"
        );
    }

    #[test]
    fn initial_urls_bracket_ipv6() {
        let u = initial_url(&Identifier::ip("2001:db8::1".parse().unwrap()), "t").unwrap();
        assert_eq!(
            u.as_str(),
            "http://[2001:db8::1]/.well-known/acme-challenge/t"
        );
        let u = initial_url(&Identifier::dns("example.com"), "t").unwrap();
        assert_eq!(
            u.as_str(),
            "http://example.com/.well-known/acme-challenge/t"
        );
    }
}
