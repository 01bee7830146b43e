//! HPKE seal/open for DAP-18: the mandatory suite (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-128-GCM), the `"dap-18 input share"`/`"dap-18 aggregate share"` info strings and keypairs.
//!
//! The suite is rustls's RFC 9180 implementation on aws-lc-rs, the project's one crypto stack.
//! Opening two input shares is most of an aggregator's CPU per report, and aws-lc's X25519 does
//! it in a fraction of the time the pure-Rust `hpke` crate took (BENCHMARKS.md, `cairn bench
//! dap`'s floor line). The tests check both directions against the `hpke` crate and RFC 9180's
//! test vector for this suite.

use cairn_dap_messages::{
    HpkeAeadId, HpkeCiphertext, HpkeConfig, HpkeConfigId, HpkeKdfId, HpkeKemId, Role,
};
use rustls::crypto::aws_lc_rs::hpke::DH_KEM_X25519_HKDF_SHA256_AES_128 as SUITE;
use rustls::crypto::hpke::{EncapsulatedSecret, Hpke as _, HpkePrivateKey, HpkePublicKey};
use thiserror::Error;

/// An X25519 public or private key's length (RFC 7748).
const X25519_KEY_LEN: usize = 32;

/// The draft's domain-separation prefix (replaced by "dap" once it is an RFC).
pub const DAP_VERSION_TAG: &str = "dap-18";

/// Why an HPKE operation failed. Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HpkeError {
    /// The configuration names a KEM/KDF/AEAD this implementation does not support.
    #[error("unsupported HPKE suite")]
    UnsupportedSuite,
    /// A public key, private key or encapsulated key has the wrong form.
    #[error("malformed HPKE key")]
    InvalidKey,
    /// The ciphertext was not made for this key and info/AAD, or was altered.
    #[error("HPKE open failed")]
    Open,
    /// Encryption failed.
    #[error("HPKE seal failed")]
    Seal,
}

/// What the plaintext is, part of the `info` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Label {
    /// A client's input share.
    InputShare,
    /// An aggregator's aggregate share.
    AggregateShare,
}

/// The HPKE `info`: `"dap-18 <label>" || sender_role || recipient_role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeApplicationInfo(Vec<u8>);

impl HpkeApplicationInfo {
    /// The DAP-18 info for `label` from `sender` to `recipient`.
    pub fn new(label: Label, sender: Role, recipient: Role) -> Self {
        Self::for_protocol(DAP_VERSION_TAG, label, sender, recipient)
    }

    /// The info under another draft's tag (`"dap-09"`): the layout is the same in both.
    pub fn for_protocol(tag: &str, label: Label, sender: Role, recipient: Role) -> Self {
        let label = match label {
            Label::InputShare => "input share",
            Label::AggregateShare => "aggregate share",
        };
        let mut info = format!("{tag} {label}").into_bytes();
        info.push(sender.code());
        info.push(recipient.code());
        HpkeApplicationInfo(info)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn check_suite(config: &HpkeConfig) -> Result<(), HpkeError> {
    if config.kem_id == HpkeKemId::X25519_HKDF_SHA256
        && config.kdf_id == HpkeKdfId::HKDF_SHA256
        && config.aead_id == HpkeAeadId::AES_128_GCM
    {
        Ok(())
    } else {
        Err(HpkeError::UnsupportedSuite)
    }
}

/// Whether this implementation can encrypt to `config`.
pub fn is_supported(config: &HpkeConfig) -> bool {
    check_suite(config).is_ok()
}

/// Encrypts `plaintext` to `config` (`SealBase`).
pub fn seal(
    config: &HpkeConfig,
    info: &HpkeApplicationInfo,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<HpkeCiphertext, HpkeError> {
    check_suite(config)?;
    if config.public_key.len() != X25519_KEY_LEN {
        return Err(HpkeError::InvalidKey);
    }
    let pk = HpkePublicKey(config.public_key.clone());
    let (enc, payload) = SUITE
        .seal(info.as_bytes(), aad, plaintext, &pk)
        .map_err(|_| HpkeError::Seal)?;
    Ok(HpkeCiphertext {
        config_id: config.id,
        enc: enc.0,
        payload,
    })
}

/// An HPKE configuration with its private key. `Debug` never shows the key.
#[derive(Clone)]
pub struct HpkeKeypair {
    config: HpkeConfig,
    private_key: Vec<u8>,
}

impl std::fmt::Debug for HpkeKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpkeKeypair")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HpkeKeypair {
    /// A fresh X25519 keypair with configuration ID `id`. Panics if the system random number
    /// generator fails: no key can be made then.
    #[allow(
        clippy::expect_used,
        reason = "a failing system random number generator leaves nothing safe to do"
    )]
    pub fn generate(id: HpkeConfigId) -> HpkeKeypair {
        let (pk, sk) = SUITE
            .generate_key_pair()
            .expect("the system random number generator works");
        HpkeKeypair {
            config: HpkeConfig {
                id,
                kem_id: HpkeKemId::X25519_HKDF_SHA256,
                kdf_id: HpkeKdfId::HKDF_SHA256,
                aead_id: HpkeAeadId::AES_128_GCM,
                public_key: pk.0,
            },
            private_key: sk.secret_bytes().to_vec(),
        }
    }

