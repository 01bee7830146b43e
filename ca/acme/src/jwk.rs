//! Public JSON Web Keys (RFC 7517/7518, RFC 8037) for account keys: parsing, RFC 7638 thumbprints, signature checks.

use crate::base64url;
use crate::error::JwsError;
use crate::jws::JwsAlg;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, ED25519,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
    VerificationAlgorithm,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// Smallest accepted RSA modulus, in bits.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits.
pub const RSA_MAX_BITS: usize = 4096;

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The NIST curves accepted for `EC` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// `P-256` (secp256r1), used with ES256.
    P256,
    /// `P-384` (secp384r1), used with ES384.
    P384,
    /// `P-521` (secp521r1), used with ES512.
    P521,
}

impl EcCurve {
    /// The JWK `crv` name.
    pub fn as_str(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        }
    }

    /// Length in octets of each coordinate (RFC 7518 §6.2.1.2).
    pub fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        }
    }

    fn parse(crv: &str) -> Option<Self> {
        match crv {
            "P-256" => Some(EcCurve::P256),
            "P-384" => Some(EcCurve::P384),
            "P-521" => Some(EcCurve::P521),
            _ => None,
        }
    }

    fn verification_alg(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            EcCurve::P256 => &ECDSA_P256_SHA256_FIXED,
            EcCurve::P384 => &ECDSA_P384_SHA384_FIXED,
            EcCurve::P521 => &ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// The kind of an account key, as far as algorithm choice is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC` on the given curve.
    Ec(EcCurve),
    /// `kty: OKP`, `crv: Ed25519` (RFC 8037).
    Ed25519,
}

