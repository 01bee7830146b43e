//! The aggregator's HPKE keys (DAP-18 §4.4.1): the configuration list it advertises, a cache
//! of the keys read from the datastore (other processes may rotate them), and the rotation the
//! control plane drives (pending → active → expired → deleted).

use super::Aggregator;
use crate::datastore::{DatastoreError, HpkeKeyState};
use crate::error::Error;
use cairn_dap_core::HpkeKeypair;
use cairn_dap_messages::{HpkeConfig, HpkeConfigId, HpkeConfigList};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The HPKE keys as last read from the datastore.
pub(super) struct KeyCache {
    keys: Arc<Vec<(HpkeKeypair, HpkeKeyState)>>,
    loaded: std::time::Instant,
}

impl KeyCache {
    /// A cache holding `keys`, read now.
    pub(super) fn new(keys: Vec<(HpkeKeypair, HpkeKeyState)>) -> KeyCache {
        KeyCache {
            keys: Arc::new(keys),
            loaded: std::time::Instant::now(),
        }
    }
}

/// The config ID for a new key: the lowest free one above the highest in `used`, wrapping
/// around (1 when none is used); `None` when all 256 are taken.
pub(super) fn next_config_id(used: &BTreeSet<u8>) -> Option<u8> {
    let start = used.last().map_or(1, |m| m.wrapping_add(1));
    (0..=255u8)
        .map(|i| start.wrapping_add(i))
        .find(|id| !used.contains(id))
}

/// Whether key `id` may move to `state`: it must exist, and the last active key may not
/// leave the active state (the aggregator would advertise nothing).
fn check_state_change(
    keys: &[(HpkeKeypair, HpkeKeyState)],
    id: HpkeConfigId,
    state: HpkeKeyState,
) -> Result<(), Error> {
    let Some((_, current)) = keys.iter().find(|(k, _)| k.config().id == id) else {
        return Err(Error::NotFound);
    };
    let active = keys
        .iter()
        .filter(|(_, s)| *s == HpkeKeyState::Active)
        .count();
    if *current == HpkeKeyState::Active && state != HpkeKeyState::Active && active == 1 {
        return Err(Error::BadRequest(
            "this is the only active HPKE key; activate another first".into(),
        ));
    }
    Ok(())
}

impl Aggregator {
    /// The `HpkeConfigList` served at `/hpke_config`: the active keys.
    pub async fn hpke_config_list(&self) -> Result<HpkeConfigList, Error> {
        Ok(HpkeConfigList(
            self.current_keys()
                .await?
                .iter()
                .filter(|(_, state)| *state == HpkeKeyState::Active)
                .map(|(k, _)| k.config().clone())
                .collect(),
        ))
    }

    /// The HPKE keys, re-read from the datastore when the cached copy is older than
    /// `hpke_key_refresh_secs`.
    pub(super) async fn current_keys(
        &self,
    ) -> Result<Arc<Vec<(HpkeKeypair, HpkeKeyState)>>, Error> {
        let max_age = std::time::Duration::from_secs(self.inner.params.hpke_key_refresh_secs);
        {
            let cache = self
                .inner
                .keys
                .read()
                .map_err(|_| Error::Internal("key cache poisoned".into()))?;
            if cache.loaded.elapsed() < max_age {
                return Ok(cache.keys.clone());
            }
        }
        self.reload_keys().await
    }

    pub(super) async fn reload_keys(&self) -> Result<Arc<Vec<(HpkeKeypair, HpkeKeyState)>>, Error> {
        let fresh = KeyCache::new(self.inner.datastore.get_hpke_keypairs().await?);
        let keys = fresh.keys.clone();
        let mut cache = self
            .inner
            .keys
            .write()
            .map_err(|_| Error::Internal("key cache poisoned".into()))?;
        *cache = fresh;
        Ok(keys)
    }

    /// Every HPKE key's config and state (control plane).
    pub async fn hpke_keys(&self) -> Result<Vec<(HpkeConfig, HpkeKeyState)>, Error> {
        Ok(self
            .reload_keys()
            .await?
            .iter()
            .map(|(k, s)| (k.config().clone(), *s))
            .collect())
    }

    /// Generates a new HPKE key in state `pending` under the lowest free config ID above the
    /// highest in use (wrapping around), and returns its config.
    pub async fn create_hpke_key(&self) -> Result<HpkeConfig, Error> {
        let keys = self.reload_keys().await?;
        let used: BTreeSet<u8> = keys.iter().map(|(k, _)| k.config().id.0).collect();
        let id = next_config_id(&used)
            .ok_or_else(|| Error::BadRequest("all 256 HPKE config IDs are in use".into()))?;
        let kp = HpkeKeypair::generate(HpkeConfigId(id));
        match self
            .inner
            .datastore
            .put_hpke_keypair(&kp, HpkeKeyState::Pending)
            .await
        {
            Err(DatastoreError::Conflict(_)) => {
                return Err(Error::BadRequest("HPKE config ID taken; retry".into()));
            }
            other => other?,
        }
        self.reload_keys().await?;
        Ok(kp.config().clone())
    }

    /// Moves key `id` to `state`. Refuses to leave the aggregator without an active key.
    pub async fn set_hpke_key_state(
        &self,
        id: HpkeConfigId,
        state: HpkeKeyState,
    ) -> Result<(), Error> {
        check_state_change(&self.reload_keys().await?, id, state)?;
        if !self.inner.datastore.set_hpke_key_state(id, state).await? {
            return Err(Error::NotFound);
        }
        self.reload_keys().await?;
        Ok(())
    }

    /// Deletes key `id`, which must be expired. Reports still sealed to it are then refused
    /// (`outdatedConfig` at upload, `hpke_decrypt_error` at the helper).
    pub async fn delete_hpke_key(&self, id: HpkeConfigId) -> Result<(), Error> {
        if !self.inner.datastore.delete_hpke_key(id).await? {
            return Err(Error::BadRequest(
                "no expired HPKE key with this ID (expire it first)".into(),
            ));
        }
        self.reload_keys().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_take_the_next_free_config_id_wrapping_around() {
        assert_eq!(next_config_id(&BTreeSet::new()), Some(1));
        assert_eq!(next_config_id(&BTreeSet::from([1, 2])), Some(3));
        assert_eq!(next_config_id(&BTreeSet::from([1, 7])), Some(8));
        assert_eq!(next_config_id(&BTreeSet::from([0, 255])), Some(1));
        assert_eq!(next_config_id(&BTreeSet::from([1, 255])), Some(0));
        assert_eq!(next_config_id(&(0..=255).collect()), None);
    }

    #[test]
    fn the_last_active_key_stays_active() {
        let key = |id| HpkeKeypair::generate(HpkeConfigId(id));
        let one_active = [
            (key(1), HpkeKeyState::Active),
            (key(2), HpkeKeyState::Pending),
        ];
        let id = HpkeConfigId;
        assert!(check_state_change(&one_active, id(2), HpkeKeyState::Active).is_ok());
        assert!(check_state_change(&one_active, id(1), HpkeKeyState::Active).is_ok());
        assert!(matches!(
            check_state_change(&one_active, id(1), HpkeKeyState::Expired),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            check_state_change(&one_active, id(3), HpkeKeyState::Active),
            Err(Error::NotFound)
        ));
        let two_active = [
            (key(1), HpkeKeyState::Active),
            (key(2), HpkeKeyState::Active),
        ];
        assert!(check_state_change(&two_active, id(1), HpkeKeyState::Expired).is_ok());
    }
}
