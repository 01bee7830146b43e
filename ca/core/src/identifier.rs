//! ACME identifiers (RFC 8555 §9.7.7 `dns`, RFC 8738 `ip`) and their syntax checks.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// The identifier types Cairn supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierType {
    /// A DNS name, possibly a wildcard (`*.example.com`).
    Dns,
    /// An IPv4 or IPv6 address (RFC 8738).
    Ip,
}

impl IdentifierType {
    /// The ACME wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierType::Dns => "dns",
            IdentifierType::Ip => "ip",
        }
    }
}

/// An identifier as it appears in orders and authorizations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub typ: IdentifierType,
    /// The name or the address in its canonical text form.
    pub value: String,
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The DNS name is not a syntactically valid host name.
    #[error("{0:?} is not a valid DNS name")]
    MalformedDns(String),
    /// The IP address does not parse.
    #[error("{0:?} is not a valid IP address")]
    MalformedIp(String),
    /// Wildcards must be exactly `*.` followed by a name with at least two labels.
    #[error("{0:?} is not an allowed wildcard")]
    BadWildcard(String),
}

impl Identifier {
    /// A DNS identifier (not validated; see [`Identifier::normalized`]).
    pub fn dns(name: impl Into<String>) -> Self {
        Self {
            typ: IdentifierType::Dns,
            value: name.into(),
        }
    }

    /// An IP identifier.
    pub fn ip(addr: IpAddr) -> Self {
        Self {
            typ: IdentifierType::Ip,
            value: addr.to_string(),
        }
    }

    /// Checks the syntax and returns the canonical form: DNS names lowercased without a trailing
    /// dot, IP addresses in their shortest text form.
    pub fn normalized(&self) -> Result<Identifier, IdentifierError> {
        match self.typ {
            IdentifierType::Dns => {
                let lower = self.value.to_ascii_lowercase();
                let name = lower.strip_suffix('.').unwrap_or(&lower);
                let (wild, base) = match name.strip_prefix("*.") {
                    Some(rest) => (true, rest),
                    None => (false, name),
                };
                if base.contains('*') {
                    return Err(IdentifierError::BadWildcard(self.value.clone()));
                }
                check_dns_name(base)
                    .map_err(|()| IdentifierError::MalformedDns(self.value.clone()))?;
                if wild && base.split('.').count() < 2 {
                    return Err(IdentifierError::BadWildcard(self.value.clone()));
                }
                Ok(Identifier::dns(name.to_string()))
            }
            IdentifierType::Ip => {
                let addr: IpAddr = self
                    .value
                    .parse()
                    .map_err(|_| IdentifierError::MalformedIp(self.value.clone()))?;
                Ok(Identifier::ip(addr))
            }
        }
    }

    /// True for `*.example.com`.
    pub fn is_wildcard(&self) -> bool {
        self.typ == IdentifierType::Dns && self.value.starts_with("*.")
    }

    /// The identifier an authorization covers: the wildcard's base name, or the identifier itself.
    pub fn authz_identifier(&self) -> Identifier {
        match self.value.strip_prefix("*.") {
            Some(base) if self.typ == IdentifierType::Dns => Identifier::dns(base.to_string()),
            _ => self.clone(),
        }
    }

    /// The address of an `ip` identifier.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        match self.typ {
            IdentifierType::Ip => self.value.parse().ok(),
            IdentifierType::Dns => None,
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.typ.as_str(), self.value)
    }
}

/// LDH host name rules: 1–63 octets a label, 253 in all, at least two labels, no label starting or
/// ending with a hyphen, the last label not all digits (that would be an IP address).
fn check_dns_name(name: &str) -> Result<(), ()> {
    if name.is_empty() || name.len() > 253 {
        return Err(());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(());
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(());
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_lowercased_and_checked() {
        let id = Identifier::dns("WWW.Example.COM.").normalized().unwrap();
        assert_eq!(id.value, "www.example.com");
        for bad in [
            "localhost",
            "exa mple.com",
            "-a.example.com",
            "a..example.com",
            "1.2.3.4",
            "",
            "*.*.example.com",
            "a.*.example.com",
        ] {
            assert!(Identifier::dns(bad).normalized().is_err(), "{bad} accepted");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(Identifier::dns(long).normalized().is_err());
    }

    #[test]
    fn wildcards_need_a_registrable_base() {
        let w = Identifier::dns("*.example.com").normalized().unwrap();
        assert!(w.is_wildcard());
        assert_eq!(w.authz_identifier(), Identifier::dns("example.com"));
        assert!(Identifier::dns("*.com").normalized().is_err());
    }

    #[test]
    fn ip_addresses_are_canonicalized() {
        let v6 = Identifier {
            typ: IdentifierType::Ip,
            value: "2001:db8:0:0::1".into(),
        };
        assert_eq!(v6.normalized().unwrap().value, "2001:db8::1");
        let bad = Identifier {
            typ: IdentifierType::Ip,
            value: "300.1.1.1".into(),
        };
        assert!(bad.normalized().is_err());
    }
}
