//! Schema parity: `migrations/sqlite` and `migrations/postgres` must build the
//! same schema, since one set of SQL strings (`server/db`) runs on both.
//!
//! The test migrates a fresh database of each engine, reads each catalog back
//! (`sqlite_master` and the `pragma_*` functions on SQLite; `pg_catalog` and
//! `information_schema` on PostgreSQL) into one engine-neutral [`Schema`],
//! and names every difference. What is compared, and how:
//!
//! - **Tables**: the set of names (sqlx's `_sqlx_migrations` and SQLite's own
//!   `sqlite_*` tables left out).
//! - **Columns**: name, type class, NOT NULL, and the default expression
//!   (normalised, see predicates below). Type classes: SQLite's declared
//!   `INTEGER`/`INT`/`BIGINT`/`INT8` and PostgreSQL's `bigint` are *integer*;
//!   `TEXT`/`VARCHAR` and `text`/`character varying` are *text*;
//!   `REAL`/`DOUBLE`/`DOUBLE PRECISION`/`FLOAT`/`FLOAT8` and `double precision`
//!   are *real*; `BLOB` and `bytea` are *blob*. Any other type is its own
//!   class (`other(…)`), so it differs until someone maps it on purpose — in
//!   particular PostgreSQL's 32-bit `integer` and `real` are not *integer* and
//!   *real*: Recount reads every integer as `i64` and every float as `f64`.
//!   Column order is not compared (queries name their columns).
//! - **Primary key**: its columns, in order. SQLite lets a non-`INTEGER`
//!   primary-key column hold NULL (a legacy quirk PostgreSQL does not have);
//!   the test counts primary-key columns as NOT NULL on SQLite, as PostgreSQL
//!   does. Making them NOT NULL on SQLite would need every table rebuilt,
//!   and Recount never writes a NULL id.
//! - **Unique constraints**: the column list of each (SQLite's
//!   `sqlite_autoindex_*` indexes of origin `u`, PostgreSQL's `u`
//!   constraints); their generated names differ by engine and are ignored.
//! - **Foreign keys**: columns → referenced table and columns, ON DELETE and
//!   ON UPDATE actions.
//! - **Check constraints**: how many each table has per set of columns they
//!   read. Their expressions are not compared: PostgreSQL stores a rewritten
//!   form (`x IN (…)` becomes `x = ANY (ARRAY[…])`, `BETWEEN` two comparisons)
//!   that no small normaliser maps back reliably. SQLite keeps no catalog of
//!   checks, so they are parsed from the `CREATE TABLE` text.
//! - **Indexes** (those made by `CREATE INDEX`; constraint indexes are covered
//!   above): name, table, key columns in order (with `DESC`; an expression
//!   key is compared as `<expression>`), unique, and the partial-index
//!   predicate. Predicates and defaults are compared as normalised token
//!   text: lower case outside string literals, identifier quotes and
//!   PostgreSQL's `::type` casts dropped, `= ANY (ARRAY[…])` read as `IN (…)`,
//!   `!=` as `<>`, `'-1'::bigint` as `-1`, and **parentheses dropped** — PostgreSQL wraps every
//!   comparison in them, so two predicates that differ only in grouping would
//!   compare equal (a blind spot this test accepts).
//!
//! Not compared: views and triggers (Recount has none), collations, and
//! PostgreSQL-only storage settings (`fillfactor`, per-table autovacuum),
//! which have no SQLite counterpart.
//!
//! Differences inherent to an engine go in [`ALLOWED`], each with its reason.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sqlx::{Connection, PgConnection, Row, SqliteConnection};

use common::{pg_admin_url, Backend, TestDb};

/// Differences that are inherent to one engine, each with why; the test
/// fails on any other difference, and on an entry that no longer matches.
const ALLOWED: &[(&str, &str)] = &[];

/// One engine's schema, in engine-neutral terms.
#[derive(Debug, Default, Clone)]
struct Schema {
    tables: BTreeMap<String, Table>,
    indexes: BTreeMap<String, Index>,
}

