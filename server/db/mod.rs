//! The one query layer for SQLite and PostgreSQL.
//!
//! Queries are written once, with `$n` placeholders that both engines accept,
//! through sqlx's `Any` driver. Columns use portable types only: `TEXT`,
//! 64-bit integers (epoch milliseconds, cents, 0/1 flags) and doubles.
//! Where the dialects differ — row locking — the difference sits in one
//! small place, [`Backend`]'s `skip_locked`, `for_update` and `for_share`,
//! and every transaction carries its backend ([`Tx::backend`]), so code
//! holding a transaction never needs the pools beside it to learn the
//! dialect.
//!
//! SQLite allows one writer at a time. Instead of letting connections race for
//! the write lock (and fail with `SQLITE_BUSY` when a read transaction tries to
//! upgrade), every write goes through a pool of exactly one connection, and
//! reads use a separate read-only pool. PostgreSQL uses one pool for both.
//! SQLite runs with `synchronous = FULL`: a commit is on disk before the
//! client hears "accepted", even across a power loss. Write transactions
//! that arrive together share one SQLite commit ([`group`]), so the disk's
//! flush rate is not the writer's ceiling.

pub mod audit;
pub mod batch;
pub mod bulk;
pub mod calibration;
pub mod catalog_cache;
pub mod clips;
pub mod dashboard;
pub mod disputes;
mod error;
pub mod events;
pub mod export;
pub mod gold;
mod group;
pub mod history;
pub mod jobs;
pub mod products;
pub mod ready;
pub mod receipts;
pub mod retention;
pub mod rollup;
pub mod rollup_cache;
pub mod store_keys;
pub mod stores;
pub mod tally;
pub mod tasks;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

use crate::domain::scope::Scope;

pub use error::{Error, Result};

/// Which engine a [`Db`] talks to, and so which SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (one instance).
    Sqlite,
    /// PostgreSQL (shared by several instances).
    Postgres,
}

impl Backend {
    /// Row locking for "take the next free row" queries: PostgreSQL skips
    /// rows other transactions hold; SQLite needs nothing, its writer is
    /// alone.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// The engine a connection talks to.
    pub fn of(conn: &sqlx::AnyConnection) -> Backend {
        match conn.backend_name() {
            "SQLite" => Backend::Sqlite,
            _ => Backend::Postgres,
        }
    }

    /// Whether the engine has row locks to take: PostgreSQL runs
    /// transactions side by side; SQLite's writer is alone, so a statement
    /// sent only to lock a row is not sent there at all.
    pub fn locks_rows(self) -> bool {
        self == Backend::Postgres
    }

    /// Locks the rows a transaction reads before it changes them
    /// (PostgreSQL); SQLite's single writer already excludes every other
    /// writer.
    pub fn for_update(self) -> &'static str {
        match self {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// [`Backend::for_update`] for the rows of one table of a join,
    /// `alias`: PostgreSQL would otherwise lock the joined rows too.
    pub fn for_update_of(self, alias: &str) -> String {
        match self {
            Backend::Postgres => format!(" FOR UPDATE OF {alias}"),
            Backend::Sqlite => String::new(),
        }
    }

    /// Keeps the rows a transaction reads from being changed until it ends
    /// (PostgreSQL), without blocking inserts that reference them; SQLite's
    /// single writer already excludes every other writer.
    pub fn for_share(self) -> &'static str {
        match self {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        }
    }
}

/// A transaction, with the dialect of its database. It dereferences to the
/// connection, so queries run on `&mut *tx` (or `&mut **tx` through a
/// `&mut Tx`).
pub struct Tx {
    conn: TxConn,
    backend: Backend,
    /// Told when this transaction's commit made tasks ready.
    ready: ready::Ready,
    made_ready: bool,
    /// Told of the stores whose rows this transaction changed.
    store_keys: store_keys::StoreKeys,
    stores_changed: Vec<String>,
}

/// Where a transaction runs.
enum TxConn {
    /// A transaction of its own on a pooled connection: PostgreSQL, and
    /// SQLite's snapshot reads.
    Own(Transaction<'static, Any>),
    /// A member of a group of SQLite write transactions that commit
    /// together ([`group`]).
    Grouped(group::Member),
}

impl Tx {
    /// The engine this transaction runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For a transaction begun deferred ([`Db::begin_deferred`]) on SQLite
    /// whose savepoint is not open yet: the statement that opens it, which
    /// the caller's first write must run first, in the same multi-statement
    /// query ([`batch`]). `None` otherwise (PostgreSQL; already open).
    pub async fn opening(&mut self) -> Result<Option<&'static str>> {
        match &mut self.conn {
            TxConn::Own(_) => Ok(None),
            TxConn::Grouped(member) => member.opening().await,
        }
    }

