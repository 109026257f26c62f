//! Group commit for SQLite's single writer.
//!
//! With `synchronous = FULL` every commit waits for the disk, and SQLite
//! has one writer: committing each request on its own makes the disk's
//! flush rate the ceiling of every write path, and the writer sits idle
//! while it waits. Here write transactions that arrive together share one
//! physical transaction and one commit:
//!
//! - The first [`Writer::begin`] takes the writer connection and opens the
//!   group (`BEGIN IMMEDIATE`). Each request's transaction is a savepoint
//!   inside it, one at a time: the writer is still alone, so a request sees
//!   every write before it, as it would after their commits.
//! - A request that commits leaves its savepoint open (the next member's,
//!   of the same name, nests inside it; the group's `COMMIT` ends them all)
//!   and waits: a `RELEASE` would be one more hand-off to the connection's
//!   thread while every other member waits for the writer. It is not answered before the group's
//!   `COMMIT` is on disk, so "accepted" still means durable, and nothing a
//!   reader can see (the read pool sees only committed data) was ever
//!   acknowledged ahead of its commit.
//! - A request that fails, or is dropped, rolls back to its savepoint (the
//!   innermost of that name: its own) and releases it: the group goes on
//!   without its writes, with every earlier member's kept.
//! - A member begun with [`Writer::begin_deferred`] opens its savepoint with
//!   its first write instead ([`Member::opening`]: the write's own
//!   multi-statement query starts with it), saving the hand-off of a
//!   `SAVEPOINT` of its own. What it reads before changes nothing, so a
//!   member that fails before writing has nothing to roll back. Its
//!   savepoint counts as open from the moment the statement is handed out:
//!   sqlx sends a query to the connection's thread on its first poll, and
//!   that thread runs the `SAVEPOINT` before anything else of it, so a
//!   rollback never reaches past the member's own savepoint. The name is
//!   the same for every member so that the first write's query text, and
//!   with it the prepared statement sqlx caches, is the same every time.
//!   Debug builds check that no write came first (`total_changes()`
//!   unchanged).
//! - The group commits when the first of its members to finish gets the
//!   writer again: everyone who queued for the writer before that member
//!   finished is in the group. A lone request commits at once, as before;
//!   under load a group holds about as many requests as were waiting.
//!   Finishing runs in a task of its own, so a caller that goes away while
//!   waiting cannot leave a group open.
//!
//! If the physical transaction fails (a failed `COMMIT`, or SQLite rolling
//! the whole transaction back on an I/O error), every member still waiting
//! gets the error: none of them was answered "accepted".

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use super::{Error, Result};

/// The savepoint each member's work runs in.
const SAVEPOINT: &str = "SAVEPOINT recount_tx";
/// A group's first statements, the first member's savepoint with them.
const OPEN: &str = "BEGIN IMMEDIATE; SAVEPOINT recount_tx";
/// Opens a group whose first member opens its savepoint later.
const BEGIN: &str = "BEGIN IMMEDIATE";
/// Undoes the innermost member's work and ends its savepoint.
const ROLLBACK_TO: &str = "ROLLBACK TO recount_tx; RELEASE recount_tx";

/// SQLite's writer: the one write connection, shared by groups of
/// transactions.
#[derive(Clone, Debug)]
pub struct Writer {
    slot: Arc<Mutex<Slot>>,
    pool: AnyPool,
}

/// The writer's state, behind its lock.
#[derive(Debug, Default)]
struct Slot {
    /// The write connection while a group is open; back in the pool
    /// between groups, for the statements that run outside a transaction.
    conn: Option<PoolConnection<Any>>,
    /// The open group.
    group: Option<Arc<Group>>,
    /// A member's savepoint is open and it has not committed: its work
    /// must be rolled back before the writer does anything else (its member
    /// failed or went away).
    dirty: bool,
}

/// One physical transaction and who waits for its commit.
#[derive(Debug)]
struct Group {
    /// `None` until the group ends; then how it ended.
    done: watch::Sender<Option<std::result::Result<(), Arc<str>>>>,
}

impl Group {
    fn new() -> Arc<Group> {
        Arc::new(Group {
            done: watch::channel(None).0,
        })
    }

    fn end(&self, outcome: std::result::Result<(), Arc<str>>) {
        self.done.send_replace(Some(outcome));
    }
}

