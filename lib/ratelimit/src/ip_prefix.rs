//! IP prefixes (`192.0.2.0/24`, `2001:db8::/48`): bucket keys for ranges and override selectors.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address with the host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    network: IpAddr,
    len: u8,
}

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpPrefixError {
    /// Not an address, or an address followed by something other than `/<length>`.
    #[error("{0:?} is not an IP address or prefix like 192.0.2.0/24")]
    Malformed(String),
    /// The length is more than 32 (IPv4) or 128 (IPv6).
    #[error("{0:?} has a prefix length longer than the address")]
    TooLong(String),
}

impl IpPrefix {
    /// The prefix of length `len` that contains `addr` (the length is capped at the address size).
    pub fn new(addr: IpAddr, len: u8) -> Self {
        let len = len.min(max_len(addr));
        Self {
            network: mask(addr, len),
            len,
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `/0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside this prefix (an IPv4 address is never inside an IPv6 prefix).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.len) == self.network
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for IpPrefix {
    type Err = IpPrefixError;

    /// Accepts `addr/len` or a bare address (a single-address prefix). Host bits are cleared.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || IpPrefixError::Malformed(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| malformed())?;
        let len = match len {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => l
                .parse::<u8>()
                .map_err(|_| IpPrefixError::TooLong(s.to_string()))?,
            Some(_) => return Err(malformed()),
            None => max_len(addr),
        };
        if len > max_len(addr) {
            return Err(IpPrefixError::TooLong(s.to_string()));
        }
        Ok(Self::new(addr, len))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clears_host_bits() {
        let p: IpPrefix = "192.0.2.77/24".parse().unwrap();
        assert_eq!(p.to_string(), "192.0.2.0/24");
        assert!(p.contains("192.0.2.1".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        assert!(!p.contains("::ffff:192.0.2.1".parse().unwrap()));
        let v6: IpPrefix = "2001:db8:1:2::5/48".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8:1::/48");
        let single: IpPrefix = "2001:db8::1".parse().unwrap();
        assert_eq!(single.len(), 128);
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.is_empty() && all.contains("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn refuses_bad_prefixes() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/-1",
            "x",
        ] {
            assert!(bad.parse::<IpPrefix>().is_err(), "{bad:?} accepted");
        }
    }
}
