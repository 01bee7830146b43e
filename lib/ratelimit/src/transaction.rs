//! Transactions: which buckets an ACME request draws from, and how much.

use crate::config::Subject;
use crate::ip_prefix::IpPrefix;
use crate::key::{
    BucketKey, certificate_domain_id, fqdn_set_hash, registered_domain, validation_id,
};
use crate::limits::LimitName;
use cairn_core::{AccountId, Identifier, IdentifierType};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A request against one bucket: spend `cost` tokens, or only check that they are there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub(crate) key: BucketKey,
    pub(crate) subject: Subject,
    pub(crate) cost: u64,
    pub(crate) check_only: bool,
}

impl Transaction {
    fn spend(key: BucketKey, subject: Subject) -> Self {
        Self {
            key,
            subject,
            cost: 1,
            check_only: false,
        }
    }

    /// The bucket drawn from.
    pub fn key(&self) -> &BucketKey {
        &self.key
    }

    /// Tokens needed.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Whether the tokens are only checked, not spent.
    pub fn is_check_only(&self) -> bool {
        self.check_only
    }

    /// The same request costing `cost` tokens.
    pub fn with_cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }

    /// The same request, checking without spending (e.g. to count certificates at issuance
    /// rather than at newOrder, as Let's Encrypt does).
    pub fn into_check_only(mut self) -> Self {
        self.check_only = true;
        self
    }

    /// New accounts per IP address (every address; IPv6 is counted per full address here and
    /// per /48 by [`Transaction::new_accounts_per_ipv6_range`]).
    pub fn new_accounts_per_ip(ip: IpAddr) -> Self {
        Self::spend(
            BucketKey::new(LimitName::NewAccountsPerIp, ip.to_string()),
            ip_subject(ip),
        )
    }

    /// New accounts per IPv6 /48; `None` for an IPv4 address.
    pub fn new_accounts_per_ipv6_range(ip: IpAddr) -> Option<Self> {
        ip.is_ipv6().then(|| {
            Self::spend(
                BucketKey::new(
                    LimitName::NewAccountsPerIpv6Range,
                    IpPrefix::new(ip, 48).to_string(),
                ),
                ip_subject(ip),
            )
        })
    }

    /// New orders per account.
    pub fn new_orders_per_account(account: &AccountId) -> Self {
        Self::spend(
            BucketKey::new(LimitName::NewOrdersPerAccount, account.as_str()),
            account_subject(account),
        )
    }

    /// Certificates for the registered domain (or address block) of `identifier`.
    pub fn certificates_per_domain(account: &AccountId, identifier: &Identifier) -> Self {
        let id = certificate_domain_id(identifier);
        let mut subject = account_subject(account);
        match identifier.typ {
            IdentifierType::Dns => subject.domain = Some(id.clone()),
            IdentifierType::Ip => subject.ip = identifier.value.parse().ok(),
        }
        Self::spend(
            BucketKey::new(LimitName::CertificatesPerDomain, id),
            subject,
        )
    }

    /// Certificates for exactly this set of identifiers, across all accounts.
    pub fn certificates_per_fqdn_set(account: &AccountId, identifiers: &[Identifier]) -> Self {
        Self::spend(
            BucketKey::new(
                LimitName::CertificatesPerFqdnSet,
                fqdn_set_hash(identifiers),
            ),
            account_subject(account),
        )
    }

    /// Failed validations of `identifier` by `account`.
    pub fn failed_authorizations(account: &AccountId, identifier: &Identifier) -> Self {
        Self::per_account_identifier(
            LimitName::FailedAuthorizationsPerDomainPerAccount,
            account,
            identifier,
        )
    }

    /// Consecutive failed validations of `identifier` by `account`, towards pausing.
    pub fn failed_authorizations_for_pausing(account: &AccountId, identifier: &Identifier) -> Self {
        Self::per_account_identifier(
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount,
            account,
            identifier,
        )
    }

    fn per_account_identifier(
        limit: LimitName,
        account: &AccountId,
        identifier: &Identifier,
    ) -> Self {
        let id = validation_id(identifier);
        let mut subject = account_subject(account);
        match identifier.typ {
            IdentifierType::Dns => subject.domain = Some(registered_domain(&id)),
            IdentifierType::Ip => subject.ip = id.parse().ok(),
        }
        Self::spend(BucketKey::new(limit, format!("{account}:{id}")), subject)
    }

    /// What newAccount draws from: the address, and for IPv6 also its /48.
    pub fn new_account(ip: IpAddr) -> Vec<Self> {
        let mut txns = vec![Self::new_accounts_per_ip(ip)];
        txns.extend(Self::new_accounts_per_ipv6_range(ip));
        txns
    }

    /// What newOrder draws from: one new order for the account, one certificate for each
    /// registered domain (however many names it has in the order), one for the identifier set;
    /// and a check (no spend) that the account has failed-validation tokens left for every
    /// identifier.
    ///
    /// `replaced` holds the identifiers of the certificate an ARI renewal (`replaces`) replaces.
    /// As at Let's Encrypt, a renewal is exempt only from the certificate-count limits, and only
    /// for what it renews: a registered domain the replaced certificate covered costs nothing,
    /// nor does the identifier set if it is the replaced one's. The new-orders and
    /// failed-validation limits always apply, and names the old certificate did not have are
    /// counted as for any order.
    pub fn new_order(
        account: &AccountId,
        identifiers: &[Identifier],
        replaced: Option<&[Identifier]>,
    ) -> Vec<Self> {
        let renewed_domains: BTreeSet<String> = replaced
            .unwrap_or_default()
            .iter()
            .map(certificate_domain_id)
            .collect();
        let mut txns = vec![Self::new_orders_per_account(account)];
        let mut domains = BTreeSet::new();
        for identifier in identifiers {
            let txn = Self::certificates_per_domain(account, identifier);
            let domain = txn.key.id().to_string();
            if !renewed_domains.contains(&domain) && domains.insert(domain) {
                txns.push(txn);
            }
        }
        let renews_the_set =
            replaced.is_some_and(|old| fqdn_set_hash(old) == fqdn_set_hash(identifiers));
        if !identifiers.is_empty() && !renews_the_set {
            txns.push(Self::certificates_per_fqdn_set(account, identifiers));
        }
        let mut validated = BTreeSet::new();
        for identifier in identifiers {
            let txn = Self::failed_authorizations(account, identifier);
            if validated.insert(txn.key.id().to_string()) {
                txns.push(txn.into_check_only());
            }
        }
        txns
    }
}

