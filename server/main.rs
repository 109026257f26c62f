//! The `recount` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use recount::api::queue::PolicyPatch;
use recount::auth::{generate_password, hash_password, Role};
#[cfg(feature = "bench")]
use recount::bench;
use recount::clock::{Clock, SystemClock};
use recount::config::Config;
use recount::db::{stores, users, Db};
#[cfg(feature = "demo")]
use recount::demo;
use recount::domain::audit::Actor;
use recount::domain::routing::RoutingMode;
use recount::domain::scope::Scope;
use recount::review::admin;
use recount::{jobs, AppState};

/// Recount: human-in-the-loop video review for checkout-free stores.
#[derive(Parser, Debug)]
#[command(name = "recount", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Args, Debug)]
struct GlobalArgs {
    /// Optional TOML file with any setting (see docs/operations.md).
    #[arg(long, global = true, env = "RECOUNT_CONFIG")]
    config: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB (default: SQLite under the data dir).
    #[arg(long, global = true, env = "RECOUNT_DATABASE_URL")]
    database_url: Option<String>,
    /// Directory for the SQLite file and media.
    #[arg(long, global = true, env = "RECOUNT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the HTTP service and its background jobs.
    Serve {
        /// Listen address (default 127.0.0.1:8080).
        #[arg(long, env = "RECOUNT_ADDR")]
        addr: Option<String>,
        /// Creates demo data and simulates shoppers.
        #[cfg_attr(not(feature = "demo"), doc = "Needs a build with `--features demo`.")]
        #[arg(long)]
        demo: bool,
    },
    /// Applies database migrations.
    Migrate,
    /// Creates the demo store, catalog and users, and prints the credentials.
    #[cfg_attr(not(feature = "demo"), doc = "Needs a build with `--features demo`.")]
    Demo,
    /// Manages stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Manages users.
    #[command(subcommand)]
    User(UserCommand),
    /// Writes resolved events as training data: a JSONL manifest, WebDataset
    /// tar shards and a dataset card (see docs/export.md).
    Export(recount::export::cli::ExportArgs),
    /// Runs store days through the review rules on a virtual clock and
    /// compares routing policies (see docs/economics.md).
    Simulate(recount::sim::cli::SimulateArgs),
    /// Runs media operations for a server, which starts it (one request per
    /// line on stdin, one answer per line on stdout).
    #[command(hide = true)]
    MediaWorker {
        /// Memory it may map beyond the program itself, in MiB (0: no limit).
        #[arg(long, default_value_t = 0)]
        memory_mb: u64,
    },
    /// Measures throughput and latency (see docs/benchmarks.md).
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Measures throughput and latency (see docs/benchmarks.md).
    /// Needs a build with `--features bench`.
    #[cfg(not(feature = "bench"))]
    Bench {
        /// What the bench would take.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Creates a store and prints its id, API key and webhook secret.
    Add {
        /// Display name.
        name: String,
        /// Where final receipts are posted.
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Shows or changes a store's routing policy.
    Policy {
        /// Store id.
        store_id: String,
        /// Review below this top confidence.
        #[arg(long)]
        threshold: Option<f64>,
        /// Review when the top two candidates are closer than this.
        #[arg(long)]
        margin: Option<f64>,
        /// Share of confident events sent to review as audit samples.
        #[arg(long)]
        audit_rate: Option<f64>,
        /// Agreeing verdicts an audit sample needs.
        #[arg(long)]
        audit_verdicts: Option<i64>,
        /// Events worth at least this many cents need several verdicts.
        #[arg(long, conflicts_with = "no_high_value")]
        high_value_cents: Option<i64>,
        /// Turns the high-value rule off.
        #[arg(long)]
        no_high_value: bool,
        /// Receipt deadline after exit, in milliseconds.
        #[arg(long)]
        receipt_sla_ms: Option<i64>,
        /// `threshold` or `charge-aware`.
        #[arg(long)]
        mode: Option<String>,
        /// What a review costs the store, in cents (charge-aware routing).
        #[arg(long)]
        review_cost_cents: Option<i64>,
    },
    /// Allows or forbids the use of a store's data for training exports.
    Training {
        /// Store id.
        store_id: String,
        /// Allow (otherwise forbid).
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        allow: bool,
        /// Forbid.
        #[arg(long)]
        deny: bool,
    },
    /// Shows every task of a store blind (`--on`), or only audit samples,
    /// gold copies and disputes (`--off`).
    Blind {
        /// Store id.
        store_id: String,
        /// Every task blind.
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        /// Only the tasks that measure.
        #[arg(long)]
        off: bool,
    },
    /// Sets how many days the store keeps shopper video after the receipt
    /// is final (1 to 3650; a new store keeps it 30).
    Retention {
        /// Store id.
        store_id: String,
        /// Days.
        #[arg(long)]
        days: i64,
    },
    /// Issues a new API key; the old one stops working.
    RotateKey {
        /// Store id.
        store_id: String,
    },
    /// Issues a new webhook secret; the old one keeps signing deliveries
    /// beside it for `webhook_secret_overlap_ms` (a day by default).
    RotateWebhookSecret {
        /// Store id.
        store_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Creates a user (or resets its password) and prints a generated password.
    Add {
        /// Login name.
        name: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: Role,
        /// A store the user covers (repeat for several); without any, the
        /// user covers every store.
        #[arg(long = "store", value_name = "STORE_ID")]
        stores: Vec<String>,
    },
    /// Sets the stores a user covers: a supervisor sees only these, a
    /// labeler's queue hands them only these stores' tasks.
    Stores {
        /// Login name.
        name: String,
        /// A store the user covers (repeat for several).
        #[arg(
            long = "store",
            value_name = "STORE_ID",
            required_unless_present = "all"
        )]
        stores: Vec<String>,
        /// Every store, including stores created later.
        #[arg(long, conflicts_with = "stores")]
        all: bool,
    },
    /// Lists everyone: role, stores, whether disabled or paused, last
    /// activity.
    List,
    /// Pauses a labeler from the queue until resumed.
    Pause {
        /// Login name.
        name: String,
        /// Why (shown on the people page).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lets a paused labeler claim again.
    Resume {
        /// Login name.
        name: String,
    },
    /// Disables a user: their tokens end and they can no longer sign in.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enables a disabled user again.
    Enable {
        /// Login name.
        name: String,
    },
    /// Ends every token of a user (signs them out everywhere).
    RevokeTokens {
        /// Login name.
        name: String,
    },
}

fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let base = match &global.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let mut config = base.with_env(std::env::vars())?;
    if let Some(url) = &global.database_url {
        config.database_url = url.clone();
    }
    if let Some(dir) = &global.data_dir {
        config.data_dir = dir.clone();
    }
    config.validate()?;
    Ok(config)
}

async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.effective_database_url(), config.max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

/// Why a command this binary was built without cannot run, and how to get it.
#[cfg(not(all(feature = "demo", feature = "bench")))]
fn not_built(command: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`{command}` is not in this build of recount: build it with `--features {feature}` \
         (e.g. `cargo build --release --features {feature}`)"
    )
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A media worker is a plain loop over its stdin: no runtime, no log on
    // stdout (which carries its answers), nothing of the configuration.
    if let Command::MediaWorker { memory_mb } = cli.command {
        let settings = recount::media::worker::WorkerSettings {
            memory_bytes: memory_mb.saturating_mul(1024 * 1024),
        };
        return Ok(recount::media::worker::serve(settings)?);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // A bench overloads the pools on purpose; sqlx would warn about every
    // slow acquire and drown the results.
    let default_filter = match cli.command {
        Command::Bench { .. } => "warn,sqlx=error",
        _ => "info,sqlx=warn",
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_env("RECOUNT_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_filter)),
        );
    let registry = tracing_subscriber::registry().with(logs);
    // `recount bench queue` counts the statements a pair sends.
    #[cfg(feature = "bench")]
    let counting = matches!(cli.command, Command::Bench { .. });
    #[cfg(feature = "bench")]
    let registry = registry.with(counting.then(recount::bench::count::layer));
    registry.init();
    // The counting layer raised the maximum level the `log` bridge forwards;
    // the bench's own filter needs no more than warnings (sqlx's statement
    // log reaches the layer through tracing, not through `log`).
    #[cfg(feature = "bench")]
    if counting && std::env::var_os("RECOUNT_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let mut config = load_config(&cli.global)?;
    let clock = SystemClock;
    match cli.command {
        Command::Serve {
            addr,
            demo: with_demo,
        } => {
            #[cfg(not(feature = "demo"))]
            if with_demo {
                return Err(not_built("recount serve --demo", "demo"));
            }
            if let Some(addr) = addr {
                config.addr = addr;
            }
            let db = open_db(&config).await?;
            let state = AppState::new(db, config.clone(), std::sync::Arc::new(SystemClock))?;
            let listener = tokio::net::TcpListener::bind(&config.addr)
                .await
                .with_context(|| format!("binding {}", config.addr))?;
            let addr = listener.local_addr()?;
            #[cfg(feature = "demo")]
            if with_demo {
                let creds = demo::setup(&state).await?;
                print(creds.to_json(&format!("http://{addr}")));
                tokio::spawn(demo::simulate(state.clone(), creds.store_id.clone()));
                demo::setup_crew(&state).await?;
                tokio::spawn(demo::simulate_crew(state.clone()));
            }
            let _jobs = jobs::spawn(state.clone());
            tracing::info!(%addr, database = ?state.db.backend, "recount is listening");
            let limits = recount::http::serve::Limits::of(&state.config);
            let ready = state.db.ready.clone();
            let stopping = async move {
                shutdown_signal().await;
                // Claims waiting for a task answer now instead of holding
                // the shutdown back.
                ready.stop();
            };
            recount::http::serve::serve(listener, recount::app(state), limits, stopping).await;
        }
        Command::Migrate => {
            let db = open_db(&config).await?;
            print(
                json!({"migrated": true, "database": format!("{:?}", db.backend).to_lowercase()}),
            );
        }
        #[cfg(not(feature = "demo"))]
        Command::Demo => return Err(not_built("recount demo", "demo")),
        #[cfg(feature = "demo")]
        Command::Demo => {
            let db = open_db(&config).await?;
            let state = AppState::new(db, config.clone(), std::sync::Arc::new(SystemClock))?;
            let creds = demo::setup(&state).await?;
            print(creds.to_json(&format!("http://{}", config.addr)));
        }
        Command::Store(StoreCommand::Add { name, webhook_url }) => {
            let db = open_db(&config).await?;
            let created = admin::create_store(
                &db,
                &Actor::operator(),
                &name,
                webhook_url.as_deref(),
                clock.now_ms(),
            )
            .await?;
            print(json!({
                "store_id": created.store.id,
                "api_key": created.api_key,
                "webhook_secret": created.store.webhook_secret,
            }));
        }
        Command::Store(StoreCommand::Policy {
            store_id,
            threshold,
            margin,
            audit_rate,
            audit_verdicts,
            high_value_cents,
            no_high_value,
            receipt_sla_ms,
            mode,
            review_cost_cents,
        }) => {
            let mode = mode
                .map(|m| {
                    RoutingMode::parse(&m).with_context(|| {
                        format!("--mode must be threshold or charge-aware, not {m:?}")
                    })
                })
                .transpose()?;
            let db = open_db(&config).await?;
            let patch = PolicyPatch {
                threshold,
                margin,
                audit_rate,
                audit_verdicts,
                high_value_cents: if no_high_value {
                    Some(None)
                } else {
                    high_value_cents.map(Some)
                },
                receipt_sla_ms,
                expected_exit_ms: None,
                mode,
                review_cost_cents: review_cost_cents.map(Some),
            };
            let policy = admin::change_policy(
                &db,
                &Actor::operator(),
                &store_id,
                |p| patch.apply(p),
                clock.now_ms(),
            )
            .await?;
            print(json!({"store_id": store_id, "policy": policy}));
        }
        Command::Store(StoreCommand::Training {
            store_id, allow, ..
        }) => {
            let db = open_db(&config).await?;
            anyhow::ensure!(
                admin::set_training(&db, &Actor::operator(), &store_id, allow, clock.now_ms())
                    .await?,
                "no store {store_id:?}"
            );
            print(json!({"store_id": store_id, "training_allowed": allow}));
        }
        Command::Store(StoreCommand::Retention { store_id, days }) => {
            let db = open_db(&config).await?;
            anyhow::ensure!(
                admin::set_retention(&db, &Actor::operator(), &store_id, days, clock.now_ms())
                    .await?,
                "no store {store_id:?}"
            );
            print(json!({"store_id": store_id, "media_retention_days": days}));
        }
        Command::Store(StoreCommand::Blind { store_id, on, .. }) => {
            let db = open_db(&config).await?;
            anyhow::ensure!(
                admin::set_blind_review(&db, &Actor::operator(), &store_id, on, clock.now_ms())
                    .await?,
                "no store {store_id:?}"
            );
            print(json!({"store_id": store_id, "blind_review": on}));
        }
        Command::Simulate(args) if args.replay.is_some() => {
            let db = open_db(&config).await?;
            replay_history(&db, &config, &args, clock.now_ms()).await?;
        }
        Command::Simulate(args) => recount::sim::cli::run(&args)?,
        Command::MediaWorker { .. } => unreachable!("a media worker runs before the runtime"),
        Command::Export(args) => {
            let db = open_db(&config).await?;
            recount::export::cli::export(&args, &config, &db).await?;
        }
        Command::Store(StoreCommand::RotateKey { store_id }) => {
            let db = open_db(&config).await?;
            let key = admin::rotate_api_key(&db, &Actor::operator(), &store_id, clock.now_ms())
                .await?
                .with_context(|| format!("no store {store_id:?}"))?;
            print(json!({"store_id": store_id, "api_key": key}));
        }
        Command::Store(StoreCommand::RotateWebhookSecret { store_id }) => {
            let db = open_db(&config).await?;
            let rotated = admin::rotate_webhook_secret(
                &db,
                &Actor::operator(),
                &store_id,
                clock.now_ms(),
                config.webhook_secret_overlap_ms,
            )
            .await?
            .with_context(|| format!("no store {store_id:?}"))?;
            print(json!({
                "store_id": store_id,
                "webhook_secret": rotated.secret,
                "previous_valid_until": recount::domain::time::format_rfc3339_ms(rotated.previous_valid_until),
            }));
        }
        Command::User(UserCommand::Add { name, role, stores }) => {
            let db = open_db(&config).await?;
            let scope = scope_of(&db, stores, false).await?;
            let password = generate_password();
            let hash = hash_password(&password)?;
            // A reset password ends the sessions the old one opened.
            let (user, revoked) = admin::add_user(
                &db,
                &Default::default(),
                &Actor::operator(),
                &name,
                &hash,
                role,
                &scope,
                clock.now_ms(),
            )
            .await?;
            print(json!({
                "username": name, "password": password, "role": role,
                "stores": scope_json(&user.scope), "tokens_revoked": revoked,
            }));
        }
        Command::User(UserCommand::Stores { name, stores, all }) => {
            let db = open_db(&config).await?;
            let scope = scope_of(&db, stores, all).await?;
            let user = admin::assign_stores(
                &db,
                &Default::default(),
                &Actor::operator(),
                &name,
                &scope,
                clock.now_ms(),
            )
            .await?
            .with_context(|| format!("no user {name:?}"))?;
            print(json!({"username": name, "role": user.role, "stores": scope_json(&user.scope)}));
        }
        Command::User(UserCommand::List) => {
            let db = open_db(&config).await?;
            let mut conn = db.reader().acquire().await?;
            let people: Vec<serde_json::Value> = users::list(&mut conn)
                .await?
                .into_iter()
                .map(|p| {
                    json!({
                        "username": p.user.username,
                        "role": p.user.role,
                        "stores": scope_json(&p.user.scope),
                        "disabled": p.disabled,
                        "paused": p.user.paused,
                        "paused_reason": p.paused_reason,
                        "last_active_at": p.last_active_at.map(recount::domain::time::format_rfc3339_ms),
                    })
                })
                .collect();
            print(json!({"users": people}));
        }
        Command::User(UserCommand::Pause { name, reason }) => {
            let db = open_db(&config).await?;
            let why = reason.unwrap_or_else(|| "paused at the command line".into());
            let user = admin::set_paused(
                &db,
                &Default::default(),
                &Actor::operator(),
                &name,
                Some(&why),
                clock.now_ms(),
            )
            .await?
            .with_context(|| format!("no user {name:?}"))?;
            print(json!({"username": user.username, "paused": true, "reason": why}));
        }
        Command::User(UserCommand::Resume { name }) => {
            let db = open_db(&config).await?;
            let user = admin::set_paused(
                &db,
                &Default::default(),
                &Actor::operator(),
                &name,
                None,
                clock.now_ms(),
            )
            .await?
            .with_context(|| format!("no user {name:?}"))?;
            print(json!({"username": user.username, "paused": false}));
        }
        Command::User(UserCommand::Disable { name }) => {
            let db = open_db(&config).await?;
            print(set_disabled(&db, &name, true, clock.now_ms()).await?);
        }
        Command::User(UserCommand::Enable { name }) => {
            let db = open_db(&config).await?;
            print(set_disabled(&db, &name, false, clock.now_ms()).await?);
        }
        Command::User(UserCommand::RevokeTokens { name }) => {
            let db = open_db(&config).await?;
            let account = users::by_username(&db, &name)
                .await?
                .with_context(|| format!("no user {name:?}"))?;
            let revoked = admin::sign_out_everywhere(
                &db,
                &Default::default(),
                &Actor::operator(),
                &account.user,
                clock.now_ms(),
            )
            .await?;
            print(json!({"username": name, "tokens_revoked": revoked}));
        }
        #[cfg(feature = "bench")]
        Command::Bench(cmd) => bench::run(cmd, &config).await?,
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => return Err(not_built("recount bench", "bench")),
    }
    Ok(())
}

/// The scope `--store` options (or `--all`, or no option at all) name;
/// every named store must exist.
async fn scope_of(db: &Db, ids: Vec<String>, all: bool) -> anyhow::Result<Scope> {
    if all || ids.is_empty() {
        return Ok(Scope::All);
    }
    let known: std::collections::HashSet<String> =
        stores::list(db).await?.into_iter().map(|s| s.id).collect();
    if let Some(unknown) = ids.iter().find(|id| !known.contains(*id)) {
        anyhow::bail!("no store {unknown:?}");
    }
    Ok(Scope::of(ids))
}

/// A scope as the CLI prints it: `"all"` or the list of store ids.
fn scope_json(scope: &Scope) -> serde_json::Value {
    match scope.stores() {
        None => json!("all"),
        Some(ids) => json!(ids),
    }
}

/// `recount user disable|enable`: what changed, as JSON.
async fn set_disabled(
    db: &Db,
    name: &str,
    disabled: bool,
    now: i64,
) -> anyhow::Result<serde_json::Value> {
    // This process caches no token: other instances stop accepting the
    // user's tokens within their cache's freshness.
    let (user, revoked) = admin::set_disabled(
        db,
        &Default::default(),
        &Actor::operator(),
        name,
        disabled,
        now,
    )
    .await?
    .with_context(|| format!("no user {name:?}"))?;
    Ok(json!({"username": user.username, "disabled": disabled, "tokens_revoked": revoked}))
}

/// `recount simulate --replay`: the store's past events through the
/// policies, printed as a table or JSON.
async fn replay_history(
    db: &Db,
    config: &Config,
    args: &recount::sim::cli::SimulateArgs,
    now: i64,
) -> anyhow::Result<()> {
    use recount::sim::policy::SimPolicy;
    let time = |name: &str, value: &Option<String>| {
        let text = value.as_deref().unwrap_or_default();
        recount::domain::time::parse_rfc3339_ms(text)
            .with_context(|| format!("--{name} {text:?} is not an RFC 3339 time"))
    };
    let (from, to) = (time("from", &args.from)?, time("to", &args.to)?);
    let defaults = ["baseline", "charge-aware"]
        .iter()
        .map(|s| SimPolicy::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let policies = args.policies_or(defaults)?;
    let store_id = args.replay.as_deref().unwrap_or_default();
    let report = recount::review::replay::replay(
        db,
        store_id,
        from,
        to,
        &policies,
        config.labor_cost(),
        now,
    )
    .await?;
    let out = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        format!(
            "Replay of store {}: {} events from {} to {} ({} left out: a product no longer in the catalog); \
             audit samples weighed at the store's audit rate {}\n\n{}",
            report.store_id,
            report.events,
            recount::domain::time::format_rfc3339_ms(from),
            recount::domain::time::format_rfc3339_ms(to),
            report.skipped,
            report.audit_rate,
            recount::sim::render::replay_table(&report.policies),
        )
    };
    recount::sim::cli::emit(&out)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
