//! SubjectPublicKeyInfo DER from the attributes a PKCS#11 public key object carries.

use cairn_pki::RsaPublicKey;
use cairn_pki::key::{OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION};
use der::asn1::{AnyRef, BitStringRef, OctetStringRef, UintRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

/// The SPKI of an EC key from CKA_EC_PARAMS (the DER curve OID) and CKA_EC_POINT (the
/// uncompressed point, DER OCTET STRING-wrapped as PKCS#11 says, or bare as some modules return
/// it).
pub fn ec_spki(ec_params: &[u8], ec_point: &[u8]) -> Result<Vec<u8>, String> {
    let params = AnyRef::from_der(ec_params).map_err(|e| format!("CKA_EC_PARAMS: {e}"))?;
    let point = match <&OctetStringRef>::from_der(ec_point) {
        Ok(inner)
            if inner.as_bytes().first() == Some(&0x04)
                && !inner.as_bytes().len().is_multiple_of(2) =>
        {
            inner.as_bytes()
        }
        _ => ec_point,
    };
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some(params),
        },
        subject_public_key: BitStringRef::from_bytes(point).map_err(|e| e.to_string())?,
    };
    spki.to_der().map_err(|e| e.to_string())
}

/// The SPKI of an RSA key from CKA_MODULUS and CKA_PUBLIC_EXPONENT (unsigned big-endian).
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, String> {
    let strip = |b: &[u8]| -> Vec<u8> {
        let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        b[start..].to_vec()
    };
    let (n, e) = (strip(modulus), strip(exponent));
    let key = RsaPublicKey {
        modulus: UintRef::new(&n).map_err(|e| e.to_string())?,
        public_exponent: UintRef::new(&e).map_err(|e| e.to_string())?,
    }
    .to_der()
    .map_err(|e| e.to_string())?;
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: OID_RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: BitStringRef::from_bytes(&key).map_err(|e| e.to_string())?,
    };
    spki.to_der().map_err(|e| e.to_string())
}
