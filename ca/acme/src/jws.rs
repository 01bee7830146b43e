//! ACME request JWS (RFC 8555 §6.2, RFC 7515 flattened JSON serialization): parsing, verification, and the key-change inner JWS (§7.3.5).

use crate::base64url;
use crate::error::{JwsError, shorten};
use crate::jwk::Jwk;
use crate::messages::KeyChangeInner;
use cairn_core::Problem;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::fmt;

/// The JWS algorithms Cairn accepts on ACME requests (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// Ed25519.
    EdDsa,
}

impl JwsAlg {
    /// Every accepted algorithm, in the order advertised to clients.
    pub const ALL: [JwsAlg; 5] = [
        JwsAlg::Rs256,
        JwsAlg::Es256,
        JwsAlg::Es384,
        JwsAlg::Es512,
        JwsAlg::EdDsa,
    ];

    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::Rs256 => "RS256",
            JwsAlg::Es256 => "ES256",
            JwsAlg::Es384 => "ES384",
            JwsAlg::Es512 => "ES512",
            JwsAlg::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name. Names are case-sensitive (RFC 7515 §4.1.1).
    ///
    /// # Errors
    /// [`JwsError::UnsupportedAlgorithm`] for anything else, notably `none` and `HS256`.
    pub fn parse(name: &str) -> Result<Self, JwsError> {
        JwsAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| JwsError::UnsupportedAlgorithm(name.to_owned()))
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the request names its signing key (RFC 8555 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// An embedded public key: newAccount, and revokeCert signed by the certificate key.
    Jwk(Jwk),
    /// An account URL: every other request.
    Kid(String),
}

/// The protected header of an ACME request JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedHeader {
    /// The signature algorithm.
    pub alg: JwsAlg,
    /// The anti-replay nonce, unchecked: the caller decides whether it is `badNonce`.
    pub nonce: String,
    /// The URL the client meant to send the request to; the caller compares it with the
    /// request's URL.
    pub url: String,
    /// The signing key.
    pub key: KeyRef,
}

/// A parsed, not yet verified, ACME request JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedJws {
    /// The protected header.
    pub header: ProtectedHeader,
    /// The decoded payload; empty for POST-as-GET.
    pub payload: Vec<u8>,
    /// `BASE64URL(protected) || '.' || BASE64URL(payload)` as received.
    pub signing_input: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// A verified account key change (RFC 8555 §7.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key the account is to be rolled over to; it signed the inner JWS.
    pub new_key: Jwk,
    /// The inner JWS payload.
    pub payload: KeyChangeInner,
}

/// Whether a protected header must (request JWS) or must not (key-change inner JWS) carry a
/// nonce.
#[derive(Clone, Copy)]
enum NonceRule {
    Required,
    Forbidden,
}

impl NonceRule {
    fn header_context(self) -> &'static str {
        match self {
            NonceRule::Required => "JWS protected header",
            NonceRule::Forbidden => "inner JWS protected header",
        }
    }
}

impl ParsedJws {
    /// Parses a request body: a JWS in flattened JSON serialization with a protected header
    /// carrying `alg`, `nonce`, `url`, and exactly one of `jwk` and `kid`.
    ///
    /// Refused: the general serialization (`signatures`), an unprotected `header`, any other
    /// top-level member, duplicate members, padded or non-base64url encodings, `crit`, and
    /// algorithms other than [`JwsAlg::ALL`]. The signature is not checked here; see
    /// [`ParsedJws::verify_with`].
    ///
    /// # Errors
    /// A `malformed`, `badSignatureAlgorithm`, `badPublicKey` or (no nonce) `badNonce` problem.
    pub fn parse(body: &[u8]) -> Result<Self, Problem> {
        Self::parse_as(body, NonceRule::Required).map_err(Problem::from)
    }

    fn parse_as(body: &[u8], nonce: NonceRule) -> Result<Self, JwsError> {
        let context = match nonce {
            NonceRule::Required => "JWS",
            NonceRule::Forbidden => "inner JWS",
        };
        let outer = object(body, context)?;
        let parts = Flattened::from_members(&outer, context, nonce.header_context())?;
        let header = protected_header(&parts.header, nonce)?;
        Ok(ParsedJws {
            header,
            payload: parts.payload,
            signing_input: parts.signing_input,
            signature: parts.signature,
        })
    }

