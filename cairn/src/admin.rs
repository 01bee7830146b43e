//! `cairn admin`: operator tasks that go straight to the CA's storage.

use crate::ServeArgs;
use crate::serve::{effective_config, open_storage};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_core::{AccountId, AccountPolicy, EabKey, PolicyEntry, Serial, random_id};
use cairn_sa::{RenewalSelector, StorageAuthority};
use clap::Subcommand;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// External Account Binding keys.
    #[command(subcommand)]
    Eab(EabCommand),
    /// ACME Renewal Information (RFC 9773).
    #[command(subcommand)]
    Ari(AriCommand),
    /// Accounts: identifier policy (private PKI).
    #[command(subcommand)]
    Account(AccountCommand),
    /// The internal PKI of a split deployment (mutual TLS between components).
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Revoke certificates by serial, serials file, account, key or identifier.
    Revoke(crate::revoke::RevokeArgs),
    /// Show the stored CRL shards and their freshness.
    Crl(crate::revoke::CrlArgs),
    /// Lift an account's pause (set after repeated failed validations). Needs the shared
    /// Redis rate-limit store (`server.redis_url` / `CAIRN_REDIS_URL`); with the in-memory
    /// store, pauses live in the server process and end when it restarts.
    Unpause {
        /// The account ID.
        #[arg(long)]
        account: String,
        /// Only these identifiers (DNS names or IP addresses); default: all.
        #[arg(long = "identifier")]
        identifiers: Vec<String>,
        #[command(flatten)]
        target: ServeArgs,
    },
}

/// Internal PKI commands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Make a development CA and one certificate per service (`<name>.cairn.internal`, for TLS
    /// server and client use) in a folder. For trying a split deployment; production brings
    /// certificates from its own internal CA.
    Dev {
        /// The folder to write `internal-ca.pem`, `internal-ca.key.pem`, `<name>.pem` and `<name>.key.pem` into.
        #[arg(long)]
        out: std::path::PathBuf,
        /// A service to make a certificate for (repeatable); default: wfe, ra, va, ca, sa,
        /// nonce. Remote VAs: `va-<perspective>`.
        #[arg(long = "service")]
        services: Vec<String>,
    },
}

/// ARI commands.
#[derive(Debug, Subcommand)]
pub enum AriCommand {
    /// Ask for early renewal: the selected certificates' renewal windows move to the past, so
    /// ARI clients renew them at once (no emails needed).
    Mark {
        #[command(flatten)]
        select: MarkSelection,
        #[command(flatten)]
        target: ServeArgs,
    },
}

/// Which certificates `ari mark` selects (exactly one).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct MarkSelection {
    /// One certificate, by serial (hex).
    #[arg(long)]
    serial: Option<String>,
    /// Every certificate of an account, by account ID.
    #[arg(long)]
    account: Option<String>,
    /// Every certificate of an issuer, by issuer ID.
    #[arg(long)]
    issuer: Option<String>,
    /// Every certificate issued in a time range: `START..END`, RFC 3339 timestamps.
    #[arg(long)]
    issued_between: Option<String>,
}

impl MarkSelection {
    fn selector(&self) -> anyhow::Result<RenewalSelector> {
        use time::format_description::well_known::Rfc3339;
        if let Some(s) = &self.serial {
            let hex_ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            anyhow::ensure!(hex_ok, "--serial must be hexadecimal");
            return Ok(RenewalSelector::Serial(Serial(s.to_ascii_lowercase())));
        }
        if let Some(a) = &self.account {
            return Ok(RenewalSelector::Account(AccountId(a.clone())));
        }
        if let Some(i) = &self.issuer {
            return Ok(RenewalSelector::Issuer(i.clone()));
        }
        let range = self.issued_between.as_deref().unwrap_or_default();
        let (from, to) = range
            .split_once("..")
            .ok_or_else(|| anyhow::anyhow!("--issued-between takes START..END"))?;
        let parse = |t: &str| {
            time::OffsetDateTime::parse(t, &Rfc3339)
                .with_context(|| format!("{t:?} is not an RFC 3339 timestamp"))
        };
        let (from, to) = (parse(from)?, parse(to)?);
        anyhow::ensure!(from < to, "--issued-between: START must be before END");
        Ok(RenewalSelector::IssuedBetween(from, to))
    }
}

