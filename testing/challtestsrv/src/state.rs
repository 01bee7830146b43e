//! The shared in-memory state: mock DNS data, challenge responses and request history.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One CAA property to answer with (pebble's `CAAPolicy`, plus an optional `flag` octet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaaPolicy {
    /// The property tag, e.g. `issue`, `issuewild`, `iodef`.
    pub tag: String,
    /// The property value, e.g. `letsencrypt.org; validationmethods=dns-01`.
    pub value: String,
    /// The flags octet (128 marks the property critical). Not in pebble's API; defaults to 0.
    #[serde(default)]
    pub flag: u8,
}

impl CaaPolicy {
    /// A non-critical policy.
    pub fn new(tag: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            value: value.into(),
            flag: 0,
        }
    }
}

/// The kinds of request history kept (pebble's `RequestEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryKind {
    /// Requests to the HTTP-01 server (plain or TLS).
    Http,
    /// DNS questions.
    Dns,
    /// TLS-ALPN-01 handshakes.
    TlsAlpn,
}

impl HistoryKind {
    /// Parses the management API's `type` values: `http`, `dns`, `tlsalpn`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "dns" => Some(Self::Dns),
            "tlsalpn" => Some(Self::TlsAlpn),
            _ => None,
        }
    }
}

/// One HTTP request seen by the HTTP-01 server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpRequestEvent {
    /// The request target (path and query).
    #[serde(rename = "URL")]
    pub url: String,
    /// The `Host` header as sent (may include a port).
    pub host: String,
    /// True when the request arrived over TLS.
    #[serde(rename = "HTTPS")]
    pub https: bool,
    /// The TLS SNI, if any.
    pub server_name: String,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The HTTP method.
    pub method: String,
}

/// A DNS question as pebble serializes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsQuestion {
    /// The queried name, fully qualified.
    pub name: String,
    /// The numeric query type.
    pub qtype: u16,
    /// The numeric query class.
    pub qclass: u16,
}

/// One DNS question seen by the DNS server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsRequestEvent {
    /// The question.
    pub question: DnsQuestion,
    /// Always empty for plain DNS (pebble fills it for DoH only).
    pub user_agent: String,
}

/// One TLS ClientHello seen by the TLS-ALPN-01 server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TlsAlpnRequestEvent {
    /// The SNI.
    pub server_name: String,
    /// The ALPN protocols the client offered.
    pub supported_protos: Vec<String>,
}

#[derive(Debug, Default)]
struct HostHistory {
    http: Vec<HttpRequestEvent>,
    dns: Vec<DnsRequestEvent>,
    tlsalpn: Vec<TlsAlpnRequestEvent>,
}

#[derive(Debug, Default)]
struct State {
    default_ipv4: Option<Ipv4Addr>,
    default_ipv6: Option<Ipv6Addr>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    aaaa: HashMap<String, Vec<Ipv6Addr>>,
    caa: HashMap<String, Vec<CaaPolicy>>,
    cname: HashMap<String, String>,
    servfail: HashSet<String>,
    txt: HashMap<String, Vec<String>>,
    http01: HashMap<String, String>,
    redirects: HashMap<String, String>,
    tlsalpn01: HashMap<String, String>,
    history: HashMap<String, HostHistory>,
}

/// The challenge test server's state. Cheap to clone; all clones share the same data, and the
/// running servers read it on every request, so changes take effect immediately.
#[derive(Debug, Clone, Default)]
pub struct ChallTestSrv {
    state: Arc<RwLock<State>>,
}

