//! Configuration: defaults, then an optional TOML file, then `RECOUNT_*`
//! environment variables, then command-line flags — each layer overriding the
//! one before.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Everything a `recount` process can be told.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address of `serve`.
    pub addr: String,
    /// `sqlite://…` or `postgres://…`; empty means SQLite under `data_dir`.
    pub database_url: String,
    /// Directory for the SQLite file and media blobs.
    pub data_dir: PathBuf,
    /// Most connections per pool.
    pub max_connections: u32,
    /// How long a claimed task stays leased without a heartbeat.
    pub lease_ttl_ms: i64,
    /// How often a console holding an audit sample asks whether receipt
    /// work is waiting (its heartbeat); the audit is given back at once when
    /// it is, so this bounds what an audit can add to a receipt's wait.
    pub audit_yield_check_ms: i64,
    /// Tasks one labeler may hold at once (the console prefetches one).
    pub max_leases_per_labeler: i64,
    /// A console left without input (or hidden) this long stops, gives its
    /// tasks back and waits for the labeler to start again; 0 never does.
    pub console_idle_release_ms: i64,
    /// How often expired leases are returned to the queue.
    pub lease_sweep_interval_ms: u64,
    /// How often the job worker looks for due jobs when idle.
    pub job_poll_interval_ms: u64,
    /// How long a taken job stays reserved for its worker without a renewal.
    /// A worker renews it every third of this while the job runs, so a job
    /// of an instance that died is taken over within this time, whatever
    /// the job. A take-over counts as a failed attempt, so a file that
    /// crashes the worker cannot be retried forever.
    pub job_lease_ms: i64,
    /// How long before a task's receipt deadline it goes to supervisors if
    /// nobody settled it (the deadline guarantee).
    pub deadline_lead_ms: i64,
    /// How often each instance looks for tasks at risk of missing their
    /// receipt deadline; 0 turns the deadline guarantee off.
    pub deadline_sweep_interval_ms: u64,
    /// A labeler who claimed work within this window counts as active: the
    /// crew the deadline guarantee counts on.
    pub labeler_active_window_ms: i64,
    /// What an hour of a labeler costs, in cents: times a store's median
    /// handling time, the cost of a review for charge-aware routing, unless
    /// the store sets its own (`review_cost_cents`).
    pub labeler_hourly_cost_cents: i64,
    /// The handling time used until a store has enough verdicts of its own,
    /// in milliseconds.
    pub review_handling_ms: i64,
    /// Uploads one store may send to one instance at once; more are refused
    /// with `429 too-many-uploads`, so one store cannot take every upload
    /// slot of an instance.
    pub store_max_concurrent_uploads: usize,
    /// Bytes of uploaded video (clips and footage as sent) one store may
    /// keep; an upload past it is refused with `507 storage-full`. 0: no
    /// limit.
    pub store_max_stored_bytes: u64,
    /// How long a rotated webhook secret keeps signing deliveries beside
    /// the new one (`recount store rotate-webhook-secret`).
    pub webhook_secret_overlap_ms: i64,
    /// Webhook deliveries tried before the job is dead.
    pub webhook_max_attempts: i64,
    /// First retry delay of a webhook; doubled on each attempt.
    pub webhook_backoff_base_ms: i64,
    /// Longest retry delay of a webhook.
    pub webhook_backoff_max_ms: i64,
    /// Time limit of one webhook request.
    pub webhook_timeout_ms: u64,
    /// Largest JSON request body.
    pub json_body_limit: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Lifetime of an API token.
    pub token_ttl_ms: i64,
    /// Where blobs live: empty for `<data_dir>/blobs`, or `s3://BUCKET`.
    pub blob_store: String,
    /// S3 endpoint URL (for S3-compatible stores); empty for AWS.
    pub s3_endpoint: String,
    /// S3 region; empty takes `AWS_REGION`.
    pub s3_region: String,
    /// S3 access key id; empty takes `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: String,
    /// S3 secret key; empty takes `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: String,
    /// Allows a plain-HTTP S3 endpoint (local test servers).
    pub s3_allow_http: bool,
    /// Largest clip or footage upload in bytes.
    pub max_upload_bytes: u64,
    /// Media jobs run at once by one instance.
    pub media_concurrency: usize,
    /// Time limit of one media operation.
    pub media_timeout_ms: u64,
    /// Largest accepted video width or height in pixels.
    pub media_max_dimension: u32,
    /// Longest accepted clip.
    pub media_max_clip_ms: i64,
    /// Longest accepted footage recording.
    pub media_max_footage_ms: i64,
    /// Thumbnails in a filmstrip.
    pub filmstrip_frames: u32,
    /// Media job attempts before the clip is marked failed.
    pub media_max_attempts: i64,
    /// The program (and its first arguments) that starts a media worker;
    /// `media-worker` and its settings are added after them. Empty: this
    /// very program.
    pub media_worker_command: Vec<String>,
    /// Memory a media worker may map beyond the program itself, in MiB (0:
    /// no limit). Past it, allocations fail and the operation with them.
    pub media_worker_memory_mb: u64,
    /// CPU seconds one media operation may use in its worker, all threads
    /// together (0: no limit beyond `media_timeout_ms`). Past them the
    /// kernel ends the worker, even one whose server has gone.
    pub media_worker_cpu_s: u64,
    /// On PostgreSQL, how often the queue tables are vacuumed by Recount
    /// itself (0 turns it off). Every claim and verdict leaves a dead row
    /// version at the head of the queue; autovacuum removes them when it
    /// runs, but on servers where it is off or slow they pile up and every
    /// claim walks over them.
    pub queue_vacuum_interval_ms: u64,
    /// How often each instance adds new facts to the dashboard's rollup
    /// tables (0 turns it off: the dashboard then counts everything after
    /// the watermark from the raw tables, correct but slower).
    pub rollup_interval_ms: u64,
    /// Time a connection has to send a request's headers (from its
    /// opening, or from the previous response); past it, it is closed.
    pub header_read_timeout_ms: u64,
    /// Time a request has from its headers to its answer, uploads aside
    /// (they stream as long as bytes keep coming): past it, `408
    /// request-timeout`.
    pub request_timeout_ms: u64,
    /// Time a request body may pause between two pieces; past it, the
    /// request is refused (`408 request-timeout`, an upload
    /// `upload-incomplete`) and nothing is stored.
    pub body_idle_timeout_ms: u64,
    /// HTTP connections open at once; more wait in the listen backlog.
    pub http_max_connections: usize,
    /// Marks the console's session cookie `Secure` (set it when Recount is
    /// served over HTTPS; a request with `X-Forwarded-Proto: https` from a
    /// TLS-terminating proxy gets a `Secure` cookie either way).
    pub secure_cookies: bool,
    /// Failed logins allowed per username from one client address within
    /// `login_window_ms`; the next attempt from that address is refused
    /// with 429 until the window moves on (others can still sign in).
    pub login_max_failures: usize,
    /// Failed logins allowed per username from all addresses together
    /// within `login_window_ms`: the slower limit on guessing one account
    /// from many addresses.
    pub login_max_failures_per_user: usize,
    /// Failed logins allowed per client address within `login_window_ms`.
    pub login_max_failures_per_address: usize,
    /// Proxies whose `X-Forwarded-For` is believed (comma-separated
    /// addresses and CIDR networks): behind them the client address of the
    /// login limits is the one they saw, not theirs. Empty: nobody's.
    pub trusted_proxies: String,
    /// The sliding window of the login limits.
    pub login_window_ms: i64,
    /// Share of claims (0 to 1) that serve a gold task instead of the next
    /// real one, when the labeler has real work waiting and a gold task they
    /// have not seen exists.
    pub gold_rate: f64,
    /// Gold accuracy (0 to 1) below which a labeler is flagged.
    pub gold_min_accuracy: f64,
    /// Gold answers (last 7 days) a labeler needs before being flagged.
    pub gold_min_answers: u64,
    /// Gold accuracy (0 to 1) under which a labeler is paused from the
    /// queue until a supervisor lets them back in, judged over the last 7
    /// days once they have `gold_min_answers` answers (0: never paused
    /// automatically).
    pub gold_pause_floor: f64,
    /// Days the audit trail keeps a row (0: forever); the daily retention
    /// job deletes older ones.
    pub audit_retention_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:8080".into(),
            database_url: String::new(),
            data_dir: PathBuf::from("data"),
            max_connections: 16,
            lease_ttl_ms: 60_000,
            audit_yield_check_ms: 1_000,
            max_leases_per_labeler: 2,
            console_idle_release_ms: 120_000,
            lease_sweep_interval_ms: 1_000,
            job_poll_interval_ms: 500,
            job_lease_ms: 15_000,
            deadline_lead_ms: 60_000,
            deadline_sweep_interval_ms: 5_000,
            labeler_active_window_ms: 10 * 60_000,
            labeler_hourly_cost_cents: 2_250,
            review_handling_ms: 8_000,
            webhook_secret_overlap_ms: 24 * 3_600_000,
            store_max_concurrent_uploads: 4,
            store_max_stored_bytes: 0,
            webhook_max_attempts: 12,
            webhook_backoff_base_ms: 2_000,
            webhook_backoff_max_ms: 3_600_000,
            webhook_timeout_ms: 10_000,
            json_body_limit: 2 * 1024 * 1024,
            max_batch_events: 1_000,
            token_ttl_ms: 12 * 3_600_000,
            blob_store: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_allow_http: false,
            max_upload_bytes: 512 * 1024 * 1024,
            media_concurrency: 2,
            media_timeout_ms: 120_000,
            media_max_dimension: 4096,
            media_max_clip_ms: 10 * 60_000,
            media_max_footage_ms: 4 * 3_600_000,
            filmstrip_frames: 10,
            media_max_attempts: 3,
            media_worker_command: Vec::new(),
            media_worker_memory_mb: 4_096,
            media_worker_cpu_s: 300,
            queue_vacuum_interval_ms: 60_000,
            rollup_interval_ms: 10_000,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            body_idle_timeout_ms: 30_000,
            http_max_connections: 1_024,
            secure_cookies: false,
            login_max_failures: 5,
            login_max_failures_per_user: 100,
            login_max_failures_per_address: 50,
            trusted_proxies: String::new(),
            login_window_ms: 15 * 60_000,
            gold_rate: 0.05,
            gold_min_accuracy: 0.8,
            gold_min_answers: 10,
            gold_pause_floor: 0.0,
            audit_retention_days: 730,
        }
    }
}