    /// Notes that this transaction makes tasks ready: its commit wakes the
    /// claims waiting for one, on every instance ([`ready`]).
    pub fn tasks_ready(&mut self) {
        self.made_ready = true;
    }

    /// Notes that this transaction changes a store's row: its commit makes
    /// every instance forget the store's cached row ([`store_keys`]).
    pub fn store_changed(&mut self, store_id: &str) {
        self.stores_changed.push(store_id.to_string());
    }

    /// Commits; returns once the writes are durable.
    pub async fn commit(mut self) -> Result<()> {
        if self.backend == Backend::Postgres {
            // Delivered with the commit, and only if it commits.
            if self.made_ready {
                sqlx::query("SELECT pg_notify($1, '')")
                    .bind(ready::READY_CHANNEL)
                    .execute(&mut *self)
                    .await?;
            }
            for id in self.stores_changed.clone() {
                let change = users::AccessChange::Store(id);
                users::announce(&mut self, Backend::Postgres, &change).await?;
            }
        }
        let (ready, made_ready) = (self.ready.clone(), self.made_ready);
        let (store_keys, stores_changed) = (
            self.store_keys.clone(),
            std::mem::take(&mut self.stores_changed),
        );
        match self.conn {
            TxConn::Own(conn) => {
                conn.commit().await?;
                tally::committed();
            }
            // The group counts its one commit.
            TxConn::Grouped(member) => member.commit().await?,
        }
        if made_ready {
            ready.bump();
        }
        for id in &stores_changed {
            store_keys.forget(id);
        }
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        match &self.conn {
            TxConn::Own(conn) => conn,
            TxConn::Grouped(member) => member,
        }
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.conn {
            TxConn::Own(conn) => conn,
            TxConn::Grouped(member) => member,
        }
    }
}

/// Connection pools to the database.
#[derive(Clone, Debug)]
pub struct Db {
    /// The engine.
    pub backend: Backend,
    read: AnyPool,
    write: AnyPool,
    /// SQLite's group-committing writer over `write`.
    grouped: Option<group::Writer>,
    /// The dashboard's settled rollup buckets, read once
    /// ([`rollup_cache`]).
    pub settled: rollup_cache::Settled,
    /// Catalog rows already read, per store and catalog version
    /// ([`catalog_cache`]).
    pub catalogs: catalog_cache::Catalogs,
    /// Where a PostgreSQL database is, for a connection of its own that
    /// listens for notifications ([`ready::listener`]).
    listen_url: Option<ListenUrl>,
    /// Moves when tasks may have become ready ([`ready`]).
    pub ready: ready::Ready,
    /// Stores by API key ([`store_keys`]).
    pub store_keys: store_keys::StoreKeys,
}

/// A database URL kept for listening: its password never printed.
#[derive(Clone)]
struct ListenUrl(std::sync::Arc<str>);

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::config::redact_url(&self.0))
    }
}

/// The writer's settings. `temp_store = MEMORY` keeps the savepoint
/// journal of group commit's members ([`group`]) in memory: on a file it
/// took most of the writer's `pwrite` calls (about 22 per claim+verdict
/// pair, four times the log's), though nothing in it ever needs the disk.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";