/// A request's transaction inside a group.
#[derive(Debug)]
pub struct Member {
    /// The writer, held from begin to commit.
    guard: Option<OwnedMutexGuard<Slot>>,
    group: Arc<Group>,
    writer: Writer,
    /// Its savepoint is open.
    opened: bool,
    /// Debug builds: the connection's `total_changes()` when a deferred
    /// member began, which must not move before its savepoint opens.
    #[cfg(debug_assertions)]
    changes_at_begin: Option<i64>,
}

impl Writer {
    /// The writer over `pool`, a pool of exactly one connection.
    pub fn new(pool: AnyPool) -> Writer {
        Writer {
            slot: Arc::new(Mutex::new(Slot::default())),
            pool,
        }
    }

    /// Starts a transaction: joins the open group, or opens one, and opens
    /// the member's savepoint.
    pub async fn begin(&self) -> Result<Member> {
        self.join(true).await
    }

    /// [`Writer::begin`] whose savepoint opens with the member's first write
    /// ([`Member::opening`]); every write of the member must come after it.
    pub async fn begin_deferred(&self) -> Result<Member> {
        self.join(false).await
    }

    async fn join(&self, open_now: bool) -> Result<Member> {
        let mut slot = self.slot.clone().lock_owned().await;
        slot.clean().await;
        if slot.group.is_none() {
            let mut conn = self.pool.acquire().await?;
            if let Err(e) = conn.execute(if open_now { OPEN } else { BEGIN }).await {
                close(conn).await;
                return Err(e.into());
            }
            slot.conn = Some(conn);
            slot.group = Some(Group::new());
        } else if open_now {
            let opened = slot.conn_mut().execute(SAVEPOINT).await;
            if let Err(e) = opened {
                let e = Error::from(e);
                slot.abort(&e).await;
                return Err(e);
            }
        }
        slot.dirty = open_now;
        #[cfg(debug_assertions)]
        let changes_at_begin = match open_now {
            true => None,
            false => Some(
                sqlx::query_scalar("SELECT total_changes()")
                    .fetch_one(slot.conn_mut())
                    .await?,
            ),
        };
        let group = slot.group.clone().expect("a group is open");
        Ok(Member {
            guard: Some(slot),
            group,
            writer: self.clone(),
            opened: open_now,
            #[cfg(debug_assertions)]
            changes_at_begin,
        })
    }

    /// Ends `group` if it is still open when the writer is free: rolls back a
    /// failed member's savepoint, then commits. Returns how the group ended,
    /// whoever ended it.
    async fn finish(self, group: Arc<Group>) -> std::result::Result<(), Arc<str>> {
        let mut done = group.done.subscribe();
        let ended = async {
            match done.wait_for(Option::is_some).await {
                Ok(outcome) => Option::clone(&outcome),
                Err(_) => Some(Err("the writer went away".into())),
            }
        };
        tokio::select! {
            biased;
            Some(outcome) = ended => return outcome,
            mut slot = self.slot.clone().lock_owned() => {
                let open = slot.group.as_ref().is_some_and(|g| Arc::ptr_eq(g, &group));
                if open {
                    slot.commit().await;
                }
            }
        }
        let ended = Option::clone(&group.done.borrow());
        ended.unwrap_or_else(|| Err("the group ended without an outcome".into()))
    }
}

impl Slot {
    fn conn_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a group is open")
    }

    /// Rolls back the savepoint a failed or dropped member left open.
    async fn clean(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Err(e) = self.conn_mut().execute(ROLLBACK_TO).await {
            // SQLite may have rolled the whole transaction back (an I/O
            // error, a full disk): the group is lost.
            self.abort(&Error::from(e)).await;
        }
    }

    /// Commits the open group and tells its members.
    async fn commit(&mut self) {
        self.clean().await;
        let Some(group) = self.group.take() else {
            return;
        };
        let mut conn = self.conn.take().expect("an open group has the connection");
        match conn.execute("COMMIT").await {
            Ok(_) => {
                super::tally::committed();
                group.end(Ok(()));
            }
            Err(e) => {
                group.end(Err(format!("committing: {e}").into()));
                close(conn).await;
            }
        }
    }

    /// Gives up the open group after `error`: rolls it back and tells its
    /// members.
    async fn abort(&mut self, error: &Error) {
        self.dirty = false;
        if let Some(group) = self.group.take() {
            group.end(Err(format!("the shared transaction failed: {error}").into()));
        }
        if let Some(conn) = self.conn.take() {
            close(conn).await;
        }
    }
}

