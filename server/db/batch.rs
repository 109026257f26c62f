//! Write statements sent together: a request whose writes are all known
//! once it has read and decided (a verdict: the verdict row, its lease's
//! end, the task, the event, the session) sends them as one.
//!
//! - PostgreSQL: one statement of data-modifying `WITH` parts, one round
//!   trip. Every part sees the database as it was before the statement, so
//!   the parts of a batch must change different rows and none may need
//!   another's change (what [`Batch::push`] callers keep to).
//! - SQLite: one multi-statement query, run in order by the connection's
//!   thread in one hand-off. sqlx's SQLite driver hands every query to that
//!   thread and waits for its answer; with one writer, those hand-offs,
//!   not the statements, were most of a write transaction's time.
//!   (sqlx 0.8 marks multi-statement queries as deprecated; the lock file
//!   pins the driver and `tests` below fail if it stops running them.)
//!
//! Each statement numbers its own parameters from `$1`; a batch renumbers
//! them. A statement may say how many rows it must change
//! ([`Stmt::expect_rows`]): fewer or more fails the whole request.
//!
//! On PostgreSQL a batch may also run alone, outside any transaction
//! ([`Batch::run_alone`]): one statement is atomic by itself, so a request
//! whose every write is known before it writes needs no `BEGIN` and no
//! `COMMIT`, one round trip in all. Its expected counts are then checked
//! by the statement itself (`recount_expect`, migration 0023), which
//! aborts whole when one differs.

use sqlx::any::AnyRow;
use sqlx::{Either, Row};

use sqlx::AnyConnection;

use super::bulk::Val;
use super::{ready, tally, Backend, Db, Error, Result, Tx};

/// The SQLSTATE with which `recount_expect` (PostgreSQL migration 0023)
/// aborts a statement whose part changed other rows than it expected.
pub const EXPECTATION_FAILED: &str = "RC001";

/// One write statement with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    sql: String,
    binds: Vec<Val>,
    /// Rows it must change, and what it means when it does not.
    expect: Option<(u64, String)>,
    /// Changing a row makes a task ready ([`Tx::tasks_ready`]).
    makes_ready: bool,
}

impl Stmt {
    /// A statement whose parameters are `$1`, `$2`, … in bind order.
    pub fn new(sql: impl Into<String>) -> Stmt {
        Stmt {
            sql: sql.into(),
            binds: Vec::new(),
            expect: None,
            makes_ready: false,
        }
    }

    /// Binds the next parameter.
    pub fn bind(mut self, value: impl Into<Val>) -> Stmt {
        self.binds.push(value.into());
        self
    }

    /// The statement must change exactly `n` rows; `otherwise` is the error
    /// when it does not (a broken invariant, not a user's mistake).
    pub fn expect_rows(mut self, n: u64, otherwise: impl Into<String>) -> Stmt {
        self.expect = Some((n, otherwise.into()));
        self
    }

    /// Any row it changes makes a task ready: its transaction's commit
    /// wakes waiting claims.
    pub fn makes_ready(mut self) -> Stmt {
        self.makes_ready = true;
        self
    }

    /// Runs it alone; the rows it changed.
    pub async fn run(self, tx: &mut Tx) -> Result<u64> {
        let mut batch = Batch::default();
        batch.push(self);
        Ok(batch.run(tx).await?[0])
    }

    /// Checks the count it changed and marks `tx` if it made tasks ready.
    fn settle(&self, tx: &mut Tx, changed: u64) -> Result<()> {
        if let Some((n, otherwise)) = &self.expect {
            if changed != *n {
                return Err(Error::Data(format!("{otherwise} ({changed} rows changed)")));
            }
        }
        if self.makes_ready && changed > 0 {
            tx.tasks_ready();
        }
        Ok(())
    }
}

/// Statements to run together, in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    stmts: Vec<Stmt>,
}

impl Batch {
    /// Adds a statement. On PostgreSQL it must not change a row another
    /// statement of the batch changes, nor read one another changes.
    pub fn push(&mut self, stmt: Stmt) {
        self.stmts.push(stmt);
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }

    /// Bind parameters of all its statements.
    pub fn params(&self) -> usize {
        self.stmts.iter().map(|s| s.binds.len()).sum()
    }