impl KeyType {
    /// The only JWS algorithm Cairn accepts with this kind of key.
    pub fn alg(self) -> JwsAlg {
        match self {
            KeyType::Rsa => JwsAlg::Rs256,
            KeyType::Ec(EcCurve::P256) => JwsAlg::Es256,
            KeyType::Ec(EcCurve::P384) => JwsAlg::Es384,
            KeyType::Ec(EcCurve::P521) => JwsAlg::Es512,
            KeyType::Ed25519 => JwsAlg::EdDsa,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa => f.write_str("RSA"),
            KeyType::Ec(c) => write!(f, "EC {}", c.as_str()),
            KeyType::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// The key material, checked on construction.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Material {
    /// Big-endian modulus and exponent, without leading zero octets.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Affine coordinates, each exactly `curve.coordinate_len()` octets.
    Ec {
        curve: EcCurve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// The 32-octet public key.
    Ed25519 { x: Vec<u8> },
}

/// A validated public JWK: RSA (2048–4096 bits), EC P-256/P-384/P-521, or Ed25519.
///
/// Only [`Jwk::from_value`] (or deserialization) builds one, so every `Jwk` is a key Cairn
/// accepts. Equality compares the key material, i.e. the canonical RFC 7638 members, so two
/// JWKs differing only in optional members (`kid`, `use`, ...) are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Jwk(Material);

impl Jwk {
    /// Parses a public JWK from its JSON form. Members other than the required ones (e.g.
    /// `kid`, `use`, `alg`) are ignored; private-key members are refused.
    ///
    /// # Errors
    /// [`JwsError::BadPublicKey`] for anything that is not an acceptable public key.
    pub fn from_value(value: &Value) -> Result<Self, JwsError> {
        let obj = value
            .as_object()
            .ok_or_else(|| bad("JWK must be a JSON object"))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(bad(format!(
                "JWK contains private key member {m:?}; send only the public key"
            )));
        }
        let kty = text(obj, "kty")?;
        let material = match kty {
            "RSA" => rsa(obj)?,
            "EC" => ec(obj)?,
            "OKP" => okp(obj)?,
            other => {
                return Err(bad(format!(
                    "key type {other:?} is not supported; use RSA, EC or OKP (Ed25519)"
                )));
            }
        };
        Ok(Jwk(material))
    }

    /// Parses a public JWK from JSON text.
    ///
    /// # Errors
    /// As [`Jwk::from_value`]; text that is not JSON is a [`JwsError::BadPublicKey`] too.
    pub fn from_json(json: &[u8]) -> Result<Self, JwsError> {
        let value: Value =
            serde_json::from_slice(json).map_err(|_| bad("JWK is not valid JSON"))?;
        Self::from_value(&value)
    }

    /// The kind of key.
    pub fn key_type(&self) -> KeyType {
        match &self.0 {
            Material::Rsa { .. } => KeyType::Rsa,
            Material::Ec { curve, .. } => KeyType::Ec(*curve),
            Material::Ed25519 { .. } => KeyType::Ed25519,
        }
    }

    /// The RSA modulus size in bits, for RSA keys.
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.0 {
            Material::Rsa { n, .. } => Some(bit_len(n)),
            _ => None,
        }
    }

    /// The canonical JSON text of RFC 7638 §3.2: only the required members, in lexicographic
    /// order, no whitespace.
    pub fn canonical_json(&self) -> String {
        // base64url and the fixed names need no JSON escaping.
        match &self.0 {
            Material::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                base64url::encode(e),
                base64url::encode(n)
            ),
            Material::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.as_str(),
                base64url::encode(x),
                base64url::encode(y)
            ),
            Material::Ed25519 { x } => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                base64url::encode(x)
            ),
        }
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of [`Jwk::canonical_json`].
    pub fn thumbprint(&self) -> String {
        base64url::encode(digest::digest(
            &digest::SHA256,
            self.canonical_json().as_bytes(),
        ))
    }

    /// The canonical public JWK as a JSON object (the required members only).
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        let mut put = |k: &str, v: String| obj.insert(k.to_owned(), Value::String(v));
        match &self.0 {
            Material::Rsa { n, e } => {
                put("kty", "RSA".into());
                put("n", base64url::encode(n));
                put("e", base64url::encode(e));
            }
            Material::Ec { curve, x, y } => {
                put("kty", "EC".into());
                put("crv", curve.as_str().into());
                put("x", base64url::encode(x));
                put("y", base64url::encode(y));
            }
            Material::Ed25519 { x } => {
                put("kty", "OKP".into());
                put("crv", "Ed25519".into());
                put("x", base64url::encode(x));
            }
        }
        Value::Object(obj)
    }

    /// Checks `sig` over `signing_input` with this key and `alg`.
    ///
    /// # Errors
    /// [`JwsError::AlgorithmKeyMismatch`] if `alg` does not go with the key type;
    /// [`JwsError::BadSignature`] if the signature is not valid.
    pub fn verify(&self, alg: JwsAlg, signing_input: &[u8], sig: &[u8]) -> Result<(), JwsError> {
        let key = self.key_type();
        if key.alg() != alg {
            return Err(JwsError::AlgorithmKeyMismatch { alg, key });
        }
        let ok = match &self.0 {
            Material::Rsa { n, e } => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signing_input, sig)
            .is_ok(),
            Material::Ec { curve, x, y } => {
                UnparsedPublicKey::new(curve.verification_alg(), ec_point(x, y))
                    .verify(signing_input, sig)
                    .is_ok()
            }
            Material::Ed25519 { x } => UnparsedPublicKey::new(&ED25519, x)
                .verify(signing_input, sig)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(JwsError::BadSignature)
        }
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("type", &self.key_type())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl TryFrom<&Value> for Jwk {
    type Error = JwsError;

    fn try_from(value: &Value) -> Result<Self, JwsError> {
        Jwk::from_value(value)
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Jwk::from_value(&value).map_err(serde::de::Error::custom)
    }
}

fn bad(detail: impl Into<String>) -> JwsError {
    JwsError::BadPublicKey(detail.into())
}

/// A required string member.
fn text<'a>(obj: &'a Map<String, Value>, member: &str) -> Result<&'a str, JwsError> {
    match obj.get(member) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(format!("JWK member {member:?} must be a string"))),
        None => Err(bad(format!("JWK has no {member:?} member"))),
    }
}

/// A required base64url member, decoded.
fn octets(obj: &Map<String, Value>, member: &str) -> Result<Vec<u8>, JwsError> {
    base64url::decode(text(obj, member)?)
        .ok_or_else(|| bad(format!("JWK member {member:?} is not unpadded base64url")))
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        Some(&top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

fn rsa(obj: &Map<String, Value>) -> Result<Material, JwsError> {
    let n = octets(obj, "n")?;
    let e = octets(obj, "e")?;
    if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
        return Err(bad(
            "RSA \"n\" and \"e\" must be non-empty and have no leading zero octets",
        ));
    }
    let bits = bit_len(&n);
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(bad(format!(
            "RSA modulus is {bits} bits; it must be {RSA_MIN_BITS} to {RSA_MAX_BITS} bits"
        )));
    }
    if e.len() > 4 {
        return Err(bad("RSA public exponent is too large"));
    }
    let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if exponent < 3 || exponent % 2 == 0 {
        return Err(bad("RSA public exponent must be odd and at least 3"));
    }
    if n.last().is_some_and(|b| b % 2 == 0) {
        return Err(bad("RSA modulus must be odd"));
    }
    // BR §6.1.1.3: weak RSA keys are refused (small factors, close primes, ROCA).
    cairn_pki::check_rsa_modulus(&n).map_err(|e| bad(e.to_string()))?;
    RsaPublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .map_err(|_| bad("RSA key rejected"))?;
    Ok(Material::Rsa { n, e })
}