/// How long a pooled connection may sit idle and still be handed out
/// without a ping. sqlx pings every connection it hands out by default: on
/// PostgreSQL a round trip, on SQLite a hand-off to the connection's
/// thread, before every request's first statement (a quarter of a claim's
/// round trips, half of a plain event's). It also pings every connection
/// given back to the pool (sqlx 0.8 always does), after the request has
/// its answer, and drops one that does not answer: a connection in steady
/// use was checked moments ago. One idle for longer, which a restarted
/// database or a dropped network path may have closed meanwhile, is still
/// pinged before use and replaced if it does not answer.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pool settings shared by every pool: `max` connections, each pinged
/// before use only after [`PING_WHEN_IDLE_FOR`] idle.
fn pool_options(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("database URL must start with sqlite:// or postgres://");
        };
        let options = AnyConnectOptions::from_str(url).context("parsing the database URL")?;
        match backend {
            Backend::Sqlite => {
                if let Some(dir) = sqlite_parent_dir(url) {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let write = pool_options(1)
                    .min_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await
                    .context("opening the SQLite database")?;
                let read = pool_options(max_connections.max(2))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .context("opening the SQLite database for reading")?;
                Ok(Db {
                    backend,
                    read,
                    grouped: Some(group::Writer::new(write.clone())),
                    write,
                    settled: rollup_cache::Settled::default(),
                    catalogs: catalog_cache::Catalogs::default(),
                    listen_url: None,
                    ready: ready::Ready::default(),
                    store_keys: store_keys::StoreKeys::default(),
                })
            }
            Backend::Postgres => {
                let pool = pool_options(max_connections)
                    .connect_with(options)
                    .await
                    .context("connecting to PostgreSQL")?;
                Ok(Db {
                    backend,
                    read: pool.clone(),
                    write: pool,
                    grouped: None,
                    settled: rollup_cache::Settled::default(),
                    catalogs: catalog_cache::Catalogs::default(),
                    listen_url: Some(ListenUrl(url.into())),
                    ready: ready::Ready::default(),
                    store_keys: store_keys::StoreKeys::default(),
                })
            }
        }
    }

    /// Applies the migrations of the engine in use.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.write).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.write).await,
        }
        .context("applying database migrations")
    }

    /// The URL a listening connection opens: PostgreSQL only (SQLite has
    /// no notifications).
    pub fn listen_url(&self) -> Option<&str> {
        self.listen_url.as_ref().map(|u| &*u.0)
    }

    /// Pool for reads that need no write lock.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Pool for single writes outside a transaction.
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Starts a write transaction. On SQLite it joins the writer's open
    /// group, if there is one ([`group`]): its commit is shared.
    pub async fn begin(&self) -> Result<Tx> {
        self.begin_write(true).await
    }

    /// [`Db::begin`] for a transaction whose every write comes through
    /// [`batch`] or another multi-statement query that runs
    /// [`Tx::opening`] first: on SQLite its savepoint in the group
    /// ([`group`]) opens with that first write, one hand-off to the writer
    /// fewer. Reads before it see the group's writes as usual.
    pub async fn begin_deferred(&self) -> Result<Tx> {
        self.begin_write(false).await
    }

    /// A write transaction; on SQLite a member of the writer's group whose
    /// savepoint opens now or, unless `open_now`, with its first write.
    async fn begin_write(&self, open_now: bool) -> Result<Tx> {
        let conn = match &self.grouped {
            Some(writer) if open_now => TxConn::Grouped(writer.begin().await?),
            Some(writer) => TxConn::Grouped(writer.begin_deferred().await?),
            None => TxConn::Own(self.write.begin().await?),
        };
        Ok(self.tx(conn))
    }

    /// `conn`'s transaction, not yet told of ready tasks.
    fn tx(&self, conn: TxConn) -> Tx {
        Tx {
            conn,
            backend: self.backend,
            ready: self.ready.clone(),
            made_ready: false,
            store_keys: self.store_keys.clone(),
            stores_changed: Vec::new(),
        }
    }

    /// Starts a write transaction that holds `user_id`'s row lock until it
    /// ends: one user's concurrent claims queue behind each other, so the
    /// lease limit holds. On PostgreSQL the `BEGIN` and the lock go as one
    /// simple query, one round trip; SQLite's writer is alone already, and
    /// there the transaction is begun deferred ([`Db::begin_deferred`]) when
    /// `deferred`.
    pub async fn begin_as(&self, user_id: &str, deferred: bool) -> Result<Tx> {
        if !self.backend.locks_rows() {
            return self.begin_write(!deferred).await;
        }
        let lock = users::begin_locked(user_id);
        // sqlx logs no `BEGIN`, so neither this lock: the statement count
        // of `recount bench` hears of it here.
        tracing::debug!(target: "sqlx::query", summary = "lock the user's row", "sent with BEGIN");
        let conn = self.write.begin_with(lock).await?;
        Ok(self.tx(TxConn::Own(conn)))
    }

    /// Starts a read-only transaction in which every statement sees the same
    /// snapshot of the database: on PostgreSQL a `REPEATABLE READ`
    /// transaction (its default, `READ COMMITTED`, takes a new snapshot per
    /// statement); on SQLite a read transaction of the read pool, whose
    /// snapshot (WAL) is fixed by its first read. The dashboard needs it to
    /// read the rollup watermark, the rollup rows and the raw rows after the
    /// watermark as of one instant.
    pub async fn begin_snapshot(&self) -> Result<Tx> {
        let mut conn = self.read.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *conn)
                .await?;
        }
        Ok(self.tx(TxConn::Own(conn)))
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// `s` as an SQL string literal, for the rare statement that cannot take
/// parameters (a simple query). Quotes are doubled; with
/// `standard_conforming_strings` (PostgreSQL's default since 9.1) nothing
/// else in a literal is special.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A new UUIDv7 id: time-ordered, so inserts append to indexes.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Most values bound in one `IN (…)` list: longer lists go in chunks, well
/// under every engine's bind-parameter limit.
pub const IN_LIST_MAX: usize = 500;