/// EAB key commands.
#[derive(Debug, Subcommand)]
pub enum EabCommand {
    /// Create a key; prints the key ID and the base64url HMAC key to give to one subscriber.
    /// With `--allow`/`--pre-validated`, the account bound with it may order only those
    /// identifiers (see `cairn admin account policy`).
    New {
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        target: ServeArgs,
    },
}

/// An identifier policy given on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// A name (`host.corp.example`), every name below a domain (`*.team-a.corp.example`), an
    /// IP address or a CIDR range (`10.20.0.0/16`) the account may order; repeatable.
    #[arg(long = "allow", value_name = "PATTERN")]
    allow: Vec<String>,
    /// Like `--allow`, and orders for matching identifiers get valid authorizations without a
    /// challenge (recorded as pre-validated); repeatable.
    #[arg(long = "pre-validated", value_name = "PATTERN")]
    pre_validated: Vec<String>,
}

impl PolicyArgs {
    /// The policy, or `None` when no pattern was given.
    fn policy(&self) -> anyhow::Result<Option<AccountPolicy>> {
        let mut entries = Vec::new();
        for (patterns, pre) in [(&self.pre_validated, true), (&self.allow, false)] {
            for p in patterns {
                entries.push(PolicyEntry::new(p, pre).map_err(|e| anyhow::anyhow!("{e}"))?);
            }
        }
        Ok((!entries.is_empty()).then_some(AccountPolicy { entries }))
    }
}

