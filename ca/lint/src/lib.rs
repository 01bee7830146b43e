//! Pre-issuance linting (Boulder's zlint step): RFC 5280 and CA/Browser Forum Baseline
//! Requirements checks on a certificate or CRL before the real key signs it. No I/O.
//!
//! The issuer builds the certificate, signs a copy with a throwaway key ([`Linter`]), runs
//! [`lint_certificate`] on it and only signs for real when [`LintReport::has_errors`] is false.
//! Every rule is listed, with its source, in [`catalog`].

pub mod catalog;

mod asn1;
mod ca;
mod certificate;
mod crl;
mod delegated;
mod dns_name;
mod linter;
mod subscriber;

use std::fmt;
use std::time::Duration;

pub use catalog::Lint;
pub use certificate::lint_certificate;
pub use crl::lint_crl;
pub use linter::{LintedCertificate, Linter, LinterError, tbs_matches};

/// The BR §6.3.2 ceiling on subscriber certificate lifetimes (398 days).
pub const BR_MAX_SUBSCRIBER_VALIDITY: Duration = Duration::from_secs(398 * 86_400);

/// The BR §4.9.7 ceiling on the nextUpdate − thisUpdate of a subscriber CRL (10 days).
pub const BR_MAX_CRL_VALIDITY: Duration = Duration::from_secs(10 * 86_400);

/// What kind of certificate the caller means to issue: decides which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TLS server subscriber certificate.
    TlsServerLeaf {
        /// The profile's validity: the lifetime (notBefore through notAfter inclusive) must not
        /// exceed it.
        profile_validity: Duration,
        /// The configured ceiling (BR §6.3.2's 398 days also applies whatever this says).
        max_validity: Duration,
    },
    /// An RFC 6962 precertificate: the subscriber rules plus the critical poison extension.
    Precertificate {
        /// As for [`Kind::TlsServerLeaf`].
        profile_validity: Duration,
        /// As for [`Kind::TlsServerLeaf`].
        max_validity: Duration,
    },
    /// A subordinate CA certificate issuing TLS server certificates.
    Intermediate,
    /// A self-signed root CA certificate.
    Root,
    /// A delegated OCSP responder certificate (RFC 6960 §4.2.2.2).
    OcspResponder,
    /// A delegated CRL signer certificate (the signer of an indirect CRL, RFC 5280 §5).
    CrlSigner,
}

/// What the certificate is expected to be, and which lints to skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintContext {
    /// The kind of certificate.
    pub kind: Kind,
    /// Lint names whose findings are dropped (Boulder's `ignoredLints`), for instance
    /// `e_ext_san_contains_reserved_ip` and `e_dnsname_not_fully_qualified` in a private PKI or a
    /// test setup that issues for internal names and private addresses.
    pub ignored_lints: Vec<String>,
}

impl LintContext {
    /// A context for `kind` that ignores nothing.
    pub fn new(kind: Kind) -> LintContext {
        LintContext {
            kind,
            ignored_lints: Vec::new(),
        }
    }
}

/// What is expected of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlContext {
    /// The largest allowed nextUpdate − thisUpdate ([`BR_MAX_CRL_VALIDITY`] by default).
    pub max_validity: Duration,
    /// The CRL is one shard of a partitioned CRL, so it needs an issuingDistributionPoint.
    pub sharded: bool,
    /// Lint names whose findings are dropped.
    pub ignored_lints: Vec<String>,
}

impl Default for CrlContext {
    fn default() -> Self {
        CrlContext {
            max_validity: BR_MAX_CRL_VALIDITY,
            sharded: false,
            ignored_lints: Vec::new(),
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; never blocks issuance.
    Notice,
    /// A SHOULD or NOT RECOMMENDED is not followed; does not block issuance.
    Warning,
    /// A MUST is broken: do not sign.
    Error,
    /// The input does not even decode; no other rule ran. Blocks issuance.
    Fatal,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        })
    }
}

/// One broken (or noteworthy) rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The stable lint name, e.g. `e_subject_common_name_not_from_san`.
    pub lint: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What exactly is wrong, for logs.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.lint, self.severity, self.detail)
    }
}

/// Everything found in one certificate or CRL, in rule order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintReport {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl LintReport {
    /// True if any finding is an error or fatal: the object must not be signed.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity >= Severity::Error)
    }

    /// The names of the findings, in order.
    pub fn lint_names(&self) -> Vec<&'static str> {
        self.findings.iter().map(|f| f.lint).collect()
    }

    /// The findings of at least `severity`.
    pub fn at_least(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= severity)
    }
}

impl fmt::Display for LintReport {
    /// One line per finding; `no findings` when clean.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return f.write_str("no findings");
        }
        for (i, finding) in self.findings.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{finding}")?;
        }
        Ok(())
    }
}

/// Collects findings while the rules run, dropping ignored lints.
struct Findings<'a> {
    out: Vec<Finding>,
    ignored: &'a [String],
}

impl<'a> Findings<'a> {
    fn new(ignored: &'a [String]) -> Findings<'a> {
        Findings {
            out: Vec::new(),
            ignored,
        }
    }

    fn report(&mut self, lint: Lint, detail: impl Into<String>) {
        // A fatal finding is the whole report: it cannot be ignored.
        if lint.severity < Severity::Fatal && self.ignored.iter().any(|n| n == lint.name) {
            return;
        }
        self.out.push(Finding {
            lint: lint.name,
            severity: lint.severity,
            detail: detail.into(),
        });
    }

    fn finish(self) -> LintReport {
        LintReport { findings: self.out }
    }
}
