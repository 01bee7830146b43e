//! The ceremony file: one reviewed TOML file per step, naming the step as its only table
//! (`[generate_key]`, `[root]`, `[intermediate]`, `[ocsp_signer]`, `[crl_signer]`, `[arl]`).
//! HSM keys are named as in the CA's configuration ([`Pkcs11KeyConfig`]); the PIN comes from an
//! environment variable or a file, never from this text. Relative paths are relative to the
//! ceremony file's directory, so a reviewed directory of files replays the same way anywhere.

use cairn_hsm::Pkcs11KeyConfig;
use cairn_pki::KeyAlgorithm;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// One ceremony step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Generate a key pair in the HSM and write its public key.
    GenerateKey(GenerateKeyStep),
    /// Sign a self-signed root with an HSM key.
    Root(RootStep),
    /// Sign an intermediate (or a cross-signed certificate of an existing intermediate).
    Intermediate(IntermediateStep),
    /// Sign a delegated OCSP responder certificate.
    OcspSigner(DelegatedStep),
    /// Sign a delegated CRL signer certificate.
    CrlSigner(DelegatedStep),
    /// Sign the root's CRL (the ARL), revoking CA certificates it issued.
    Arl(ArlStep),
}

impl Step {
    /// The step's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Step::GenerateKey(_) => "generate_key",
            Step::Root(_) => "root",
            Step::Intermediate(_) => "intermediate",
            Step::OcspSigner(_) => "ocsp_signer",
            Step::CrlSigner(_) => "crl_signer",
            Step::Arl(_) => "arl",
        }
    }
}

/// `[generate_key]`: a new key pair on the token. `key.key_label` and `key.key_id` are both
/// required, so later steps can name the key either way.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeyStep {
    /// The token, PIN source, and the new key's label and ID.
    pub key: Pkcs11KeyConfig,
    /// The key type.
    pub algorithm: KeyAlgorithm,
    /// Where the public key is written (PEM `PUBLIC KEY`).
    pub public_key_output: PathBuf,
}

/// A distinguished name as CA certificates carry it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// commonName.
    pub common_name: String,
    /// organizationName.
    #[serde(default)]
    pub organization: Option<String>,
    /// countryName (two uppercase letters).
    #[serde(default)]
    pub country: Option<String>,
}

/// `[root]`: a self-signed root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootStep {
    /// The root's key in the HSM.
    pub key: Pkcs11KeyConfig,
    /// The type the key must be (a different key on the token is refused).
    pub key_algorithm: KeyAlgorithm,
    /// The subject (and issuer) name.
    pub subject: Subject,
    /// notBefore (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Where the certificate is written (PEM).
    pub output: PathBuf,
}

/// The public key a certificate is issued for: exactly one of a public key file (PEM
/// `PUBLIC KEY` or DER SubjectPublicKeyInfo) and a CSR (PEM or DER PKCS#10, whose signature
/// must verify).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectKey {
    /// A public key file.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// A CSR file.
    #[serde(default)]
    pub csr: Option<PathBuf>,
    /// The type the key must be.
    pub algorithm: KeyAlgorithm,
}

/// The CA that signs, for every step but the root: its certificate and its key in the HSM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// The issuer's certificate (PEM).
    pub certificate: PathBuf,
    /// The issuer's key.
    pub key: Pkcs11KeyConfig,
}

/// `[intermediate]`: a TLS subordinate CA (pathLen 0, serverAuth + clientAuth). A cross-signed
/// certificate is the same step with another root as issuer and the existing intermediate's
/// subject and public key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntermediateStep {
    /// The signing CA.
    pub issuer: Issuer,
    /// The intermediate's public key.
    pub subject_key: SubjectKey,
    /// The subject name.
    pub subject: Subject,
    /// notBefore (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The issuer's CRL URL (CRL Distribution Points), if any.
    #[serde(default)]
    pub crl_url: Option<String>,
    /// The issuer's certificate URL (AIA caIssuers), if any.
    #[serde(default)]
    pub issuer_url: Option<String>,
    /// Where the certificate is written (PEM).
    pub output: PathBuf,
}

/// `[ocsp_signer]` / `[crl_signer]`: a delegated signer certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegatedStep {
    /// The CA whose status information the signer signs.
    pub issuer: Issuer,
    /// The signer's public key.
    pub subject_key: SubjectKey,
    /// The signer's commonName.
    pub common_name: String,
    /// notBefore (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Where the certificate is written (PEM).
    pub output: PathBuf,
}

