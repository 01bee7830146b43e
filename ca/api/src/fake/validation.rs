//! [`ScriptedValidation`]: a validation authority whose answers a test sets per identifier.

use crate::va::{CaaCheck, ValidationAuthority, ValidationOutcome, ValidationRequest};
use async_trait::async_trait;
use cairn_core::{Identifier, Problem, ProblemType, ValidationRecord};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Answers every validation as the test scripted it: valid unless the identifier was told to
/// fail, and CAA allowed unless the identifier was told to forbid it. It does no I/O and records
/// every request, so a test can see what the RA asked.
#[derive(Debug, Default)]
pub struct ScriptedValidation {
    script: Mutex<Script>,
}

#[derive(Debug, Default)]
struct Script {
    /// Identifiers (authorization form) whose validation fails, with the problem.
    failing: HashMap<Identifier, Problem>,
    /// Identifiers whose CAA records forbid issuance, with the problem.
    caa_forbidden: HashMap<Identifier, Problem>,
    validations: Vec<ValidationRequest>,
    caa_checks: Vec<(Identifier, CaaCheck)>,
}

impl ScriptedValidation {
    /// Validates everything.
    pub fn new() -> ScriptedValidation {
        ScriptedValidation::default()
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, validations of `identifier` fail with an `unauthorized` problem.
    pub fn fail(&self, identifier: Identifier) {
        let problem = Problem::new(
            ProblemType::Unauthorized,
            format!("scripted failure for {}", identifier.value),
        );
        self.fail_with(identifier, problem);
    }

    /// From now on, validations of `identifier` fail with `problem`.
    pub fn fail_with(&self, identifier: Identifier, problem: Problem) {
        self.script().failing.insert(identifier, problem);
    }

    /// From now on, validations of `identifier` succeed again.
    pub fn succeed(&self, identifier: &Identifier) {
        self.script().failing.remove(identifier);
    }

    /// From now on, CAA for `identifier` forbids issuance (at validation and at the recheck).
    pub fn forbid_caa(&self, identifier: Identifier) {
        let problem = Problem::new(
            ProblemType::Caa,
            format!("scripted CAA refusal for {}", identifier.value),
        );
        self.script().caa_forbidden.insert(identifier, problem);
    }

    /// Every validation asked for so far.
    pub fn validations(&self) -> Vec<ValidationRequest> {
        self.script().validations.clone()
    }

    /// Every CAA check asked for alone (the recheck at finalize) so far.
    pub fn caa_checks(&self) -> Vec<(Identifier, CaaCheck)> {
        self.script().caa_checks.clone()
    }
}

#[async_trait]
impl ValidationAuthority for ScriptedValidation {
    async fn validate(&self, req: ValidationRequest) -> ValidationOutcome {
        let mut script = self.script();
        script.validations.push(req.clone());
        let error = match script.failing.get(&req.identifier) {
            Some(p) => Some(p.clone()),
            None if req.caa.is_some() => script.caa_forbidden.get(&req.identifier).cloned(),
            None => None,
        };
        ValidationOutcome {
            records: vec![ValidationRecord {
                hostname: Some(req.identifier.value.clone()),
                ..ValidationRecord::default()
            }],
            error: error.map(|p| p.with_identifier(req.identifier.clone())),
        }
    }

    async fn check_caa(&self, identifier: &Identifier, check: &CaaCheck) -> Result<(), Problem> {
        let mut script = self.script();
        script.caa_checks.push((identifier.clone(), check.clone()));
        match script.caa_forbidden.get(identifier) {
            Some(p) => Err(p.clone().with_identifier(identifier.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cairn_core::ChallengeType;

    fn request(name: &str, caa: bool) -> ValidationRequest {
        ValidationRequest {
            identifier: Identifier::dns(name),
            challenge: ChallengeType::Http01,
            token: "token".into(),
            key_authorization: "token.thumb".into(),
            caa: caa.then(|| CaaCheck {
                wildcard: false,
                ca_identities: vec!["ca.example".into()],
                account: None,
                method: Some(ChallengeType::Http01),
            }),
        }
    }

    #[tokio::test]
    async fn answers_follow_the_script_per_identifier() {
        let va = ScriptedValidation::new();
        va.fail(Identifier::dns("bad.example"));
        va.forbid_caa(Identifier::dns("caa.example"));
        assert!(
            va.validate(request("good.example", true))
                .await
                .error
                .is_none()
        );
        let bad = va
            .validate(request("bad.example", true))
            .await
            .error
            .unwrap();
        assert_eq!(bad.typ, ProblemType::Unauthorized);
        assert_eq!(bad.identifier, Some(Identifier::dns("bad.example")));
        // CAA refuses only when the validation asks for it.
        let caa = va
            .validate(request("caa.example", true))
            .await
            .error
            .unwrap();
        assert_eq!(caa.typ, ProblemType::Caa);
        assert!(
            va.validate(request("caa.example", false))
                .await
                .error
                .is_none()
        );
        let check = request("caa.example", true).caa.unwrap();
        assert!(
            va.check_caa(&Identifier::dns("caa.example"), &check)
                .await
                .is_err()
        );
        assert!(
            va.check_caa(&Identifier::dns("good.example"), &check)
                .await
                .is_ok()
        );
        va.succeed(&Identifier::dns("bad.example"));
        assert!(
            va.validate(request("bad.example", false))
                .await
                .error
                .is_none()
        );
        assert_eq!(va.validations().len(), 5);
        assert_eq!(va.caa_checks().len(), 2);
    }
}
