//! Bucket keys: which bucket a request draws from (registered domain, IP range, identifier set …).

use crate::ip_prefix::IpPrefix;
use crate::limits::LimitName;
use cairn_core::{Identifier, IdentifierType};
use std::fmt;
use std::net::IpAddr;

/// The name of one bucket: a limit and the thing it counts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    limit: LimitName,
    id: String,
}

impl BucketKey {
    /// The bucket of `limit` for `id` (an address, account ID, registered domain, hash …).
    pub fn new(limit: LimitName, id: impl Into<String>) -> Self {
        Self {
            limit,
            id: id.into(),
        }
    }

    /// The limit this bucket belongs to.
    pub fn limit(&self) -> LimitName {
        self.limit
    }

    /// What the bucket counts for, without the limit.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key under which a store keeps this bucket's TAT: `<tag>:<id>`.
    pub fn storage_key(&self) -> String {
        format!("{}:{}", self.limit.key_tag(), self.id)
    }
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.limit, self.id)
    }
}

/// The lowercase DNS name without a trailing dot or a leading `*.`.
pub(crate) fn base_name(name: &str) -> String {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    match lower.strip_prefix("*.") {
        Some(base) => base.to_string(),
        None => lower,
    }
}

/// The registered domain (public suffix + one label) of a DNS name, per the public suffix list
/// embedded in the `psl` crate, private section included (so `a.github.io` and `b.github.io` are
/// different registered domains). A name that is itself a public suffix stands for itself.
pub fn registered_domain(name: &str) -> String {
    let base = base_name(name);
    match psl::domain_str(&base) {
        Some(domain) => domain.to_string(),
        None => base,
    }
}

/// The block an IP identifier counts against for certificates: its /32 (IPv4) or /64 (IPv6).
pub fn certificate_ip_block(addr: IpAddr) -> IpPrefix {
    IpPrefix::new(addr, if addr.is_ipv4() { 32 } else { 64 })
}

/// What an identifier counts as for [`LimitName::CertificatesPerDomain`]: a registered domain for
/// a DNS name, an address block for an IP identifier.
pub(crate) fn certificate_domain_id(identifier: &Identifier) -> String {
    match identifier.typ {
        IdentifierType::Dns => registered_domain(&identifier.value),
        IdentifierType::Ip => match identifier.value.parse::<IpAddr>() {
            Ok(addr) => certificate_ip_block(addr).to_string(),
            Err(_) => identifier.value.to_ascii_lowercase(),
        },
    }
}

/// The canonical text of an identifier in a set: type and value, lowercased, without a trailing
/// dot, IP addresses in their shortest form. Wildcards are kept: `*.example.com` and
/// `example.com` are different certificates.
fn canonical(identifier: &Identifier) -> String {
    let value = match identifier.typ {
        IdentifierType::Dns => identifier.value.trim_end_matches('.').to_ascii_lowercase(),
        IdentifierType::Ip => match identifier.value.parse::<IpAddr>() {
            Ok(addr) => addr.to_string(),
            Err(_) => identifier.value.to_ascii_lowercase(),
        },
    };
    format!("{}:{value}", identifier.typ.as_str())
}

/// The hex SHA-256 of a set of identifiers, independent of order, case and duplicates.
pub fn fqdn_set_hash(identifiers: &[Identifier]) -> String {
    let mut names: Vec<String> = identifiers.iter().map(canonical).collect();
    names.sort();
    names.dedup();
    let joined = names.join("\n");
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, joined.as_bytes()).as_ref())
}

/// The identifier a failed validation counts for: the authorization's identifier (a wildcard's
/// base name), canonical.
pub(crate) fn validation_id(identifier: &Identifier) -> String {
    match identifier.typ {
        IdentifierType::Dns => base_name(&identifier.value),
        IdentifierType::Ip => canonical(identifier).trim_start_matches("ip:").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        assert_eq!(registered_domain("www.example.com"), "example.com");
        assert_eq!(registered_domain("*.A.Example.COM."), "example.com");
        assert_eq!(registered_domain("shop.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("alice.github.io"), "alice.github.io");
        assert_eq!(registered_domain("co.uk"), "co.uk");
        assert_eq!(registered_domain("foo.bar.unknowntld"), "bar.unknowntld");
    }

    #[test]
    fn ip_identifiers_count_per_address_or_slash_64() {
        let v4 = Identifier::ip("192.0.2.7".parse().unwrap());
        assert_eq!(certificate_domain_id(&v4), "192.0.2.7/32");
        let a = Identifier::ip("2001:db8:1:2::1".parse().unwrap());
        let b = Identifier::ip("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(certificate_domain_id(&a), "2001:db8:1:2::/64");
        assert_eq!(certificate_domain_id(&a), certificate_domain_id(&b));
    }

    #[test]
    fn fqdn_set_hashes_are_canonical() {
        let one = [
            Identifier::dns("b.example.com"),
            Identifier::dns("A.example.com."),
        ];
        let two = [
            Identifier::dns("a.example.com"),
            Identifier::dns("b.example.com"),
            Identifier::dns("a.example.com"),
        ];
        assert_eq!(fqdn_set_hash(&one), fqdn_set_hash(&two));
        assert_ne!(
            fqdn_set_hash(&[Identifier::dns("a.example.com")]),
            fqdn_set_hash(&two)
        );
        assert_ne!(
            fqdn_set_hash(&[Identifier::dns("*.example.com")]),
            fqdn_set_hash(&[Identifier::dns("example.com")])
        );
        assert_eq!(fqdn_set_hash(&one).len(), 64);
    }

    #[test]
    fn validations_count_per_authorization_identifier() {
        assert_eq!(
            validation_id(&Identifier::dns("*.Example.com")),
            "example.com"
        );
        let v6 = Identifier {
            typ: IdentifierType::Ip,
            value: "2001:DB8:0::1".into(),
        };
        assert_eq!(validation_id(&v6), "2001:db8::1");
    }

    #[test]
    fn storage_keys_carry_the_limit_tag() {
        let key = BucketKey::new(LimitName::NewOrdersPerAccount, "acct1");
        assert_eq!(key.storage_key(), "noa:acct1");
        assert_eq!(key.to_string(), "new_orders_per_account:acct1");
    }
}