/// `$first, $first+1, …` for an `IN (…)` list of `n` values.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A condition keeping the rows of a scope's stores, for a query's `WHERE`.
#[derive(Debug, Clone)]
pub struct InScope<'a> {
    /// ` AND column IN ($first, …)`; empty for every store; a condition
    /// nothing meets for a scope of no store.
    pub sql: String,
    /// The store ids to bind, in order, from `$first`.
    pub ids: Vec<&'a str>,
}

/// The condition on `column` keeping the stores of `scope`.
pub fn in_scope<'a>(column: &str, scope: &'a Scope, first: usize) -> InScope<'a> {
    match scope.stores() {
        None => InScope {
            sql: String::new(),
            ids: Vec::new(),
        },
        Some(s) if s.is_empty() => InScope {
            sql: " AND 1 = 0".to_string(),
            ids: Vec::new(),
        },
        Some(s) => InScope {
            sql: format!(" AND {column} IN ({})", placeholders(first, s.len())),
            ids: s.iter().map(String::as_str).collect(),
        },
    }
}

impl<'a> InScope<'a> {
    /// `query` with the scope's store ids bound.
    pub fn bind<'q, O>(
        &self,
        mut query: sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>
    where
        'a: 'q,
    {
        for id in &self.ids {
            query = query.bind(*id);
        }
        query
    }

    /// `query` with the scope's store ids bound.
    pub fn bind_rows<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>
    where
        'a: 'q,
    {
        for id in &self.ids {
            query = query.bind(*id);
        }
        query
    }
}

/// `'a', 'b', …` for an `IN (…)` list of lifecycle states: their column
/// values are constants of [`crate::domain::lifecycle`], never user input,
/// and written into the SQL text so partial indexes on a state still apply.
pub fn sql_list<T: std::fmt::Display>(states: &[T]) -> String {
    states
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a lifecycle state column; a value no state has is a decode error.
pub fn state<T>(value: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| Error::Data(format!("unknown state {value:?}")))
}

/// Reads a review task's status column.
pub fn task_status(value: &str) -> Result<crate::domain::lifecycle::TaskStatus> {
    state(value, crate::domain::lifecycle::TaskStatus::parse)
}

/// 0/1 flag columns.
pub fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Stands for NULL in a parameter of a column holding non-negative doubles;
/// such a parameter is written `NULLIF($n, -1.0)` and bound with
/// [`non_negative_or_null`].
///
/// Why not bind `Option<f64>`: sqlx 0.8's `Any` driver sends a NULL `f64` to
/// PostgreSQL as a `float4` (it swaps its Real and Double kinds for NULLs).
/// A pooled connection whose cached statement first saw the NULL then
/// refuses every later value ("incorrect binary data format in bind
/// parameter"), which made ingest fail at random depending on which
/// connection served the request. A sentinel keeps the parameter a `float8`.
pub const NULL_F64: f64 = -1.0;

/// The value to bind for an optional non-negative double (see [`NULL_F64`]).
pub fn non_negative_or_null(v: Option<f64>) -> f64 {
    debug_assert!(v.is_none_or(|x| x >= 0.0), "{v:?} is negative");
    v.unwrap_or(NULL_F64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists_number_from_the_given_start() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn state_lists_quote_each_column_value() {
        use crate::domain::lifecycle::TaskStatus;
        assert_eq!(
            sql_list(&TaskStatus::OPEN),
            "'waiting', 'ready', 'leased', 'escalated'"
        );
        assert_eq!(task_status("leased").unwrap(), TaskStatus::Leased);
        assert!(task_status("lost").is_err());
    }

    #[test]
    fn a_literal_doubles_its_quotes() {
        assert_eq!(literal("0192-ab"), "'0192-ab'");
        assert_eq!(
            literal("o'brien'); DROP TABLE users; --"),
            "'o''brien''); DROP TABLE users; --'"
        );
        assert_eq!(
            users::begin_locked("it's"),
            "BEGIN; SELECT id FROM users WHERE id = 'it''s' FOR UPDATE"
        );
    }

    #[test]
    fn sqlite_directory_is_taken_from_the_url() {
        assert_eq!(
            sqlite_parent_dir("sqlite://data/recount.db?mode=rwc"),
            Some("data".into())
        );
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
    }
}
