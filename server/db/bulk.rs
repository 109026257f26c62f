//! Multi-row `INSERT`s: many rows per statement, in statements of at most
//! [`MAX_PARAMS`] bind parameters (under SQLite's 32766 and PostgreSQL's
//! 65535). Used where rows come by the thousand: rollups and bench seeding.

use sqlx::AnyConnection;

use super::{placeholders, Result};

/// Bind parameters per statement.
pub const MAX_PARAMS: usize = 16_000;

/// One column value. NULL columns are left out of the INSERTs instead: an
/// untyped NULL bind is refused by PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Real(f64),
}

/// Runs `head VALUES (…), (…), … tail` over `rows` (all of the same width)
/// in as few statements as the parameter limit allows; `tail` is e.g. an
/// `ON CONFLICT` clause.
pub async fn insert_rows(
    conn: &mut AnyConnection,
    head: &str,
    rows: &[Vec<Val>],
    tail: &str,
) -> Result<()> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    for chunk in rows.chunks(MAX_PARAMS / width.max(1)) {
        let values = (0..chunk.len())
            .map(|r| format!("({})", placeholders(r * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("{head} VALUES {values} {tail}");
        let mut query = sqlx::query(&sql);
        for value in chunk.iter().flatten() {
            query = match value {
                Val::Text(s) => query.bind(s.as_str()),
                Val::Int(n) => query.bind(*n),
                Val::Real(x) => query.bind(*x),
            };
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
