//! A fresh database for each bench phase, removed afterwards: a bench never
//! touches real data, and every phase starts from the same empty state.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;
use sqlx::Connection;

use crate::config::Config;
use crate::db::{Backend, Db};

/// Whether `url` names a PostgreSQL server.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// A fresh, migrated database and a scratch directory for one phase.
pub struct Fresh {
    /// Its pools.
    pub db: Db,
    /// Its URL, to reconnect after closing the pools.
    pub url: String,
    /// An empty directory for the server's files (blobs, temporary files),
    /// so no real data directory is touched either.
    pub dir: PathBuf,
}

/// Where a fresh database lives, so it can be removed.
enum Place {
    /// A database inside the scratch directory.
    Sqlite,
    /// A database created on the server of `admin_url`.
    Postgres { admin_url: String, name: String },
}

/// Creates a fresh database of `backend`, runs `phase` on it and removes it
/// with its directory, whether the phase succeeded or not.
pub async fn with_fresh_db<T, F, Fut>(
    backend: Backend,
    config: &Config,
    phase: F,
) -> anyhow::Result<T>
where
    F: FnOnce(Fresh) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let suffix = random_suffix();
    let dir = sqlite_base_dir(&config.database_url).join(format!("recount-bench-{suffix}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let created = create(backend, config, &dir, &suffix).await;
    let outcome = match &created {
        Ok((url, _)) => {
            async {
                let db = Db::connect(url, config.max_connections).await?;
                db.migrate().await?;
                phase(Fresh {
                    db,
                    url: url.clone(),
                    dir: dir.clone(),
                })
                .await
            }
            .await
        }
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    let removed = match created {
        Ok((_, place)) => remove(place).await,
        Err(_) => Ok(()),
    };
    let cleaned =
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()));
    let value = outcome?;
    removed?;
    cleaned?;
    Ok(value)
}

async fn create(
    backend: Backend,
    config: &Config,
    dir: &Path,
    suffix: &str,
) -> anyhow::Result<(String, Place)> {
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
            Ok((url, Place::Sqlite))
        }
        Backend::Postgres => {
            let admin_url = config.database_url.clone();
            let name = format!("recount_bench_{suffix}");
            let mut conn = admin_connection(&admin_url).await?;
            // The name is ours (letters, digits, underscore): safe to splice.
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("creating database {name}"))?;
            conn.close().await?;
            let url = with_database(&admin_url, &name)?;
            Ok((url, Place::Postgres { admin_url, name }))
        }
    }
}

async fn remove(place: Place) -> anyhow::Result<()> {
    match place {
        Place::Sqlite => Ok(()),
        Place::Postgres { admin_url, name } => {
            let mut conn = admin_connection(&admin_url).await?;
            // FORCE ends connections a failed phase may have left open.
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("dropping database {name}"))?;
            conn.close().await?;
            Ok(())
        }
    }
}

/// The engine and its version, e.g. "PostgreSQL 15.4", for the output.
pub async fn engine_version(db: &Db) -> anyhow::Result<String> {
    Ok(match db.backend {
        Backend::Sqlite => {
            let v: String = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(db.reader())
                .await?;
            format!("SQLite {v}")
        }
        Backend::Postgres => {
            let v: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(db.reader())
                .await?;
            // "15.4 (Debian 15.4-1)": the number is enough.
            format!("PostgreSQL {}", v.split_whitespace().next().unwrap_or(&v))
        }
    })
}

async fn admin_connection(url: &str) -> anyhow::Result<sqlx::AnyConnection> {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .context("connecting to the PostgreSQL server of --database-url")
}

/// 12 random lower-case hex digits.
fn random_suffix() -> String {
    format!(
        "{:012x}",
        rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff
    )
}

/// Where the bench's scratch directories (and SQLite files) go: beside the
/// configured SQLite file when one is given (so the bench measures that
/// disk), else the system temp directory.
fn sqlite_base_dir(database_url: &str) -> PathBuf {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .and_then(|rest| rest.split('?').next())
        .filter(|p| !p.is_empty() && *p != ":memory:");
    path.and_then(|p| PathBuf::from(p).parent().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(std::env::temp_dir)
}

/// `url` with its database name replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base
        .find("://")
        .map(|i| i + 3)
        .context("the database URL has no scheme")?;
    let server = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_options_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b").unwrap(),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "b").unwrap(),
            "postgres://h/b"
        );
    }

    #[test]
    fn sqlite_files_go_beside_the_configured_one_or_to_temp() {
        assert_eq!(
            sqlite_base_dir("sqlite:///srv/r/recount.db?mode=rwc"),
            PathBuf::from("/srv/r")
        );
        assert_eq!(sqlite_base_dir(""), std::env::temp_dir());
        assert_eq!(sqlite_base_dir("sqlite::memory:"), std::env::temp_dir());
        assert_eq!(sqlite_base_dir("postgres://h/db"), std::env::temp_dir());
    }
}
