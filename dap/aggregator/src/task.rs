//! [`AggregatorTask`]: a task as one aggregator holds it — public parameters plus its role, the
//! VDAF verification key, the collector's HPKE config and the bearer-token material.

use aws_lc_rs::digest;
use cairn_dap_core::TaskParameters;
use cairn_dap_core::vdaf::VerifyKey;
use cairn_dap_messages::HpkeConfig;
use serde::{Deserialize, Serialize};

/// Which end of DAP an aggregator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AggregatorRole {
    /// Takes uploads, drives aggregation jobs, serves collection jobs.
    Leader,
    /// Answers aggregation jobs and aggregate-share requests.
    Helper,
}

impl AggregatorRole {
    /// `"leader"` or `"helper"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregatorRole::Leader => "leader",
            AggregatorRole::Helper => "helper",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<AggregatorRole> {
        match s {
            "leader" => Some(AggregatorRole::Leader),
            "helper" => Some(AggregatorRole::Helper),
            _ => None,
        }
    }
}

/// SHA-256 of a bearer token: what an aggregator stores for tokens it checks.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenHash(out)
    }

    /// Whether `token` hashes to this value (compared without early exit).
    pub fn matches(&self, token: &str) -> bool {
        let other = TokenHash::of(token);
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A bearer token this aggregator sends (leader → helper). `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps `token`.
    pub fn new(token: impl Into<String>) -> BearerToken {
        BearerToken(token.into())
    }

    /// The secret, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

/// A task at one aggregator.
#[derive(Debug, Clone)]
pub struct AggregatorTask {
    /// The shared parameters.
    pub parameters: TaskParameters,
    /// This aggregator's role in the task.
    pub role: AggregatorRole,
    /// The VDAF verification key shared by both aggregators.
    pub vdaf_verify_key: VerifyKey,
    /// Where aggregate shares are encrypted to.
    pub collector_hpke_config: HpkeConfig,
    /// Leader only: the token presented to the helper.
    pub aggregator_auth_token: Option<BearerToken>,
    /// Helper only: the hash of the token the leader must present.
    pub aggregator_auth_token_hash: Option<TokenHash>,
    /// Leader only: the hash of the token the collector must present.
    pub collector_auth_token_hash: Option<TokenHash>,
    /// Seconds after which a report is too old: its upload is refused and the garbage
    /// collector deletes it with what it fed (replay record, buckets, jobs, collection jobs).
    /// `None` keeps everything.
    pub report_expiry_age: Option<u64>,
}

impl AggregatorTask {
    /// Whether the task was provisioned in band (taskprov): its ID is derived from its
    /// configuration, which binds every report to it.
    pub fn taskbound(&self) -> bool {
        cairn_dap_core::taskprov::is_taskprov_task(&self.parameters)
    }

    /// Checks that the role has the token material it needs.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.parameters
            .validate()
            .map_err(|_| "invalid task parameters")?;
        match self.role {
            AggregatorRole::Leader => {
                if self.aggregator_auth_token.is_none() || self.collector_auth_token_hash.is_none()
                {
                    return Err(
                        "a leader task needs aggregator_auth_token and collector_auth_token",
                    );
                }
            }
            AggregatorRole::Helper => {
                if self.aggregator_auth_token_hash.is_none() {
                    return Err("a helper task needs aggregator_auth_token");
                }
            }
        }
        if !cairn_dap_core::hpke::is_supported(&self.collector_hpke_config) {
            return Err("unsupported collector HPKE configuration");
        }
        if self
            .report_expiry_age
            .is_some_and(|age| age == 0 || i64::try_from(age).is_err())
        {
            return Err("report_expiry_age must be a positive number of seconds");
        }
        Ok(())
    }

    /// The first time unit (time-precision units) whose reports are not yet too old at `now`
    /// (seconds): a report of time `t` has expired when `t < cutoff`, that is when its start
    /// in seconds is more than `report_expiry_age` seconds ago. `None` without an expiry age.
    /// Both the upload check and the garbage collector use this, so a report's replay record
    /// is deleted only once the report itself is refused as too old.
    pub fn expiry_cutoff(&self, now: u64) -> Option<u64> {
        let age = self.report_expiry_age?;
        let precision = self.parameters.precision().0.max(1);
        Some(now.saturating_sub(age).div_ceil(precision))
    }
}
