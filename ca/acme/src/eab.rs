//! External Account Binding (RFC 8555 §7.3.4): the HMAC-signed JWS in newAccount that ties an account key to a CA-issued key ID.

use crate::error::JwsError;
use crate::jwk::Jwk;
use crate::jws::{Flattened, member_str};
use aws_lc_rs::hmac;
use cairn_core::Problem;
use serde_json::Value;

const CONTEXT: &str = "external account binding";
const HEADER_CONTEXT: &str = "external account binding protected header";

/// Verifies the `externalAccountBinding` member of a newAccount request and returns its key ID.
///
/// `binding` is the member's JSON value, `account_key` the `jwk` of the outer (newAccount) JWS
/// and `url` the outer JWS's `url`. `lookup` maps a key ID to its HMAC key; it is called at
/// most once, after the binding's shape has been checked.
///
/// The binding must be a flattened JWS whose protected header has `alg` HS256, HS384 or HS512,
/// a `kid`, the same `url` as the outer JWS and no `nonce`; whose payload is the account key;
/// and whose MAC verifies (in constant time) under the key `lookup` returns. Whether the key
/// ID is still unbound is the caller's business.
///
/// # Errors
/// `malformed` for a binding of the wrong shape or `url`; `unauthorized` for an unknown key
/// ID, a bad MAC, or a payload that is not the account key.
pub fn verify_eab<F>(
    binding: &Value,
    account_key: &Jwk,
    url: &str,
    lookup: F,
) -> Result<String, Problem>
where
    F: FnOnce(&str) -> Option<Vec<u8>>,
{
    verify(binding, account_key, url, lookup).map_err(Problem::from)
}

