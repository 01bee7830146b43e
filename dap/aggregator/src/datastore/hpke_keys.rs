//! The `hpke_keys` table: the aggregator's HPKE keypairs (private keys sealed with the
//! datastore key) and where each is in its rotation.

use super::secrets;
use super::{Datastore, DatastoreError, Result, int, is_unique_violation, uint};
use cairn_dap_core::HpkeKeypair;
use cairn_dap_messages::{Decode, Encode, HpkeConfig, HpkeConfigId};
use cairn_db::{on_read, on_write};
use sqlx::Row;

/// Where an HPKE key is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HpkeKeyState {
    /// Decrypts, not advertised yet (give caches time to learn it before activating).
    Pending,
    /// Advertised in the HPKE config list and decrypts.
    Active,
    /// No longer advertised; still decrypts reports sealed to it that are in flight.
    Expired,
}

impl HpkeKeyState {
    /// `"pending"`, `"active"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HpkeKeyState::Pending => "pending",
            HpkeKeyState::Active => "active",
            HpkeKeyState::Expired => "expired",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<HpkeKeyState> {
        match s {
            "pending" => Some(HpkeKeyState::Pending),
            "active" => Some(HpkeKeyState::Active),
            "expired" => Some(HpkeKeyState::Expired),
            _ => None,
        }
    }
}

/// One stored key as the rotator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeKeyRecord {
    /// Its public configuration (ID and ciphersuite).
    pub config: HpkeConfig,
    /// Where it is in its rotation.
    pub state: HpkeKeyState,
    /// When it entered `state`, in seconds since the epoch (0: unknown).
    pub since: u64,
}

/// A ciphersuite: KEM, KDF and AEAD code points.
pub fn suite_of(config: &HpkeConfig) -> (u16, u16, u16) {
    (config.kem_id.0, config.kdf_id.0, config.aead_id.0)
}

/// The AAD of an HPKE private key's sealed form.
fn hpke_key_aad(config_id: i64) -> Vec<u8> {
    secrets::aad("hpke_keys", "private_key", &config_id.to_be_bytes())
}

