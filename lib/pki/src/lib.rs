//! The X.509 and PEM pieces Cairn's certificate authority and CT log both need, with no I/O and
//! no dependency on either: which public keys are accepted ([`KeyAlgorithm`]), X.509 signature
//! verification ([`is_signed_by`]), weak-key checks ([`check_rsa_modulus`], [`DebianWeakKeys`]), and PEM ([`pem_decode_all`], [`pem_encode`]). Built on
//! der 0.8 / spki 0.8 and aws-lc-rs.

pub mod debian_weak_keys;
pub mod goodkey;
pub mod key;
pub mod pem;
pub mod signature;
pub mod signer;

pub use debian_weak_keys::{BlocklistError, DebianWeakKeys, debian_weak_key_fingerprint};
pub use goodkey::{WeakKey, check_rsa_modulus};
pub use key::{KeyAlgorithm, PublicKeyError, RsaPublicKey};
pub use pem::{PemError, pem_certificates, pem_decode_all, pem_encode};
pub use signature::{is_signed_by, verification_algorithm, verify_x509_signature};
pub use signer::{ExternalSigner, ExternalSignerError, ecdsa_raw_to_der};
