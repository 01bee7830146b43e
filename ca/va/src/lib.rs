//! Validation authority: proves control of identifiers with http-01, dns-01, tls-alpn-01,
//! dns-account-01 and dns-persist-01.
//!
//! [`Va`] implements [`ValidationAuthority`] (the contract, defined in `cairn-api`). It resolves
//! names itself through one configured DNS server ([`VaConfig::dns_server`]) with no cache, so
//! every validation sees current records.
//!
//! **Port mapping.** RFC 8555 fixes http-01 at port 80 and tls-alpn-01 at port 443, and
//! redirects are followed only to ports 80 and 443. [`VaConfig::http01_port`] and
//! [`VaConfig::tlsalpn01_port`] (80 and 443 by default) say which ports are actually dialled:
//! every connection to logical port 80 goes to `http01_port` and every connection to logical
//! port 443 (https redirect targets and tls-alpn-01) goes to `tlsalpn01_port`. URLs and `Host`
//! headers keep the logical ports; validation records report the dialled port. Test servers
//! such as `cairn-challtestsrv` listen on other ports, which is what the mapping is for.
//!
//! **Address policy.** Every address the VA would connect to (each DNS answer, each redirect
//! hop, IP identifiers) is checked against [`VaConfig::address_policy`]
//! ([`cairn_core::address_policy`]): by default only globally reachable addresses, so a
//! validation cannot be pointed at loopback, RFC 1918 networks or the cloud metadata service.
//! Redirects to IP literals are refused outright. Problem details say what was wrong with a
//! response, never what it contained.

mod caa;
mod challenge_cert;
mod dns01;
mod dns_account01;
mod dns_persist01;
mod http01;
pub mod perspectives;
mod resolver;
mod tls;
mod tlsalpn01;

pub use caa::check_caa_records;
pub use dns_account01::{dns_account_label, dns_account01_name};
pub use dns_persist01::{
    PersistRejection, PersistSubject, VALIDATION_PERSIST_LABEL, check_persist_record,
    check_persist_records,
};
pub use dns01::dns01_txt_value;
pub use http01::{MAX_BODY, MAX_REDIRECTS, check_redirect_target};
pub use resolver::Dnssec;
pub use tlsalpn01::{
    ACME_TLS_1, ID_PE_ACME_IDENTIFIER, check_challenge_certificate, reverse_dns_name,
};

pub use cairn_api::va::{
    CaaAccount, CaaCheck, ValidationAuthority, ValidationOutcome, ValidationRequest,
};

