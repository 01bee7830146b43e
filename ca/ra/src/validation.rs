//! Challenge responses: the client says "ready", the RA marks the challenge processing, asks the
//! VA in the background and records the outcome on the authorization atomically.
//!
//! Nothing may leave a challenge `processing` for good: the mark carries a lease (this
//! instance's name and [`RaConfig::challenge_lease`](crate::RaConfig::challenge_lease)); the
//! outcome's write is retried a few times; and every instance's recovery
//! ([`Ra::recover_stale_work`]) claims, by compare-and-swap, challenges whose lease ended —
//! the instance died mid-validation, or could not store the outcome — and validates them again,
//! or marks them invalid when that can no longer succeed. Until then the storage does not hand
//! the authorization out for reuse.

use crate::{Ra, internal};
use cairn_api::{CaaAccount, CaaCheck, ChallengeOutcome, SaError, ValidationRequest};
use cairn_core::{
    Account, AccountStatus, Authorization, AuthzId, AuthzStatus, Challenge, ChallengeId,
    ChallengeStatus, Problem,
};
use std::time::Duration as StdDuration;

/// How many times the outcome of a validation is written before giving up (and leaving the
/// challenge to recovery once its lease ends), and the pause before the first retry (doubled
/// each time).
const OUTCOME_WRITE_ATTEMPTS: u32 = 5;
const OUTCOME_WRITE_BACKOFF: StdDuration = StdDuration::from_millis(100);

/// Most stale challenges one recovery pass takes over (the next pass takes the rest).
const RECOVERY_BATCH: u64 = 256;

impl Ra {
    /// The CAA check for `account`, naming it for RFC 8657 `accounturi` and the method for
    /// `validationmethods`.
    pub(crate) fn caa_check(
        &self,
        account: &Account,
        wildcard: bool,
        method: Option<cairn_core::ChallengeType>,
    ) -> CaaCheck {
        let cfg = &self.inner.config;
        CaaCheck {
            wildcard,
            ca_identities: cfg.caa_identities.clone(),
            account: Some(CaaAccount {
                path: format!("/acme/acct/{}", account.id),
                prefixes: cfg.account_uri_prefixes.clone(),
            }),
            method,
        }
    }

    /// Starts validation of a challenge (RFC 8555 §7.5.1) and returns the authorization as it
    /// stands (the challenge `processing`). Responding again to a challenge that is already
    /// processing, valid or invalid changes nothing; responding to a pending challenge of an
    /// authorization that is no longer pending is `malformed`.
    pub async fn respond_to_challenge(
        &self,
        account: &Account,
        authz_id: &AuthzId,
        challenge_id: &ChallengeId,
    ) -> Result<Authorization, Problem> {
        let mut authz = self.get_authorization(account, authz_id).await?;
        let Some(chall) = authz
            .challenges
            .iter()
            .find(|c| &c.id == challenge_id)
            .cloned()
        else {
            return Err(Problem::not_found("challenge not found"));
        };
        if chall.status != ChallengeStatus::Pending {
            return Ok(authz);
        }
        if authz.status != AuthzStatus::Pending {
            // As Let's Encrypt: a pending challenge of a settled authorization can never move,
            // so say so rather than answer 200 and leave the client polling.
            return Err(Problem::malformed(format!(
                "authorization is not pending (it is {})",
                authz.status.as_str()
            )));
        }
        if authz
            .challenges
            .iter()
            .any(|c| c.status == ChallengeStatus::Processing)
        {
            // Another challenge of this authorization is already being validated.
            return Ok(authz);
        }
        let lease = self.lease(self.inner.config.challenge_lease);
        let started = self
            .inner
            .sa
            .set_challenge_processing(authz_id, challenge_id, &lease)
            .await
            .map_err(|e| internal(&e, "marking challenge processing"))?;
        if !started {
            // Another request moved it first: answer with what is stored now.
            return self.get_authorization(account, authz_id).await;
        }
        let ra = self.clone();
        let (task_account, task_authz) = (account.clone(), authz.clone());
        let task_chall = chall;
        // Not awaited by the request (validation takes seconds, and a client that hangs up
        // must not cancel it); the lease covers this task dying with the process.
        tokio::spawn(async move {
            ra.validate_and_record(&task_account, &task_authz, task_chall)
                .await;
        });
        // Just moved by this request: the authorization as stored by that write, without
        // reading it back.
        for c in &mut authz.challenges {
            if &c.id == challenge_id {
                c.status = ChallengeStatus::Processing;
            }
        }
        Ok(authz)
    }

    /// Asks the VA to validate `chall` (held `processing` by this instance) and stores the
    /// outcome.
    async fn validate_and_record(
        &self,
        account: &Account,
        authz: &Authorization,
        chall: Challenge,
    ) {
        let key_authorization = format!("{}.{}", chall.token, account.key_thumbprint);
        let req = ValidationRequest {
            identifier: authz.identifier.clone(),
            challenge: chall.typ,
            token: chall.token.clone(),
            key_authorization,
            caa: Some(self.caa_check(account, authz.wildcard, Some(chall.typ))),
        };
        let outcome = self.inner.va.validate(req).await;
        self.record_validation(&account.id, &authz.identifier, outcome.error.is_none())
            .await;
        let mut chall = chall;
        chall.validation_record = outcome.records;
        self.store_outcome(authz, chall, outcome.error).await;
    }

