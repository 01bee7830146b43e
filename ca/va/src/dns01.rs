//! dns-01 (RFC 8555 §8.4): a TXT record at `_acme-challenge.<name>` holding
//! base64url(SHA-256(key authorization)).

use crate::resolver::LookupFailure;
use crate::{Va, key_authorization_digest, reject};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType, ValidationRecord};
use hickory_resolver::proto::rr::RecordType;

/// The TXT value dns-01 expects for a key authorization.
pub fn dns01_txt_value(key_authorization: &str) -> String {
    URL_SAFE_NO_PAD.encode(key_authorization_digest(key_authorization))
}

impl Va {
    /// Performs dns-01 validation.
    pub(crate) async fn validate_dns01(
        &self,
        identifier: &Identifier,
        key_authorization: &str,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        if identifier.typ != IdentifierType::Dns {
            return Err(Problem::new(
                ProblemType::Malformed,
                "dns-01 cannot validate IP address identifiers",
            ));
        }
        let name = format!("_acme-challenge.{}", identifier.value);
        self.check_txt_digest(identifier, &name, key_authorization, records)
            .await
    }

    /// The TXT check dns-01 and dns-account-01 share: some TXT value at `name` is
    /// base64url(SHA-256(key authorization)). Records the lookup for `identifier`.
    pub(crate) async fn check_txt_digest(
        &self,
        identifier: &Identifier,
        name: &str,
        key_authorization: &str,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        records.push(ValidationRecord {
            hostname: Some(identifier.value.clone()),
            resolver_addrs: Some(vec![self.config.dns_server.to_string()]),
            ..Default::default()
        });
        let values = match self.dns.lookup_txt(name).await {
            Ok(v) => v,
            Err(LookupFailure::NxDomain) => Vec::new(),
            Err(e) => return Err(e.problem(RecordType::TXT, name)),
        };
        if values.is_empty() {
            return Err(reject(format!("No TXT record found at {name}")));
        }
        let expected = dns01_txt_value(key_authorization);
        if values.iter().any(|v| v.trim() == expected) {
            return Ok(());
        }
        // The TXT values are not echoed: say what was wrong, not what was there.
        Err(reject(format!(
            "Incorrect TXT record found at {name}: none of its {} value(s) is the expected digest of the key authorization",
            values.len()
        )))
    }
}
