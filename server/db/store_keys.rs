//! Stores by the digest of their API key, kept in memory, so that a store's
//! requests (an event every few milliseconds per store, exits, receipts,
//! clips) do not each read its row to learn who is calling.
//!
//! Every change to a store row goes through a transaction that says so
//! ([`super::Tx::store_changed`]): at its commit the store is forgotten
//! here, and on PostgreSQL every other instance is told through the access
//! channel (`store:<id>`, [`super::users::AccessChange::Store`]), so a new
//! policy, catalog version or API key holds on every instance as soon as
//! the announcement arrives, a rotated key stops working with it. An
//! entry is trusted for at most [`StoreKeys::FRESH`] in any case, which
//! bounds an announcement lost with the listener's connection. A
//! generation count keeps a read that began before a change from putting
//! the row it read back after the change forgot it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::stores::{self, Store};
use super::{Db, Result};
use crate::auth::digest;

/// The cache, shared by every clone of a [`super::Db`].
#[derive(Clone, Debug, Default)]
pub struct StoreKeys(Arc<Mutex<Known>>);

#[derive(Debug, Default)]
struct Known {
    /// Moves on at every change: a read that began at another generation
    /// is not kept.
    generation: u64,
    /// By key digest: the store and when it was read.
    by_key: HashMap<String, (Store, Instant)>,
}

impl StoreKeys {
    /// How long a store read is trusted without asking the database.
    pub const FRESH: Duration = Duration::from_secs(10);
    /// Entries kept at most; the cache starts over when full.
    const CAPACITY: usize = 10_000;

    /// The store `api_key` belongs to, from memory or the database.
    pub async fn store(&self, db: &Db, api_key: &str) -> Result<Option<Store>> {
        let hash = digest(api_key);
        let generation = {
            let known = self.0.lock().expect("store key cache");
            if let Some((store, seen)) = known.by_key.get(&hash) {
                if seen.elapsed() < Self::FRESH {
                    return Ok(Some(store.clone()));
                }
            }
            known.generation
        };
        let found = stores::by_key_hash(db, &hash).await?;
        let mut known = self.0.lock().expect("store key cache");
        match &found {
            Some(store) if known.generation == generation => {
                if known.by_key.len() >= Self::CAPACITY {
                    known.by_key.clear();
                }
                known.by_key.insert(hash, (store.clone(), Instant::now()));
            }
            _ => {
                known.by_key.remove(&hash);
            }
        }
        Ok(found)
    }

    /// Forgets a store (its row changed): every key of it.
    pub fn forget(&self, store_id: &str) {
        let mut known = self.0.lock().expect("store key cache");
        known.generation += 1;
        known.by_key.retain(|_, (store, _)| store.id != store_id);
    }

    /// Forgets every store (announcements may have been missed).
    pub fn clear(&self) {
        let mut known = self.0.lock().expect("store key cache");
        known.generation += 1;
        known.by_key.clear();
    }
}