impl Datastore {
    /// The aggregator's HPKE keypairs with their states, generating and storing an active one
    /// (config ID 1) if there is none at all.
    pub async fn get_or_create_hpke_keypairs(&self) -> Result<Vec<(HpkeKeypair, HpkeKeyState)>> {
        if self.get_hpke_keypairs().await?.is_empty() {
            let fresh = HpkeKeypair::generate(HpkeConfigId(1));
            match self.put_hpke_keypair(&fresh, HpkeKeyState::Active).await {
                Ok(()) | Err(DatastoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.get_hpke_keypairs().await
    }

    /// Every HPKE keypair with its state, by config ID.
    pub async fn get_hpke_keypairs(&self) -> Result<Vec<(HpkeKeypair, HpkeKeyState)>> {
        on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT config_id, config, private_key, state FROM hpke_keys ORDER BY config_id",
            )
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|row| {
                    let id: i64 = row.try_get(0)?;
                    let config = HpkeConfig::get_decoded(&row.try_get::<Vec<u8>, _>(1)?)
                        .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
                    let sealed: Vec<u8> = row.try_get(2)?;
                    let private = self
                        .key
                        .open(&hpke_key_aad(id), &sealed)
                        .ok_or(DatastoreError::Sealed("hpke private key"))?;
                    let state = HpkeKeyState::parse(&row.try_get::<String, _>(3)?)
                        .ok_or(DatastoreError::Corrupt("hpke key state"))?;
                    let kp = HpkeKeypair::new(config, private)
                        .map_err(|_| DatastoreError::Corrupt("hpke key"))?;
                    Ok((kp, state))
                })
                .collect()
        })
    }

    /// Stores a new HPKE keypair (private key sealed); `Conflict` if its config ID is taken.
    pub async fn put_hpke_keypair(&self, kp: &HpkeKeypair, state: HpkeKeyState) -> Result<()> {
        let id = i64::from(kp.config().id.0);
        let config = kp
            .config()
            .get_encoded()
            .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
        let sealed = self.key.seal(&hpke_key_aad(id), kp.private_key())?;
        on_write!(self.db, |conn| {
            sqlx::query(
                "INSERT INTO hpke_keys (config_id, config, private_key, state) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(config)
            .bind(sealed)
            .bind(state.as_str())
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DatastoreError::Conflict("hpke key")
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
    }

    /// Moves a key to `state` by hand; `false` if there is no such key. The time it entered
    /// the state is left unknown (0) for the key rotator to stamp with its clock.
    pub async fn set_hpke_key_state(&self, id: HpkeConfigId, state: HpkeKeyState) -> Result<bool> {
        on_write!(self.db, |conn| {
            let n = sqlx::query(
                "UPDATE hpke_keys SET state = $2, state_changed_at = $3 WHERE config_id = $1",
            )
            .bind(i64::from(id.0))
            .bind(state.as_str())
            .bind(0i64)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Every key's config ID, ciphersuite, state and when it entered that state (seconds; 0
    /// for keys stored before rotation times were kept), by config ID: what the key rotator
    /// plans from. No private keys are opened.
    pub async fn get_hpke_key_states(&self) -> Result<Vec<HpkeKeyRecord>> {
        on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT config, state, state_changed_at FROM hpke_keys ORDER BY config_id",
            )
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|row| {
                    let config = HpkeConfig::get_decoded(&row.try_get::<Vec<u8>, _>(0)?)
                        .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
                    let state = HpkeKeyState::parse(&row.try_get::<String, _>(1)?)
                        .ok_or(DatastoreError::Corrupt("hpke key state"))?;
                    Ok(HpkeKeyRecord {
                        config,
                        state,
                        since: uint(row.try_get(2)?),
                    })
                })
                .collect()
        })
    }

    /// Stores a new pending key entered at `now` unless a pending key of the same ciphersuite
    /// exists already (another rotator got there first); `Ok(false)` then, or when its config
    /// ID is taken.
    pub async fn put_pending_hpke_keypair(&self, kp: &HpkeKeypair, now: u64) -> Result<bool> {
        let id = i64::from(kp.config().id.0);
        let config = kp
            .config()
            .get_encoded()
            .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
        let suite = suite_of(kp.config());
        let sealed = self.key.seal(&hpke_key_aad(id), kp.private_key())?;
        on_write!(self.db, |conn| {
            let pending: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT config FROM hpke_keys WHERE state = 'pending'")
                    .fetch_all(&mut *conn)
                    .await?;
            let same_suite = pending
                .iter()
                .any(|c| HpkeConfig::get_decoded(c).is_ok_and(|c| suite_of(&c) == suite));
            if same_suite {
                return Ok(false);
            }
            let n = sqlx::query(
                "INSERT INTO hpke_keys (config_id, config, private_key, state, state_changed_at) \
                 VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(config)
            .bind(sealed)
            .bind(int(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Moves key `id` from state `from` to `to` at `now`; `false` if it was not in `from`
    /// (another rotator moved it first). `from == to` only stamps the time.
    pub async fn move_hpke_key(
        &self,
        id: HpkeConfigId,
        from: HpkeKeyState,
        to: HpkeKeyState,
        now: u64,
    ) -> Result<bool> {
        on_write!(self.db, |conn| {
            let n = sqlx::query(
                "UPDATE hpke_keys SET state = $3, state_changed_at = $4 \
                 WHERE config_id = $1 AND state = $2",
            )
            .bind(i64::from(id.0))
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(int(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Deletes an expired key; `false` if there is no expired key with this ID.
    pub async fn delete_hpke_key(&self, id: HpkeConfigId) -> Result<bool> {
        on_write!(self.db, |conn| {
            let n = sqlx::query("DELETE FROM hpke_keys WHERE config_id = $1 AND state = 'expired'")
                .bind(i64::from(id.0))
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_states_round_trip_by_name() {
        for s in [
            HpkeKeyState::Pending,
            HpkeKeyState::Active,
            HpkeKeyState::Expired,
        ] {
            assert_eq!(HpkeKeyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(HpkeKeyState::parse("Active"), None);
    }
}