fn ec_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    point
}

fn ec(obj: &Map<String, Value>) -> Result<Material, JwsError> {
    let crv = text(obj, "crv")?;
    let curve = EcCurve::parse(crv).ok_or_else(|| {
        bad(format!(
            "EC curve {crv:?} is not supported; use P-256, P-384 or P-521"
        ))
    })?;
    let x = octets(obj, "x")?;
    let y = octets(obj, "y")?;
    let len = curve.coordinate_len();
    if x.len() != len || y.len() != len {
        return Err(bad(format!(
            "{} coordinates must each be {len} octets",
            curve.as_str()
        )));
    }
    check_parses(
        curve.verification_alg(),
        &ec_point(&x, &y),
        "EC point is not on the curve",
    )?;
    Ok(Material::Ec { curve, x, y })
}

fn okp(obj: &Map<String, Value>) -> Result<Material, JwsError> {
    let crv = text(obj, "crv")?;
    if crv != "Ed25519" {
        return Err(bad(format!(
            "OKP curve {crv:?} is not supported; use Ed25519"
        )));
    }
    let x = octets(obj, "x")?;
    if x.len() != 32 {
        return Err(bad("Ed25519 public key must be 32 octets"));
    }
    check_parses(&ED25519, &x, "Ed25519 public key rejected")?;
    Ok(Material::Ed25519 { x })
}

