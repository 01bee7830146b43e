//! Automatic HPKE key rotation (issue 18), per ciphersuite: a new key is created *pending*
//! (it decrypts but is not advertised, so caches of the configuration list can learn it),
//! becomes *active* (advertised) after `propagation_delay_secs`, and the key it replaces
//! becomes *expired* (no longer advertised, still decrypts what clients sealed to it before
//! they refetched) and is deleted after `expired_grace_secs`. A new pending key is created
//! when the newest active key is `active_secs` old.
//!
//! [`plan`] is pure: keys and time in, the steps to take out. Every step is conditional on the
//! key's state in the datastore, so several rotators at once do no harm: a step another one
//! took first changes nothing.

use super::Aggregator;
use super::hpke_keys::next_config_id;
use crate::datastore::{HpkeKeyRecord, HpkeKeyState, suite_of};
use crate::error::Error;
use cairn_dap_core::HpkeKeypair;
use cairn_dap_messages::HpkeConfigId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The key rotator's timing, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyRotatorConfig {
    /// Run the rotator (default: off; keys are then rotated through the control plane).
    pub enabled: bool,
    /// How often the rotator looks at the keys.
    pub interval_secs: u64,
    /// How long a new key stays pending before it is advertised.
    pub propagation_delay_secs: u64,
    /// How long a key is advertised before its successor is created.
    pub active_secs: u64,
    /// How long an expired key still decrypts before it is deleted.
    pub expired_grace_secs: u64,
}

impl Default for KeyRotatorConfig {
    fn default() -> Self {
        KeyRotatorConfig {
            enabled: false,
            interval_secs: 60,
            propagation_delay_secs: 3600,
            active_secs: 4 * 7 * 86_400,
            expired_grace_secs: 7 * 86_400,
        }
    }
}

impl KeyRotatorConfig {
    /// Refuses timings that would lose reports: an expired key must outlive the delay with
    /// which other aggregator processes re-read their keys.
    pub fn validate(&self, key_refresh_secs: u64) -> Result<(), String> {
        if self.interval_secs == 0 || self.active_secs == 0 {
            return Err("key rotator: interval_secs and active_secs must be positive".into());
        }
        if self.propagation_delay_secs < key_refresh_secs
            || self.expired_grace_secs < key_refresh_secs
        {
            return Err(format!(
                "key rotator: propagation_delay_secs and expired_grace_secs must be at least \
                 hpke_key_refresh_secs ({key_refresh_secs})"
            ));
        }
        Ok(())
    }
}

/// One step of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationStep {
    /// Record `now` as the time a key with an unknown time entered its state.
    Stamp(HpkeConfigId, HpkeKeyState),
    /// Create a pending key of this ciphersuite.
    CreatePending((u16, u16, u16)),
    /// Move a key from one state to another.
    Move(HpkeConfigId, HpkeKeyState, HpkeKeyState),
    /// Delete an expired key.
    Delete(HpkeConfigId),
}

/// The steps that bring `keys` up to date at `now` under `cfg`, for every ciphersuite that has
/// a key. Keys whose time is unknown (0) are only stamped: their clock starts now.
pub fn plan(keys: &[HpkeKeyRecord], now: u64, cfg: &KeyRotatorConfig) -> Vec<RotationStep> {
    use HpkeKeyState::{Active, Expired, Pending};
    let mut steps = Vec::new();
    let mut by_suite: BTreeMap<(u16, u16, u16), Vec<&HpkeKeyRecord>> = BTreeMap::new();
    for k in keys {
        by_suite.entry(suite_of(&k.config)).or_default().push(k);
    }
    for (suite, keys) in by_suite {
        let age = |k: &HpkeKeyRecord| now.saturating_sub(k.since);
        let mut active: Vec<&HpkeKeyRecord> = Vec::new();
        let mut pending: Vec<&HpkeKeyRecord> = Vec::new();
        for k in keys {
            let id = k.config.id;
            if k.since == 0 {
                steps.push(RotationStep::Stamp(id, k.state));
                match k.state {
                    Active => active.push(k),
                    Pending => pending.push(k),
                    Expired => {}
                }
                continue;
            }
            match k.state {
                Active => active.push(k),
                Pending => pending.push(k),
                Expired if age(k) >= cfg.expired_grace_secs => {
                    steps.push(RotationStep::Delete(id));
                }
                Expired => {}
            }
        }
        let ready = pending
            .iter()
            .filter(|k| k.since != 0 && age(k) >= cfg.propagation_delay_secs)
            .max_by_key(|k| k.since);
        if let Some(newest) = ready {
            // The ready key replaces every active key of the suite (and any older pending).
            steps.push(RotationStep::Move(newest.config.id, Pending, Active));
            for k in &active {
                steps.push(RotationStep::Move(k.config.id, Active, Expired));
            }
            for k in pending.iter().filter(|k| k.config.id != newest.config.id) {
                steps.push(RotationStep::Move(k.config.id, Pending, Expired));
            }
            continue;
        }
        let newest_active = active.iter().map(|k| k.since).max();
        let due = match newest_active {
            // A key whose time is unknown starts its clock now.
            Some(0) => false,
            Some(since) => now.saturating_sub(since) >= cfg.active_secs,
            None => true,
        };
        if due && pending.is_empty() {
            steps.push(RotationStep::CreatePending(suite));
        }
    }
    steps
}