/// Secrets may sit in the database URL; never print them.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("max_connections", &self.max_connections)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .field("max_leases_per_labeler", &self.max_leases_per_labeler)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("blob_store", &self.blob_store)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &if self.s3_secret_access_key.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("media_concurrency", &self.media_concurrency)
            .finish_non_exhaustive()
    }
}

/// Replaces the password of a URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Config {
    /// Reads the optional file layer.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// Applies `RECOUNT_<SETTING>` variables (e.g. `RECOUNT_LEASE_TTL_MS`)
    /// for every setting; values are read as TOML scalars.
    pub fn with_env(
        self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = toml::Table::try_from(&self).context("serializing config")?;
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("RECOUNT_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let Some(current) = table.get(&key) else {
                continue;
            };
            let parsed = match current {
                toml::Value::String(_) => toml::Value::String(value),
                _ => toml::from_str::<toml::Table>(&format!("v = {value}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .with_context(|| format!("{name}: {value:?} is not a valid value"))?,
            };
            table.insert(key, parsed);
        }
        Config::deserialize(table).context("applying RECOUNT_* environment variables")
    }

    /// Refuses settings outside their range, so a typo stops the process
    /// at start instead of changing what it does.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("gold_rate", self.gold_rate),
            ("gold_min_accuracy", self.gold_min_accuracy),
            ("gold_pause_floor", self.gold_pause_floor),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&value),
                "{name} must be between 0 and 1, not {value}"
            );
        }
        anyhow::ensure!(
            self.audit_retention_days >= 0,
            "audit_retention_days must be 0 (forever) or more, not {}",
            self.audit_retention_days
        );
        anyhow::ensure!(
            self.store_max_concurrent_uploads >= 1,
            "store_max_concurrent_uploads must be at least 1"
        );
        anyhow::ensure!(
            self.audit_yield_check_ms >= 100,
            "audit_yield_check_ms must be at least 100, not {}",
            self.audit_yield_check_ms
        );
        self.trusted_proxies()?;
        Ok(())
    }

    /// The proxies whose `X-Forwarded-For` is believed, parsed from
    /// `trusted_proxies`.
    pub fn trusted_proxies(&self) -> anyhow::Result<crate::domain::proxy::TrustedProxies> {
        crate::domain::proxy::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))
    }

    /// What labeler time costs: the hourly cost and the configured time a
    /// review takes (a store's measured one replaces it once known).
    pub fn labor_cost(&self) -> crate::domain::charge::LaborCost {
        crate::domain::charge::LaborCost {
            hourly_cents: self.labeler_hourly_cost_cents,
            handling_ms: self.review_handling_ms,
        }
    }

    /// The database URL to use: the configured one, or SQLite under `data_dir`.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("recount.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_output() {
        let c = Config {
            database_url: "postgres://app:hunter2@db:5432/recount".into(),
            s3_secret_access_key: "s3cr3t".into(),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/recount"));
    }

    #[test]
    fn file_layer_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("lease_ttl_ms = 5000").unwrap();
        assert_eq!(c.lease_ttl_ms, 5000);
        assert_eq!(c.addr, "127.0.0.1:8080");
        assert!(toml::from_str::<Config>("lease_ttl = 5").is_err());
    }

    #[test]
    fn environment_overrides_any_setting_by_name() {
        let c = Config::default()
            .with_env([
                ("RECOUNT_LEASE_TTL_MS".to_string(), "1500".to_string()),
                ("RECOUNT_ADDR".to_string(), "0.0.0.0:9000".to_string()),
                ("OTHER".to_string(), "x".to_string()),
            ])
            .unwrap();
        assert_eq!(c.lease_ttl_ms, 1500);
        assert_eq!(c.addr, "0.0.0.0:9000");
        assert!(Config::default()
            .with_env([("RECOUNT_LEASE_TTL_MS".to_string(), "soon".to_string())])
            .is_err());
    }

    #[test]
    fn shares_must_lie_between_zero_and_one() {
        assert!(Config::default().validate().is_ok());
        for bad in [-0.1, 1.5, f64::NAN] {
            let c = Config {
                gold_rate: bad,
                ..Config::default()
            };
            assert!(c.validate().is_err(), "gold_rate {bad}");
            let c = Config {
                gold_min_accuracy: bad,
                ..Config::default()
            };
            assert!(c.validate().is_err(), "gold_min_accuracy {bad}");
        }
        let edges = Config {
            gold_rate: 1.0,
            gold_min_accuracy: 0.0,
            ..Config::default()
        };
        assert!(edges.validate().is_ok());
        // Whole numbers from the environment are read as shares too.
        let c = Config::default()
            .with_env([("RECOUNT_GOLD_RATE".to_string(), "1".to_string())])
            .unwrap();
        assert_eq!(c.gold_rate, 1.0);
    }

    #[test]
    fn default_database_is_sqlite_under_the_data_dir() {
        let c = Config {
            data_dir: "/srv/recount".into(),
            ..Config::default()
        };
        assert_eq!(
            c.effective_database_url(),
            "sqlite:///srv/recount/recount.db?mode=rwc"
        );
    }
}