fn check_parses(
    alg: &'static dyn VerificationAlgorithm,
    bytes: &[u8],
    detail: &'static str,
) -> Result<(), JwsError> {
    ParsedPublicKey::new(alg, bytes)
        .map(drop)
        .map_err(|_| bad(detail))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testkeys::TestKey;
    use serde_json::json;

    /// RFC 7638 §3.1's example RSA key.
    fn rfc7638_key() -> Value {
        json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        })
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        let jwk = Jwk::from_value(&rfc7638_key()).unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(jwk.rsa_bits(), Some(2048));
        // The optional members are dropped from the canonical form.
        let canon = jwk.to_value();
        assert!(canon.get("kid").is_none());
        assert_eq!(Jwk::from_value(&canon).unwrap(), jwk);
    }

    #[test]
    fn generated_keys_round_trip_through_json() {
        for key in TestKey::all() {
            let jwk = key.jwk();
            let back = Jwk::from_value(&jwk.to_value()).unwrap();
            assert_eq!(back, jwk);
            assert_eq!(back.thumbprint(), jwk.thumbprint());
            let via_serde: Jwk =
                serde_json::from_value(serde_json::to_value(&jwk).unwrap()).unwrap();
            assert_eq!(via_serde, jwk);
        }
    }

    #[test]
    fn private_members_are_refused() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
            let mut v = rfc7638_key();
            v[member] = json!("AQAB");
            let err = Jwk::from_value(&v).unwrap_err();
            assert!(matches!(err, JwsError::BadPublicKey(_)), "{member}");
            assert!(err.to_string().contains("private"));
        }
        let ed = TestKey::Ed25519.jwk();
        let mut v = ed.to_value();
        v["d"] = v["x"].clone();
        assert!(Jwk::from_value(&v).is_err());
    }

    #[test]
    fn unsupported_and_symmetric_keys_are_refused() {
        let cases = [
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "oct"}),
            json!({"kty": "OKP", "crv": "X25519", "x": base64url::encode([9u8; 32])}),
            json!({"kty": "OKP", "crv": "Ed448", "x": base64url::encode([9u8; 57])}),
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
            json!({"kty": 7}),
            json!("RSA"),
            json!({}),
        ];
        for v in cases {
            let err = Jwk::from_value(&v).unwrap_err();
            assert!(matches!(err, JwsError::BadPublicKey(_)), "{v}: {err:?}");
        }
    }

    #[test]
    fn rsa_size_and_exponent_limits() {
        let base = rfc7638_key();
        let n = base64url::decode(base["n"].as_str().unwrap()).unwrap();
        let with = |n: &[u8], e: &[u8]| json!({"kty": "RSA", "n": base64url::encode(n), "e": base64url::encode(e)});
        // 1024-bit modulus.
        assert!(Jwk::from_value(&with(&n[..128], &[1, 0, 1])).is_err());
        // 4096 bits is the largest accepted; 4104 bits is refused.
        let mut big = n.clone();
        big.extend_from_slice(&n);
        assert_eq!(
            Jwk::from_value(&with(&big, &[1, 0, 1])).unwrap().rsa_bits(),
            Some(4096)
        );
        big.push(1);
        let err = Jwk::from_value(&with(&big, &[1, 0, 1])).unwrap_err();
        assert!(err.to_string().contains("4104 bits"), "{err}");
        // Even, tiny and oversized exponents.
        for e in [&[1u8, 0, 0][..], &[1], &[2], &[1, 0, 0, 0, 1]] {
            assert!(Jwk::from_value(&with(&n, e)).is_err(), "{e:?}");
        }
        // Leading zero octets are not the minimal encoding RFC 7518 §6.3.1 requires.
        let mut padded = vec![0u8];
        padded.extend_from_slice(&n);
        assert!(Jwk::from_value(&with(&padded, &[1, 0, 1])).is_err());
        assert!(Jwk::from_value(&with(&n, &[0, 1, 0, 1])).is_err());
        assert!(Jwk::from_value(&with(&n, &[3])).is_ok());
    }

    /// Issue 14, finding 7: a weak RSA account key (here: a modulus divisible by 3) is refused.
    #[test]
    fn weak_rsa_keys_are_refused() {
        let base = rfc7638_key();
        let mut n = base64url::decode(base["n"].as_str().unwrap()).unwrap();
        let mod3 = |n: &[u8]| n.iter().fold(0u32, |r, b| ((r << 8) | u32::from(*b)) % 3);
        while mod3(&n) != 0 {
            // n -= 2, staying odd.
            let mut borrow = 2u16;
            for byte in n.iter_mut().rev() {
                let v = u16::from(*byte);
                if v >= borrow {
                    *byte = (v - borrow) as u8;
                    break;
                }
                *byte = (v + 256 - borrow) as u8;
                borrow = 1;
            }
        }
        let jwk = json!({"kty": "RSA", "n": base64url::encode(&n), "e": "AQAB"});
        let err = Jwk::from_value(&jwk).unwrap_err();
        assert!(matches!(err, JwsError::BadPublicKey(_)), "{err:?}");
        assert!(err.to_string().contains("small prime factor"), "{err}");
    }

    #[test]
    fn ec_points_are_checked() {
        let jwk = TestKey::P256.jwk().to_value();
        // Wrong coordinate length (a P-384-sized x on P-256).
        let mut v = jwk.clone();
        v["x"] = json!(base64url::encode([1u8; 48]));
        assert!(Jwk::from_value(&v).is_err());
        // Right length, but not on the curve.
        let mut v = jwk.clone();
        let mut y = base64url::decode(v["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        v["y"] = json!(base64url::encode(&y));
        let err = Jwk::from_value(&v).unwrap_err();
        assert!(err.to_string().contains("not on the curve"), "{err}");
        // The curve named must match the point.
        let mut v = jwk;
        v["crv"] = json!("P-384");
        assert!(Jwk::from_value(&v).is_err());
    }

    #[test]
    fn padded_base64_in_jwk_is_refused() {
        let mut v = TestKey::Ed25519.jwk().to_value();
        let x = format!("{}=", v["x"].as_str().unwrap());
        v["x"] = json!(x);
        assert!(Jwk::from_value(&v).is_err());
    }

    #[test]
    fn verify_checks_alg_against_key() {
        let msg = b"signing input";
        for key in TestKey::all() {
            let jwk = key.jwk();
            let sig = key.sign(msg);
            jwk.verify(key.alg(), msg, &sig).unwrap();
            assert_eq!(
                jwk.verify(key.alg(), b"other input", &sig),
                Err(JwsError::BadSignature)
            );
            for alg in JwsAlg::ALL {
                if alg != key.alg() {
                    assert!(matches!(
                        jwk.verify(alg, msg, &sig),
                        Err(JwsError::AlgorithmKeyMismatch { .. })
                    ));
                }
            }
        }
    }

    #[test]
    fn debug_is_short() {
        let dbg = format!("{:?}", TestKey::Rsa2048.jwk());
        assert!(dbg.len() < 120, "{dbg}");
    }
}
