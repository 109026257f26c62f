//! The store's catalog and its price history.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{placeholders, Db, Result, Tx};

/// A product row of a store's catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Stock-keeping unit, unique per store.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Product image.
    pub image_url: Option<String>,
}

/// Inserts or updates products. A changed price opens a new price period at
/// `now`, so receipts keep charging the price that was valid when each event
/// happened.
pub async fn upsert(tx: &mut Tx, store_id: &str, products: &[Product], now: i64) -> Result<()> {
    for p in products {
        let old: Option<i64> =
            sqlx::query_scalar("SELECT price_cents FROM products WHERE store_id = $1 AND sku = $2")
                .bind(store_id)
                .bind(&p.sku)
                .fetch_optional(&mut **tx)
                .await?;
        sqlx::query(
            "INSERT INTO products (store_id, sku, name, price_cents, image_url, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (store_id, sku) DO UPDATE SET name = excluded.name, \
             price_cents = excluded.price_cents, image_url = excluded.image_url, \
             updated_at = excluded.updated_at",
        )
        .bind(store_id)
        .bind(&p.sku)
        .bind(&p.name)
        .bind(p.price_cents)
        .bind(&p.image_url)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if old != Some(p.price_cents) {
            // The first price of a product is valid from the beginning of time:
            // events may be sent before their catalog entry was.
            let valid_from = if old.is_none() { i64::MIN } else { now };
            sqlx::query(
                "INSERT INTO product_prices (store_id, sku, valid_from, price_cents) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (store_id, sku, valid_from) DO UPDATE SET price_cents = excluded.price_cents",
            )
            .bind(store_id)
            .bind(&p.sku)
            .bind(valid_from)
            .bind(p.price_cents)
            .execute(&mut **tx)
            .await?;
        }
    }
    // A new version, never an old one again (see `catalog_cache`).
    tx.store_changed(store_id);
    sqlx::query("UPDATE stores SET catalog_version = $1 WHERE id = $2")
        .bind(super::new_id())
        .bind(store_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The catalog of a store, by sku.
pub async fn list(db: &Db, store_id: &str) -> Result<Vec<Product>> {
    let rows = sqlx::query(
        "SELECT sku, name, price_cents, image_url FROM products WHERE store_id = $1 ORDER BY sku",
    )
    .bind(store_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Products of a store whose name or sku contains every word of `query`
/// (case-insensitive), names starting with the first word first.
pub async fn search(
    conn: &mut AnyConnection,
    store_id: &str,
    query: &str,
    limit: i64,
) -> Result<Vec<Product>> {
    let words: Vec<String> = query
        .split_whitespace()
        .take(5)
        .map(|w| {
            // LIKE wildcards typed by a labeler are matched literally.
            let escaped = w
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        })
        .collect();
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let mut sql =
        String::from("SELECT sku, name, price_cents, image_url FROM products WHERE store_id = $1");
    for i in 0..words.len() {
        let n = i + 2;
        sql.push_str(&format!(
            " AND (LOWER(name) LIKE ${n} ESCAPE '\\' OR LOWER(sku) LIKE ${n} ESCAPE '\\')"
        ));
    }
    let prefix_param = words.len() + 2;
    sql.push_str(&format!(
        " ORDER BY CASE WHEN LOWER(name) LIKE ${prefix_param} ESCAPE '\\' THEN 0 ELSE 1 END, name, sku LIMIT {}",
        limit.clamp(1, 100)
    ));
    let mut q = sqlx::query(&sql).bind(store_id);
    for w in &words {
        q = q.bind(w.clone());
    }
    q = q.bind(first[1..].to_string());
    let rows = q.fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Product> {
    Ok(Product {
        sku: r.try_get("sku")?,
        name: r.try_get("name")?,
        price_cents: r.try_get("price_cents")?,
        image_url: r.try_get("image_url")?,
    })
}

/// The products among `skus` that exist in the store's catalog.
pub async fn find(
    conn: &mut AnyConnection,
    store_id: &str,
    skus: &[&str],
) -> Result<HashMap<String, Product>> {
    let mut found = HashMap::with_capacity(skus.len());
    for chunk in skus.chunks(super::IN_LIST_MAX) {
        let sql = format!(
            "SELECT sku, name, price_cents, image_url FROM products WHERE store_id = $1 AND sku IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(store_id);
        for sku in chunk {
            q = q.bind(*sku);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let p = from_row(&r)?;
            found.insert(p.sku.clone(), p);
        }
    }
    Ok(found)
}

/// The unit price of a sku at a moment.
pub async fn price_at(
    conn: &mut AnyConnection,
    store_id: &str,
    sku: &str,
    at: i64,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT price_cents FROM product_prices WHERE store_id = $1 AND sku = $2 \
         AND valid_from <= $3 ORDER BY valid_from DESC LIMIT 1",
    )
    .bind(store_id)
    .bind(sku)
    .bind(at)
    .fetch_optional(conn)
    .await?)
}
