//! `cairn admin`: operator tasks that go straight to the CA's storage.

use crate::ServeArgs;
use crate::serve::{effective_config, open_storage};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_core::{EabKey, random_id};
use cairn_sa::StorageAuthority;
use clap::Subcommand;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// External Account Binding keys.
    #[command(subcommand)]
    Eab(EabCommand),
}

/// EAB key commands.
#[derive(Debug, Subcommand)]
pub enum EabCommand {
    /// Create a key; prints the key ID and the base64url HMAC key to give to one subscriber.
    New {
        #[command(flatten)]
        target: ServeArgs,
    },
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Eab(EabCommand::New { target }) => {
            let cfg = effective_config(&target)?;
            let storage = open_storage(&cfg).await?;
            let mut hmac = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut hmac)
                .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
            let key = EabKey {
                key_id: random_id(12),
                hmac_key: hmac,
                created_at: time::OffsetDateTime::now_utc(),
                bound_account: None,
            };
            storage
                .new_eab_key(&key)
                .await
                .context("storing the EAB key")?;
            println!("key_id: {}", key.key_id);
            println!("hmac_key: {}", URL_SAFE_NO_PAD.encode(&key.hmac_key));
            Ok(())
        }
    }
}