/// Returns the connection to the pool out of any transaction, or closes it
/// when it cannot say it is out of one.
async fn close(mut conn: PoolConnection<Any>) {
    if conn.execute("ROLLBACK").await.is_err() {
        // "no transaction is active" is an error too; a connection that
        // cannot run a statement is not worth keeping either way.
        let _ = conn.close().await;
    }
}

impl Member {
    /// For a member begun deferred whose savepoint is not open yet: the
    /// statement that opens it, to run first in the member's first write
    /// (a multi-statement query, sent right away), and from now on its work
    /// is rolled back if it fails. `None` once open.
    pub async fn opening(&mut self) -> Result<Option<&'static str>> {
        if self.opened {
            return Ok(None);
        }
        #[cfg(debug_assertions)]
        self.check_unwritten().await?;
        self.opened = true;
        let slot = self
            .guard
            .as_mut()
            .expect("a member holds the writer until it commits");
        slot.dirty = true;
        Ok(Some(SAVEPOINT))
    }

    /// Debug builds: a deferred member wrote nothing before its savepoint.
    #[cfg(debug_assertions)]
    async fn check_unwritten(&mut self) -> Result<()> {
        let Some(before) = self.changes_at_begin else {
            return Ok(());
        };
        let now: i64 = sqlx::query_scalar("SELECT total_changes()")
            .fetch_one(&mut **self)
            .await?;
        assert_eq!(
            now, before,
            "a deferred member wrote before opening its savepoint"
        );
        Ok(())
    }

    /// Commits: keeps the savepoint's work (the savepoint stays open until
    /// the group's `COMMIT`) and waits for the group's commit.
    pub async fn commit(mut self) -> Result<()> {
        #[cfg(debug_assertions)]
        if !self.opened {
            self.check_unwritten().await?;
        }
        let mut slot = self
            .guard
            .take()
            .expect("a member holds the writer until it commits");
        slot.dirty = false;
        drop(slot);
        let finish = tokio::spawn(self.writer.clone().finish(self.group.clone()));
        match finish.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Commit(e.to_string())),
            Err(e) => Err(Error::Commit(format!("it did not finish: {e}"))),
        }
    }
}

impl std::ops::Deref for Member {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.guard
            .as_ref()
            .and_then(|s| s.conn.as_deref())
            .expect("a member holds the writer until it commits")
    }
}

impl std::ops::DerefMut for Member {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.guard
            .as_mut()
            .and_then(|s| s.conn.as_deref_mut())
            .expect("a member holds the writer until it commits")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(slot) = self.guard.take() else {
            return;
        };
        // The savepoint stays marked dirty: whoever takes the writer next
        // rolls it back. Someone must, and must end the group, even if
        // nobody else comes: a finisher of its own does both.
        drop(slot);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.writer.clone().finish(self.group.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::{Connection, Executor};

    use crate::db::{tally, Db};

    /// A fresh SQLite database with one table, in a directory that lives as
    /// long as the guard.
    async fn fresh() -> (Db, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/group.db?mode=rwc", dir.path().display());
        let db = Db::connect(&url, 4).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(db.writer())
            .await
            .unwrap();
        (db, url, dir)
    }

    async fn ids(db: &Db) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(db.reader())
            .await
            .unwrap()
    }