    /// A keypair from stored parts; fails if either key does not fit the suite.
    pub fn new(config: HpkeConfig, private_key: Vec<u8>) -> Result<HpkeKeypair, HpkeError> {
        check_suite(&config)?;
        if private_key.len() != X25519_KEY_LEN || config.public_key.len() != X25519_KEY_LEN {
            return Err(HpkeError::InvalidKey);
        }
        Ok(HpkeKeypair {
            config,
            private_key,
        })
    }

    /// The public configuration.
    pub fn config(&self) -> &HpkeConfig {
        &self.config
    }

    /// The private key bytes (for storage only).
    pub fn private_key(&self) -> &[u8] {
        &self.private_key
    }

    /// Decrypts `ciphertext` (`OpenBase`).
    pub fn open(
        &self,
        info: &HpkeApplicationInfo,
        ciphertext: &HpkeCiphertext,
        aad: &[u8],
    ) -> Result<Vec<u8>, HpkeError> {
        if ciphertext.config_id != self.config.id || ciphertext.enc.len() != X25519_KEY_LEN {
            return Err(HpkeError::Open);
        }
        let sk = HpkePrivateKey::from(self.private_key.clone());
        SUITE
            .open(
                &EncapsulatedSecret(ciphertext.enc.clone()),
                info.as_bytes(),
                aad,
                &ciphertext.payload,
                &sk,
            )
            .map_err(|_| HpkeError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_strings_match_the_draft() {
        let i = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Helper);
        assert_eq!(i.as_bytes(), b"dap-18 input share\x01\x03");
        let a = HpkeApplicationInfo::new(Label::AggregateShare, Role::Leader, Role::Collector);
        assert_eq!(a.as_bytes(), b"dap-18 aggregate share\x02\x00");
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let kp = HpkeKeypair::generate(HpkeConfigId(7));
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        let ct = seal(kp.config(), &info, b"secret", b"aad").unwrap();
        assert_eq!(ct.config_id, HpkeConfigId(7));
        assert_eq!(kp.open(&info, &ct, b"aad").unwrap(), b"secret");
        assert_eq!(kp.open(&info, &ct, b"other aad"), Err(HpkeError::Open));
        let helper = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Helper);
        assert_eq!(kp.open(&helper, &ct, b"aad"), Err(HpkeError::Open));
        let mut bad = ct.clone();
        bad.enc = vec![1, 2, 3];
        assert_eq!(kp.open(&info, &bad, b"aad"), Err(HpkeError::Open));
        let kp2 = HpkeKeypair::new(kp.config().clone(), kp.private_key().to_vec()).unwrap();
        assert_eq!(kp2.open(&info, &ct, b"aad").unwrap(), b"secret");
        assert!(!format!("{kp:?}").contains("private_key"));
    }

