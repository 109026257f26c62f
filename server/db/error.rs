//! The storage layer's own error: a query that failed, or a stored value no
//! row type accepts. It knows nothing of callers, codes or HTTP; the layers
//! above decide what a missing row means, and [`crate::error::Error`] turns
//! this into a logged internal error (or `unavailable` for a busy database).

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused or could not run a query.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    /// A stored value that no row type accepts (an unknown state, JSON that
    /// does not parse), or a value that could not be encoded for storage.
    #[error("stored data: {0}")]
    Data(String),
    /// A shared SQLite commit ([`super::group`]) that did not happen; the
    /// transaction's writes are not stored.
    #[error("commit: {0}")]
    Commit(String),
}

/// Result of a database call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A database that is overloaded or restarting: worth retrying, not a
    /// bug.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Query(e) => {
                matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
                    || e.as_database_error()
                        .is_some_and(|d| d.message().contains("database is locked"))
            }
            Error::Data(_) => false,
            Error::Commit(why) => why.contains("database is locked"),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Data(format!("JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pool_timeouts_and_io_count_as_busy() {
        assert!(Error::Query(sqlx::Error::PoolTimedOut).is_busy());
        assert!(!Error::Query(sqlx::Error::RowNotFound).is_busy());
        assert!(!Error::Data("x".into()).is_busy());
    }
}
