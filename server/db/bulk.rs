//! Multi-row `INSERT`s: many rows per statement, in statements of at most
//! [`MAX_PARAMS`] bind parameters (under SQLite's 32766 and PostgreSQL's
//! 65535). Used where rows come by the hundred or thousand: ingest batches,
//! rollups and bench seeding.

use sqlx::AnyConnection;

use super::batch::Stmt;
use super::{placeholders, Backend, Result};

/// Bind parameters per statement.
pub const MAX_PARAMS: usize = 16_000;

/// One column value. Optional text and integers bind as typed NULLs; a
/// missing double has no typed NULL on PostgreSQL (see
/// [`super::NULL_F64`]), so such a column binds a sentinel and its shape
/// turns it back into NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Real(f64),
    /// Text or NULL.
    MaybeText(Option<String>),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Val {
    /// Binds the value as `query`'s next parameter.
    pub fn bind_to<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Val::Text(s) => query.bind(s.as_str()),
            Val::Int(n) => query.bind(*n),
            Val::Real(x) => query.bind(*x),
            Val::MaybeText(s) => query.bind(s.as_deref()),
            Val::MaybeInt(n) => query.bind(*n),
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}

impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::Text(s.clone())
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Val {
        Val::Int(n)
    }
}

impl From<f64> for Val {
    fn from(x: f64) -> Val {
        Val::Real(x)
    }
}

impl From<Option<&str>> for Val {
    fn from(s: Option<&str>) -> Val {
        Val::MaybeText(s.map(str::to_string))
    }
}

impl From<Option<String>> for Val {
    fn from(s: Option<String>) -> Val {
        Val::MaybeText(s)
    }
}

impl From<&Option<String>> for Val {
    fn from(s: &Option<String>) -> Val {
        Val::MaybeText(s.clone())
    }
}

impl From<Option<i64>> for Val {
    fn from(n: Option<i64>) -> Val {
        Val::MaybeInt(n)
    }
}

/// Runs `head VALUES (…), (…), … tail` over `rows` (all of the same width)
/// in as few statements as the parameter limit allows; `tail` is e.g. an
/// `ON CONFLICT` clause. Returns the rows the statements affected.
pub async fn insert_rows(
    conn: &mut AnyConnection,
    head: &str,
    rows: &[Vec<Val>],
    tail: &str,
) -> Result<u64> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(0);
    };
    insert_shaped(conn, head, &vec!["?"; width], rows, tail).await
}

/// [`insert_rows`] with an expression per column: `shape[i]` is the SQL of
/// column `i` with `?` where its parameter goes (`"?"`, or
/// `"NULLIF(?, -1.0)"` for an optional double).
pub async fn insert_shaped(
    conn: &mut AnyConnection,
    head: &str,
    shape: &[&str],
    rows: &[Vec<Val>],
    tail: &str,
) -> Result<u64> {
    let width = shape.len();
    // SQLite's driver finds each parameter's place by its name, a search
    // through every name before it: thousands of `$n` cost a quadratic
    // bind, so SQLite gets bare `?`s (bound in order, no names).
    let numbered = Backend::of(conn) == Backend::Postgres;
    let mut affected = 0;
    for chunk in rows.chunks(MAX_PARAMS / width.max(1)) {
        let values = (0..chunk.len())
            .map(|r| row_sql(shape, numbered.then_some(r * width + 1)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("{head} VALUES {values} {tail}");
        let mut query = sqlx::query(&sql);
        for row in chunk {
            debug_assert_eq!(row.len(), width, "every row has the shape's width");
            for value in row {
                query = value.bind_to(query);
            }
        }
        affected += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

/// `head VALUES (…), (…), … tail` over `rows` as one statement of a
/// [`Batch`](super::batch::Batch), its parameters numbered from `$1`:
/// the caller keeps the rows within one statement's parameters.
pub fn insert_stmt(head: &str, shape: &[&str], rows: &[Vec<Val>], tail: &str) -> Stmt {
    let width = shape.len();
    let values = (0..rows.len())
        .map(|r| row_sql(shape, Some(r * width + 1)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = Stmt::new(format!("{head} VALUES {values} {tail}"));
    for value in rows.iter().flatten() {
        stmt = stmt.bind(value.clone());
    }
    stmt
}

/// `(…)` of one row whose first parameter is `$first`, or of bare `?`s.
fn row_sql(shape: &[&str], first: Option<usize>) -> String {
    let Some(first) = first else {
        return format!("({})", shape.join(", "));
    };
    if shape.iter().all(|c| *c == "?") {
        return format!("({})", placeholders(first, shape.len()));
    }
    let columns: Vec<String> = shape
        .iter()
        .enumerate()
        .map(|(i, c)| c.replacen('?', &format!("${}", first + i), 1))
        .collect();
    format!("({})", columns.join(", "))
}

#[cfg(test)]
mod tests {
    use super::row_sql;

    #[test]
    fn a_row_numbers_its_parameters_from_first_and_keeps_each_columns_shape() {
        assert_eq!(row_sql(&["?", "?", "?"], Some(4)), "($4, $5, $6)");
        assert_eq!(
            row_sql(&["?", "NULLIF(?, -1.0)", "?"], Some(1)),
            "($1, NULLIF($2, -1.0), $3)"
        );
        assert_eq!(
            row_sql(&["?", "NULLIF(?, -1.0)"], None),
            "(?, NULLIF(?, -1.0))"
        );
    }
}
