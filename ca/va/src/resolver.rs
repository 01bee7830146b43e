//! DNS lookups for validation: a cache-less Hickory resolver pointed at one upstream, and the
//! mapping of its failures to client-facing `dns` problems.
//!
//! **DNSSEC.** With [`Dnssec::Validate`] the resolver validates every answer in-process
//! (Hickory on aws-lc-rs) from the configured trust anchor down: a bogus answer (a broken or
//! missing signature in a signed zone) is a `dns` problem, never data; an answer from a zone
//! proven unsigned (no DS at its delegation) is used as before. The upstream must then pass
//! DNSSEC records through (any recursive resolver does when asked with the DO bit). The other
//! route, as Boulder takes, is [`Dnssec::Off`] with a validating recursive resolver such as
//! Unbound as the upstream (see docs/dnssec.md).

use cairn_core::{Problem, ProblemType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::CAA;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A lookup that failed, classified for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupFailure {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    Rcode(ResponseCode),
    /// No answer in time.
    Timeout,
    /// The name is not a valid DNS name.
    BadName,
    /// DNSSEC validation failed (the answer is bogus).
    DnssecBogus,
    /// Anything else (network errors, malformed responses).
    Other,
}

/// Whether the VA validates DNSSEC itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dnssec {
    /// No in-process validation: answers are taken as the upstream gives them (point the VA
    /// at a validating resolver such as Unbound to have them validated there).
    #[default]
    Off,
    /// Validate every answer in-process.
    Validate {
        /// A file of DNSKEY records (zone-file syntax) to trust; `None`: the root zone's KSKs
        /// built into Hickory (2018 and 2024).
        trust_anchor: Option<std::path::PathBuf>,
    },
}

impl LookupFailure {
    /// A `dns` problem describing the failure of a `qtype` lookup of `name`.
    pub(crate) fn problem(&self, qtype: RecordType, name: &str) -> Problem {
        let name = name.trim_end_matches('.');
        let what = match self {
            Self::NxDomain => format!(
                "NXDOMAIN looking up {qtype} for {name} - check that a DNS record exists for this domain"
            ),
            Self::Rcode(rc) => format!(
                "{} looking up {qtype} for {name} - the domain's nameservers may be malfunctioning",
                rcode_name(*rc)
            ),
            Self::Timeout => format!("query timed out looking up {qtype} for {name}"),
            Self::BadName => format!("{name:?} is not a valid DNS name"),
            Self::DnssecBogus => format!(
                "DNSSEC validation failed looking up {qtype} for {name} - the answer is not validly signed"
            ),
            Self::Other => format!("networking error looking up {qtype} for {name}"),
        };
        Problem::new(ProblemType::Dns, format!("DNS problem: {what}"))
    }
}

fn rcode_name(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// Why the resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DnsClientError {
    /// Hickory refused the configuration.
    #[error("{0}")]
    Resolver(NetError),
    /// The DNSSEC trust anchor file could not be read.
    #[error("reading the DNSSEC trust anchor {0}")]
    TrustAnchor(String),
}

/// The validation resolver. It keeps no cache, so each validation sees current records.
#[derive(Clone)]
pub(crate) struct DnsClient {
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsClient").finish_non_exhaustive()
    }
}

/// Classifies a resolver error; `Ok(())` means "answered, but no records of that type".
fn classify(err: &NetError) -> Result<(), LookupFailure> {
    match err {
        e if e.is_nx_domain() => Err(LookupFailure::NxDomain),
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NoError => Ok(()),
            rc => Err(LookupFailure::Rcode(rc)),
        },
        NetError::Dns(DnsError::ResponseCode(rc)) => Err(LookupFailure::Rcode(*rc)),
        NetError::Dns(DnsError::DnssecBogus) => Err(LookupFailure::DnssecBogus),
        NetError::Timeout => Err(LookupFailure::Timeout),
        NetError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(LookupFailure::Timeout),
        _ => Err(LookupFailure::Other),
    }
}

impl DnsClient {
    /// A resolver sending every query to `upstream` over UDP (TCP on truncation or error).
    pub(crate) fn new(
        upstream: SocketAddr,
        timeout: Duration,
        dnssec: &Dnssec,
    ) -> Result<Self, DnsClientError> {
        let connections = [ProtocolConfig::Udp, ProtocolConfig::Tcp]
            .into_iter()
            .map(|p| {
                let mut c = ConnectionConfig::new(p);
                c.port = upstream.port();
                c
            })
            .collect();
        let ns = NameServerConfig::new(upstream.ip(), true, connections);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.try_tcp_on_error = true;
        opts.preserve_intermediates = true;
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        );
        *builder.options_mut() = opts;
        if let Dnssec::Validate { trust_anchor } = dnssec {
            let anchors = match trust_anchor {
                None => TrustAnchors::default(),
                Some(path) => TrustAnchors::from_file(path)
                    .map_err(|e| DnsClientError::TrustAnchor(format!("{}: {e}", path.display())))?,
            };
            builder = builder.with_trust_anchor(Arc::new(anchors));
        }
        Ok(Self {
            resolver: builder.build().map_err(DnsClientError::Resolver)?,
        })
    }

    async fn lookup(&self, name: &str, qtype: RecordType) -> Result<Vec<RData>, LookupFailure> {
        let mut fqdn = name.to_string();
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        let name = Name::from_str(&fqdn).map_err(|_| LookupFailure::BadName)?;
        match self.resolver.lookup(name, qtype).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == qtype)
                .map(|r| r.data.clone())
                .collect()),
            Err(e) => {
                tracing::debug!(error = %e, %fqdn, %qtype, "DNS lookup failed");
                classify(&e).map(|()| Vec::new())
            }
        }
    }

    /// The A and AAAA addresses of `name` (IPv6 first). Fails if either lookup fails with
    /// anything but "no records", or if both are empty.
    pub(crate) async fn lookup_ips(&self, name: &str) -> Result<Vec<IpAddr>, Problem> {
        let (v6, v4) = tokio::join!(
            self.lookup(name, RecordType::AAAA),
            self.lookup(name, RecordType::A)
        );
        let mut out = Vec::new();
        let mut first_err = None;
        match v6 {
            Ok(v) => out.extend(v.into_iter().filter_map(|d| match d {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Err(e) => first_err = Some(e.problem(RecordType::AAAA, name)),
        }
        match v4 {
            Ok(v) => out.extend(v.into_iter().filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })),
            Err(e) => first_err = first_err.or(Some(e.problem(RecordType::A, name))),
        }
        if out.is_empty() {
            return Err(first_err.unwrap_or_else(|| {
                Problem::new(
                    ProblemType::Dns,
                    format!(
                        "DNS problem: no valid A or AAAA records found for {}",
                        name.trim_end_matches('.')
                    ),
                )
            }));
        }
        Ok(out)
    }

    /// The TXT strings at `name` (each record's character-strings concatenated).
    pub(crate) async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, LookupFailure> {
        Ok(self
            .lookup(name, RecordType::TXT)
            .await?
            .into_iter()
            .filter_map(|d| match d {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The CAA records at `name`.
    pub(crate) async fn lookup_caa(&self, name: &str) -> Result<Vec<CAA>, LookupFailure> {
        Ok(self
            .lookup(name, RecordType::CAA)
            .await?
            .into_iter()
            .filter_map(|d| match d {
                RData::CAA(c) => Some(c),
                _ => None,
            })
            .collect())
    }
}
