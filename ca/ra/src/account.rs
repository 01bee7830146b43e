//! Accounts: creation (with External Account Binding), contact updates, deactivation and key
//! rollover.

use crate::{Ra, internal, sa_problem};
use cairn_api::SaError;
use cairn_api::ra::{KeyChangeError, NewAccountRequest};
use cairn_core::{Account, AccountId, AccountStatus, Problem, ProblemType};

const MAX_CONTACTS: usize = 10;

/// Checks contact URLs: only `mailto:` with one plausible address each (RFC 8555 §7.3).
pub(crate) fn check_contacts(contacts: &[String]) -> Result<(), Problem> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Problem::new(
            ProblemType::InvalidContact,
            format!("at most {MAX_CONTACTS} contacts are allowed"),
        ));
    }
    for c in contacts {
        let Some(addr) = c.strip_prefix("mailto:") else {
            return Err(Problem::new(
                ProblemType::UnsupportedContact,
                "only mailto: contacts are supported",
            ));
        };
        let valid = addr.len() <= 254
            && !addr.contains(',')
            && !addr.contains('?')
            && addr.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && domain
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    && local.bytes().all(|b| b.is_ascii_graphic())
            });
        if !valid {
            return Err(Problem::new(
                ProblemType::InvalidContact,
                "contact is not a valid mailto: address",
            ));
        }
        if let Some((_, domain)) = addr.rsplit_once('@')
            && is_reserved_mail_domain(domain)
        {
            return Err(Problem::new(
                ProblemType::InvalidContact,
                format!("contact email domain {domain:?} is reserved and can't receive mail"),
            ));
        }
    }
    Ok(())
}

/// Top-level domains reserved for documentation, testing or local use (RFC 2606, RFC 6761,
/// RFC 6762, RFC 7686, RFC 9476, ICANN's `.internal`) and `home.arpa` (RFC 8375): mail to
/// them never reaches the subscriber.
const RESERVED_MAIL_TLDS: &[&str] = &[
    "test",
    "example",
    "invalid",
    "localhost",
    "local",
    "onion",
    "alt",
    "internal",
    "arpa",
];

/// Second-level domains reserved for documentation (RFC 2606 §3).
const RESERVED_MAIL_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