/// A table's columns and constraints.
#[derive(Debug, Default, Clone)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    uniques: BTreeSet<Vec<String>>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// Check constraints: how many read each set of columns.
    checks: BTreeMap<BTreeSet<String>, usize>,
}

/// A column as both engines can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    class: String,
    not_null: bool,
    /// The normalised default expression.
    default: Option<String>,
}

/// A foreign key; an empty `ref_columns` from SQLite means "the referenced
/// table's primary key" until [`resolve_implicit_references`] fills it in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    ref_table: String,
    ref_columns: Vec<String>,
    on_delete: String,
    on_update: String,
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({}) → {}({}) ON DELETE {} ON UPDATE {}",
            self.columns.join(", "),
            self.ref_table,
            self.ref_columns.join(", "),
            self.on_delete,
            self.on_update
        )
    }
}

/// An index made by `CREATE INDEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    table: String,
    columns: Vec<String>,
    unique: bool,
    /// The normalised partial-index predicate.
    predicate: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let sqlite = sqlite_schema().await;
    let postgres = postgres_schema().await;

    // A catalog reader that read nothing would make both sides agree: each
    // must have found some of every kind the migrations are known to make.
    for (engine, schema) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        let tables = || schema.tables.values();
        let columns = || tables().flat_map(|t| t.columns.values());
        let found = [
            ("tables", schema.tables.len()),
            ("indexes", schema.indexes.len()),
            ("NOT NULL columns", columns().filter(|c| c.not_null).count()),
            (
                "defaults",
                columns().filter(|c| c.default.is_some()).count(),
            ),
            (
                "real columns",
                columns().filter(|c| c.class == "real").count(),
            ),
            (
                "primary keys",
                tables().filter(|t| !t.primary_key.is_empty()).count(),
            ),
            (
                "unique constraints",
                tables().map(|t| t.uniques.len()).sum(),
            ),
            ("foreign keys", tables().map(|t| t.foreign_keys.len()).sum()),
            (
                "partial indexes",
                schema
                    .indexes
                    .values()
                    .filter(|i| i.predicate.is_some())
                    .count(),
            ),
        ];
        for (kind, n) in found {
            assert!(n > 0, "{engine}: the catalog reader found no {kind}");
        }
    }

    let found = differences(&sqlite, &postgres);
    let unexpected: Vec<&String> = found
        .iter()
        .filter(|d| !ALLOWED.iter().any(|(allowed, _)| allowed == d))
        .collect();
    let stale: Vec<&str> = ALLOWED
        .iter()
        .map(|(allowed, _)| *allowed)
        .filter(|allowed| !found.iter().any(|d| d == allowed))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "the SQLite and PostgreSQL migrations differ:\n  {}\nallow-list entries that no longer match:\n  {}",
        join_lines(&unexpected),
        join_lines(&stale)
    );
}

#[test]
fn every_kind_of_difference_is_named() {
    let mut table = Table::default();
    table.columns.insert(
        "id".into(),
        Column {
            class: "text".into(),
            not_null: true,
            default: None,
        },
    );
    table.primary_key = vec!["id".into()];
    let mut a = Schema::default();
    a.tables.insert("t".into(), table.clone());
    a.indexes.insert(
        "t_status".into(),
        Index {
            table: "t".into(),
            columns: vec!["status".into()],
            unique: false,
            predicate: Some("status = 'ready'".into()),
        },
    );
    let mut b = a.clone();
    let t = b.tables.get_mut("t").unwrap();
    t.columns.get_mut("id").unwrap().class = "integer".into();
    t.columns.insert(
        "extra".into(),
        Column {
            class: "text".into(),
            not_null: false,
            default: None,
        },
    );
    t.uniques.insert(vec!["extra".into()]);
    t.foreign_keys.insert(ForeignKey {
        columns: vec!["extra".into()],
        ref_table: "u".into(),
        ref_columns: vec!["id".into()],
        on_delete: "CASCADE".into(),
        on_update: "NO ACTION".into(),
    });
    t.checks.insert(BTreeSet::from(["extra".to_string()]), 1);
    b.tables.insert("u".into(), table);
    b.indexes.get_mut("t_status").unwrap().predicate = None;

    assert_eq!(
        differences(&a, &b),
        [
            "table u: only on postgres",
            "table t: column extra: only on postgres",
            "table t: column id: type class: sqlite text, postgres integer",
            "table t: unique (extra): only on postgres",
            "table t: foreign key (extra) → u(id) ON DELETE CASCADE ON UPDATE NO ACTION: only on postgres",
            "table t: check constraints on (extra): sqlite 0, postgres 1",
            "index t_status: predicate: sqlite Some(\"status = 'ready'\"), postgres None",
        ]
    );
}