fn describe(policy: Option<&AccountPolicy>) -> String {
    match policy {
        None => "no identifier policy (unrestricted)".into(),
        Some(p) => p
            .entries
            .iter()
            .map(|e| {
                format!(
                    "{}{}",
                    e.pattern,
                    if e.pre_validated {
                        " (pre-validated)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Account commands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Set, show or clear an account's identifier policy. Without patterns and without
    /// `--clear`, shows the policy that applies (the account's own, else its EAB key's).
    Policy {
        /// The account ID.
        #[arg(long)]
        account: String,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Remove the account's own policy (an EAB key's policy then applies again).
        #[arg(long, conflicts_with_all = ["allow", "pre_validated"])]
        clear: bool,
        #[command(flatten)]
        target: ServeArgs,
    },
}

/// A fresh EAB key ID and 32-byte HMAC key whose printed forms (base64url) begin with a
/// letter or digit: a value starting with `-` is taken for an option by command-line clients
/// (`certbot --eab-kid -abc` fails), so such draws are discarded and drawn again.
fn new_eab_credentials() -> anyhow::Result<(String, Vec<u8>)> {
    let starts_well = |s: &str| s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    // A draw is kept with probability (62/64)² ≈ 0.94; 64 failures in a row mean a broken RNG.
    for _ in 0..64 {
        let mut hmac = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut hmac)
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let key_id = random_id(12);
        if starts_well(&key_id) && starts_well(&URL_SAFE_NO_PAD.encode(&hmac)) {
            return Ok((key_id, hmac));
        }
    }
    anyhow::bail!("the system random number generator keeps producing unusable EAB keys")
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Pki(PkiCommand::Dev { out, services }) => {
            let services = if services.is_empty() {
                cairn_rpc::dev_pki::DEFAULT_SERVICES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                services
            };
            let written = cairn_rpc::dev_pki::generate(&out, &services)?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        AdminCommand::Revoke(args) => crate::revoke::run_revoke(args).await,
        AdminCommand::Crl(args) => crate::revoke::run_crl(args).await,
        AdminCommand::Eab(EabCommand::New { policy, target }) => {
            let policy = policy.policy()?;
            let cfg = effective_config(&target)?;
            let storage = open_storage(&cfg).await?;
            let (key_id, hmac) = new_eab_credentials()?;
            let key = EabKey {
                key_id,
                hmac_key: hmac,
                created_at: time::OffsetDateTime::now_utc(),
                bound_account: None,
            };
            storage
                .new_eab_key(&key)
                .await
                .context("storing the EAB key")?;
            if let Some(p) = &policy {
                storage
                    .set_eab_identifier_policy(&key.key_id, Some(p))
                    .await
                    .context("storing the EAB key's identifier policy")?;
            }
            println!("key_id: {}", key.key_id);
            println!("hmac_key: {}", URL_SAFE_NO_PAD.encode(&key.hmac_key));
            if policy.is_some() {
                println!("identifier policy: {}", describe(policy.as_ref()));
            }
            Ok(())
        }
        AdminCommand::Account(AccountCommand::Policy {
            account,
            policy,
            clear,
            target,
        }) => {
            let policy = policy.policy()?;
            let cfg = effective_config(&target)?;
            let storage = open_storage(&cfg).await?;
            let id = AccountId(account.clone());
            let not_found = |e: cairn_sa::SaError| match e {
                cairn_sa::SaError::NotFound => anyhow::anyhow!("no account {account}"),
                e => anyhow::Error::new(e).context("updating the identifier policy"),
            };
            if clear || policy.is_some() {
                storage
                    .set_account_identifier_policy(&id, policy.as_ref())
                    .await
                    .map_err(not_found)?;
            }
            let now = storage
                .get_identifier_policy(&id)
                .await
                .map_err(not_found)?;
            println!("account {account}: {}", describe(now.as_ref()));
            Ok(())
        }
        AdminCommand::Unpause {
            account,
            identifiers,
            target,
        } => {
            let cfg = effective_config(&target)?;
            anyhow::ensure!(
                cfg.redis_url().is_some(),
                "pauses are kept in the server's memory unless server.redis_url (or CAIRN_REDIS_URL) is set; restart the server to clear them"
            );
            let limiter = crate::serve::rate_limiter(&cfg).await?;
            let ids: Vec<cairn_core::Identifier> = identifiers
                .iter()
                .map(|v| match v.parse::<std::net::IpAddr>() {
                    Ok(ip) => cairn_core::Identifier::ip(ip),
                    Err(_) => cairn_core::Identifier::dns(v.to_ascii_lowercase()),
                })
                .collect();
            let which = if ids.is_empty() {
                cairn_ratelimit::Unpause::All
            } else {
                cairn_ratelimit::Unpause::Identifiers(&ids)
            };
            let lifted = limiter
                .unpause(&AccountId(account.clone()), which)
                .await
                .context("unpausing")?;
            println!(
                "unpaused {} identifier(s) for account {account}",
                lifted.len()
            );
            Ok(())
        }
        AdminCommand::Ari(AriCommand::Mark { select, target }) => {
            let selector = select.selector()?;
            let cfg = effective_config(&target)?;
            let storage = open_storage(&cfg).await?;
            let n = storage
                .mark_for_renewal(&selector, time::OffsetDateTime::now_utc())
                .await
                .context("marking certificates for renewal")?;
            println!("marked {n} certificate(s) for early renewal");
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn eab_credentials_never_start_with_a_dash_or_underscore() {
        // Without the redraw, about 1 in 16 draws starts with `-` or `_`; 20 000 draws would
        // show hundreds.
        for _ in 0..20_000 {
            let (key_id, hmac) = new_eab_credentials().unwrap();
            let hmac = URL_SAFE_NO_PAD.encode(&hmac);
            for printed in [&key_id, &hmac] {
                let first = printed.bytes().next().unwrap();
                assert!(first.is_ascii_alphanumeric(), "{printed}");
            }
            assert_eq!(hmac.len(), 43);
            assert_eq!(key_id.len(), 16);
        }
    }
}
