//! Which IP addresses the CA may connect to and issue for: the IANA IPv4 and IPv6
//! special-purpose address registries (RFC 6890 and later additions), with the addresses that
//! embed an IPv4 address (IPv4-mapped, NAT64, 6to4) judged by the address they embed.
//!
//! One policy for the whole CA: the VA checks every DNS answer and redirect target against it,
//! and the RA checks IP identifiers against it. A public CA uses [`AddressPolicy::PublicOnly`];
//! a private PKI that validates internal hosts opts in to [`AddressPolicy::AllowPrivate`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which addresses are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Only globally reachable unicast addresses (a public CA; the default).
    #[default]
    PublicOnly,
    /// Private, loopback, link-local, shared, documentation and other special-purpose addresses
    /// too (a private PKI or a test set-up). The unspecified address, multicast and the limited
    /// broadcast address are refused even so: none of them names one host.
    AllowPrivate,
}

impl AddressPolicy {
    /// The policy for a CA that does (`true`) or does not allow private addresses.
    pub fn allowing_private(allow: bool) -> Self {
        if allow {
            Self::AllowPrivate
        } else {
            Self::PublicOnly
        }
    }

    /// `Ok` if `ip` is acceptable, else the special-purpose range it falls in.
    pub fn check(self, ip: IpAddr) -> Result<(), NonPublic> {
        match (self, special_purpose(ip)) {
            (_, None) => Ok(()),
            (Self::AllowPrivate, Some(r)) if !r.never_a_host => Ok(()),
            (_, Some(r)) => Err(NonPublic { addr: ip, range: r }),
        }
    }

    /// True if `ip` is acceptable.
    pub fn permits(self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }
}

/// An address refused by the policy, with the registry entry it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonPublic {
    /// The refused address.
    pub addr: IpAddr,
    /// The special-purpose range it belongs to.
    pub range: SpecialRange,
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a public address ({}, {})",
            self.addr, self.range.name, self.range.prefix
        )
    }
}

impl std::error::Error for NonPublic {}

/// One entry of the special-purpose registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    /// The prefix as written in the registry, e.g. `10.0.0.0/8`.
    pub prefix: &'static str,
    /// The registry's name for it, e.g. `private-use`.
    pub name: &'static str,
    /// Refused even by [`AddressPolicy::AllowPrivate`] (unspecified, multicast, broadcast).
    pub never_a_host: bool,
}

const fn range(prefix: &'static str, name: &'static str) -> SpecialRange {
    SpecialRange {
        prefix,
        name,
        never_a_host: false,
    }
}

const fn no_host(prefix: &'static str, name: &'static str) -> SpecialRange {
    SpecialRange {
        prefix,
        name,
        never_a_host: true,
    }
}