#[test]
fn postgres_expressions_normalise_to_the_form_written_for_sqlite() {
    assert_eq!(
        normalise(&tokens("(status = 'exited'::text)")),
        normalise(&tokens("status = 'exited'"))
    );
    assert_eq!(
        normalise(&tokens(
            "((\"position\" IS NOT NULL) AND (kind = ANY (ARRAY['a'::text, 'b'::character varying])))"
        )),
        "position is not null and kind in 'a' , 'b'"
    );
    assert_eq!(
        normalise(&tokens("kind != 'it''s'")),
        normalise(&tokens("(kind <> 'it''s'::text)"))
    );
    assert_eq!(normalise(&tokens("'-1'::integer")), "-1");
    assert_eq!(
        normalise(&tokens("(x > '-1'::bigint)")),
        normalise(&tokens("x > -1"))
    );
    assert_eq!(normalise(&tokens("x - 1")), "x - 1");
    assert_ne!(
        normalise(&tokens("status = 'Ready'")),
        normalise(&tokens("status = 'ready'")),
        "string literals keep their case"
    );
}

#[test]
fn sqlite_checks_are_found_in_column_and_table_definitions() {
    let sql = "CREATE TABLE t (
        id TEXT PRIMARY KEY,
        -- a comment with CHECK (nothing) in it
        qty INTEGER NOT NULL CHECK (qty > 0),
        lo INTEGER, hi INTEGER,
        note TEXT DEFAULT 'check (lo)',
        CONSTRAINT ordered CHECK (lo <= hi),
        UNIQUE (lo, hi)
    )";
    let columns = ["id", "qty", "lo", "hi", "note"]
        .map(String::from)
        .into_iter()
        .collect();
    assert_eq!(
        sqlite_checks(sql, &columns),
        BTreeMap::from([
            (BTreeSet::from(["qty".to_string()]), 1),
            (BTreeSet::from(["lo".to_string(), "hi".to_string()]), 1),
        ])
    );
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    only_in_one("table ", &sqlite.tables, &postgres.tables, &mut out);
    for (name, s) in &sqlite.tables {
        let Some(p) = postgres.tables.get(name) else {
            continue;
        };
        let at = format!("table {name}: ");
        only_in_one(&format!("{at}column "), &s.columns, &p.columns, &mut out);
        for (column, sc) in &s.columns {
            let Some(pc) = p.columns.get(column) else {
                continue;
            };
            let at = format!("{at}column {column}: ");
            differ(&at, "type class", &sc.class, &pc.class, &mut out);
            differ(&at, "not null", &sc.not_null, &pc.not_null, &mut out);
            differ(&at, "default", &sc.default, &pc.default, &mut out);
        }
        differ(&at, "primary key", &s.primary_key, &p.primary_key, &mut out);
        let uniques = |t: &Table| -> BTreeSet<String> {
            t.uniques
                .iter()
                .map(|cols| format!("unique ({})", cols.join(", ")))
                .collect()
        };
        only_in_one_set(&at, &uniques(s), &uniques(p), &mut out);
        let foreign_keys = |t: &Table| -> BTreeSet<String> {
            t.foreign_keys
                .iter()
                .map(|fk| format!("foreign key {fk}"))
                .collect()
        };
        only_in_one_set(&at, &foreign_keys(s), &foreign_keys(p), &mut out);
        let column_sets: BTreeSet<&BTreeSet<String>> =
            s.checks.keys().chain(p.checks.keys()).collect();
        for columns in column_sets {
            let (sn, pn) = (
                s.checks.get(columns).copied().unwrap_or(0),
                p.checks.get(columns).copied().unwrap_or(0),
            );
            if sn != pn {
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                out.push(format!(
                    "{at}check constraints on ({}): sqlite {sn}, postgres {pn}",
                    columns.join(", ")
                ));
            }
        }
    }
    only_in_one("index ", &sqlite.indexes, &postgres.indexes, &mut out);
    for (name, s) in &sqlite.indexes {
        let Some(p) = postgres.indexes.get(name) else {
            continue;
        };
        let at = format!("index {name}: ");
        differ(&at, "table", &s.table, &p.table, &mut out);
        differ(&at, "columns", &s.columns, &p.columns, &mut out);
        differ(&at, "unique", &s.unique, &p.unique, &mut out);
        differ(&at, "predicate", &s.predicate, &p.predicate, &mut out);
    }
    out
}