impl Aggregator {
    /// One pass of the key rotator; returns the steps it took (a step another rotator took
    /// first is skipped and not returned).
    pub async fn rotate_hpke_keys_once(
        &self,
        cfg: &KeyRotatorConfig,
    ) -> Result<Vec<RotationStep>, Error> {
        let ds = &self.inner.datastore;
        let now = self.inner.clock.now();
        let keys = ds.get_hpke_key_states().await?;
        let mut used: BTreeSet<u8> = keys.iter().map(|k| k.config.id.0).collect();
        let mut taken = Vec::new();
        for step in plan(&keys, now, cfg) {
            let done = match &step {
                RotationStep::Stamp(id, state) => {
                    ds.move_hpke_key(*id, *state, *state, now).await?
                }
                RotationStep::Move(id, from, to) => ds.move_hpke_key(*id, *from, *to, now).await?,
                RotationStep::Delete(id) => ds.delete_hpke_key(*id).await?,
                RotationStep::CreatePending(suite) => {
                    let Some(id) = next_config_id(&used) else {
                        tracing::warn!("all 256 HPKE config IDs are in use; not rotating");
                        continue;
                    };
                    let kp = HpkeKeypair::generate(HpkeConfigId(id));
                    if suite_of(kp.config()) != *suite {
                        // Only the suite this build generates can be rotated automatically.
                        tracing::warn!(?suite, "cannot generate keys of this HPKE ciphersuite");
                        continue;
                    }
                    used.insert(id);
                    ds.put_pending_hpke_keypair(&kp, now).await?
                }
            };
            if done {
                tracing::info!(?step, "HPKE key rotation");
                metrics::counter!("cairn_dap_hpke_key_rotation_steps_total").increment(1);
                taken.push(step);
            }
        }
        if !taken.is_empty() {
            self.reload_keys().await?;
        }
        Ok(taken)
    }

    /// Runs [`Aggregator::rotate_hpke_keys_once`] with the configured `key_rotator` timing
    /// every `interval_secs` until the returned handle is aborted (returns at once when the
    /// rotator is disabled).
    pub fn spawn_key_rotator(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let cfg = self.inner.params.key_rotator;
        tokio::spawn(async move {
            if !cfg.enabled {
                return;
            }
            loop {
                if let Err(e) = this.rotate_hpke_keys_once(&cfg).await {
                    tracing::warn!(error = %e, "HPKE key rotation failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(cfg.interval_secs.max(1))).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HpkeKeyState::{Active, Expired, Pending};

    const CFG: KeyRotatorConfig = KeyRotatorConfig {
        enabled: true,
        interval_secs: 1,
        propagation_delay_secs: 100,
        active_secs: 1000,
        expired_grace_secs: 500,
    };

    fn key(id: u8, state: HpkeKeyState, since: u64) -> HpkeKeyRecord {
        HpkeKeyRecord {
            config: HpkeKeypair::generate(HpkeConfigId(id)).config().clone(),
            state,
            since,
        }
    }

    fn suite() -> (u16, u16, u16) {
        suite_of(HpkeKeypair::generate(HpkeConfigId(0)).config())
    }

    #[test]
    fn keys_move_through_pending_active_expired_deleted() {
        let id = HpkeConfigId;
        // A young active key: nothing to do.
        assert!(plan(&[key(1, Active, 10)], 500, &CFG).is_empty());
        // An old active key: a successor is created pending, the old key stays active.
        assert_eq!(
            plan(&[key(1, Active, 10)], 1010, &CFG),
            [RotationStep::CreatePending(suite())]
        );
        // The successor is still propagating: nothing.
        assert!(plan(&[key(1, Active, 10), key(2, Pending, 1010)], 1100, &CFG).is_empty());
        // Propagated: it is activated and the old key expires.
        assert_eq!(
            plan(&[key(1, Active, 10), key(2, Pending, 1010)], 1110, &CFG),
            [
                RotationStep::Move(id(2), Pending, Active),
                RotationStep::Move(id(1), Active, Expired),
            ]
        );
        // Expired within its grace: kept; after it: deleted.
        let keys = [key(1, Expired, 1110), key(2, Active, 1110)];
        assert!(plan(&keys, 1609, &CFG).is_empty());
        assert_eq!(plan(&keys, 1610, &CFG), [RotationStep::Delete(id(1))]);
    }

    #[test]
    fn keys_without_a_time_only_start_their_clock() {
        let id = HpkeConfigId;
        assert_eq!(
            plan(&[key(1, Active, 0), key(3, Expired, 0)], 1_000_000, &CFG),
            [
                RotationStep::Stamp(id(1), Active),
                RotationStep::Stamp(id(3), Expired),
            ]
        );
        // No key at all: one is created.
        assert!(plan(&[], 5, &CFG).is_empty(), "no suite without a key");
        // Only expired keys: a pending one is created.
        assert_eq!(
            plan(&[key(3, Expired, 900)], 1000, &CFG),
            [RotationStep::CreatePending(suite())]
        );
    }

    #[test]
    fn timings_shorter_than_the_key_refresh_are_refused() {
        assert!(CFG.validate(10).is_ok());
        assert!(CFG.validate(101).is_err());
        let zero = KeyRotatorConfig {
            active_secs: 0,
            ..CFG
        };
        assert!(zero.validate(1).is_err());
    }
}
