//! Shared test setup: a challenge test server on loopback and a VA pointed at it.
#![allow(dead_code)]

use cairn_challtestsrv::{ChallTestSrv, ChallTestSrvConfig, ChallTestSrvHandle};
use cairn_core::{AddressPolicy, ChallengeType, Identifier, ProblemType};
use cairn_va::{Va, VaConfig, ValidationAuthority, ValidationOutcome, ValidationRequest};
use std::time::Duration;

/// The key authorization most tests use.
pub(crate) const KEY_AUTH: &str = "tok123.thumbprint-abc";
/// Its token.
pub(crate) const TOKEN: &str = "tok123";

/// A running challenge server and a VA that validates against it.
pub(crate) struct Env {
    pub(crate) srv: ChallTestSrvHandle,
    pub(crate) va: Va,
}

pub(crate) async fn env() -> Env {
    let srv = ChallTestSrv::start(ChallTestSrvConfig::loopback_ephemeral())
        .await
        .unwrap();
    let va = va_for(&srv, |_| {});
    Env { srv, va }
}

/// A VA for `srv`, with a chance to adjust the configuration.
pub(crate) fn va_for(srv: &ChallTestSrvHandle, adjust: impl FnOnce(&mut VaConfig)) -> Va {
    let mut cfg = VaConfig {
        dns_server: srv.dns_addr().unwrap(),
        http01_port: srv.http01_addr().unwrap().port(),
        tlsalpn01_port: srv.tlsalpn01_addr().unwrap().port(),
        timeout: Duration::from_secs(5),
        user_agent: "cairn-va-test".into(),
        // The challenge test server answers 127.0.0.1: a private-PKI set-up. Tests of the
        // public-CA default set `AddressPolicy::PublicOnly`.
        address_policy: AddressPolicy::AllowPrivate,
        dnssec: cairn_va::Dnssec::Off,
    };
    adjust(&mut cfg);
    Va::new(cfg).unwrap()
}

pub(crate) fn request(
    identifier: Identifier,
    challenge: ChallengeType,
    key_auth: &str,
) -> ValidationRequest {
    ValidationRequest {
        identifier,
        challenge,
        token: key_auth.split('.').next().unwrap_or_default().to_string(),
        key_authorization: key_auth.to_string(),
        caa: None,
    }
}

impl Env {
    pub(crate) async fn validate(
        &self,
        identifier: Identifier,
        challenge: ChallengeType,
        key_auth: &str,
    ) -> ValidationOutcome {
        self.va
            .validate(request(identifier, challenge, key_auth))
            .await
    }
}

/// Asserts success, showing the problem otherwise.
pub(crate) fn assert_valid(o: &ValidationOutcome) {
    assert!(o.error.is_none(), "expected success, got {:?}", o.error);
}

/// Asserts failure of type `typ` whose detail contains `needle`.
pub(crate) fn assert_problem(o: &ValidationOutcome, typ: ProblemType, needle: &str) {
    let p = o
        .error
        .as_ref()
        .expect("expected a problem, validation succeeded");
    assert_eq!(p.typ, typ, "unexpected problem {p:?}");
    assert!(
        p.detail.contains(needle),
        "detail {:?} lacks {needle:?}",
        p.detail
    );
}