    async fn insert(db: &Db, id: i64) -> crate::db::Result<()> {
        let mut tx = db.begin().await?;
        sqlx::query("INSERT INTO t (id) VALUES ($1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_transactions_all_land_in_fewer_commits() {
        let (db, _, _dir) = fresh().await;
        let n = 64;
        let start = Arc::new(tokio::sync::Barrier::new(n));
        let before = tally::commits();
        let mut set = tokio::task::JoinSet::new();
        for id in 0..n as i64 {
            let (db, start) = (db.clone(), start.clone());
            set.spawn(async move {
                start.wait().await;
                insert(&db, id).await
            });
        }
        while let Some(done) = set.join_next().await {
            done.unwrap().unwrap();
        }
        let commits = tally::commits() - before;
        // Every caller was answered after its rows were committed: the
        // read pool sees all of them.
        assert_eq!(ids(&db).await, (0..n as i64).collect::<Vec<_>>());
        assert!(
            (1..n as u64).contains(&commits),
            "{n} transactions took {commits} commits"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_member_is_rolled_back_alone() {
        let (db, _, _dir) = fresh().await;
        insert(&db, 1).await.unwrap();
        let mut set = tokio::task::JoinSet::new();
        for id in [2, 3, 1, 4, 5] {
            let db = db.clone();
            // The member inserting 1 again also writes 100 first: both go.
            set.spawn(async move {
                let mut tx = db.begin().await?;
                if id == 1 {
                    sqlx::query("INSERT INTO t (id) VALUES (100)")
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("INSERT INTO t (id) VALUES ($1)")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await.map(|()| id)
            });
        }
        let mut failed = 0;
        while let Some(done) = set.join_next().await {
            if done.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 1);
        assert_eq!(ids(&db).await, vec![1, 2, 3, 4, 5]);
    }

    /// What a group relies on of SQLite: a member's savepoint, left open
    /// when it commits, nests the next member's of the same name; rolling
    /// back to that name undoes only the innermost member; `COMMIT` keeps
    /// every savepoint still open. The writer keeps the savepoints' journal
    /// in memory (`temp_store = MEMORY`, 2).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nested_savepoints_roll_back_only_the_last_member() {
        let (db, _, _dir) = fresh().await;
        let mut conn = db.writer().acquire().await.unwrap();
        let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(temp_store, 2);
        conn.execute(super::OPEN).await.unwrap();
        conn.execute("INSERT INTO t (id) VALUES (1)").await.unwrap();
        conn.execute(super::SAVEPOINT).await.unwrap();
        conn.execute("INSERT INTO t (id) VALUES (2)").await.unwrap();
        conn.execute(super::ROLLBACK_TO).await.unwrap();
        conn.execute(super::SAVEPOINT).await.unwrap();
        conn.execute("INSERT INTO t (id) VALUES (3)").await.unwrap();
        conn.execute("COMMIT").await.unwrap();
        drop(conn);
        assert_eq!(ids(&db).await, vec![1, 3]);
    }

    /// A member begun deferred opens its savepoint with its first write:
    /// when that write fails part-way, its own rows are undone and the
    /// earlier member's stay; one that only read leaves nothing to undo; one
    /// that wrote commits with its group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deferred_member_opens_its_savepoint_with_its_first_write() {
        let (db, _, _dir) = fresh().await;
        insert(&db, 1).await.unwrap();

        let mut tx = db.begin_deferred().await.unwrap();
        let open = tx.opening().await.unwrap().expect("not open yet");
        assert_eq!(tx.opening().await.unwrap(), None, "opened once");
        // Its second row repeats the first member's id: the query fails
        // after the savepoint and the row 2 before it ran.
        let sql =
            format!("{open};\nINSERT INTO t (id) VALUES ($1);\nINSERT INTO t (id) VALUES ($2)");
        let failed =
            crate::db::batch::rows_of_each(&mut tx, sqlx::query(&sql).bind(2_i64).bind(1_i64))
                .await;
        assert!(failed.is_err());
        drop(tx);

        let mut reader = db.begin_deferred().await.unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        assert_eq!(seen, 1, "the failed member's row 2 was undone");
        reader.commit().await.unwrap();

        let mut tx = db.begin_deferred().await.unwrap();
        let open = tx.opening().await.unwrap().expect("not open yet");
        let sql = format!("{open};\nINSERT INTO t (id) VALUES ($1)");
        let each = crate::db::batch::rows_of_each(&mut tx, sqlx::query(&sql).bind(3_i64))
            .await
            .unwrap();
        assert_eq!(each.iter().map(|o| o.changed).collect::<Vec<_>>(), [0, 1]);
        tx.commit().await.unwrap();
        assert_eq!(ids(&db).await, vec![1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_member_leaves_nothing_and_frees_the_file() {
        let (db, url, _dir) = fresh().await;
        {
            let mut tx = db.begin().await.unwrap();
            sqlx::query("INSERT INTO t (id) VALUES (7)")
                .execute(&mut *tx)
                .await
                .unwrap();
            // Dropped without a commit, as when a client goes away.
        }
        // Another connection to the file can write: the group's write lock
        // was given up (busy_timeout waits for it; it fails if never).
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        other
            .execute("PRAGMA busy_timeout = 10000; INSERT INTO t (id) VALUES (8)")
            .await
            .unwrap();
        other.close().await.unwrap();
        insert(&db, 9).await.unwrap();
        assert_eq!(ids(&db).await, vec![8, 9]);
    }
}