/// `[arl]`: the root's CRL, covering the CA certificates it issued.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArlStep {
    /// The root (certificate and HSM key).
    pub issuer: Issuer,
    /// The cRLNumber; must grow from one ARL to the next.
    pub number: u64,
    /// thisUpdate (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    /// nextUpdate (RFC 3339), at most 365 days after thisUpdate (BR §4.9.7).
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
    /// The ARL's URL, as intermediates name it in their CRL Distribution Points: written into
    /// a critical issuingDistributionPoint (onlyContainsCACerts). None: no IDP.
    #[serde(default)]
    pub distribution_point: Option<String>,
    /// The certificates revoked.
    #[serde(default)]
    pub revoked: Vec<Revoked>,
    /// Where the CRL is written (PEM `X509 CRL`).
    pub output: PathBuf,
}

/// One revoked CA certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    /// The certificate (PEM), which must have been issued by the ARL's issuer.
    pub certificate: PathBuf,
    /// When it was revoked (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// RFC 5280 CRLReason values a CA certificate can be revoked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// No reason given (encoded as no reasonCode).
    Unspecified,
    /// The CA's key is compromised.
    KeyCompromise,
    /// The CA's key is compromised (cACompromise).
    CaCompromise,
    /// The CA's name or affiliation changed.
    AffiliationChanged,
    /// Replaced by another certificate.
    Superseded,
    /// The CA no longer operates.
    CessationOfOperation,
    /// The privilege to issue was withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }
}

/// `path` relative to the ceremony file's directory `base` (absolute paths stay as they are).
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_step_file_names_one_step_and_nothing_unknown() {
        let text = r#"
            [root]
            key_algorithm = "ecdsa-p384"
            not_before = "2026-01-01T00:00:00Z"
            not_after = "2046-01-01T00:00:00Z"
            output = "root.pem"
            [root.key]
            module = "/usr/lib/softhsm/libsofthsm2.so"
            token_label = "root"
            pin_env = "PIN"
            key_label = "root-key"
            [root.subject]
            common_name = "Cairn Root X1"
            organization = "Cairn"
        "#;
        let step: Step = toml::from_str(text).unwrap();
        let Step::Root(root) = &step else {
            panic!("not a root step: {step:?}")
        };
        assert_eq!(step.name(), "root");
        assert_eq!(root.key_algorithm, KeyAlgorithm::EcdsaP384);
        assert_eq!(root.subject.organization.as_deref(), Some("Cairn"));
        assert_eq!(root.not_after.year(), 2046);

        // A PIN written in the file is an unknown field, not a silently ignored secret.
        let with_pin = text.replace("pin_env = \"PIN\"", "pin_env = \"PIN\"\npin = \"1234\"");
        assert!(toml::from_str::<Step>(&with_pin).is_err());
        // Two steps in one file are refused.
        let two = format!("{text}\n[arl]\nnumber = 1\n");
        assert!(toml::from_str::<Step>(&two).is_err());
    }

    #[test]
    fn relative_paths_are_relative_to_the_ceremony_file() {
        assert_eq!(
            resolve(Path::new("/c/2026"), Path::new("root.pem")),
            PathBuf::from("/c/2026/root.pem")
        );
        assert_eq!(
            resolve(Path::new("/c/2026"), Path::new("/abs/root.pem")),
            PathBuf::from("/abs/root.pem")
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sample_tests {
    use super::Step;

    #[test]
    fn the_sample_steps_in_docs_parse() {
        let samples = [
            (
                "generate_key",
                include_str!("../../../docs/ceremony/01-root-key.toml"),
            ),
            ("root", include_str!("../../../docs/ceremony/02-root.toml")),
            (
                "generate_key",
                include_str!("../../../docs/ceremony/03-intermediate-key.toml"),
            ),
            (
                "intermediate",
                include_str!("../../../docs/ceremony/04-intermediate.toml"),
            ),
            (
                "ocsp_signer",
                include_str!("../../../docs/ceremony/05-ocsp-signer.toml"),
            ),
            ("arl", include_str!("../../../docs/ceremony/06-arl.toml")),
        ];
        for (name, text) in samples {
            let step: Step = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(step.name(), name);
        }
    }
}