/// IPv4 special-purpose ranges that are not globally reachable, plus multicast (224/4), in
/// the order they are checked (more specific first where they nest).
const V4: &[(u32, u8, SpecialRange)] = &[
    (
        0x0000_0000,
        32,
        no_host("0.0.0.0/32", "this host (unspecified)"),
    ),
    (0x0000_0000, 8, range("0.0.0.0/8", "this network")),
    (0x0a00_0000, 8, range("10.0.0.0/8", "private-use")),
    (
        0x6440_0000,
        10,
        range("100.64.0.0/10", "shared address space"),
    ),
    (0x7f00_0000, 8, range("127.0.0.0/8", "loopback")),
    (0xa9fe_0000, 16, range("169.254.0.0/16", "link-local")),
    (0xac10_0000, 12, range("172.16.0.0/12", "private-use")),
    (
        0xc000_0000,
        24,
        range("192.0.0.0/24", "IETF protocol assignments"),
    ),
    (0xc000_0200, 24, range("192.0.2.0/24", "documentation")),
    (
        0xc058_6300,
        24,
        range("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ),
    (0xc0a8_0000, 16, range("192.168.0.0/16", "private-use")),
    (0xc612_0000, 15, range("198.18.0.0/15", "benchmarking")),
    (0xc633_6400, 24, range("198.51.100.0/24", "documentation")),
    (0xcb00_7100, 24, range("203.0.113.0/24", "documentation")),
    (0xe000_0000, 4, no_host("224.0.0.0/4", "multicast")),
    (
        0xffff_ffff,
        32,
        no_host("255.255.255.255/32", "limited broadcast"),
    ),
    (0xf000_0000, 4, range("240.0.0.0/4", "reserved")),
];

/// Globally reachable exceptions inside 2001::/23 (IANA lists them as such).
const V6_GLOBAL_IN_2001_23: &[(u128, u8)] = &[
    (0x2001_0001_0000_0000_0000_0000_0000_0001, 128), // PCP anycast
    (0x2001_0001_0000_0000_0000_0000_0000_0002, 128), // TURN anycast
    (0x2001_0001_0000_0000_0000_0000_0000_0003, 128), // DNS-SD SRP anycast
    (0x2001_0003_0000_0000_0000_0000_0000_0000, 32),  // AMT
    (0x2001_0004_0112_0000_0000_0000_0000_0000, 48),  // AS112-v6
    (0x2001_0020_0000_0000_0000_0000_0000_0000, 28),  // ORCHIDv2
    (0x2001_0030_0000_0000_0000_0000_0000_0000, 28),  // Drone remote ID DETs
];

/// IPv6 special-purpose ranges inside 2000::/3 that are not globally reachable. (Everything
/// outside 2000::/3, the only block allocated for global unicast, is refused anyway:
/// `::/128`, `::1`, `100::/64`, `fc00::/7`, `fe80::/10`, `ff00::/8`, `5f00::/16`, ...)
const V6_IN_GLOBAL_UNICAST: &[(u128, u8, SpecialRange)] = &[
    (
        0x2001_0db8_0000_0000_0000_0000_0000_0000,
        32,
        range("2001:db8::/32", "documentation"),
    ),
    (
        0x2001_0000_0000_0000_0000_0000_0000_0000,
        23,
        range("2001::/23", "IETF protocol assignments"),
    ),
    (
        0x3fff_0000_0000_0000_0000_0000_0000_0000,
        20,
        range("3fff::/20", "documentation"),
    ),
];

fn in_v4(addr: u32, net: u32, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    addr & mask == net & mask
}

fn in_v6(addr: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    addr & mask == net & mask
}

/// The special-purpose range `ip` falls in, or `None` for a globally reachable unicast
/// address. Addresses embedding an IPv4 address (`::ffff:0:0/96`, `64:ff9b::/96`,
/// `2002::/16`) are judged by the embedded address.
pub fn special_purpose(ip: IpAddr) -> Option<SpecialRange> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<SpecialRange> {
    let a = u32::from(ip);
    V4.iter()
        .find(|(net, len, _)| in_v4(a, *net, *len))
        .map(|(_, _, r)| *r)
}

fn special_v6(ip: Ipv6Addr) -> Option<SpecialRange> {
    let a = u128::from(ip);
    // IPv4-mapped (::ffff:0:0/96): a dual-stack socket connects to the embedded address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    // NAT64 well-known prefix (RFC 6052): a translator connects to the embedded address.
    if in_v6(a, 0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        return special_v4(Ipv4Addr::from(a as u32));
    }
    if in_v6(a, 0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48) {
        return Some(range("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"));
    }
    if a == 0 {
        return Some(no_host("::/128", "unspecified"));
    }
    if a == 1 {
        return Some(range("::1/128", "loopback"));
    }
    if in_v6(a, 0xff00_u128 << 112, 8) {
        return Some(no_host("ff00::/8", "multicast"));
    }
    if in_v6(a, 0xfe80_u128 << 112, 10) {
        return Some(range("fe80::/10", "link-local unicast"));
    }
    if in_v6(a, 0xfc00_u128 << 112, 7) {
        return Some(range("fc00::/7", "unique-local"));
    }
    if in_v6(a, 0x0100_u128 << 112, 64) {
        return Some(range("100::/64", "discard-only"));
    }
    if !in_v6(a, 0x2000_u128 << 112, 3) {
        return Some(range(
            "outside 2000::/3",
            "not allocated for global unicast",
        ));
    }
    // 6to4 (2002::/16): the embedded IPv4 address is the tunnel end point.
    if in_v6(a, 0x2002_u128 << 112, 16) {
        return special_v4(Ipv4Addr::from((a >> 80) as u32));
    }
    if V6_GLOBAL_IN_2001_23
        .iter()
        .any(|(net, len)| in_v6(a, *net, *len))
    {
        return None;
    }
    V6_IN_GLOBAL_UNICAST
        .iter()
        .find(|(net, len, _)| in_v6(a, *net, *len))
        .map(|(_, _, r)| *r)
}

/// True for a globally reachable unicast address (the [`AddressPolicy::PublicOnly`] test).
pub fn is_public(ip: IpAddr) -> bool {
    special_purpose(ip).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn every_ipv4_special_range_is_refused_at_both_ends() {
        let ranges = [
            ("0.0.0.0", "0.255.255.255"),
            ("10.0.0.0", "10.255.255.255"),
            ("100.64.0.0", "100.127.255.255"),
            ("127.0.0.0", "127.255.255.255"),
            ("169.254.0.0", "169.254.255.255"),
            ("172.16.0.0", "172.31.255.255"),
            ("192.0.0.0", "192.0.0.255"),
            ("192.0.2.0", "192.0.2.255"),
            ("192.88.99.0", "192.88.99.255"),
            ("192.168.0.0", "192.168.255.255"),
            ("198.18.0.0", "198.19.255.255"),
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            ("224.0.0.0", "239.255.255.255"),
            ("240.0.0.0", "255.255.255.255"),
        ];
        for (lo, hi) in ranges {
            assert!(!public(lo), "{lo}");
            assert!(!public(hi), "{hi}");
        }
    }

    #[test]
    fn ipv4_neighbours_of_special_ranges_are_public() {
        for a in [
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
            "8.8.8.8",
            "1.1.1.1",
        ] {
            assert!(public(a), "{a}");
        }
    }

    #[test]
    fn cloud_metadata_address_is_link_local() {
        let r = special_purpose("169.254.169.254".parse().unwrap()).unwrap();
        assert_eq!(r.name, "link-local");
    }

    #[test]
    fn ipv6_special_ranges_are_refused() {
        for a in [
            "::",
            "::1",
            "::2",
            "100::",
            "100::ffff:ffff:ffff:ffff",
            "2001::",
            "2001:0:ffff::1",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff:ffff::1",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff::1",
            "3fff:fff:ffff::1",
            "5f00::1",
            "fc00::",
            "fdff:ffff::1",
            "fe80::1",
            "febf:ffff::1",
            "ff02::1",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::1",
            "::ffff:0:0",
        ] {
            assert!(!public(a), "{a}");
        }
    }

    #[test]
    fn ipv6_global_addresses_and_iana_exceptions_are_public() {
        for a in [
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2000::",
            "3ffe:ffff::1",
            "2001:200::1",
            "2001:1::1",
            "2001:1::2",
            "2001:1::3",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:30::1",
            "2001:db7:ffff::1",
            "2001:db9::1",
        ] {
            assert!(public(a), "{a}");
        }
        assert!(!public("2001:1::4"), "only the listed anycast addresses");
    }

    #[test]
    fn embedded_ipv4_addresses_are_judged_by_the_embedded_address() {
        // IPv4-mapped.
        assert!(!public("::ffff:10.0.0.1"));
        assert!(!public("::ffff:127.0.0.1"));
        assert!(!public("::ffff:169.254.169.254"));
        assert!(public("::ffff:8.8.8.8"));
        // NAT64 well-known prefix.
        assert!(!public("64:ff9b::10.0.0.1"));
        assert!(!public("64:ff9b::7f00:1"));
        assert!(public("64:ff9b::8.8.8.8"));
        // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
        assert!(!public("2002:0a00:0001::1"));
        assert!(!public("2002:7f00:0001::1"));
        assert!(!public("2002:c0a8:0101::1"));
        assert!(public("2002:0808:0808::1"));
    }

    #[test]
    fn allow_private_still_refuses_what_is_never_one_host() {
        let p = AddressPolicy::AllowPrivate;
        for a in ["127.0.0.1", "10.0.0.1", "::1", "fe80::1", "::ffff:10.0.0.1"] {
            assert!(p.permits(a.parse().unwrap()), "{a}");
        }
        for a in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            assert!(!p.permits(a.parse().unwrap()), "{a}");
        }
        let e = AddressPolicy::PublicOnly
            .check("10.1.2.3".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.1.2.3 is not a public address (private-use, 10.0.0.0/8)"
        );
        assert_eq!(AddressPolicy::default(), AddressPolicy::PublicOnly);
    }
}