use async_trait::async_trait;
use cairn_core::{
    AddressPolicy, ChallengeType, Identifier, Problem, ProblemType, ValidationRecord,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the VA reaches the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaConfig {
    /// The DNS server every lookup goes to (UDP, TCP on truncation), e.g. `127.0.0.1:8053`.
    pub dns_server: SocketAddr,
    /// The port dialled for logical port 80 (http-01 and http redirect targets). Default 80.
    pub http01_port: u16,
    /// The port dialled for logical port 443 (tls-alpn-01 and https redirect targets).
    /// Default 443.
    pub tlsalpn01_port: u16,
    /// The time limit of one whole validation (and of each DNS query and connect).
    pub timeout: Duration,
    /// The `User-Agent` of http-01 requests.
    pub user_agent: String,
    /// Which addresses validation may connect to: [`AddressPolicy::PublicOnly`] (the default)
    /// or, for a private PKI or a test set-up, [`AddressPolicy::AllowPrivate`].
    pub address_policy: AddressPolicy,
    /// In-process DNSSEC validation of every lookup, CAA included (off by default).
    pub dnssec: Dnssec,
}

impl Default for VaConfig {
    fn default() -> Self {
        Self {
            dns_server: SocketAddr::from((Ipv4Addr::LOCALHOST, 53)),
            http01_port: 80,
            tlsalpn01_port: 443,
            timeout: Duration::from_secs(10),
            user_agent: concat!("cairn-va/", env!("CARGO_PKG_VERSION")).to_string(),
            address_policy: AddressPolicy::PublicOnly,
            dnssec: Dnssec::Off,
        }
    }
}

/// Why a [`Va`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaError {
    /// The DNS resolver could not be configured.
    #[error("configuring the DNS resolver: {0}")]
    Resolver(String),
    /// The TLS client could not be configured.
    #[error("configuring TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The validation authority: performs http-01, dns-01 and tls-alpn-01 validations and CAA
/// checks from this host.
#[derive(Debug, Clone)]
pub struct Va {
    config: VaConfig,
    dns: resolver::DnsClient,
    alpn_tls: Arc<rustls::ClientConfig>,
    https_tls: Arc<rustls::ClientConfig>,
}

impl Va {
    /// Builds a VA. Needs no runtime; lookups and connections happen in [`Va::validate`].
    pub fn new(config: VaConfig) -> Result<Self, VaError> {
        let dns = resolver::DnsClient::new(config.dns_server, config.timeout, &config.dnssec)
            .map_err(|e| VaError::Resolver(e.to_string()))?;
        Ok(Self {
            alpn_tls: tls::client_config(&[ACME_TLS_1])?,
            https_tls: tls::client_config(&[b"http/1.1"])?,
            dns,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaConfig {
        &self.config
    }

    async fn run(
        &self,
        req: &ValidationRequest,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        let identifier = req
            .identifier
            .normalized()
            .map_err(|e| Problem::malformed(e.to_string()))?;
        if identifier.is_wildcard() {
            return Err(Problem::malformed(
                "wildcard identifiers are validated through their base name",
            ));
        }
        match req.challenge {
            ChallengeType::Http01 => {
                self.validate_http01(&identifier, &req.token, &req.key_authorization, records)
                    .await
            }
            ChallengeType::Dns01 => {
                self.validate_dns01(&identifier, &req.key_authorization, records)
                    .await
            }
            ChallengeType::TlsAlpn01 => {
                self.validate_tlsalpn01(&identifier, &req.key_authorization, records)
                    .await
            }
            ChallengeType::DnsAccount01 => {
                let account_url = req.account_url();
                self.validate_dns_account01(
                    &identifier,
                    account_url.as_deref(),
                    &req.key_authorization,
                    records,
                )
                .await
            }
            ChallengeType::DnsPersist01 => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0);
                let subject = req.caa.as_ref().and_then(|caa| {
                    Some(PersistSubject {
                        issuer_domain_names: &caa.ca_identities,
                        account: caa.account.as_ref()?,
                        wildcard: caa.wildcard,
                        now,
                    })
                });
                self.validate_dns_persist01(&identifier, subject, records)
                    .await
            }
        }
    }
}

impl Va {
    /// CAA with the check's account and method binding.
    async fn run_caa(&self, identifier: &Identifier, check: &CaaCheck) -> Result<(), Problem> {
        let subject = caa::CaaSubject {
            wildcard: check.wildcard,
            ca_identities: &check.ca_identities,
            account: check.account.as_ref(),
            method: check.method.map(ChallengeType::as_str),
        };
        self.check_caa_for(identifier, &subject).await
    }
}

#[async_trait]
impl ValidationAuthority for Va {
    async fn check_caa(&self, identifier: &Identifier, check: &CaaCheck) -> Result<(), Problem> {
        let result = tokio::time::timeout(self.config.timeout, self.run_caa(identifier, check))
            .await
            .unwrap_or_else(|_| {
                Err(Problem::new(
                    ProblemType::Dns,
                    "DNS problem: the CAA lookup timed out",
                ))
            });
        result.map_err(|p| p.with_identifier(identifier.clone()))
    }

    async fn validate(&self, req: ValidationRequest) -> ValidationOutcome {
        let started = Instant::now();
        let method = req.challenge.as_str();
        let mut records = Vec::new();
        // One deadline for the whole validation, the CAA check after it included.
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let result = match tokio::time::timeout_at(deadline, self.run(&req, &mut records)).await {
            Ok(r) => r,
            Err(_) => Err(match req.challenge {
                ChallengeType::Dns01
                | ChallengeType::DnsAccount01
                | ChallengeType::DnsPersist01 => {
                    Problem::new(ProblemType::Dns, "DNS problem: the validation timed out")
                }
                _ => Problem::new(
                    ProblemType::Connection,
                    "Timeout during validation (the server may be slow, overloaded or unreachable)",
                ),
            }),
        };
        let result = match (result, &req.caa) {
            (Ok(()), Some(caa)) => tokio::time::timeout_at(
                deadline,
                self.run_caa(&req.identifier, caa),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Problem::new(
                    ProblemType::Dns,
                    "DNS problem: the CAA lookup did not finish within the validation's time limit",
                ))
            }),
            (other, _) => other,
        };
        let error = result
            .err()
            .map(|p| p.with_identifier(req.identifier.clone()));
        let outcome = if error.is_none() { "valid" } else { "invalid" };
        metrics::counter!("cairn_validations_total", "method" => method, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("cairn_validation_duration_seconds", "method" => method)
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            identifier = %req.identifier,
            method,
            outcome,
            problem = error.as_ref().map(|p| p.detail.as_str()),
            "validation finished"
        );
        ValidationOutcome { records, error }
    }
}

/// An `unauthorized` problem: the response was reached but proves nothing.
fn reject(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::Unauthorized, detail)
}

/// SHA-256 of the key authorization (dns-01 and tls-alpn-01 digests).
fn key_authorization_digest(key_authorization: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Va {
    /// The addresses of `name` that the address policy lets the VA connect to, after one
    /// A/AAAA lookup: `(resolved, permitted)`. Refuses when none is permitted.
    pub(crate) async fn resolve_permitted(
        &self,
        name: &str,
    ) -> Result<(Vec<IpAddr>, Vec<IpAddr>), Problem> {
        let resolved = self.dns.lookup_ips(name).await?;
        let policy = self.config.address_policy;
        let permitted: Vec<IpAddr> = resolved
            .iter()
            .copied()
            .filter(|ip| policy.permits(*ip))
            .collect();
        if permitted.is_empty() {
            let why = resolved
                .iter()
                .find_map(|ip| policy.check(*ip).err())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(Problem::new(
                ProblemType::Dns,
                format!(
                    "DNS problem: {} has no address this CA may connect to{why}",
                    name.trim_end_matches('.')
                ),
            ));
        }
        Ok((resolved, permitted))
    }

    /// Checks an address the VA was given directly (an IP identifier).
    pub(crate) fn check_address(&self, ip: IpAddr) -> Result<(), Problem> {
        self.config.address_policy.check(ip).map_err(|e| {
            Problem::new(
                ProblemType::RejectedIdentifier,
                format!("this CA does not validate {e}"),
            )
        })
    }
}

/// The addresses to try, in order: the first IPv6 address, then the first IPv4 address (as
/// Boulder does: IPv6 preferred, one IPv4 fallback).
fn connect_order(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let v6 = addrs.iter().find(|a| a.is_ipv6());
    let v4 = addrs.iter().find(|a| a.is_ipv4());
    v6.into_iter().chain(v4).copied().collect()
}
