//! Catalog rows kept in memory per store and catalog version, so that
//! showing a task's candidates and checking a verdict's sku read no
//! products from the database once an instance has seen them.
//!
//! Every catalog upload gives the store a new `catalog_version` (a fresh id,
//! never reused, even by an upload whose transaction failed). The queries
//! that need products already read the task's store row; they read its
//! version with it, and the cache answers only for that version. Products
//! are kept per sku as they are asked for, absent ones too (a sku not in
//! the catalog stays absent until the next upload changes the version).
//! Another instance's upload changes the version every instance reads, so
//! nothing stale is served past the statement that reads the new version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::AnyConnection;

use super::products::{self, Product};
use super::Result;

/// Most skus kept for one store; past it the store's entry starts over.
const MAX_SKUS_PER_STORE: usize = 50_000;

/// The cache, shared by every clone of a [`super::Db`].
#[derive(Clone, Debug, Default)]
pub struct Catalogs(Arc<Mutex<HashMap<String, Known>>>);

/// What is known of one store's catalog at one version.
#[derive(Debug)]
struct Known {
    version: String,
    /// `None`: not in the catalog.
    skus: HashMap<String, Option<Product>>,
}

impl Catalogs {
    /// The products among `skus` in the catalog of `store_id` at `version`:
    /// from memory where known, the rest read on `conn` and kept.
    pub async fn find(
        &self,
        conn: &mut AnyConnection,
        store_id: &str,
        version: &str,
        skus: &[&str],
    ) -> Result<HashMap<String, Product>> {
        let mut found = HashMap::with_capacity(skus.len());
        let mut missing = Vec::new();
        {
            let stores = self.0.lock().expect("catalog cache lock");
            match stores.get(store_id).filter(|k| k.version == version) {
                Some(known) => {
                    for sku in skus {
                        match known.skus.get(*sku) {
                            Some(Some(p)) => {
                                found.insert(p.sku.clone(), p.clone());
                            }
                            Some(None) => {}
                            None => missing.push(*sku),
                        }
                    }
                }
                None => missing.extend_from_slice(skus),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let read = products::find(conn, store_id, &missing).await?;
        {
            let mut stores = self.0.lock().expect("catalog cache lock");
            let known = stores.entry(store_id.to_string()).or_insert_with(|| Known {
                version: version.to_string(),
                skus: HashMap::new(),
            });
            if known.version != version || known.skus.len() + missing.len() > MAX_SKUS_PER_STORE {
                known.version = version.to_string();
                known.skus.clear();
            }
            for sku in &missing {
                known
                    .skus
                    .insert((*sku).to_string(), read.get(*sku).cloned());
            }
        }
        found.extend(read);
        Ok(found)
    }
}