    /// Checks the signature with `key` (the embedded `jwk`, or the account key `kid` names).
    ///
    /// # Errors
    /// `badSignatureAlgorithm` if `alg` does not go with the key (RS256 needs RSA, ES256 P-256,
    /// ES384 P-384, ES512 P-521, EdDSA Ed25519); `malformed` "JWS verification error" if the
    /// signature is not valid.
    pub fn verify_with(&self, key: &Jwk) -> Result<(), Problem> {
        key.verify(self.header.alg, &self.signing_input, &self.signature)
            .map_err(Problem::from)
    }

    /// The embedded key, if the request names its key with `jwk`.
    pub fn jwk(&self) -> Option<&Jwk> {
        match &self.header.key {
            KeyRef::Jwk(jwk) => Some(jwk),
            KeyRef::Kid(_) => None,
        }
    }

    /// The account URL, if the request names its key with `kid`.
    pub fn kid(&self) -> Option<&str> {
        match &self.header.key {
            KeyRef::Kid(kid) => Some(kid),
            KeyRef::Jwk(_) => None,
        }
    }

    /// True for POST-as-GET (RFC 8555 §6.3): the payload is the empty string.
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }

    /// Deserializes the payload as a JSON request message. Member names that differ from the
    /// message's only by case are taken as its (as Go clients send them, see
    /// the `member_names` module); unknown members are ignored and logged; wrong types are refused.
    ///
    /// # Errors
    /// `malformed` if the payload is empty (POST-as-GET) or does not fit `T`.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        self.payload_as().map_err(Problem::from)
    }

    fn payload_as<T: DeserializeOwned>(&self) -> Result<T, JwsError> {
        if self.payload.is_empty() {
            return Err(JwsError::InvalidPayload(
                "expected a JSON object, got an empty (POST-as-GET) payload".into(),
            ));
        }
        // Every ACME request payload is a JSON object; serde would otherwise also accept a
        // struct written as an array. Duplicate members are refused as in the JWS itself.
        let mut obj = object(&self.payload, "request payload")?;
        let unknown = crate::member_names::fold::<T>(&mut obj)?;
        if !unknown.is_empty() {
            tracing::info!(members = ?unknown, "ignored request payload members unknown to ACME");
        }
        serde_json::from_value(Value::Object(obj))
            .map_err(|e| JwsError::InvalidPayload(e.to_string()))
    }
}

/// Parses and verifies the inner JWS of a key-change request (RFC 8555 §7.3.5).
///
/// `outer` must already be verified with the account's `current_key` (it is signed by the old
/// key and names the account with `kid`). Its payload must be a flattened JWS that
/// - carries the new key as `jwk` (not `kid`) and no `nonce`,
/// - has the same `url` as `outer`,
/// - is validly signed by that new key,
/// - has a payload `{"account": <outer kid>, "oldKey": <current_key>}`,
///
/// and the new key must differ from the current one. The caller still has to check that no
/// other account uses the new key.
///
/// # Errors
/// `malformed` for a broken rule, `badSignatureAlgorithm`/`badPublicKey` for the inner alg or
/// key, `malformed` "JWS verification error" for a bad inner signature.
pub fn verify_key_change(outer: &ParsedJws, current_key: &Jwk) -> Result<KeyChange, Problem> {
    key_change(outer, current_key).map_err(Problem::from)
}

fn key_change(outer: &ParsedJws, current_key: &Jwk) -> Result<KeyChange, JwsError> {
    let Some(account) = outer.kid() else {
        return Err(JwsError::KeyChange(
            "the outer JWS must name the account with \"kid\"",
        ));
    };
    let inner = ParsedJws::parse_as(&outer.payload, NonceRule::Forbidden)?;
    let KeyRef::Jwk(new_key) = &inner.header.key else {
        return Err(JwsError::KeyChange(
            "the inner JWS must carry the new key as \"jwk\"",
        ));
    };
    if inner.header.url != outer.header.url {
        return Err(JwsError::KeyChange(
            "the inner JWS \"url\" differs from the outer JWS \"url\"",
        ));
    }
    new_key.verify(inner.header.alg, &inner.signing_input, &inner.signature)?;
    let payload: KeyChangeInner = inner.payload_as()?;
    if payload.account != account {
        return Err(JwsError::KeyChange(
            "\"account\" is not the account that signed the request",
        ));
    }
    let old_key = Jwk::from_value(&payload.old_key)
        .map_err(|_| JwsError::KeyChange("\"oldKey\" is not a valid public key"))?;
    if &old_key != current_key {
        return Err(JwsError::KeyChange(
            "\"oldKey\" is not the account's current key",
        ));
    }
    if new_key == current_key {
        return Err(JwsError::KeyChange(
            "the new key is the same as the old key",
        ));
    }
    Ok(KeyChange {
        new_key: new_key.clone(),
        payload,
    })
}

