//! Where the console may send requests. Pairing a helper makes the console call a URL an
//! account typed in, so without a guard anyone with a login could make it reach what only the
//! console's network can (server-side request forgery): a cloud metadata endpoint, an admin
//! port on localhost, a database on the private network.
//!
//! The guard, for every URL an account gives:
//! - only `http`/`https`, no user name or password in the URL;
//! - an IP-literal host must be a globally reachable unicast address (the CA's own
//!   [`AddressPolicy`], from the IANA special-purpose registries);
//! - a host name is resolved by [`GuardedResolver`], which drops every non-public address from
//!   the answer at connection time (so a name that later re-resolves to `127.0.0.1` — DNS
//!   rebinding — still cannot be reached);
//! - redirects are not followed.
//!
//! The operator's own endpoints (the leader and the shared helper) are trusted: their hosts
//! resolve unfiltered. An operator whose helpers are on a private network sets
//! `allow_private_helpers = true`, which admits private, loopback and link-local addresses but
//! never the unspecified address or multicast.

use cairn_core::address_policy::AddressPolicy;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Why a helper URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The host of an `http(s)` URL, checked as far as it can be without resolving it.
pub fn check_url(url: &str, policy: AddressPolicy) -> Result<(), Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refused("not a URL".into()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Refused("the helper's URL must be http(s)".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Refused(
            "the helper's URL must not carry a user name or password".into(),
        ));
    }
    match parsed.host() {
        None => Err(Refused("the helper's URL has no host".into())),
        Some(url::Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), policy),
        Some(url::Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), policy),
        Some(url::Host::Domain(_)) => Ok(()),
    }
}

fn check_ip(ip: IpAddr, policy: AddressPolicy) -> Result<(), Refused> {
    policy.check(ip).map_err(|e| {
        Refused(format!(
            "the console does not send requests to {e}; ask the operator to allow private helpers"
        ))
    })
}

/// A DNS resolver that keeps only the addresses `policy` permits, except for trusted hosts.
#[derive(Debug)]
pub struct GuardedResolver {
    policy: AddressPolicy,
    trusted: HashSet<String>,
}

impl GuardedResolver {
    /// Filters by `policy`; the hosts of `trusted_urls` resolve unfiltered.
    pub fn new<'u>(
        policy: AddressPolicy,
        trusted_urls: impl IntoIterator<Item = &'u str>,
    ) -> GuardedResolver {
        let trusted = trusted_urls
            .into_iter()
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
            .collect();
        GuardedResolver { policy, trusted }
    }

    /// The addresses of `host` a request may go to.
    pub async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if self.trusted.contains(&host.to_ascii_lowercase()) {
            return Ok(all);
        }
        let kept: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| self.policy.permits(a.ip()))
            .collect();
        if kept.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} resolves to no address the console may reach"),
            ));
        }
        Ok(kept)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = GuardedResolver {
            policy: self.policy,
            trusted: self.trusted.clone(),
        };
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The console's HTTP client: guarded DNS, no redirects, a 30-second limit per request.
pub fn client(resolver: GuardedResolver) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(resolver))
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn private_literal_hosts_are_refused_unless_allowed() {
        let p = AddressPolicy::PublicOnly;
        for bad in [
            "http://127.0.0.1:8080/",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[::ffff:192.168.1.1]/",
            "http://0.0.0.0/",
            "ftp://helper.example/",
            "https://user:pw@helper.example/",
            "not a url",
        ] {
            assert!(check_url(bad, p).is_err(), "{bad}");
        }
        for good in ["https://helper.example/", "http://8.8.8.8:9000/dap/"] {
            assert_eq!(check_url(good, p), Ok(()), "{good}");
        }
        let allow = AddressPolicy::AllowPrivate;
        assert_eq!(check_url("http://127.0.0.1:8080/", allow), Ok(()));
        assert!(check_url("http://0.0.0.0/", allow).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_dropped_unless_trusted() {
        let r = GuardedResolver::new(AddressPolicy::PublicOnly, ["http://LOCALHOST:9/"]);
        assert!(!r.lookup("localhost").await.unwrap().is_empty());
        let r = GuardedResolver::new(AddressPolicy::PublicOnly, ["https://leader.example/"]);
        let e = r.lookup("localhost").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let r = GuardedResolver::new(AddressPolicy::AllowPrivate, []);
        assert!(!r.lookup("localhost").await.unwrap().is_empty());
    }
}
