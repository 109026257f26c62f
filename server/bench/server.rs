//! The real HTTP application, served in-process on a loopback port.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::db::Db;
use crate::AppState;

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The state `recount serve` would build: wall clock, the given settings,
/// but files (blobs, temporary files) in the phase's scratch directory.
pub fn state(db: Db, config: &Config, dir: &Path) -> anyhow::Result<AppState> {
    let mut config = config.clone();
    config.data_dir = dir.to_path_buf();
    config.blob_store = String::new();
    AppState::new(db, config, Arc::new(SystemClock))
}

impl Server {
    /// Serves `crate::app(state)` on 127.0.0.1 with a port the OS picks.
    /// Background jobs are not started: the bench measures requests alone.
    pub async fn start(state: AppState) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (shutdown, stop) = oneshot::channel::<()>();
        let limits = crate::http::serve::Limits::of(&state.config);
        let app = crate::app(state);
        let task = tokio::spawn(crate::http::serve::serve(listener, app, limits, async {
            let _ = stop.await;
        }));
        Ok(Server {
            base,
            shutdown,
            task,
        })
    }

    /// Stops serving; connections still open after a few seconds are cut.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// One HTTP client for all simulated callers: a pool keeps one connection per
/// caller alive, as browsers and store systems do, but never longer than
/// half the time the server gives an idle connection to start its next
/// request (`header_read_timeout_ms`). A connection reused just as the
/// server closes it fails the request sent on it; a browser sends it again
/// on a new connection, reqwest does not, and a labeler thinking 10 s
/// against the default 10 s limit met that race.
pub fn client(callers: usize, config: &crate::config::Config) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(callers)
        .pool_idle_timeout(Duration::from_millis(config.header_read_timeout_ms / 2))
        .timeout(Duration::from_secs(60))
        .build()?)
}