/// Names the keys present in only one of the two maps.
fn only_in_one<V>(
    what: &str,
    sqlite: &BTreeMap<String, V>,
    postgres: &BTreeMap<String, V>,
    out: &mut Vec<String>,
) {
    let keys = |m: &BTreeMap<String, V>| m.keys().cloned().collect::<BTreeSet<_>>();
    let (s, p) = (keys(sqlite), keys(postgres));
    for k in s.difference(&p) {
        out.push(format!("{what}{k}: only on sqlite"));
    }
    for k in p.difference(&s) {
        out.push(format!("{what}{k}: only on postgres"));
    }
}

/// Names the members present in only one of the two sets.
fn only_in_one_set(
    at: &str,
    sqlite: &BTreeSet<String>,
    postgres: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    for k in sqlite.difference(postgres) {
        out.push(format!("{at}{k}: only on sqlite"));
    }
    for k in postgres.difference(sqlite) {
        out.push(format!("{at}{k}: only on postgres"));
    }
}

/// Names a property that differs.
fn differ<T: PartialEq + fmt::Debug>(
    at: &str,
    what: &str,
    sqlite: &T,
    postgres: &T,
    out: &mut Vec<String>,
) {
    if sqlite != postgres {
        out.push(format!(
            "{at}{what}: sqlite {}, postgres {}",
            plain(sqlite),
            plain(postgres)
        ));
    }
}

/// Debug text, without the quotes around a bare string.
fn plain<T: fmt::Debug>(v: &T) -> String {
    let text = format!("{v:?}");
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.to_string(),
        _ => text,
    }
}

