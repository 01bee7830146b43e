//! dns-account-01 (draft-ietf-acme-dns-account-label-02): dns-01 with the TXT record at a name
//! scoped to the ACME account, so several accounts (several CDNs, say) can validate one name
//! at the same time without overwriting each other's records.
//!
//! The validation domain name is `_<label>._acme-challenge.<name>`, where `<label>` is the
//! lowercase base32 (RFC 4648, no padding) of the first 10 octets of SHA-256 of the account
//! URL exactly as the CA gave it in `Location` (RFC 8555 §7.3). The TXT value is dns-01's:
//! base64url(SHA-256(key authorization)). A wildcard authorization is validated at its base
//! name, as with dns-01.

use crate::Va;
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType, ValidationRecord};

/// RFC 4648 base32 alphabet, lowercased as the draft requires for the DNS label.
const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The account label (without its leading underscore): base32 of the first 10 octets of
/// SHA-256(account URL), 16 characters.
pub fn dns_account_label(account_url: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, account_url.as_bytes());
    let bytes = &digest.as_ref()[..10];
    // 80 bits are exactly 16 groups of 5: no padding.
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(*b);
    }
    (0..16)
        .rev()
        .map(|i| char::from(BASE32_LOWER[((bits >> (i * 5)) & 0x1f) as usize]))
        .collect()
}

/// The validation domain name for `name` (no wildcard prefix, no trailing dot):
/// `_<label>._acme-challenge.<name>`.
pub fn dns_account01_name(account_url: &str, name: &str) -> String {
    format!(
        "_{}._acme-challenge.{}",
        dns_account_label(account_url),
        name.trim_end_matches('.')
    )
}

impl Va {
    /// Performs dns-account-01 validation for the account at `account_url`.
    pub(crate) async fn validate_dns_account01(
        &self,
        identifier: &Identifier,
        account_url: Option<&str>,
        key_authorization: &str,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        if identifier.typ != IdentifierType::Dns {
            return Err(Problem::new(
                ProblemType::Malformed,
                "dns-account-01 cannot validate IP address identifiers",
            ));
        }
        let Some(account_url) = account_url else {
            // The RA offers dns-account-01 only when it knows the account URL; a request
            // without one is a configuration error, not the client's.
            return Err(Problem::new(
                ProblemType::ServerInternal,
                "dns-account-01 needs the account URL, which this CA is not configured to know",
            ));
        };
        let name = dns_account01_name(account_url, &identifier.value);
        self.check_txt_digest(identifier, &name, key_authorization, records)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_matches_the_drafts_example() {
        // draft-ietf-acme-dns-account-label-02 §3.2 example.
        assert_eq!(
            dns_account_label("https://example.com/acme/acct/ExampleAccount"),
            "ujmmovf2vn55tgye"
        );
        assert_eq!(
            dns_account01_name(
                "https://example.com/acme/acct/ExampleAccount",
                "example.org."
            ),
            "_ujmmovf2vn55tgye._acme-challenge.example.org"
        );
    }

    #[test]
    fn label_depends_on_the_whole_url() {
        let a = dns_account_label("https://ca.example/acme/acct/1");
        let b = dns_account_label("https://ca.example/acme/acct/2");
        let c = dns_account_label("https://ca.example:443/acme/acct/1");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| BASE32_LOWER.contains(&c)));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