    /// Stores a validation outcome (`error: None` is success), retrying a failed write a few
    /// times. Gives up only with the challenge still `processing`, which recovery takes over
    /// once the lease ends.
    async fn store_outcome(
        &self,
        authz: &Authorization,
        mut chall: Challenge,
        error: Option<Problem>,
    ) {
        let now = self.now();
        let (chall_status, authz_status, expires) = match error {
            None => (
                ChallengeStatus::Valid,
                AuthzStatus::Valid,
                valid_authz_expiry(now + self.inner.config.valid_authz_lifetime, &chall),
            ),
            Some(problem) => {
                chall.error = Some(problem);
                (
                    ChallengeStatus::Invalid,
                    AuthzStatus::Invalid,
                    authz.expires,
                )
            }
        };
        chall.status = chall_status;
        chall.validated = Some(now);
        let outcome = ChallengeOutcome {
            authz_id: authz.id.clone(),
            challenge: chall,
            authz_status,
            expires,
        };
        let mut pause = OUTCOME_WRITE_BACKOFF;
        for attempt in 1..=OUTCOME_WRITE_ATTEMPTS {
            match self.inner.sa.finish_challenge(&outcome).await {
                Ok(()) => return,
                // Settled meanwhile (another instance's recovery, a deactivation): nothing to do.
                Err(e @ (SaError::Conflict(_) | SaError::NotFound)) => {
                    tracing::info!(authz = %outcome.authz_id, reason = %e, "validation outcome not stored: the authorization was settled meanwhile");
                    return;
                }
                Err(e) if attempt < OUTCOME_WRITE_ATTEMPTS => {
                    tracing::warn!(authz = %outcome.authz_id, attempt, error = %e, "storing validation outcome failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(authz = %outcome.authz_id, error = %e, "storing validation outcome failed; the challenge is validated again once its lease ends");
                }
            }
        }
    }

    /// Takes over challenges left `processing` past their lease and validates them again in
    /// the background, or marks them invalid when validating again cannot succeed (the
    /// authorization expired, the account is no longer valid). Returns how many it took over.
    pub async fn recover_stale_challenges(&self) -> Result<usize, Problem> {
        let sa = &self.inner.sa;
        let now = self.now();
        let stale = sa
            .get_stale_processing_challenges(now, RECOVERY_BATCH)
            .await
            .map_err(|e| internal(&e, "listing stale challenges"))?;
        let mut taken = 0;
        for (authz_id, chall_id) in stale {
            let lease = self.lease(self.inner.config.challenge_lease);
            let claimed = sa
                .claim_processing_challenge(&authz_id, &chall_id, &lease, now)
                .await
                .map_err(|e| internal(&e, "claiming a stale challenge"))?;
            if !claimed {
                // Another instance was first.
                continue;
            }
            taken += 1;
            metrics::counter!("cairn_challenges_recovered_total").increment(1);
            tracing::info!(authz = %authz_id, challenge = %chall_id, "validating a challenge left processing past its lease");
            let ra = self.clone();
            tokio::spawn(async move { ra.revalidate(&authz_id, &chall_id).await });
        }
        Ok(taken)
    }

    /// Validates a claimed stale challenge again, or settles it as invalid.
    async fn revalidate(&self, authz_id: &AuthzId, chall_id: &ChallengeId) {
        let sa = &self.inner.sa;
        let authz = match sa.get_authorization(authz_id).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(authz = %authz_id, error = %e, "loading a stale challenge's authorization");
                return;
            }
        };
        let Some(chall) = authz.challenges.iter().find(|c| &c.id == chall_id).cloned() else {
            return;
        };
        if authz.expires <= self.now() {
            let problem = Problem::unauthorized(
                "the authorization expired before its interrupted validation could be retried",
            );
            return self.store_outcome(&authz, chall, Some(problem)).await;
        }
        let account = match sa.get_account(&authz.account_id).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(authz = %authz_id, error = %e, "loading a stale challenge's account");
                return;
            }
        };
        if account.status != AccountStatus::Valid {
            let problem = Problem::unauthorized(
                "the account is no longer valid, so its interrupted validation was not retried",
            );
            return self.store_outcome(&authz, chall, Some(problem)).await;
        }
        self.validate_and_record(&account, &authz, chall).await;
    }
}

/// A valid authorization's expiry: the reuse window, but never past the `persistUntil` of the
/// dns-persist-01 record that validated it (draft-ietf-acme-dns-persist §4.1).
fn valid_authz_expiry(
    reuse_until: time::OffsetDateTime,
    chall: &Challenge,
) -> time::OffsetDateTime {
    chall
        .validation_record
        .iter()
        .filter_map(|r| r.persist_until)
        .filter_map(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .fold(reuse_until, time::OffsetDateTime::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{ChallengeType, ValidationRecord};

    #[test]
    fn persist_until_caps_a_valid_authorizations_expiry() {
        let reuse_until = time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
        let mut chall = Challenge {
            id: ChallengeId("c".into()),
            typ: ChallengeType::DnsPersist01,
            token: "t".into(),
            status: ChallengeStatus::Valid,
            validated: None,
            error: None,
            validation_record: vec![ValidationRecord::default()],
        };
        assert_eq!(valid_authz_expiry(reuse_until, &chall), reuse_until);
        chall.validation_record[0].persist_until = Some(1_900_000_000);
        assert_eq!(
            valid_authz_expiry(reuse_until, &chall).unix_timestamp(),
            1_900_000_000
        );
        // A persistUntil after the reuse window changes nothing.
        chall.validation_record[0].persist_until = Some(2_100_000_000);
        assert_eq!(valid_authz_expiry(reuse_until, &chall), reuse_until);
    }
}