fn join_lines<T: AsRef<str>>(lines: &[T]) -> String {
    if lines.is_empty() {
        return "(none)".into();
    }
    lines
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Fills in the columns of foreign keys declared as `REFERENCES t` (SQLite
/// leaves them empty): the referenced table's primary key.
fn resolve_implicit_references(schema: &mut Schema) {
    let keys: BTreeMap<String, Vec<String>> = schema
        .tables
        .iter()
        .map(|(name, t)| (name.clone(), t.primary_key.clone()))
        .collect();
    for table in schema.tables.values_mut() {
        table.foreign_keys = std::mem::take(&mut table.foreign_keys)
            .into_iter()
            .map(|mut fk| {
                if fk.ref_columns.is_empty() {
                    fk.ref_columns = keys.get(&fk.ref_table).cloned().unwrap_or_default();
                }
                fk
            })
            .collect();
    }
}

// ---------------------------------------------------------------- SQLite

/// Migrates a fresh SQLite file and reads its schema.
async fn sqlite_schema() -> Schema {
    let db = TestDb::new(Backend::Sqlite).await;
    db.connect().await.close().await;
    let mut conn = SqliteConnection::connect(&db.url).await.expect("open");
    let schema = read_sqlite(&mut conn)
        .await
        .expect("read the SQLite catalog");
    conn.close().await.expect("close");
    schema
}

async fn read_sqlite(conn: &mut SqliteConnection) -> sqlx::Result<Schema> {
    let mut schema = Schema::default();
    let tables = sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in tables {
        let name: String = row.try_get("name")?;
        let sql: String = row.try_get("sql")?;
        let mut table = Table::default();

        let columns = sqlx::query(
            "SELECT name, type, \"notnull\" AS not_null, dflt_value, pk \
             FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        let mut key: Vec<(i64, String)> = Vec::new();
        for c in columns {
            let column: String = c.try_get("name")?;
            let pk: i64 = c.try_get("pk")?;
            if pk > 0 {
                key.push((pk, column.clone()));
            }
            let default: Option<String> = c.try_get("dflt_value")?;
            table.columns.insert(
                column,
                Column {
                    class: sqlite_class(&c.try_get::<String, _>("type")?),
                    // See the module doc: SQLite's primary key allows NULL.
                    not_null: c.try_get::<i64, _>("not_null")? != 0 || pk > 0,
                    default: default.map(|d| normalise(&tokens(&d))),
                },
            );
        }
        key.sort();
        table.primary_key = key.into_iter().map(|(_, c)| c).collect();

        let indexes = sqlx::query(
            "SELECT l.name, l.\"unique\" AS is_unique, l.origin, m.sql \
             FROM pragma_index_list(?1) l LEFT JOIN sqlite_master m \
             ON m.type = 'index' AND m.name = l.name",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        for i in indexes {
            let index: String = i.try_get("name")?;
            let origin: String = i.try_get("origin")?;
            let columns = sqlx::query(
                "SELECT name, \"desc\" AS descending FROM pragma_index_xinfo(?1) \
                 WHERE key = 1 ORDER BY seqno",
            )
            .bind(&index)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|k| {
                let column: Option<String> = k.try_get("name")?;
                let descending: i64 = k.try_get("descending")?;
                Ok(key_column(column, descending != 0))
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
            match origin.as_str() {
                "u" => {
                    table.uniques.insert(columns);
                }
                "c" => {
                    let sql: String = i.try_get("sql")?;
                    schema.indexes.insert(
                        index,
                        Index {
                            table: name.clone(),
                            columns,
                            unique: i.try_get::<i64, _>("is_unique")? != 0,
                            predicate: sqlite_predicate(&sql),
                        },
                    );
                }
                // "pk": the primary key, read from pragma_table_info above.
                _ => {}
            }
        }

        let foreign_keys = sqlx::query(
            "SELECT id, \"table\" AS ref_table, \"from\" AS from_column, \"to\" AS to_column, \
             on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for f in foreign_keys {
            let fk = by_id.entry(f.try_get("id")?).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                ref_table: String::new(),
                ref_columns: Vec::new(),
                on_delete: String::new(),
                on_update: String::new(),
            });
            fk.ref_table = f.try_get("ref_table")?;
            fk.on_delete = f.try_get("on_delete")?;
            fk.on_update = f.try_get("on_update")?;
            fk.columns.push(f.try_get("from_column")?);
            if let Some(to) = f.try_get::<Option<String>, _>("to_column")? {
                fk.ref_columns.push(to);
            }
        }
        table.foreign_keys = by_id.into_values().collect();

        let names: BTreeSet<String> = table.columns.keys().cloned().collect();
        table.checks = sqlite_checks(&sql, &names);
        schema.tables.insert(name, table);
    }
    resolve_implicit_references(&mut schema);
    Ok(schema)
}

/// The type class of a declared SQLite column type (see the module doc).
fn sqlite_class(declared: &str) -> String {
    let base = declared.split('(').next().unwrap_or("").trim();
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    match base.to_ascii_uppercase().as_str() {
        "INTEGER" | "INT" | "BIGINT" | "INT8" => "integer".into(),
        "TEXT" | "VARCHAR" => "text".into(),
        "REAL" | "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "FLOAT8" => "real".into(),
        "BLOB" => "blob".into(),
        other => format!("other({other})"),
    }
}

/// The normalised `WHERE` of a `CREATE INDEX` statement, if partial.
fn sqlite_predicate(sql: &str) -> Option<String> {
    let toks = tokens(sql);
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct(p) if p == "(" => depth += 1,
            Tok::Punct(p) if p == ")" => depth -= 1,
            Tok::Word(w) if depth == 0 && w == "where" => {
                return Some(normalise(&toks[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// The check constraints of a `CREATE TABLE` statement: how many read each
/// set of the table's columns.
fn sqlite_checks(sql: &str, columns: &BTreeSet<String>) -> BTreeMap<BTreeSet<String>, usize> {
    let toks = tokens(sql);
    let mut checks = BTreeMap::new();
    let Some(open) = toks.iter().position(|t| t.is_punct("(")) else {
        return checks;
    };
    // The definitions between the outer parentheses, split at top-level commas.
    let mut items: Vec<&[Tok]> = Vec::new();
    let (mut depth, mut start) = (0i32, open + 1);
    for (i, t) in toks.iter().enumerate().skip(open + 1) {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            if depth == 0 {
                items.push(&toks[start..i]);
                break;
            }
            depth -= 1;
        } else if t.is_punct(",") && depth == 0 {
            items.push(&toks[start..i]);
            start = i + 1;
        }
    }
    for item in items {
        let mut i = 0;
        while i < item.len() {
            if item[i].is_word("check") && item.get(i + 1).is_some_and(|t| t.is_punct("(")) {
                let body = parenthesised(&item[i + 1..]);
                let read: BTreeSet<String> = body
                    .iter()
                    .filter_map(|t| match t {
                        Tok::Word(w) if columns.contains(w) => Some(w.clone()),
                        _ => None,
                    })
                    .collect();
                *checks.entry(read).or_insert(0) += 1;
                i += body.len() + 2;
            } else {
                i += 1;
            }
        }
    }
    checks
}

/// The tokens inside the parentheses that `toks` starts with.
fn parenthesised(toks: &[Tok]) -> &[Tok] {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
            if depth == 0 {
                return &toks[1..i];
            }
        }
    }
    &toks[1..]
}

// ------------------------------------------------------------ PostgreSQL

/// Migrates a fresh PostgreSQL database, reads its schema, and drops it.
async fn postgres_schema() -> Schema {
    let db = TestDb::new(Backend::Postgres).await;
    db.connect().await.close().await;
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    let schema = read_postgres(&mut conn).await;
    conn.close().await.expect("close");
    let name = db.url.rsplit_once('/').expect("database URL has a path").1;
    let mut admin = PgConnection::connect(&pg_admin_url())
        .await
        .expect("connect as admin");
    sqlx::query(&format!("DROP DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
    schema.expect("read the PostgreSQL catalog")
}

async fn read_postgres(conn: &mut PgConnection) -> sqlx::Result<Schema> {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
         AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in tables {
        schema.tables.insert(name, Table::default());
    }

    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, \
         is_nullable::text = 'NO' AS not_null, column_default::text \
         FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;
    for c in columns {
        let table: String = c.try_get("table_name")?;
        let Some(t) = schema.tables.get_mut(&table) else {
            continue;
        };
        let default: Option<String> = c.try_get("column_default")?;
        t.columns.insert(
            c.try_get("column_name")?,
            Column {
                class: postgres_class(&c.try_get::<String, _>("data_type")?),
                not_null: c.try_get("not_null")?,
                default: default.map(|d| normalise(&tokens(&d))),
            },
        );
    }

    let constraints = sqlx::query(
        "SELECT t.relname::text AS table_name, c.contype::text AS kind, \
         ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(num, ord) \
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num \
               ORDER BY k.ord) AS columns, \
         r.relname::text AS ref_table, \
         ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(num, ord) \
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num \
               ORDER BY k.ord) AS ref_columns, \
         c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         LEFT JOIN pg_class r ON r.oid = c.confrelid \
         WHERE n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;
    for c in constraints {
        let table: String = c.try_get("table_name")?;
        let Some(t) = schema.tables.get_mut(&table) else {
            continue;
        };
        let columns: Vec<String> = c.try_get("columns")?;
        match c.try_get::<String, _>("kind")?.as_str() {
            "p" => t.primary_key = columns,
            "u" => {
                t.uniques.insert(columns);
            }
            "f" => {
                t.foreign_keys.insert(ForeignKey {
                    columns,
                    ref_table: c.try_get("ref_table")?,
                    ref_columns: c.try_get("ref_columns")?,
                    on_delete: postgres_action(&c.try_get::<String, _>("on_delete")?),
                    on_update: postgres_action(&c.try_get::<String, _>("on_update")?),
                });
            }
            "c" => {
                *t.checks.entry(columns.into_iter().collect()).or_insert(0) += 1;
            }
            // Exclusion constraints ("x") and triggers ("t"): SQLite has
            // neither; an index behind one would still show up below.
            _ => {}
        }
    }

    let indexes = sqlx::query(
        "SELECT ic.relname::text AS index_name, t.relname::text AS table_name, \
         i.indisunique AS is_unique, pg_get_expr(i.indpred, i.indrelid, true) AS predicate, \
         ARRAY(SELECT CASE WHEN i.indkey[k - 1] = 0 THEN '<expression>' \
                      ELSE pg_get_indexdef(i.indexrelid, k, true) END \
                      || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END \
               FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) AS columns \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid \
                         AND c.contype IN ('p', 'u', 'x'))",
    )
    .fetch_all(&mut *conn)
    .await?;
    for i in indexes {
        let columns: Vec<String> = i.try_get("columns")?;
        let predicate: Option<String> = i.try_get("predicate")?;
        schema.indexes.insert(
            i.try_get("index_name")?,
            Index {
                table: i.try_get("table_name")?,
                // pg_get_indexdef quotes a column whose name is a keyword.
                columns: columns.into_iter().map(|c| c.replace('"', "")).collect(),
                unique: i.try_get("is_unique")?,
                predicate: predicate.map(|p| normalise(&tokens(&p))),
            },
        );
    }
    Ok(schema)
}

/// The type class of a PostgreSQL `information_schema` data type.
fn postgres_class(data_type: &str) -> String {
    match data_type {
        "bigint" => "integer".into(),
        "text" | "character varying" => "text".into(),
        "double precision" => "real".into(),
        "bytea" => "blob".into(),
        other => format!("other({})", other.to_ascii_uppercase()),
    }
}

/// A `pg_constraint.confdeltype`/`confupdtype` code in SQLite's words.
fn postgres_action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => other,
    }
    .into()
}

/// An index key column as compared: its name (or `<expression>`), and
/// ` DESC` when descending.
fn key_column(name: Option<String>, descending: bool) -> String {
    let name = name.unwrap_or_else(|| "<expression>".into());
    if descending {
        format!("{name} DESC")
    } else {
        name
    }
}

// ------------------------------------------------------ SQL token text

/// A token of SQL text.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A keyword or identifier, lower case, quotes removed.
    Word(String),
    /// A string literal's content, as written between the quotes.
    Str(String),
    /// A number.
    Num(String),
    /// An operator or punctuation.
    Punct(String),
}

impl Tok {
    fn is_punct(&self, p: &str) -> bool {
        matches!(self, Tok::Punct(q) if q == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(v) if v == w)
    }
}

/// Splits SQL text into tokens, skipping comments and whitespace.
fn tokens(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let until = |from: usize, end: char| {
        (from..chars.len())
            .find(|&j| chars[j] == end)
            .unwrap_or(chars.len())
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            i = until(i, '\n');
        } else if c == '/' && next == Some('*') {
            i = (i + 2..chars.len())
                .find(|&j| chars[j] == '*' && chars.get(j + 1) == Some(&'/'))
                .map_or(chars.len(), |j| j + 2);
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        text.push_str("''");
                        i += 2;
                        continue;
                    }
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            out.push(Tok::Str(text));
            i += 1;
        } else if c == '"' || c == '`' {
            let close = until(i + 1, c);
            let name: String = chars[i + 1..close].iter().collect();
            out.push(Tok::Word(name.to_lowercase()));
            i = close + 1;
        } else if c.is_alphabetic() || c == '_' {
            let end = (i..chars.len())
                .find(|&j| !(chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$'))
                .unwrap_or(chars.len());
            let word: String = chars[i..end].iter().collect();
            out.push(Tok::Word(word.to_lowercase()));
            i = end;
        } else if c.is_ascii_digit() || c == '.' && next.is_some_and(|n| n.is_ascii_digit()) {
            let end = (i..chars.len())
                .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '.'))
                .unwrap_or(chars.len());
            out.push(Tok::Num(chars[i..end].iter().collect()));
            i = end;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["::", "<>", "!=", "<=", ">=", "==", "||"].contains(&two.as_str()) {
                out.push(Tok::Punct(two));
                i += 2;
            } else {
                out.push(Tok::Punct(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

/// Words that continue a multi-word type name after a `::` cast.
const TYPE_WORDS: &[&str] = &["precision", "varying", "with", "without", "time", "zone"];

/// Type names after which a quoted literal is a number.
const NUMERIC_TYPES: &[&str] = &[
    "smallint", "integer", "bigint", "int", "int2", "int4", "int8", "real", "double", "float4",
    "float8", "numeric", "decimal",
];

/// Token text compared modulo quoting, case, casts and parentheses (see the
/// module doc).
fn normalise(toks: &[Tok]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct(p) if p == "::" => {
                // Skip the type name, its modifiers and an array suffix.
                i += 2;
                while toks
                    .get(i)
                    .is_some_and(|t| matches!(t, Tok::Word(w) if TYPE_WORDS.contains(&w.as_str())))
                {
                    i += 1;
                }
                if toks.get(i).is_some_and(|t| t.is_punct("(")) {
                    i += parenthesised(&toks[i..]).len() + 2;
                }
                while toks
                    .get(i)
                    .is_some_and(|t| t.is_punct("[") || t.is_punct("]"))
                {
                    i += 1;
                }
                continue;
            }
            Tok::Punct(p) if p == "(" || p == ")" || p == "[" || p == "]" => {}
            Tok::Punct(p)
                if (p == "=" || p == "<>" || p == "!=")
                    && matches!(toks.get(i + 1), Some(Tok::Word(w)) if w == "any" || w == "all")
                    && matches!(toks.get(i + 3), Some(Tok::Word(w)) if w == "array") =>
            {
                // `x = ANY (ARRAY[…])` is `x IN (…)`; `x <> ALL (…)` is NOT IN.
                out.push(if p == "=" { "in" } else { "not in" }.into());
                i += 4;
                continue;
            }
            Tok::Punct(p)
                if p == "-"
                    && matches!(toks.get(i + 1), Some(Tok::Num(_)))
                    && (i == 0 || matches!(&toks[i - 1], Tok::Punct(q) if q != ")")) =>
            {
                // A negative number, as PostgreSQL writes `'-1'::bigint`.
                if let Some(Tok::Num(n)) = toks.get(i + 1) {
                    out.push(format!("-{n}"));
                }
                i += 2;
                continue;
            }
            Tok::Str(s)
                if toks.get(i + 1).is_some_and(|t| t.is_punct("::"))
                    && matches!(toks.get(i + 2), Some(Tok::Word(w)) if NUMERIC_TYPES.contains(&w.as_str()))
                    && s.parse::<f64>().is_ok() =>
            {
                // PostgreSQL quotes a negative number and casts it.
                out.push(s.clone());
            }
            Tok::Punct(p) if p == "!=" => out.push("<>".into()),
            Tok::Punct(p) if p == "==" => out.push("=".into()),
            Tok::Punct(p) | Tok::Num(p) | Tok::Word(p) => out.push(p.clone()),
            Tok::Str(s) => out.push(format!("'{s}'")),
        }
        i += 1;
    }
    out.join(" ")
}