    #[test]
    fn unsupported_suite_is_refused() {
        let mut config = HpkeKeypair::generate(HpkeConfigId(1)).config().clone();
        config.aead_id = HpkeAeadId(3);
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        assert_eq!(
            seal(&config, &info, b"x", b""),
            Err(HpkeError::UnsupportedSuite)
        );
    }

    /// The `hpke` crate's view of the same suite, to check interoperability both ways.
    mod other {
        pub(super) type Kem = hpke::kem::X25519HkdfSha256;
        pub(super) type Kdf = hpke::kdf::HkdfSha256;
        pub(super) type Aead = hpke::aead::AesGcm128;
    }

    #[test]
    fn what_another_implementation_seals_opens_here_and_the_reverse() {
        use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Helper);
        // Sealed by the `hpke` crate to a key made here.
        let kp = HpkeKeypair::generate(HpkeConfigId(3));
        let pk = <other::Kem as hpke::Kem>::PublicKey::from_bytes(&kp.config().public_key).unwrap();
        let (enc, payload) = hpke::single_shot_seal::<other::Aead, other::Kdf, other::Kem>(
            &OpModeS::Base,
            &pk,
            info.as_bytes(),
            b"input share",
            b"aad",
        )
        .unwrap();
        let ct = HpkeCiphertext {
            config_id: HpkeConfigId(3),
            enc: enc.to_bytes().to_vec(),
            payload,
        };
        assert_eq!(kp.open(&info, &ct, b"aad").unwrap(), b"input share");
        // Sealed here to a key the `hpke` crate made, opened there.
        let (sk, pk) = other::Kem::gen_keypair();
        let mut config = kp.config().clone();
        config.public_key = pk.to_bytes().to_vec();
        let ct = seal(&config, &info, b"aggregate share", b"aad2").unwrap();
        let enc = <other::Kem as hpke::Kem>::EncappedKey::from_bytes(&ct.enc).unwrap();
        let opened = hpke::single_shot_open::<other::Aead, other::Kdf, other::Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            info.as_bytes(),
            &ct.payload,
            b"aad2",
        )
        .unwrap();
        assert_eq!(opened, b"aggregate share");
    }

    /// RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base
    /// mode, the first encryption (sequence number 0).
    #[test]
    fn rfc_9180_test_vector_opens() {
        let sk_r = hex::decode("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
            .unwrap();
        let pk_r = hex::decode("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
            .unwrap();
        let config = HpkeConfig {
            id: HpkeConfigId(1),
            kem_id: HpkeKemId::X25519_HKDF_SHA256,
            kdf_id: HpkeKdfId::HKDF_SHA256,
            aead_id: HpkeAeadId::AES_128_GCM,
            public_key: pk_r,
        };
        let kp = HpkeKeypair::new(config, sk_r).unwrap();
        let enc = hex::decode("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
            .unwrap();
        let info = hex::decode("4f6465206f6e2061204772656369616e2055726e").unwrap();
        let aad = hex::decode("436f756e742d30").unwrap();
        let ct = hex::decode(
            "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9\
             6d8770ac83d07bea87e13c512a",
        )
        .unwrap();
        let opened = SUITE
            .open(
                &EncapsulatedSecret(enc.clone()),
                &info,
                &aad,
                &ct,
                &HpkePrivateKey::from(kp.private_key().to_vec()),
            )
            .unwrap();
        assert_eq!(
            opened,
            hex::decode("4265617574792069732074727574682c20747275746820626561757479").unwrap()
        );
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        let kp = HpkeKeypair::generate(HpkeConfigId(1));
        assert_eq!(
            HpkeKeypair::new(kp.config().clone(), vec![1; 31]).unwrap_err(),
            HpkeError::InvalidKey
        );
        let mut config = kp.config().clone();
        config.public_key.pop();
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        assert_eq!(seal(&config, &info, b"x", b""), Err(HpkeError::InvalidKey));
    }
}