fn ip_subject(ip: IpAddr) -> Subject {
    Subject {
        ip: Some(ip),
        ..Subject::default()
    }
}

fn account_subject(account: &AccountId) -> Subject {
    Subject {
        account: Some(account.as_str().to_string()),
        ..Subject::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_order_draws_once_per_registered_domain() {
        let account = AccountId("acct".into());
        let ids = [
            Identifier::dns("a.example.com"),
            Identifier::dns("*.example.com"),
            Identifier::dns("example.org"),
            Identifier::ip("192.0.2.1".parse().unwrap()),
        ];
        let txns = Transaction::new_order(&account, &ids, None);
        let spent: Vec<String> = txns
            .iter()
            .filter(|t| !t.is_check_only())
            .map(|t| t.key().to_string())
            .collect();
        assert_eq!(spent.len(), 5, "{spent:?}");
        assert!(spent.contains(&"new_orders_per_account:acct".to_string()));
        assert!(spent.contains(&"certificates_per_domain:example.com".to_string()));
        assert!(spent.contains(&"certificates_per_domain:example.org".to_string()));
        assert!(spent.contains(&"certificates_per_domain:192.0.2.1/32".to_string()));
        let checked: Vec<String> = txns
            .iter()
            .filter(|t| t.is_check_only())
            .map(|t| t.key().id().to_string())
            .collect();
        assert_eq!(
            checked,
            [
                "acct:a.example.com",
                "acct:example.com",
                "acct:example.org",
                "acct:192.0.2.1"
            ]
        );
    }

    /// Issue 14, finding 5: a renewal (`replaces`) is exempt only from the certificate counts
    /// of what it renews; the new-orders and failed-validation limits still apply.
    #[test]
    fn a_renewal_is_exempt_only_from_the_certificate_counts_of_what_it_renews() {
        let account = AccountId("acct".into());
        let old = [
            Identifier::dns("www.example.com"),
            Identifier::dns("example.com"),
        ];
        let spent = |txns: &[Transaction]| -> Vec<String> {
            txns.iter()
                .filter(|t| !t.is_check_only())
                .map(|t| t.key().to_string())
                .collect()
        };
        // The same names: only the new order is spent.
        let same = Transaction::new_order(&account, &old, Some(&old));
        assert_eq!(spent(&same), ["new_orders_per_account:acct"]);
        assert_eq!(same.iter().filter(|t| t.is_check_only()).count(), 2);
        // Other names ride along: their domains and the new set are counted.
        let mut more = old.to_vec();
        more.push(Identifier::dns("a.example.com"));
        more.push(Identifier::dns("victim.example.net"));
        let txns = Transaction::new_order(&account, &more, Some(&old));
        let spent = spent(&txns);
        assert!(spent.contains(&"new_orders_per_account:acct".to_string()));
        assert!(spent.contains(&"certificates_per_domain:example.net".to_string()));
        assert!(!spent.contains(&"certificates_per_domain:example.com".to_string()));
        assert!(
            spent
                .iter()
                .any(|k| k.starts_with("certificates_per_fqdn_set:"))
        );
    }

    #[test]
    fn new_account_adds_the_ipv6_range() {
        assert_eq!(
            Transaction::new_account("192.0.2.1".parse().unwrap()).len(),
            1
        );
        let v6 = Transaction::new_account("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(v6[1].key().id(), "2001:db8:1::/48");
    }
}