fn verify<F>(binding: &Value, account_key: &Jwk, url: &str, lookup: F) -> Result<String, JwsError>
where
    F: FnOnce(&str) -> Option<Vec<u8>>,
{
    let obj = binding
        .as_object()
        .ok_or(JwsError::EabMalformed("it must be a JWS object"))?;
    let parts = Flattened::from_members(obj, CONTEXT, HEADER_CONTEXT)?;
    let h = &parts.header;
    let alg = match member_str(h, HEADER_CONTEXT, "alg")? {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        _ => {
            return Err(JwsError::EabMalformed(
                "\"alg\" must be HS256, HS384 or HS512",
            ));
        }
    };
    for forbidden in ["nonce", "crit"] {
        if h.contains_key(forbidden) {
            return Err(JwsError::UnexpectedMember {
                context: HEADER_CONTEXT,
                member: forbidden.into(),
            });
        }
    }
    let kid = member_str(h, HEADER_CONTEXT, "kid")?;
    if kid.is_empty() {
        return Err(JwsError::EabMalformed("\"kid\" must not be empty"));
    }
    if member_str(h, HEADER_CONTEXT, "url")? != url {
        return Err(JwsError::EabMalformed(
            "\"url\" must equal the newAccount request's \"url\"",
        ));
    }
    let Some(secret) = lookup(kid) else {
        return Err(JwsError::EabUnknownKey(kid.to_owned()));
    };
    let key = hmac::Key::new(alg, &secret);
    hmac::verify(&key, &parts.signing_input, &parts.signature).map_err(|_| JwsError::EabBadMac)?;
    let bound = Jwk::from_json(&parts.payload)
        .map_err(|_| JwsError::EabMalformed("the payload is not a public JWK"))?;
    if &bound != account_key {
        return Err(JwsError::EabKeyMismatch);
    }
    Ok(kid.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::base64url;
    use crate::testkeys::TestKey;
    use cairn_core::ProblemType;
    use serde_json::json;

    const URL: &str = "https://ca.example/acme/new-account";
    const KID: &str = "kid-1";
    const SECRET: &[u8] = b"an hmac key of thirty-two octets";

    fn binding(header: &Value, payload: &[u8], secret: &[u8], alg: hmac::Algorithm) -> Value {
        let protected = base64url::encode(header.to_string());
        let payload = base64url::encode(payload);
        let tag = hmac::sign(
            &hmac::Key::new(alg, secret),
            format!("{protected}.{payload}").as_bytes(),
        );
        json!({"protected": protected, "payload": payload, "signature": base64url::encode(tag)})
    }

    fn good(key: TestKey) -> Value {
        binding(
            &json!({"alg": "HS256", "kid": KID, "url": URL}),
            key.jwk().to_value().to_string().as_bytes(),
            SECRET,
            hmac::HMAC_SHA256,
        )
    }

    fn lookup(kid: &str) -> Option<Vec<u8>> {
        (kid == KID).then(|| SECRET.to_vec())
    }

    #[test]
    fn accepts_a_valid_binding_with_each_mac() {
        let key = TestKey::P256;
        for (name, alg) in [
            ("HS256", hmac::HMAC_SHA256),
            ("HS384", hmac::HMAC_SHA384),
            ("HS512", hmac::HMAC_SHA512),
        ] {
            let b = binding(
                &json!({"alg": name, "kid": KID, "url": URL}),
                key.jwk().to_value().to_string().as_bytes(),
                SECRET,
                alg,
            );
            assert_eq!(verify_eab(&b, &key.jwk(), URL, lookup).unwrap(), KID);
        }
    }

    #[test]
    fn payload_is_compared_as_a_key_not_as_text() {
        // Extra members and a different member order still bind the same key.
        let key = TestKey::Ed25519;
        let mut jwk = key.jwk().to_value();
        jwk["kid"] = json!("client-label");
        let text = format!(
            r#"{{"x":{},"kid":"client-label","crv":"Ed25519","kty":"OKP"}}"#,
            jwk["x"]
        );
        let b = binding(
            &json!({"alg": "HS256", "kid": KID, "url": URL}),
            text.as_bytes(),
            SECRET,
            hmac::HMAC_SHA256,
        );
        assert_eq!(verify_eab(&b, &key.jwk(), URL, lookup).unwrap(), KID);
    }

    #[test]
    fn bad_mac_and_unknown_kid_are_unauthorized() {
        let key = TestKey::P256;
        let wrong_secret = binding(
            &json!({"alg": "HS256", "kid": KID, "url": URL}),
            key.jwk().to_value().to_string().as_bytes(),
            b"some other key",
            hmac::HMAC_SHA256,
        );
        let p = verify_eab(&wrong_secret, &key.jwk(), URL, lookup).unwrap_err();
        assert_eq!(p.typ, ProblemType::Unauthorized);

        // A truncated tag is a bad MAC, not a crash.
        let mut truncated = good(key);
        let tag = base64url::decode(truncated["signature"].as_str().unwrap()).unwrap();
        truncated["signature"] = json!(base64url::encode(&tag[..16]));
        let p = verify_eab(&truncated, &key.jwk(), URL, lookup).unwrap_err();
        assert_eq!(p.typ, ProblemType::Unauthorized);

        let p = verify_eab(&good(key), &key.jwk(), URL, |_| None).unwrap_err();
        assert_eq!(p.typ, ProblemType::Unauthorized);
        assert!(p.detail.contains(KID));
    }

    #[test]
    fn wrong_url_is_malformed() {
        let key = TestKey::P256;
        let p = verify_eab(
            &good(key),
            &key.jwk(),
            "https://ca.example/acme/other",
            lookup,
        )
        .unwrap_err();
        assert_eq!(p.typ, ProblemType::Malformed);
        assert!(p.detail.contains("url"));
    }

    #[test]
    fn binding_another_key_is_unauthorized() {
        let p = verify_eab(&good(TestKey::P256), &TestKey::P384.jwk(), URL, lookup).unwrap_err();
        assert_eq!(p.typ, ProblemType::Unauthorized);
        assert!(p.detail.contains("account key"));
        // A payload that is no key at all.
        let b = binding(
            &json!({"alg": "HS256", "kid": KID, "url": URL}),
            b"{}",
            SECRET,
            hmac::HMAC_SHA256,
        );
        let p = verify_eab(&b, &TestKey::P256.jwk(), URL, lookup).unwrap_err();
        assert_eq!(p.typ, ProblemType::Malformed);
    }

    #[test]
    fn shape_errors_are_malformed_and_skip_the_lookup() {
        let key = TestKey::P256;
        let payload = key.jwk().to_value().to_string();
        let headers = [
            json!({"alg": "RS256", "kid": KID, "url": URL}),
            json!({"alg": "none", "kid": KID, "url": URL}),
            json!({"alg": "HS256", "url": URL}),
            json!({"alg": "HS256", "kid": "", "url": URL}),
            json!({"alg": "HS256", "kid": 7, "url": URL}),
            json!({"alg": "HS256", "kid": KID}),
            json!({"alg": "HS256", "kid": KID, "url": URL, "nonce": "n"}),
        ];
        for h in headers {
            let b = binding(&h, payload.as_bytes(), SECRET, hmac::HMAC_SHA256);
            let p =
                verify_eab(&b, &key.jwk(), URL, |_| panic!("lookup called for {h}")).unwrap_err();
            assert_eq!(p.typ, ProblemType::Malformed, "{h}");
        }
        let mut extra = good(key);
        extra["header"] = json!({});
        assert_eq!(
            verify_eab(&extra, &key.jwk(), URL, lookup).unwrap_err().typ,
            ProblemType::Malformed
        );
        for not_jws in [json!("x"), json!(null), json!([])] {
            assert_eq!(
                verify_eab(&not_jws, &key.jwk(), URL, lookup)
                    .unwrap_err()
                    .typ,
                ProblemType::Malformed
            );
        }
    }
}
