//! Challenge responses: the client says "ready", the RA marks the challenge processing, asks the
//! VA in the background and records the outcome on the authorization atomically.

use crate::{Ra, internal};
use cairn_api::{CaaAccount, CaaCheck, ChallengeOutcome, ValidationRequest};
use cairn_core::{
    Account, Authorization, AuthzId, AuthzStatus, ChallengeId, ChallengeStatus, Problem,
};

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
        let started = self
            .inner
            .sa
            .set_challenge_processing(authz_id, challenge_id)
            .await
            .map_err(|e| internal(&e, "marking challenge processing"))?;
        if !started {
            // Another request moved it first: answer with what is stored now.
            return self.get_authorization(account, authz_id).await;
        }
        {
            let ra = self.clone();
            let key_authorization = format!("{}.{}", chall.token, account.key_thumbprint);
            let req = ValidationRequest {
                identifier: authz.identifier.clone(),
                challenge: chall.typ,
                token: chall.token.clone(),
                key_authorization,
                caa: Some(self.caa_check(account, authz.wildcard, Some(chall.typ))),
            };
            let authz_id = authz_id.clone();
            let mut chall = chall;
            let authz_expires = authz.expires;
            let account_id = account.id.clone();
            let identifier = authz.identifier.clone();
            tokio::spawn(async move {
                let outcome = ra.inner.va.validate(req).await;
                ra.record_validation(&account_id, &identifier, outcome.error.is_none())
                    .await;
                let now = ra.now();
                chall.validation_record = outcome.records;
                let (chall_status, authz_status, expires) = match outcome.error {
                    None => (
                        ChallengeStatus::Valid,
                        AuthzStatus::Valid,
                        now + ra.inner.config.valid_authz_lifetime,
                    ),
                    Some(problem) => {
                        chall.error = Some(problem);
                        (
                            ChallengeStatus::Invalid,
                            AuthzStatus::Invalid,
                            authz_expires,
                        )
                    }
                };
                chall.status = chall_status;
                chall.validated = Some(now);
                let outcome = ChallengeOutcome {
                    authz_id,
                    challenge: chall,
                    authz_status,
                    expires,
                };
                if let Err(e) = ra.inner.sa.finish_challenge(&outcome).await {
                    tracing::error!(error = %e, authz = %outcome.authz_id, "storing validation outcome failed");
                }
            });
        }
        // Just moved by this request: the authorization as stored by that write, without
        // reading it back.
        for c in &mut authz.challenges {
            if &c.id == challenge_id {
                c.status = ChallengeStatus::Processing;
            }
        }
        Ok(authz)
    }
}
