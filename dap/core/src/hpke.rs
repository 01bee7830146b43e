//! HPKE seal/open for DAP-18: the mandatory suite (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-128-GCM), the `"dap-18 input share"`/`"dap-18 aggregate share"` info strings and keypairs.

use cairn_dap_messages::{
    HpkeAeadId, HpkeCiphertext, HpkeConfig, HpkeConfigId, HpkeKdfId, HpkeKemId, Role,
};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use thiserror::Error;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::AesGcm128;

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
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&config.public_key)
        .map_err(|_| HpkeError::InvalidKey)?;
    let (enc, payload) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk,
        info.as_bytes(),
        plaintext,
        aad,
    )
    .map_err(|_| HpkeError::Seal)?;
    Ok(HpkeCiphertext {
        config_id: config.id,
        enc: enc.to_bytes().to_vec(),
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
    /// A fresh X25519 keypair with configuration ID `id`.
    pub fn generate(id: HpkeConfigId) -> HpkeKeypair {
        let (sk, pk) = Kem::gen_keypair();
        HpkeKeypair {
            config: HpkeConfig {
                id,
                kem_id: HpkeKemId::X25519_HKDF_SHA256,
                kdf_id: HpkeKdfId::HKDF_SHA256,
                aead_id: HpkeAeadId::AES_128_GCM,
                public_key: pk.to_bytes().to_vec(),
            },
            private_key: sk.to_bytes().to_vec(),
        }
    }

    /// A keypair from stored parts; fails if the private key does not fit the suite.
    pub fn new(config: HpkeConfig, private_key: Vec<u8>) -> Result<HpkeKeypair, HpkeError> {
        check_suite(&config)?;
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&private_key)
            .map_err(|_| HpkeError::InvalidKey)?;
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
        if ciphertext.config_id != self.config.id {
            return Err(HpkeError::Open);
        }
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.private_key)
            .map_err(|_| HpkeError::InvalidKey)?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&ciphertext.enc)
            .map_err(|_| HpkeError::Open)?;
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            info.as_bytes(),
            &ciphertext.payload,
            aad,
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
}