/// The DNS key for a host name: lowercase, fully qualified (trailing dot).
pub(crate) fn dns_key(host: &str) -> String {
    let mut k = host.trim().to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

/// The history key for a host name: lowercase, no trailing dot, no port.
pub(crate) fn history_key(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    let h = if let Some(rest) = h.strip_prefix('[') {
        // [v6]:port or [v6]
        rest.split(']').next().unwrap_or(rest).to_string()
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or(&h).to_string()
    } else {
        h
    };
    h.trim_end_matches('.').to_string()
}

/// The TLS-ALPN-01 key for an SNI value: lowercase, no trailing dot.
fn sni_key(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl ChallTestSrv {
    /// Empty state answering A queries with 127.0.0.1 and no AAAA by default.
    pub fn new() -> Self {
        let srv = Self::default();
        srv.write().default_ipv4 = Some(Ipv4Addr::LOCALHOST);
        srv
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets (or with `None` disables) the address given to A queries without explicit records.
    pub fn set_default_ipv4(&self, ip: Option<Ipv4Addr>) {
        self.write().default_ipv4 = ip;
    }

    /// Sets (or with `None` disables) the address given to AAAA queries without explicit records.
    pub fn set_default_ipv6(&self, ip: Option<Ipv6Addr>) {
        self.write().default_ipv6 = ip;
    }

    /// Adds A records for `host`.
    pub fn add_a(&self, host: &str, addrs: &[Ipv4Addr]) {
        self.write()
            .a
            .entry(dns_key(host))
            .or_default()
            .extend_from_slice(addrs);
    }

    /// Removes the A records of `host`.
    pub fn clear_a(&self, host: &str) {
        self.write().a.remove(&dns_key(host));
    }

    /// Adds AAAA records for `host`.
    pub fn add_aaaa(&self, host: &str, addrs: &[Ipv6Addr]) {
        self.write()
            .aaaa
            .entry(dns_key(host))
            .or_default()
            .extend_from_slice(addrs);
    }

    /// Removes the AAAA records of `host`.
    pub fn clear_aaaa(&self, host: &str) {
        self.write().aaaa.remove(&dns_key(host));
    }

    /// Adds CAA records for `host`.
    pub fn add_caa(&self, host: &str, policies: &[CaaPolicy]) {
        self.write()
            .caa
            .entry(dns_key(host))
            .or_default()
            .extend_from_slice(policies);
    }

    /// Removes the CAA records of `host`.
    pub fn clear_caa(&self, host: &str) {
        self.write().caa.remove(&dns_key(host));
    }

    /// Makes `host` a CNAME for `target`.
    pub fn set_cname(&self, host: &str, target: &str) {
        self.write().cname.insert(dns_key(host), dns_key(target));
    }

    /// Removes the CNAME of `host`.
    pub fn clear_cname(&self, host: &str) {
        self.write().cname.remove(&dns_key(host));
    }

    /// Makes every query for `host` answer SERVFAIL.
    pub fn set_servfail(&self, host: &str) {
        self.write().servfail.insert(dns_key(host));
    }

    /// Stops answering SERVFAIL for `host`.
    pub fn clear_servfail(&self, host: &str) {
        self.write().servfail.remove(&dns_key(host));
    }

    /// Adds a TXT record (values accumulate, as in pebble).
    pub fn set_txt(&self, host: &str, value: &str) {
        self.write()
            .txt
            .entry(dns_key(host))
            .or_default()
            .push(value.to_string());
    }

    /// Removes all TXT records of `host`.
    pub fn clear_txt(&self, host: &str) {
        self.write().txt.remove(&dns_key(host));
    }

    /// Adds a dns-account-01 TXT record (draft-ietf-acme-dns-account-label) for `host` and the
    /// account at `account_url`: `value` at `_<label>._acme-challenge.<host>`. Returns the
    /// record's name.
    pub fn set_dns_account01(&self, host: &str, account_url: &str, value: &str) -> String {
        let name = dns_account01_name(host, account_url);
        self.set_txt(&name, value);
        name
    }

    /// Removes the dns-account-01 TXT records of `host` for one account.
    pub fn clear_dns_account01(&self, host: &str, account_url: &str) {
        self.clear_txt(&dns_account01_name(host, account_url));
    }

    /// Adds a standing dns-persist-01 record (draft-ietf-acme-dns-persist) at
    /// `_validation-persist.<host>`: `<issuer>; accounturi=<account_uri>` plus `policy` and
    /// `persistUntil` when given. Records accumulate (several CAs, several accounts) and stay
    /// until [`ChallTestSrv::clear_persist_txt`]; adding one that is there already changes nothing.
    /// Returns the record's value.
    pub fn add_persist_txt(
        &self,
        host: &str,
        issuer: &str,
        account_uri: &str,
        policy: Option<&str>,
        persist_until: Option<i64>,
    ) -> String {
        let mut value = format!("{issuer}; accounturi={account_uri}");
        if let Some(p) = policy {
            value.push_str(&format!("; policy={p}"));
        }
        if let Some(t) = persist_until {
            value.push_str(&format!("; persistUntil={t}"));
        }
        // A record already there is not added twice: publishing is idempotent.
        let mut st = self.write();
        let values = st.txt.entry(dns_key(&persist_name(host))).or_default();
        if !values.contains(&value) {
            values.push(value.clone());
        }
        value
    }

    /// Removes every dns-persist-01 record of `host`.
    pub fn clear_persist_txt(&self, host: &str) {
        self.clear_txt(&persist_name(host));
    }

    /// Serves `content` at `/.well-known/acme-challenge/<token>`.
    pub fn add_http01(&self, token: &str, content: &str) {
        self.write()
            .http01
            .insert(token.to_string(), content.to_string());
    }

    /// Stops serving the HTTP-01 response for `token`.
    pub fn del_http01(&self, token: &str) {
        self.write().http01.remove(token);
    }

    /// Redirects (302) plain-HTTP requests for `path` to `target_url`.
    pub fn add_redirect(&self, path: &str, target_url: &str) {
        self.write()
            .redirects
            .insert(path.to_string(), target_url.to_string());
    }

    /// Removes the redirect for `path`.
    pub fn del_redirect(&self, path: &str) {
        self.write().redirects.remove(path);
    }

    /// Answers TLS-ALPN-01 handshakes with SNI `host` with a certificate for `content` (the key
    /// authorization). For IP identifiers, `host` may be the address or its reverse-DNS name.
    pub fn add_tlsalpn01(&self, host: &str, content: &str) {
        self.write()
            .tlsalpn01
            .insert(sni_key(host), content.to_string());
    }

    /// Removes the TLS-ALPN-01 response for `host`.
    pub fn del_tlsalpn01(&self, host: &str) {
        self.write().tlsalpn01.remove(&sni_key(host));
    }

    /// HTTP requests seen for `host`.
    pub fn http_request_history(&self, host: &str) -> Vec<HttpRequestEvent> {
        self.read()
            .history
            .get(&history_key(host))
            .map(|h| h.http.clone())
            .unwrap_or_default()
    }

    /// DNS questions seen for `host`.
    pub fn dns_request_history(&self, host: &str) -> Vec<DnsRequestEvent> {
        self.read()
            .history
            .get(&history_key(host))
            .map(|h| h.dns.clone())
            .unwrap_or_default()
    }

    /// TLS-ALPN-01 handshakes seen for `host`.
    pub fn tlsalpn01_request_history(&self, host: &str) -> Vec<TlsAlpnRequestEvent> {
        self.read()
            .history
            .get(&history_key(host))
            .map(|h| h.tlsalpn.clone())
            .unwrap_or_default()
    }

    /// Forgets the history of one kind for `host`.
    pub fn clear_request_history(&self, host: &str, kind: HistoryKind) {
        if let Some(h) = self.write().history.get_mut(&history_key(host)) {
            match kind {
                HistoryKind::Http => h.http.clear(),
                HistoryKind::Dns => h.dns.clear(),
                HistoryKind::TlsAlpn => h.tlsalpn.clear(),
            }
        }
    }

    pub(crate) fn record_http(&self, ev: HttpRequestEvent) {
        let key = history_key(&ev.host);
        self.write().history.entry(key).or_default().http.push(ev);
    }

    pub(crate) fn record_dns(&self, ev: DnsRequestEvent) {
        let key = history_key(&ev.question.name);
        self.write().history.entry(key).or_default().dns.push(ev);
    }

    pub(crate) fn record_tlsalpn(&self, ev: TlsAlpnRequestEvent) {
        let key = history_key(&ev.server_name);
        self.write()
            .history
            .entry(key)
            .or_default()
            .tlsalpn
            .push(ev);
    }

    pub(crate) fn http01_content(&self, token: &str) -> Option<String> {
        self.read().http01.get(token).cloned()
    }

    pub(crate) fn redirect_for(&self, path: &str) -> Option<String> {
        self.read().redirects.get(path).cloned()
    }

    pub(crate) fn tlsalpn01_content(&self, sni: &str) -> Option<String> {
        self.read().tlsalpn01.get(&sni_key(sni)).cloned()
    }

    /// Computes the DNS answer for `qname` (a [`dns_key`]) and a record type.
    pub(crate) fn dns_answer(&self, qname: &str, qtype: DnsQueryType) -> DnsAnswer {
        let st = self.read();
        if st.servfail.contains(qname) {
            return DnsAnswer::ServFail;
        }
        let mut cnames = Vec::new();
        let mut name = qname.to_string();
        // Follow at most a few CNAME hops so that a loop cannot hang the server.
        for _ in 0..8 {
            if qtype == DnsQueryType::Cname {
                break;
            }
            match st.cname.get(&name) {
                Some(target) => {
                    cnames.push((name.clone(), target.clone()));
                    name = target.clone();
                    if st.servfail.contains(&name) {
                        return DnsAnswer::ServFail;
                    }
                }
                None => break,
            }
        }
        let data = match qtype {
            DnsQueryType::A => {
                let mut v = st.a.get(&name).cloned().unwrap_or_default();
                if v.is_empty() {
                    v.extend(st.default_ipv4);
                }
                DnsData::A(v)
            }
            DnsQueryType::Aaaa => {
                let mut v = st.aaaa.get(&name).cloned().unwrap_or_default();
                if v.is_empty() {
                    v.extend(st.default_ipv6);
                }
                DnsData::Aaaa(v)
            }
            DnsQueryType::Txt => DnsData::Txt(st.txt.get(&name).cloned().unwrap_or_default()),
            DnsQueryType::Caa => DnsData::Caa(st.caa.get(&name).cloned().unwrap_or_default()),
            DnsQueryType::Cname => {
                if let Some(t) = st.cname.get(&name) {
                    cnames.push((name.clone(), t.clone()));
                }
                DnsData::None
            }
            DnsQueryType::Other => DnsData::None,
        };
        DnsAnswer::Records {
            cnames,
            owner: name,
            data,
        }
    }
}

/// The record types the DNS server knows how to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DnsQueryType {
    A,
    Aaaa,
    Txt,
    Caa,
    Cname,
    Other,
}

/// Record data of one type for one owner name.
#[derive(Debug)]
pub(crate) enum DnsData {
    A(Vec<Ipv4Addr>),
    Aaaa(Vec<Ipv6Addr>),
    Txt(Vec<String>),
    Caa(Vec<CaaPolicy>),
    None,
}

/// The answer to one question.
#[derive(Debug)]
pub(crate) enum DnsAnswer {
    ServFail,
    Records {
        /// CNAME hops, (owner, target).
        cnames: Vec<(String, String)>,
        /// The final owner name the data belongs to.
        owner: String,
        data: DnsData,
    },
}

/// `_validation-persist.<host>`.
fn persist_name(host: &str) -> String {
    format!("_validation-persist.{}", bare_host(host))
}

/// `_<label>._acme-challenge.<host>` where the label is the lowercase base32 of the first 10
/// octets of SHA-256(account URL) (draft-ietf-acme-dns-account-label §3.2).
pub fn dns_account01_name(host: &str, account_url: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, account_url.as_bytes());
    let mut label = String::with_capacity(16);
    let (mut acc, mut nbits) = (0u32, 0u32);
    for b in &digest.as_ref()[..10] {
        acc = (acc << 8) | u32::from(*b);
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            label.push(char::from(ALPHABET[((acc >> nbits) & 0x1f) as usize]));
        }
        acc &= (1 << nbits) - 1;
    }
    format!("_{label}._acme-challenge.{}", bare_host(host))
}