/// The three members of a flattened JWS, decoded.
pub(crate) struct Flattened {
    /// The decoded protected header's members.
    pub(crate) header: Map<String, Value>,
    /// The decoded payload.
    pub(crate) payload: Vec<u8>,
    /// The signing input as received.
    pub(crate) signing_input: Vec<u8>,
    /// The decoded signature (or MAC).
    pub(crate) signature: Vec<u8>,
}

impl Flattened {
    /// Splits a flattened JWS object, refusing other serializations and extra members.
    /// `context` and `header_context` name the JWS and its protected header in errors.
    pub(crate) fn from_members(
        obj: &Map<String, Value>,
        context: &'static str,
        header_context: &'static str,
    ) -> Result<Self, JwsError> {
        if let Some(extra) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "protected" | "payload" | "signature"))
        {
            return Err(JwsError::UnexpectedMember {
                context,
                member: extra.clone(),
            });
        }
        let protected_b64 = member_str(obj, context, "protected")?;
        let payload_b64 = member_str(obj, context, "payload")?;
        let signature_b64 = member_str(obj, context, "signature")?;
        let protected = base64url::decode(protected_b64).ok_or(JwsError::InvalidBase64 {
            member: "protected",
        })?;
        let payload =
            base64url::decode(payload_b64).ok_or(JwsError::InvalidBase64 { member: "payload" })?;
        let signature = base64url::decode(signature_b64).ok_or(JwsError::InvalidBase64 {
            member: "signature",
        })?;
        let header = object(&protected, header_context)?;
        let mut signing_input = Vec::with_capacity(protected_b64.len() + 1 + payload_b64.len());
        signing_input.extend_from_slice(protected_b64.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(payload_b64.as_bytes());
        Ok(Flattened {
            header,
            payload,
            signing_input,
            signature,
        })
    }
}

fn protected_header(h: &Map<String, Value>, nonce: NonceRule) -> Result<ProtectedHeader, JwsError> {
    let context = nonce.header_context();
    // Cairn understands no JWS extensions, so any `crit` must be refused (RFC 7515 §4.1.11).
    for forbidden in ["crit", "b64"] {
        if h.contains_key(forbidden) {
            return Err(JwsError::UnexpectedMember {
                context,
                member: forbidden.into(),
            });
        }
    }
    let alg = JwsAlg::parse(member_str(h, context, "alg")?)?;
    let key = match (h.get("jwk"), h.get("kid")) {
        (Some(jwk), None) => KeyRef::Jwk(Jwk::from_value(jwk)?),
        (None, Some(Value::String(kid))) if !kid.is_empty() => KeyRef::Kid(kid.clone()),
        (None, Some(_)) => {
            return Err(JwsError::WrongType {
                context,
                member: "kid",
                expected: "a non-empty string",
            });
        }
        _ => return Err(JwsError::KeyReference),
    };
    let nonce = match (nonce, h.get("nonce")) {
        (NonceRule::Required, None) => return Err(JwsError::MissingNonce),
        (NonceRule::Required, Some(Value::String(n))) => n.clone(),
        (NonceRule::Required, Some(_)) => {
            return Err(JwsError::WrongType {
                context,
                member: "nonce",
                expected: "a string",
            });
        }
        (NonceRule::Forbidden, None) => String::new(),
        (NonceRule::Forbidden, Some(_)) => {
            return Err(JwsError::UnexpectedMember {
                context,
                member: "nonce".into(),
            });
        }
    };
    let url = member_str(h, context, "url")?.to_owned();
    Ok(ProtectedHeader {
        alg,
        nonce,
        url,
        key,
    })
}

