//! Debian weak keys (CVE-2008-0166), refused as account keys (`badPublicKey`) and as
//! certificate keys (`badCSR`) when the operator supplies the blocklists (see
//! [`cairn_pki::debian_weak_keys`]). The other weak-key checks (small factors, Fermat, ROCA)
//! need no data and run where keys are parsed; this one needs the lists, which only the RA holds.

use crate::Ra;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_core::{Problem, ProblemType};
use cairn_pki::DebianWeakKeys;

const DETAIL: &str = "is a Debian weak key (CVE-2008-0166): its private key is public";

impl Ra {
    /// Refuses, from now on, every account key and certificate key in `keys`. Set once, at
    /// start-up; a second call is ignored and returns false.
    pub fn refuse_debian_weak_keys(&self, keys: DebianWeakKeys) -> bool {
        self.inner.debian_weak_keys.set(keys).is_ok()
    }

    /// `badPublicKey` if the account key (a JWK the WFE has checked) is a listed RSA key.
    pub(crate) fn check_account_key_not_debian_weak(
        &self,
        jwk: &serde_json::Value,
    ) -> Result<(), Problem> {
        let Some(keys) = self.inner.debian_weak_keys.get() else {
            return Ok(());
        };
        let modulus = (jwk.get("kty").and_then(|k| k.as_str()) == Some("RSA"))
            .then(|| jwk.get("n").and_then(|n| n.as_str()))
            .flatten()
            .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok());
        match modulus {
            Some(n) if keys.contains_rsa_modulus(&n) => Err(Problem::new(
                ProblemType::BadPublicKey,
                format!("the account key {DETAIL}"),
            )),
            _ => Ok(()),
        }
    }

    /// `badCSR` if the CSR's key (a SubjectPublicKeyInfo, DER) is a listed RSA key.
    pub(crate) fn check_csr_key_not_debian_weak(&self, spki_der: &[u8]) -> Result<(), Problem> {
        match self.inner.debian_weak_keys.get() {
            Some(keys) if keys.contains_spki(spki_der) => Err(Problem::new(
                ProblemType::BadCsr,
                format!("the CSR's public key {DETAIL}"),
            )),
            _ => Ok(()),
        }
    }
}