    /// Runs every statement as one statement of its own on `conn`, outside
    /// any transaction, on PostgreSQL: written and durable all together, or
    /// not at all. Each statement's expected row count is checked inside
    /// the statement; when one differs, the statement is aborted and
    /// nothing is written: `None`, for the caller to take a path that reads
    /// first. Otherwise the rows each changed, in order; tasks it made
    /// ready are announced with it ([`ready`]).
    pub async fn run_alone(self, db: &Db, conn: &mut AnyConnection) -> Result<Option<Vec<u64>>> {
        if Backend::of(conn) != Backend::Postgres || self.stmts.is_empty() {
            return Err(Error::Data(
                "a batch runs alone only on PostgreSQL, with a statement".into(),
            ));
        }
        let sql = self.sql_alone();
        let mut query = sqlx::query(&sql);
        for stmt in &self.stmts {
            for value in &stmt.binds {
                query = value.bind_to(query);
            }
        }
        let row = match whole_answer(query, conn).await {
            Ok(row) => row,
            Err(Error::Query(sqlx::Error::Database(e)))
                if e.code().as_deref() == Some(EXPECTATION_FAILED) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        tally::committed();
        // Column 0 is the check; the counts follow.
        let changed = (0..self.stmts.len())
            .map(|i| Ok(row.try_get::<i64, _>(i + 1)? as u64))
            .collect::<Result<Vec<u64>>>()?;
        if self
            .stmts
            .iter()
            .zip(&changed)
            .any(|(s, n)| s.makes_ready && *n > 0)
        {
            db.ready.bump();
        }
        Ok(Some(changed))
    }

    /// The statement of [`Batch::run_alone`]: the parts, the check of every
    /// expected count, the count of each part, and the announcement of
    /// ready tasks when a part that makes them changed a row.
    fn sql_alone(&self) -> String {
        let with = self.with_parts();
        let count = |i: usize| format!("(SELECT COUNT(*) FROM b{i})");
        let checks: Vec<String> = self
            .stmts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.expect
                    .as_ref()
                    .map(|(n, _)| format!("{} = {n}", count(i)))
            })
            .collect();
        let check = if checks.is_empty() {
            "true".to_string()
        } else {
            checks.join(" AND ")
        };
        let mut columns = vec![format!("recount_expect({check})")];
        columns.extend((0..self.stmts.len()).map(count));
        let readying: Vec<String> = self
            .stmts
            .iter()
            .enumerate()
            .filter(|(_, s)| s.makes_ready)
            .map(|(i, _)| format!("{} > 0", count(i)))
            .collect();
        if !readying.is_empty() {
            // Delivered when the statement commits, and only then.
            columns.push(format!(
                "(SELECT pg_notify('{}', '') WHERE {})",
                ready::READY_CHANNEL,
                readying.join(" OR ")
            ));
        }
        format!("WITH {with} SELECT {}", columns.join(", "))
    }

    /// Each statement as the data-modifying `WITH` part `b<i>`, its
    /// parameters renumbered.
    fn with_parts(&self) -> String {
        self.shifted()
            .iter()
            .enumerate()
            .map(|(i, p)| format!("b{i} AS ({p} RETURNING 1)"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Each statement's SQL, its parameters numbered after the ones before.
    fn shifted(&self) -> Vec<String> {
        let mut offset = 0;
        let mut parts = Vec::with_capacity(self.stmts.len());
        for stmt in &self.stmts {
            parts.push(shift_params(&stmt.sql, offset));
            offset += stmt.binds.len();
        }
        parts
    }

    /// Runs every statement in one round trip; the rows each changed, in
    /// order. On SQLite a transaction begun deferred opens its savepoint
    /// here, first in the same query ([`Tx::opening`]).
    pub async fn run(self, tx: &mut Tx) -> Result<Vec<u64>> {
        if self.stmts.is_empty() {
            return Ok(Vec::new());
        }
        let opening = tx.opening().await?;
        let sql = after_open(opening, &self.sql(tx.backend()));
        let mut query = sqlx::query(&sql);
        for stmt in &self.stmts {
            for value in &stmt.binds {
                query = value.bind_to(query);
            }
        }
        let changed = match (tx.backend(), self.stmts.len()) {
            (_, 1) if opening.is_none() => {
                vec![query.execute(&mut **tx).await?.rows_affected()]
            }
            (Backend::Postgres, n) => {
                let row = whole_answer(query, tx).await?;
                (0..n)
                    .map(|i| Ok(row.try_get::<i64, _>(i)? as u64))
                    .collect::<Result<Vec<u64>>>()?
            }
            (Backend::Sqlite, _) => after_opening(rows_of_each(tx, query).await?, opening)?
                .iter()
                .map(|o| o.changed)
                .collect(),
        };
        if changed.len() != self.stmts.len() {
            return Err(Error::Data(format!(
                "a batch of {} statements reported {}",
                self.stmts.len(),
                changed.len()
            )));
        }
        for (stmt, n) in self.stmts.iter().zip(&changed) {
            stmt.settle(tx, *n)?;
        }
        Ok(changed)
    }

    /// The batch's SQL on `backend`.
    fn sql(&self, backend: Backend) -> String {
        let mut parts = self.shifted();
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        match backend {
            Backend::Postgres => {
                let counts: Vec<String> = (0..parts.len())
                    .map(|i| format!("(SELECT COUNT(*) FROM b{i})"))
                    .collect();
                format!("WITH {} SELECT {}", self.with_parts(), counts.join(", "))
            }
            Backend::Sqlite => parts.join(";\n"),
        }
    }
}

/// The one row of a batch's statement on PostgreSQL, read with everything
/// the server answers after it. sqlx's `Any` driver answers `fetch_one` at
/// the first row and leaves the rest unread; PostgreSQL runs a statement
/// with data-modifying `WITH` parts to its end before it sends a row, but
/// commits an autocommitted one ([`Batch::run_alone`]) after: an error of
/// that commit (a deferred constraint, a full notification queue) would be
/// left unread and the write reported done though it was undone
/// (`core_loop::on_postgres_an_error_at_a_lone_batchs_commit_fails_it`).
async fn whole_answer<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    conn: &mut AnyConnection,
) -> Result<AnyRow> {
    query
        .fetch_all(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Data("a batch's statement returned no row".into()))
}

/// What one statement of a multi-statement query returned.
#[derive(Default)]
pub struct Outcome {
    /// Its rows.
    pub rows: Vec<AnyRow>,
    /// The rows it changed.
    pub changed: u64,
}

/// Runs a multi-statement query on SQLite in one hand-off to the
/// connection's thread; what each statement returned, in order.
pub async fn rows_of_each<'q>(
    tx: &mut Tx,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> Result<Vec<Outcome>> {
    use futures::TryStreamExt;
    debug_assert_eq!(
        tx.backend(),
        Backend::Sqlite,
        "PostgreSQL runs one statement"
    );
    let mut each = Vec::new();
    let mut current = Outcome::default();
    // One `Left` ends each statement; its rows come before it.
    #[allow(deprecated)]
    let mut results = query.fetch_many(&mut **tx);
    while let Some(result) = results.try_next().await? {
        match result {
            Either::Right(row) => current.rows.push(row),
            Either::Left(done) => {
                current.changed = done.rows_affected();
                each.push(std::mem::take(&mut current));
            }
        }
    }
    Ok(each)
}

/// `sql` run after `opening` ([`Tx::opening`]) in the same multi-statement
/// query, when there is one.
pub fn after_open(opening: Option<&str>, sql: &str) -> String {
    match opening {
        Some(open) => format!("{open};\n{sql}"),
        None => sql.to_string(),
    }
}

/// The outcomes of a multi-statement query past the savepoint statement it
/// began with, if `opening` says it did ([`after_open`]).
pub fn after_opening(mut each: Vec<Outcome>, opening: Option<&str>) -> Result<Vec<Outcome>> {
    if opening.is_some() {
        if each.is_empty() {
            return Err(Error::Data("a savepoint without an outcome".into()));
        }
        each.remove(0);
    }
    Ok(each)
}

/// `sql` with every parameter `$n` outside quotes renumbered `$n+offset`.
fn shift_params(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted => {
                let mut digits = String::new();
                while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                    digits.push(d);
                    chars.next();
                }
                match digits.parse::<usize>() {
                    Ok(n) => out.push_str(&(n + offset).to_string()),
                    Err(_) => out.push_str(&digits),
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_shift_outside_quotes_only() {
        assert_eq!(shift_params("a = $1 AND b = $12", 3), "a = $4 AND b = $15");
        assert_eq!(
            shift_params("a = '$1' AND b = $2", 10),
            "a = '$1' AND b = $12"
        );
        assert_eq!(shift_params("x = $", 2), "x = $");
        assert_eq!(shift_params("a = $1", 0), "a = $1");
    }

    fn two() -> Batch {
        let mut b = Batch::default();
        b.push(
            Stmt::new("UPDATE a SET x = $1 WHERE id = $2")
                .bind(1)
                .bind("k"),
        );
        b.push(Stmt::new("DELETE FROM b WHERE id = $1").bind("j"));
        b
    }

    #[test]
    fn a_batch_is_one_with_statement_on_postgres_and_statements_in_order_on_sqlite() {
        assert_eq!(
            two().sql(Backend::Postgres),
            "WITH b0 AS (UPDATE a SET x = $1 WHERE id = $2 RETURNING 1), \
             b1 AS (DELETE FROM b WHERE id = $3 RETURNING 1) \
             SELECT (SELECT COUNT(*) FROM b0), (SELECT COUNT(*) FROM b1)"
        );
        assert_eq!(
            two().sql(Backend::Sqlite),
            "UPDATE a SET x = $1 WHERE id = $2;\nDELETE FROM b WHERE id = $3"
        );
    }

    #[test]
    fn a_batch_alone_checks_its_counts_in_the_statement_and_announces_what_it_readies() {
        let mut b = two();
        b.push(
            Stmt::new("INSERT INTO t (id) VALUES ($1)")
                .bind("x")
                .expect_rows(1, "one task")
                .makes_ready(),
        );
        assert_eq!(
            b.sql_alone(),
            "WITH b0 AS (UPDATE a SET x = $1 WHERE id = $2 RETURNING 1), \
             b1 AS (DELETE FROM b WHERE id = $3 RETURNING 1), \
             b2 AS (INSERT INTO t (id) VALUES ($4) RETURNING 1) \
             SELECT recount_expect((SELECT COUNT(*) FROM b2) = 1), \
             (SELECT COUNT(*) FROM b0), (SELECT COUNT(*) FROM b1), (SELECT COUNT(*) FROM b2), \
             (SELECT pg_notify('recount_ready', '') WHERE (SELECT COUNT(*) FROM b2) > 0)"
        );
        assert_eq!(b.params(), 4);
        assert!(two().sql_alone().starts_with("WITH b0 AS"));
        assert!(two().sql_alone().contains("SELECT recount_expect(true), "));
    }
}