/// A host name lowercased, without a trailing dot.
fn bare_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalize_case_dots_and_ports() {
        assert_eq!(dns_key("Example.COM"), "example.com.");
        assert_eq!(dns_key("example.com."), "example.com.");
        assert_eq!(history_key("Example.com:5002"), "example.com");
        assert_eq!(history_key("example.com."), "example.com");
        assert_eq!(history_key("[::1]:80"), "::1");
        assert_eq!(history_key("::1"), "::1");
    }

    #[test]
    fn cname_is_followed_and_defaults_apply() {
        let s = ChallTestSrv::new();
        s.set_cname("a.example", "b.example.");
        s.set_txt("b.example", "v");
        match s.dns_answer("a.example.", DnsQueryType::Txt) {
            DnsAnswer::Records {
                cnames,
                owner,
                data,
            } => {
                assert_eq!(cnames.len(), 1);
                assert_eq!(owner, "b.example.");
                assert!(matches!(data, DnsData::Txt(v) if v == ["v"]));
            }
            DnsAnswer::ServFail => panic!("servfail"),
        }
        match s.dns_answer("x.example.", DnsQueryType::A) {
            DnsAnswer::Records { data, .. } => {
                assert!(matches!(data, DnsData::A(v) if v == [Ipv4Addr::LOCALHOST]))
            }
            DnsAnswer::ServFail => panic!("servfail"),
        }
        match s.dns_answer("x.example.", DnsQueryType::Aaaa) {
            DnsAnswer::Records { data, .. } => {
                assert!(matches!(data, DnsData::Aaaa(v) if v.is_empty()))
            }
            DnsAnswer::ServFail => panic!("servfail"),
        }
    }
}