/// A required string member.
pub(crate) fn member_str<'a>(
    obj: &'a Map<String, Value>,
    context: &'static str,
    member: &'static str,
) -> Result<&'a str, JwsError> {
    match obj.get(member) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(JwsError::WrongType {
            context,
            member,
            expected: "a string",
        }),
        None => Err(JwsError::MissingMember { context, member }),
    }
}

/// Parses JSON text that must be an object with no duplicate member names (RFC 7515 §5.2
/// allows refusing duplicates; accepting them invites parser disagreements).
pub(crate) fn object(json: &[u8], what: &'static str) -> Result<Map<String, Value>, JwsError> {
    serde_json::from_slice::<UniqueObject>(json)
        .map(|o| o.0)
        .map_err(|e| JwsError::json(what, &e))
}

/// A JSON object whose member names are all distinct.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut obj = Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if obj.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate member {:?}",
                            shorten(&k)
                        )));
                    }
                    obj.insert(k, v);
                }
                Ok(UniqueObject(obj))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testkeys::{TestKey, flattened, sign_jws};
    use cairn_core::ProblemType;
    use serde_json::json;

    const URL: &str = "https://ca.example/acme/new-order";

    fn header_with_kid(key: TestKey) -> Value {
        json!({"alg": key.alg().as_str(), "kid": "https://ca.example/acme/acct/1", "nonce": "n0nce", "url": URL})
    }

    fn header_with_jwk(key: TestKey) -> Value {
        json!({"alg": key.alg().as_str(), "jwk": key.jwk().to_value(), "nonce": "n0nce", "url": URL})
    }

    fn problem(body: &[u8]) -> Problem {
        ParsedJws::parse(body).unwrap_err()
    }

    #[test]
    fn every_algorithm_round_trips() {
        for key in TestKey::all() {
            let body = sign_jws(key, &header_with_jwk(key), br#"{"identifiers":[]}"#);
            let jws = ParsedJws::parse(&body).unwrap();
            assert_eq!(jws.header.alg, key.alg());
            assert_eq!(jws.header.nonce, "n0nce");
            assert_eq!(jws.header.url, URL);
            assert_eq!(jws.jwk(), Some(&key.jwk()));
            assert!(!jws.is_post_as_get());
            jws.verify_with(&key.jwk()).unwrap();
            // Any other key fails.
            for other in TestKey::all().into_iter().filter(|o| *o != key) {
                assert!(jws.verify_with(&other.jwk()).is_err());
            }
        }
    }

    #[test]
    fn kid_and_post_as_get() {
        let key = TestKey::P256;
        let body = sign_jws(key, &header_with_kid(key), b"");
        let jws = ParsedJws::parse(&body).unwrap();
        assert_eq!(jws.kid(), Some("https://ca.example/acme/acct/1"));
        assert!(jws.jwk().is_none());
        assert!(jws.is_post_as_get());
        jws.verify_with(&key.jwk()).unwrap();
        let p = jws.payload_json::<Value>().unwrap_err();
        assert_eq!(p.typ, ProblemType::Malformed);
    }

    #[test]
    fn alg_must_match_key_type_and_curve() {
        // An ES256 header over a P-384 key: signed with P-384, claimed ES256.
        let key = TestKey::P384;
        let mut h = header_with_kid(key);
        h["alg"] = json!("ES256");
        let body = sign_jws(key, &h, b"{}");
        let jws = ParsedJws::parse(&body).unwrap();
        let p = jws.verify_with(&key.jwk()).unwrap_err();
        assert_eq!(p.typ, ProblemType::BadSignatureAlgorithm);
        // RS256 claimed for an Ed25519 key.
        let p = ParsedJws {
            header: ProtectedHeader {
                alg: JwsAlg::Rs256,
                ..jws.header.clone()
            },
            ..jws
        }
        .verify_with(&TestKey::Ed25519.jwk())
        .unwrap_err();
        assert_eq!(p.typ, ProblemType::BadSignatureAlgorithm);
    }

    #[test]
    fn tampered_payload_fails_verification() {
        let key = TestKey::Ed25519;
        let body = sign_jws(key, &header_with_kid(key), br#"{"status":"deactivated"}"#);
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        v["payload"] = json!(base64url::encode(br#"{"status":"valid"}"#));
        let jws = ParsedJws::parse(v.to_string().as_bytes()).unwrap();
        let p = jws.verify_with(&key.jwk()).unwrap_err();
        assert_eq!(p.typ, ProblemType::Malformed);
        assert_eq!(p.detail, "JWS verification error");
        // A flipped signature bit fails too.
        let mut jws = ParsedJws::parse(&body).unwrap();
        jws.signature[0] ^= 1;
        assert!(jws.verify_with(&key.jwk()).is_err());
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused() {
        let key = TestKey::P256;
        for alg in ["none", "HS256", "HS512", "es256", "PS256", "RS512"] {
            let mut h = header_with_kid(key);
            h["alg"] = json!(alg);
            let body = flattened(&h, b"{}", b"");
            let p = problem(&body);
            assert_eq!(p.typ, ProblemType::BadSignatureAlgorithm, "{alg}");
        }
        let mut h = header_with_kid(key);
        h.as_object_mut().unwrap().remove("alg");
        assert_eq!(
            problem(&flattened(&h, b"{}", b"x")).typ,
            ProblemType::Malformed
        );
    }

    #[test]
    fn exactly_one_of_jwk_and_kid() {
        let key = TestKey::P256;
        let mut both = header_with_jwk(key);
        both["kid"] = json!("https://ca.example/acme/acct/1");
        let p = problem(&sign_jws(key, &both, b"{}"));
        assert_eq!(p.typ, ProblemType::Malformed);
        assert!(p.detail.contains("exactly one"), "{}", p.detail);

        let mut neither = header_with_kid(key);
        neither.as_object_mut().unwrap().remove("kid");
        let p = problem(&sign_jws(key, &neither, b"{}"));
        assert_eq!(p.typ, ProblemType::Malformed);

        let mut null_jwk = header_with_kid(key);
        null_jwk["jwk"] = Value::Null;
        assert_eq!(
            problem(&sign_jws(key, &null_jwk, b"{}")).typ,
            ProblemType::Malformed
        );

        let mut bad_jwk = header_with_jwk(key);
        bad_jwk["jwk"]["d"] = json!("AAAA");
        assert_eq!(
            problem(&sign_jws(key, &bad_jwk, b"{}")).typ,
            ProblemType::BadPublicKey
        );
    }

    #[test]
    fn nonce_and_url_are_required() {
        let key = TestKey::P256;
        let mut h = header_with_kid(key);
        h.as_object_mut().unwrap().remove("nonce");
        assert_eq!(
            problem(&sign_jws(key, &h, b"{}")).typ,
            ProblemType::BadNonce
        );
        let mut h = header_with_kid(key);
        h["nonce"] = json!(12);
        assert_eq!(
            problem(&sign_jws(key, &h, b"{}")).typ,
            ProblemType::Malformed
        );
        let mut h = header_with_kid(key);
        h.as_object_mut().unwrap().remove("url");
        let p = problem(&sign_jws(key, &h, b"{}"));
        assert_eq!(p.typ, ProblemType::Malformed);
        assert!(p.detail.contains("url"), "{}", p.detail);
    }

    #[test]
    fn padding_and_standard_alphabet_are_refused() {
        let key = TestKey::P256;
        let body = sign_jws(key, &header_with_kid(key), b"{}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        for member in ["protected", "payload", "signature"] {
            let mut padded = v.clone();
            let s = padded[member].as_str().unwrap().to_owned();
            padded[member] = json!(format!("{s}=="));
            let p = problem(padded.to_string().as_bytes());
            assert_eq!(p.typ, ProblemType::Malformed);
            assert!(p.detail.contains(member), "{}", p.detail);
        }
    }

    #[test]
    fn other_serializations_and_members_are_refused() {
        let key = TestKey::P256;
        let body = sign_jws(key, &header_with_kid(key), b"{}");
        let v: Value = serde_json::from_slice(&body).unwrap();

        let general = json!({
            "payload": v["payload"],
            "signatures": [{"protected": v["protected"], "signature": v["signature"]}],
        });
        assert_eq!(
            problem(general.to_string().as_bytes()).typ,
            ProblemType::Malformed
        );

        let mut unprotected = v.clone();
        unprotected["header"] = json!({"kid": "x"});
        let p = problem(unprotected.to_string().as_bytes());
        assert!(p.detail.contains("\"header\""), "{}", p.detail);

        // Compact serialization is not JSON at all.
        let compact = format!(
            "{}.{}.{}",
            v["protected"].as_str().unwrap(),
            v["payload"].as_str().unwrap(),
            v["signature"].as_str().unwrap()
        );
        assert_eq!(problem(compact.as_bytes()).typ, ProblemType::Malformed);

        // Duplicate members, outer and in the header.
        let dup = format!(
            r#"{{"protected":{},"payload":"","payload":{},"signature":{}}}"#,
            v["protected"], v["payload"], v["signature"]
        );
        assert!(problem(dup.as_bytes()).detail.contains("duplicate"));
        let dup_header = br#"{"alg":"ES256","kid":"a","kid":"b","nonce":"n","url":"u"}"#;
        let p = problem(&flattened_raw(dup_header, b"{}", b"sig"));
        assert!(p.detail.contains("duplicate"), "{}", p.detail);

        // crit names an extension Cairn does not understand.
        let mut h = header_with_kid(key);
        h["crit"] = json!(["b64"]);
        h["b64"] = json!(false);
        assert_eq!(
            problem(&sign_jws(key, &h, b"{}")).typ,
            ProblemType::Malformed
        );

        // Not an object / trailing garbage / wrong member types.
        for bad in [
            &b"[]"[..],
            b"null",
            b"{} {}",
            b"",
            br#"{"protected":1,"payload":"","signature":""}"#,
        ] {
            assert_eq!(problem(bad).typ, ProblemType::Malformed);
        }
    }

    fn flattened_raw(protected: &[u8], payload: &[u8], sig: &[u8]) -> Vec<u8> {
        json!({
            "protected": base64url::encode(protected),
            "payload": base64url::encode(payload),
            "signature": base64url::encode(sig),
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn huge_input_is_not_echoed() {
        let name = "A".repeat(50_000);
        let body = format!(r#"{{"{name}":1}}"#);
        let p = problem(body.as_bytes());
        assert!(p.detail.len() < 300, "{}", p.detail.len());
        let mut h = header_with_kid(TestKey::P256);
        h["alg"] = json!(name);
        let p = problem(&flattened(&h, b"{}", b"x"));
        assert!(p.detail.len() < 300, "{}", p.detail.len());
    }

    #[test]
    fn payload_json_reports_wrong_types() {
        #[derive(Debug, Deserialize)]
        struct Msg {
            csr: String,
        }
        let key = TestKey::P256;
        let jws = ParsedJws::parse(&sign_jws(key, &header_with_kid(key), br#"{"csr":5}"#)).unwrap();
        let p = jws.payload_json::<Msg>().unwrap_err();
        assert_eq!(p.typ, ProblemType::Malformed);
        assert!(
            p.detail.starts_with("invalid request payload"),
            "{}",
            p.detail
        );
        // Serde would read a struct from an array; a payload must be an object.
        for payload in [&br#"["MIIB"]"#[..], br#"{"csr":"a","csr":"b"}"#, b"null"] {
            let jws = ParsedJws::parse(&sign_jws(key, &header_with_kid(key), payload)).unwrap();
            let p = jws.payload_json::<Msg>().unwrap_err();
            assert_eq!(p.typ, ProblemType::Malformed);
        }
        let jws = ParsedJws::parse(&sign_jws(
            key,
            &header_with_kid(key),
            br#"{"csr":"a","x":1}"#,
        ))
        .unwrap();
        assert_eq!(jws.payload_json::<Msg>().unwrap().csr, "a");
    }

    // ---- key change (RFC 8555 §7.3.5) ----

    const KEY_CHANGE_URL: &str = "https://ca.example/acme/key-change";
    const ACCOUNT: &str = "https://ca.example/acme/acct/1";

    /// An outer JWS signed by `old` whose payload is an inner JWS built from `inner_header`
    /// and `inner_payload`, signed by `new`.
    fn key_change_request(
        old: TestKey,
        new: TestKey,
        inner_header: &Value,
        inner_payload: &Value,
    ) -> ParsedJws {
        let inner = sign_jws(new, inner_header, inner_payload.to_string().as_bytes());
        let outer_header =
            json!({"alg": old.alg().as_str(), "kid": ACCOUNT, "nonce": "n", "url": KEY_CHANGE_URL});
        let outer = ParsedJws::parse(&sign_jws(old, &outer_header, &inner)).unwrap();
        outer.verify_with(&old.jwk()).unwrap();
        outer
    }

    fn good_inner(old: TestKey, new: TestKey) -> (Value, Value) {
        (
            json!({"alg": new.alg().as_str(), "jwk": new.jwk().to_value(), "url": KEY_CHANGE_URL}),
            json!({"account": ACCOUNT, "oldKey": old.jwk().to_value()}),
        )
    }

    #[test]
    fn key_change_accepts_a_proper_rollover() {
        let (old, new) = (TestKey::Rsa2048, TestKey::P256);
        let (h, p) = good_inner(old, new);
        let outer = key_change_request(old, new, &h, &p);
        let kc = verify_key_change(&outer, &old.jwk()).unwrap();
        assert_eq!(kc.new_key, new.jwk());
        assert_eq!(kc.payload.account, ACCOUNT);
    }

    #[test]
    fn key_change_rules() {
        let (old, new) = (TestKey::P256, TestKey::Ed25519);
        let check = |h: &Value, p: &Value, current: TestKey| {
            verify_key_change(&key_change_request(old, new, h, p), &current.jwk())
        };
        let (h, p) = good_inner(old, new);

        let mut with_nonce = h.clone();
        with_nonce["nonce"] = json!("n");
        assert!(
            check(&with_nonce, &p, old)
                .unwrap_err()
                .detail
                .contains("nonce")
        );

        let mut other_url = h.clone();
        other_url["url"] = json!("https://ca.example/acme/new-order");
        assert!(
            check(&other_url, &p, old)
                .unwrap_err()
                .detail
                .contains("url")
        );

        let mut with_kid = h.clone();
        with_kid.as_object_mut().unwrap().remove("jwk");
        with_kid["kid"] = json!(ACCOUNT);
        assert!(
            check(&with_kid, &p, old)
                .unwrap_err()
                .detail
                .contains("jwk")
        );

        let mut wrong_account = p.clone();
        wrong_account["account"] = json!("https://ca.example/acme/acct/2");
        assert!(
            check(&h, &wrong_account, old)
                .unwrap_err()
                .detail
                .contains("account")
        );

        // oldKey must be the account's current key.
        assert!(
            check(&h, &p, TestKey::P384)
                .unwrap_err()
                .detail
                .contains("oldKey")
        );

        // Inner signed by a key other than the one it embeds.
        let mut lying = h.clone();
        lying["jwk"] = TestKey::P521.jwk().to_value();
        lying["alg"] = json!("ES512");
        let outer = key_change_request(old, new, &lying, &p);
        let err = verify_key_change(&outer, &old.jwk()).unwrap_err();
        assert_eq!(err.detail, "JWS verification error");
        // Inner alg that does not fit the embedded key.
        let mut mismatched = h.clone();
        mismatched["alg"] = json!("ES256");
        let err = check(&mismatched, &p, old).unwrap_err();
        assert_eq!(err.typ, ProblemType::BadSignatureAlgorithm);

        // Same key for old and new.
        let (h2, p2) = good_inner(old, old);
        let outer = key_change_request(old, old, &h2, &p2);
        assert!(
            verify_key_change(&outer, &old.jwk())
                .unwrap_err()
                .detail
                .contains("same")
        );

        // Missing oldKey.
        let no_old = json!({"account": ACCOUNT});
        assert_eq!(
            check(&h, &no_old, old).unwrap_err().typ,
            ProblemType::Malformed
        );
    }

    #[test]
    fn key_change_needs_a_kid_outer_jws() {
        let (old, new) = (TestKey::P256, TestKey::Ed25519);
        let (h, p) = good_inner(old, new);
        let inner = sign_jws(new, &h, p.to_string().as_bytes());
        let outer_header = json!({"alg": "ES256", "jwk": old.jwk().to_value(), "nonce": "n", "url": KEY_CHANGE_URL});
        let outer = ParsedJws::parse(&sign_jws(old, &outer_header, &inner)).unwrap();
        assert!(
            verify_key_change(&outer, &old.jwk())
                .unwrap_err()
                .detail
                .contains("kid")
        );
    }
}
