//! Pre-authorization (RFC 8555 §7.4.1, `newAuthz`): an account asks for an authorization
//! before it orders, validates it, and later orders reuse it as they reuse any valid
//! authorization of the account. Neither Boulder nor Pebble offers it; private-PKI automation
//! asks for it, to prove control once and issue from many hosts later.
//!
//! The identifier passes the same policy an order's would (any profile's IP rule: the order
//! that uses it picks the profile), the account must not be paused for it, and each creation
//! spends the account's new-order limit, since it costs the database what an order does.
//! Wildcards are refused: a pre-authorization names the exact identifier, and a wildcard's
//! authorization is created by the order that names it.

use crate::{IdentifierPolicy, Ra, check_identifiers, internal};
use cairn_core::{Account, Authorization, Identifier, Problem};

impl Ra {
    /// Creates a pre-authorization for `identifier`, or returns the account's pending or valid
    /// authorization for it (the boolean is true when created).
    pub async fn new_authorization(
        &self,
        account: &Account,
        identifier: &Identifier,
    ) -> Result<(Authorization, bool), Problem> {
        let cfg = &self.inner.config;
        if identifier.value.starts_with("*.") {
            return Err(Problem::malformed(
                "newAuthz does not take wildcard identifiers: order the wildcard name instead",
            ));
        }
        let policy = IdentifierPolicy {
            allow_ip: cfg.identifiers.allow_ip && cfg.profiles.values().any(|p| p.allow_ip),
            ..cfg.identifiers.clone()
        };
        let mut ids = check_identifiers(std::slice::from_ref(identifier), &policy)?;
        let Some(id) = ids.pop() else {
            return Err(Problem::malformed("no identifier"));
        };
        let account_policy = self.account_policy(&account.id).await?;
        crate::account_policy::check_account_policy(
            account_policy.as_ref(),
            std::slice::from_ref(&id),
        )?;
        let now = self.now();
        let sa = &self.inner.sa;
        if let Some(existing) = sa
            .get_reusable_authz(&account.id, &id, false, true, now + time::Duration::days(1))
            .await
            .map_err(|e| internal(&e, "looking up reusable authorization"))?
        {
            return Ok((existing, false));
        }
        self.check_paused(&account.id, std::slice::from_ref(&id))
            .await?;
        let limits = crate::rate_limits::new_order_transactions(
            &account.id,
            std::slice::from_ref(&id),
            None,
        );
        self.spend_limits(&limits).await?;
        let mut authz = self.fresh_authz(&account.id, id.clone(), false, now);
        self.pre_validate(account_policy.as_ref(), &id, &mut authz, now);
        if let Err(e) = sa.new_authzs(std::slice::from_ref(&authz)).await {
            self.refund_limits(&limits).await;
            return Err(internal(&e, "storing pre-authorization"));
        }
        metrics::counter!("cairn_pre_authorizations_created_total").increment(1);
        Ok((authz, true))
    }
}
