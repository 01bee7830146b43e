//! Identifier policy per account (private PKI): an account, or the EAB key it was bound with,
//! carries an allow-list ([`AccountPolicy`]). Orders and pre-authorizations of such an account
//! may name only identifiers on the list (others are `rejectedIdentifier`), and identifiers an
//! entry marked pre-validated covers get a valid authorization at once, without a challenge.
//! Such an authorization is stored with no challenges — which is how it stays recognizable in
//! the database — and logged as an audit event (`audit = "pre_validated"`).

use crate::{Ra, internal};
use cairn_core::{
    AccountId, AccountPolicy, Authorization, AuthzStatus, Identifier, Problem, ProblemType,
    Subproblem,
};
use time::OffsetDateTime;

impl Ra {
    /// The policy that applies to `account` (its own, else its EAB key's), if any.
    pub(crate) async fn account_policy(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountPolicy>, Problem> {
        self.inner
            .sa
            .get_identifier_policy(account)
            .await
            .map_err(|e| internal(&e, "loading the account's identifier policy"))
    }

    /// Pre-validates a fresh authorization for `id` (the order's form, wildcard included) when
    /// `policy` says so: valid now, for the valid-authorization lifetime, no challenges.
    pub(crate) fn pre_validate(
        &self,
        policy: Option<&AccountPolicy>,
        id: &Identifier,
        authz: &mut Authorization,
        now: OffsetDateTime,
    ) {
        if !policy.is_some_and(|p| p.pre_validated(id)) {
            return;
        }
        authz.status = AuthzStatus::Valid;
        authz.expires = now + self.inner.config.valid_authz_lifetime;
        authz.challenges.clear();
        metrics::counter!("cairn_pre_validated_authorizations_total").increment(1);
        tracing::info!(
            audit = "pre_validated",
            account = %authz.account_id,
            authz = %authz.id,
            identifier = %id,
            "authorization valid without a challenge: the account's identifier policy pre-validates it"
        );
    }
}

/// Refuses identifiers outside `policy` (`rejectedIdentifier`, one subproblem each).
pub(crate) fn check_account_policy(
    policy: Option<&AccountPolicy>,
    ids: &[Identifier],
) -> Result<(), Problem> {
    let Some(policy) = policy else {
        return Ok(());
    };
    let subs: Vec<Subproblem> = ids
        .iter()
        .filter(|id| !policy.allows(id))
        .map(|id| Subproblem {
            typ: ProblemType::RejectedIdentifier,
            detail: format!("{id} is not in this account's identifier policy"),
            identifier: id.clone(),
        })
        .collect();
    if subs.is_empty() {
        return Ok(());
    }
    let n = subs.len();
    let mut p = Problem::compound(
        format!("{n} identifier(s) are not in this account's identifier policy"),
        subs,
    );
    if p.typ == ProblemType::Compound {
        p.typ = ProblemType::RejectedIdentifier;
    }
    Err(p)
}