/// Whether mail to `domain` (or any name under it) can't reach anyone, as Boulder refuses such
/// contacts.
fn is_reserved_mail_domain(domain: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    let under = |suffix: &str| {
        domain == suffix
            || domain
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    let tld = domain.rsplit('.').next().unwrap_or_default();
    RESERVED_MAIL_TLDS.contains(&tld) || RESERVED_MAIL_DOMAINS.iter().any(|d| under(d))
}

impl Ra {
    /// Refuses an account key that was blocked (a certificate for it was revoked as
    /// compromised) with `badPublicKey`, as Boulder does.
    async fn check_account_key_not_blocked(&self, thumbprint: &str) -> Result<(), Problem> {
        let blocked = self
            .inner
            .sa
            .is_jwk_blocked(thumbprint)
            .await
            .map_err(|e| internal(&e, "checking blocked keys"))?;
        if blocked {
            return Err(Problem::new(
                ProblemType::BadPublicKey,
                "this key is blocked: a certificate for it was revoked as compromised",
            ));
        }
        Ok(())
    }

    /// Creates an account, or returns the existing one for the same key (RFC 8555 §7.3.1). The
    /// boolean is true when the account was created.
    pub async fn new_account(&self, req: NewAccountRequest) -> Result<(Account, bool), Problem> {
        self.check_account_key_not_debian_weak(&req.jwk)?;
        match self.inner.sa.get_account_by_key(&req.thumbprint).await {
            Ok(existing) => return Ok((existing, false)),
            Err(SaError::NotFound) => {}
            Err(e) => return Err(internal(&e, "looking up account by key")),
        }
        self.check_account_key_not_blocked(&req.thumbprint).await?;
        if self.inner.config.external_account_required && req.eab_key_id.is_none() {
            return Err(Problem::new(
                ProblemType::ExternalAccountRequired,
                "this CA requires an externalAccountBinding to create an account",
            ));
        }
        if !req.terms_of_service_agreed {
            // Boulder and Pebble require agreement when terms exist; Cairn always publishes terms.
            return Err(Problem::malformed(
                "the client must agree to the terms of service (termsOfServiceAgreed: true)",
            ));
        }
        check_contacts(&req.contact)?;
        let limits = req
            .remote_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .map(cairn_ratelimit::Transaction::new_account)
            .unwrap_or_default();
        self.spend_limits(&limits).await?;
        let account = Account {
            id: AccountId::random(),
            jwk: req.jwk,
            key_thumbprint: req.thumbprint,
            contact: req.contact,
            status: AccountStatus::Valid,
            created_at: self.now(),
            eab_key_id: req.eab_key_id,
            initial_ip: req.remote_ip,
        };
        match self.inner.sa.new_account(&account).await {
            Ok(()) => {
                metrics::counter!("cairn_accounts_created_total").increment(1);
                Ok((account, true))
            }
            Err(SaError::Conflict(_)) => {
                // Lost a race: with a concurrent newAccount for the same key (return the
                // winner), or for the same EAB key (the key is bound to the other account).
                match self
                    .inner
                    .sa
                    .get_account_by_key(&account.key_thumbprint)
                    .await
                {
                    Ok(existing) => Ok((existing, false)),
                    Err(SaError::NotFound) if account.eab_key_id.is_some() => {
                        self.refund_limits(&limits).await;
                        Err(Problem::unauthorized(
                            "the external account binding key has already been used",
                        ))
                    }
                    Err(e) => Err(internal(&e, "reloading raced account")),
                }
            }
            Err(e) => {
                self.refund_limits(&limits).await;
                Err(internal(&e, "storing account"))
            }
        }
    }

    /// Looks an account up by ID, in storage (the WFE keeps the accounts it authenticates for
    /// `wfe.account_cache_for`).
    pub async fn get_account(&self, id: &AccountId) -> Result<Account, Problem> {
        self.inner.sa.get_account(id).await.map_err(|e| match e {
            SaError::NotFound => Problem::new(
                ProblemType::AccountDoesNotExist,
                "no account exists with the provided key ID",
            ),
            other => internal(&other, "loading account"),
        })
    }

    /// Looks an account up by key thumbprint.
    pub async fn get_account_by_key(&self, thumbprint: &str) -> Result<Account, Problem> {
        self.inner
            .sa
            .get_account_by_key(thumbprint)
            .await
            .map_err(|e| match e {
                SaError::NotFound => Problem::new(
                    ProblemType::AccountDoesNotExist,
                    "no account exists with the provided key",
                ),
                other => internal(&other, "loading account by key"),
            })
    }

    /// Updates contacts and/or deactivates (RFC 8555 §7.3.2, §7.3.6).
    pub async fn update_account(
        &self,
        mut account: Account,
        contact: Option<Vec<String>>,
        deactivate: bool,
    ) -> Result<Account, Problem> {
        if let Some(contact) = contact {
            check_contacts(&contact)?;
            account.contact = contact;
        }
        if deactivate {
            account.status = AccountStatus::Deactivated;
        }
        match self.inner.sa.update_account(&account).await {
            Ok(()) => {}
            // `account` may be a cached copy read before another instance deactivated the
            // account; storage changes only valid accounts, so the deactivation stands.
            Err(SaError::Conflict(_)) => {
                return Err(Problem::unauthorized(
                    "this account is deactivated (or revoked) and can't be changed",
                ));
            }
            Err(e) => return Err(sa_problem(e, "account")),
        }
        if deactivate {
            // RFC 8555 §7.3.6: the server SHOULD cancel pending operations of a deactivated account.
            self.inner
                .sa
                .deactivate_account_authorizations(&account.id)
                .await
                .map_err(|e| internal(&e, "deactivating authorizations of deactivated account"))?;
        }
        Ok(account)
    }

    /// Replaces the account key (RFC 8555 §7.3.5). The WFE has verified both signatures.
    /// If another account holds the new key, its ID is returned so the WFE can answer 409 with
    /// that account's URL in `Location`.
    pub async fn change_key(
        &self,
        account: &Account,
        new_jwk: serde_json::Value,
        new_thumbprint: &str,
    ) -> Result<Account, KeyChangeError> {
        match self.inner.sa.get_account_by_key(new_thumbprint).await {
            Ok(other) => return Err(KeyChangeError::KeyInUse(other.id)),
            Err(SaError::NotFound) => {}
            Err(e) => return Err(KeyChangeError::Problem(internal(&e, "checking new key"))),
        }
        if let Err(p) = self.check_account_key_not_debian_weak(&new_jwk) {
            return Err(KeyChangeError::Problem(p));
        }
        if let Err(p) = self.check_account_key_not_blocked(new_thumbprint).await {
            return Err(KeyChangeError::Problem(p));
        }
        match self
            .inner
            .sa
            .update_account_key(&account.id, &new_jwk, new_thumbprint)
            .await
        {
            Ok(()) => {}
            Err(SaError::Conflict(_)) => {
                let other = self
                    .inner
                    .sa
                    .get_account_by_key(new_thumbprint)
                    .await
                    .map_err(|e| KeyChangeError::Problem(internal(&e, "reloading key owner")))?;
                return Err(KeyChangeError::KeyInUse(other.id));
            }
            Err(e) => {
                return Err(KeyChangeError::Problem(internal(
                    &e,
                    "updating account key",
                )));
            }
        }
        let mut updated = account.clone();
        updated.jwk = new_jwk;
        updated.key_thumbprint = new_thumbprint.to_string();
        Ok(updated)
    }

    /// The HMAC key of an unbound EAB key ID, for the WFE to verify a binding.
    pub async fn eab_hmac_key(&self, key_id: &str) -> Result<Option<Vec<u8>>, Problem> {
        match self.inner.sa.get_eab_key(key_id).await {
            Ok(k) if k.bound_account.is_none() => Ok(Some(k.hmac_key)),
            Ok(_) => Err(Problem::unauthorized(
                "the external account binding key has already been used",
            )),
            Err(SaError::NotFound) => Ok(None),
            Err(e) => Err(internal(&e, "loading EAB key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_contacts;
    use cairn_core::ProblemType;

    #[test]
    fn contacts_must_be_mailto_addresses() {
        assert!(check_contacts(&["mailto:admin@cairn-ca.net".into()]).is_ok());
        assert_eq!(
            check_contacts(&["tel:+1555".into()]).unwrap_err().typ,
            ProblemType::UnsupportedContact
        );
        for bad in [
            "mailto:",
            "mailto:a@b",
            "mailto:a@cairn-ca.net,b@cairn-ca.net",
            "mailto:a b@cairn-ca.net",
        ] {
            assert_eq!(
                check_contacts(&[bad.into()]).unwrap_err().typ,
                ProblemType::InvalidContact,
                "{bad}"
            );
        }
    }

    #[test]
    fn contacts_in_reserved_domains_are_invalid_contacts() {
        for reserved in [
            "mailto:admin@example.com",
            "mailto:admin@EXAMPLE.ORG",
            "mailto:admin@mail.example.net",
            "mailto:admin@host.test",
            "mailto:admin@foo.invalid",
            "mailto:admin@box.localhost",
            "mailto:admin@printer.local",
            "mailto:admin@corp.internal",
            "mailto:admin@router.home.arpa",
            "mailto:admin@site.example",
        ] {
            let problem = check_contacts(&[reserved.into()]).unwrap_err();
            assert_eq!(problem.typ, ProblemType::InvalidContact, "{reserved}");
            assert!(
                problem.detail.contains("reserved"),
                "{reserved}: {problem:?}"
            );
        }
        // Look-alikes that are ordinary domains stay allowed.
        for fine in [
            "mailto:admin@notexample.com",
            "mailto:admin@example.com.au",
            "mailto:admin@testing.net",
        ] {
            assert!(check_contacts(&[fine.into()]).is_ok(), "{fine}");
        }
    }
}
