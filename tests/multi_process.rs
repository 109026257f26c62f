//! Multi-process tests: the real `recount` binary, started as separate
//! processes on loopback ports, driven over HTTP by many concurrent clients.
//!
//! - Two `recount serve` instances share one PostgreSQL database while fifty
//!   labelers race for tasks on both: no task is ever leased twice at once,
//!   every task gets exactly one verdict, every receipt is finalized once and
//!   announced by exactly one webhook delivery.
//! - A server is killed with SIGKILL in the middle of a load of events,
//!   claims and verdicts, then restarted on the same database (SQLite and
//!   PostgreSQL): nothing it acknowledged is lost, final receipts stay final,
//!   and the leases it held come back to the queue.
//! - A server killed while it sends a receipt webhook: another instance
//!   sends it within one job lease, with the same delivery id.
#![cfg(unix)]

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;
use tokio::process::{Child, Command};

use common::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_recount");

/// Longest wait for a server to answer `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The test catalog: sku, name, price in cents.
const CATALOG: [(&str, &str, i64); 5] = [
    ("milk", "Milk 1 l", 129),
    ("bread", "Bread", 399),
    ("cola", "Cola 330 ml", 149),
    ("eggs", "Eggs x10", 299),
    ("coffee", "Coffee 500 g", 899),
];

fn price(sku: &str) -> i64 {
    CATALOG
        .iter()
        .find(|(s, _, _)| *s == sku)
        .map(|(_, _, p)| *p)
        .unwrap_or_else(|| panic!("sku {sku:?} is not in the test catalog"))
}

fn catalog_body() -> Value {
    Value::Array(
        CATALOG
            .iter()
            .map(|(sku, name, cents)| json!({"sku": sku, "name": name, "price_cents": cents}))
            .collect(),
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A free loopback port: bound, read and released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// `recount --database-url URL --data-dir DIR`, with no `RECOUNT_*` setting
/// leaking in from the environment of the test run.
fn recount(db_url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RECOUNT_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--database-url")
        .arg(db_url)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RECOUNT_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs an admin command and returns the one JSON object it prints.
async fn cli(db_url: &str, dir: &Path, args: &[&str]) -> Value {
    let out = recount(db_url, dir)
        .args(args)
        .output()
        .await
        .expect("run the recount binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "recount {args:?} failed with {}:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("recount {args:?} printed nothing"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("recount {args:?} printed {line:?}, not JSON: {e}"))
}

/// Creates labelers with `recount user add`, a few processes at a time;
/// returns username → password.
async fn add_labelers(db_url: &str, dir: &Path, names: &[String]) -> HashMap<String, String> {
    futures::stream::iter(names.iter().cloned())
        .map(|name| async move {
            let out = cli(db_url, dir, &["user", "add", &name, "--role", "labeler"]).await;
            assert_eq!(out["username"], json!(name), "{out}");
            let password = out["password"].as_str().expect("a password").to_string();
            (name, password)
        })
        .buffer_unordered(5)
        .collect()
        .await
}

/// A running `recount serve` process.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `recount serve` on a free loopback port and waits until it
    /// answers `/healthz`. Retries on another port if the one picked was
    /// taken between its release and the server's bind.
    async fn start(name: &str, db_url: &str, dir: &Path, env: &[(&str, &str)]) -> Server {
        for attempt in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let log = dir.join(format!("{name}-{attempt}.log"));
            let file = std::fs::File::create(&log).expect("create a server log");
            let mut cmd = recount(db_url, dir);
            cmd.args(["serve", "--addr", &addr])
                .stdout(Stdio::null())
                .stderr(file)
                .kill_on_drop(true);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn recount serve");
            let base = format!("http://{addr}");
            match wait_ready(&mut child, &base).await {
                Ok(()) => return Server { child, base, log },
                Err(why) => {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("binding") {
                        continue;
                    }
                    panic!("recount serve ({name}) never became ready: {why}\n{text}");
                }
            }
        }
        panic!("recount serve ({name}) could not bind a free port in 5 attempts");
    }

    fn api(&self) -> Api {
        Api::new(&self.base)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown handler, no flush, no goodbye.
    async fn sigkill(mut self) {
        let pid = self.child.id().expect("the server is running");
        self.child.start_kill().expect("send SIGKILL");
        let status = self.child.wait().await.expect("reap the killed server");
        assert_eq!(
            status.signal(),
            Some(9),
            "server {pid} should have died of SIGKILL, got {status}"
        );
    }
}

/// Polls `GET /healthz` until it answers 200, the process exits, or the
/// deadline passes.
async fn wait_ready(child: &mut Child, base: &str) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Err(format!("the process exited with {status}"));
        }
        if let Ok(resp) = http.get(format!("{base}/healthz")).send().await {
            if resp.status() == StatusCode::OK {
                // Make sure it was our process that answered.
                if let Some(status) = child.try_wait().expect("poll the child") {
                    return Err(format!("the process exited with {status}"));
                }
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(format!("no healthy answer within {READY_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

type Answer = (StatusCode, Value);

impl Api {
    fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: base.to_string(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, body))
    }

    /// A call that must reach the server.
    async fn must(&self, method: Method, path: &str, bearer: &str, body: Option<&Value>) -> Answer {
        self.call(method.clone(), path, Some(bearer), body)
            .await
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base))
    }

    async fn token(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(&json!({"username": username, "password": password})),
            )
            .await
            .expect("reach the server for a token");
        assert_eq!(status, StatusCode::OK, "token for {username}: {body}");
        body["token"].as_str().expect("a token").to_string()
    }

    async fn claim(&self, token: &str) -> Result<Answer, reqwest::Error> {
        self.call(Method::POST, "/api/v1/tasks/claim", Some(token), None)
            .await
    }

    async fn verdict(
        &self,
        token: &str,
        task_id: &str,
        body: &Value,
    ) -> Result<Answer, reqwest::Error> {
        self.call(
            Method::POST,
            &format!("/api/v1/tasks/{task_id}/verdict"),
            Some(token),
            Some(body),
        )
        .await
    }

    async fn receipt(&self, key: &str, session: &str) -> Result<Answer, reqwest::Error> {
        self.call(
            Method::GET,
            &format!("/api/v1/sessions/{session}/receipt"),
            Some(key),
            None,
        )
        .await
    }
}

/// Signs in every labeler, a few at a time, spreading them over `apis`.
async fn tokens(apis: &[Api], passwords: &HashMap<String, String>) -> HashMap<String, String> {
    let mut names: Vec<&String> = passwords.keys().collect();
    names.sort();
    futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| {
            let api = apis[i % apis.len()].clone();
            async move { (name.clone(), api.token(name, &passwords[name]).await) }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect the test's own pool")
}

async fn scalar(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One row of `task_leases`, with the labeler's name.
#[derive(Debug, Clone)]
struct LeaseRow {
    task_id: String,
    labeler: String,
    claimed_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
}

async fn leases(pool: &sqlx::AnyPool) -> Vec<LeaseRow> {
    sqlx::query(
        "SELECT l.task_id, u.username, l.claimed_at, l.expires_at, l.ended_at, l.end_reason \
         FROM task_leases l JOIN users u ON u.id = l.labeler_id ORDER BY l.task_id, l.claimed_at, l.id",
    )
    .fetch_all(pool)
    .await
    .expect("read task_leases")
    .iter()
    .map(|r| LeaseRow {
        task_id: r.get("task_id"),
        labeler: r.get("username"),
        claimed_at: r.get("claimed_at"),
        expires_at: r.get("expires_at"),
        ended_at: r.get("ended_at"),
        end_reason: r.get("end_reason"),
    })
    .collect()
}

/// Panics when two leases of one task overlap in time. A lease lasts from
/// its claim until it ended (verdict, release) or expired, whichever came
/// first: the expiry sweep records an expired lease's end when it runs,
/// which may be after another instance claimed the task, but the lease
/// stopped counting at its expiry (every heartbeat moved that time on the
/// lease row too).
fn assert_no_overlapping_leases(rows: &[LeaseRow]) {
    let mut by_task: BTreeMap<&str, Vec<&LeaseRow>> = BTreeMap::new();
    for r in rows {
        by_task.entry(&r.task_id).or_default().push(r);
    }
    for (task, list) in by_task {
        for pair in list.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let a_end = a.ended_at.map_or(a.expires_at, |e| e.min(a.expires_at));
            assert!(
                b.claimed_at >= a_end,
                "task {task} was leased to {} at {} while {}'s lease (claimed {}, ended {:?}, \
                 expires {}) was still running",
                b.labeler,
                b.claimed_at,
                a.labeler,
                a.claimed_at,
                a.ended_at,
                a.expires_at
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Delivery {
    /// A delivery as the endpoint received it.
    fn of(headers: &axum::http::HeaderMap, body: &[u8]) -> Delivery {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        Delivery {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: body.to_vec(),
        }
    }
}

struct Hooks {
    url: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
    _server: tokio::task::JoinHandle<()>,
}

/// Serves `app` on a loopback port; the `/hook` URL and the server task.
async fn serve_hooks(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook receiver");
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("webhook receiver");
    });
    (url, server)
}

/// A store's webhook endpoint on loopback that records every delivery.
async fn start_hooks() -> Hooks {
    use axum::http::HeaderMap;
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(Delivery::of(&headers, &body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let (url, server) = serve_hooks(app).await;
    Hooks {
        url,
        seen,
        _server: server,
    }
}

// ---------------------------------------------------------------------------
// 1. Two instances, one PostgreSQL, fifty labelers
// ---------------------------------------------------------------------------

const SESSIONS: usize = 60;
const EVENTS_PER_SESSION: usize = 5;
const LABELERS: usize = 50;

/// What the test sends for one event and what its labeler will answer.
struct Planned {
    session: String,
    event: Value,
    verdict: Value,
    /// Cents the answer adds to the receipt.
    cents: i64,
}

fn plan(s: usize, j: usize) -> Planned {
    let session = format!("sess-{s:02}");
    let quantity = 1 + ((s + j) % 3) as i64;
    let top = CATALOG[(s + j) % CATALOG.len()].0;
    let second = CATALOG[(s + j + 1) % CATALOG.len()].0;
    let event = json!({
        "event_id": format!("ev-{s:02}-{j}"),
        "session_id": session,
        "kind": "pick",
        "quantity": quantity,
        "occurred_at": format!("2026-11-25T10:{s:02}:{j:02}Z"),
        // Below the 0.90 threshold: every event needs a human.
        "candidates": [{"sku": top, "confidence": 0.55}, {"sku": second, "confidence": 0.30}],
        "model_version": "m1",
    });
    let (verdict, cents) = if j == 4 && s % 2 == 0 {
        (json!({"action": "none"}), 0)
    } else {
        // Labelers sometimes correct the model.
        let sku = if (s + j) % 3 == 1 { second } else { top };
        (
            json!({"action": "pick", "sku": sku, "quantity": quantity}),
            quantity * price(sku),
        )
    };
    Planned {
        session,
        event,
        verdict,
        cents,
    }
}

/// One successful claim as a labeler saw it.
#[derive(Debug, Clone)]
struct SeenClaim {
    task_id: String,
    labeler: String,
    at_ms: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_claimers_on_two_instances_share_one_postgres_safely() {
    let started = Instant::now();
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let hooks = start_hooks().await;

    let store = cli(
        &db.url,
        dir.path(),
        &["store", "add", "Two instances", "--webhook-url", &hooks.url],
    )
    .await;
    let store_id = store["store_id"].as_str().expect("store_id").to_string();
    let key = store["api_key"].as_str().expect("api_key").to_string();
    let secret = store["webhook_secret"]
        .as_str()
        .expect("webhook_secret")
        .to_string();

    let names: Vec<String> = (0..LABELERS).map(|i| format!("labeler-{i:02}")).collect();
    let passwords = add_labelers(&db.url, dir.path(), &names).await;
    assert_eq!(passwords.len(), LABELERS);
    let users_done = started.elapsed();

    let env = [
        ("RECOUNT_JOB_POLL_INTERVAL_MS", "100"),
        ("RECOUNT_MAX_CONNECTIONS", "10"),
        // Events dated days before the real clock are past their deadline:
        // keep the deadline guarantee from escalating them (see
        // tests/deadlines.rs for it).
        ("RECOUNT_DEADLINE_SWEEP_INTERVAL_MS", "0"),
    ];
    let (a, b) = tokio::join!(
        Server::start("a", &db.url, dir.path(), &env),
        Server::start("b", &db.url, dir.path(), &env),
    );
    let apis = [a.api(), b.api()];

    let (status, body) = apis[0]
        .must(Method::PUT, "/api/v1/products", &key, Some(&catalog_body()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = tokens(&apis, &passwords).await;

    // Events: each session through one instance, half of them as one batch.
    let sessions: Vec<Vec<Planned>> = (0..SESSIONS)
        .map(|s| (0..EVENTS_PER_SESSION).map(|j| plan(s, j)).collect())
        .collect();
    let routed: Vec<Vec<(String, String)>> = futures::stream::iter(sessions.iter().enumerate())
        .map(|(s, events)| {
            let api = apis[s % 2].clone();
            let key = key.clone();
            async move {
                let outcomes: Vec<Value> = if s % 2 == 0 {
                    let batch = Value::Array(events.iter().map(|p| p.event.clone()).collect());
                    let (status, body) = api
                        .must(Method::POST, "/api/v1/events", &key, Some(&batch))
                        .await;
                    assert_eq!(status, StatusCode::OK, "batch of session {s}: {body}");
                    body.as_array().expect("an array of outcomes").clone()
                } else {
                    let mut out = Vec::new();
                    for p in events {
                        let (status, body) = api
                            .must(Method::POST, "/api/v1/events", &key, Some(&p.event))
                            .await;
                        assert_eq!(status, StatusCode::OK, "{}: {body}", p.event);
                        out.push(body);
                    }
                    out
                };
                assert_eq!(outcomes.len(), events.len());
                outcomes
                    .iter()
                    .zip(events)
                    .map(|(o, p)| {
                        assert_eq!(o["event_id"], p.event["event_id"], "{o}");
                        assert_eq!(o["route"], "review", "{o}");
                        let task = o["task_id"].as_str().expect("a task id").to_string();
                        (task, p.event["event_id"].as_str().unwrap().to_string())
                    })
                    .collect()
            }
        })
        .buffered(8)
        .collect()
        .await;
    let task_to_event: HashMap<String, String> = routed.into_iter().flatten().collect();
    assert_eq!(task_to_event.len(), SESSIONS * EVENTS_PER_SESSION);
    // event id → the verdict its labeler gives.
    let answers: Arc<HashMap<String, Value>> = Arc::new(
        sessions
            .iter()
            .flatten()
            .map(|p| {
                let id = p.event["event_id"].as_str().unwrap().to_string();
                (id, p.verdict.clone())
            })
            .collect(),
    );
    let expected_total: HashMap<String, i64> = sessions
        .iter()
        .map(|events| {
            (
                events[0].session.clone(),
                events.iter().map(|p| p.cents).sum(),
            )
        })
        .collect();

    // Every shopper leaves; every receipt waits for its reviews.
    futures::stream::iter(0..SESSIONS)
        .map(|s| {
            let api = apis[(s + 1) % 2].clone();
            let key = key.clone();
            async move {
                let path = format!("/api/v1/sessions/sess-{s:02}/exit");
                let (status, body) = api
                    .must(
                        Method::POST,
                        &path,
                        &key,
                        Some(&json!({"exited_at": "2026-11-25T11:00:00Z"})),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
                assert_eq!(body["status"], "pending", "{body}");
                assert_eq!(
                    body["events_in_review"],
                    json!(EVENTS_PER_SESSION),
                    "{body}"
                );
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;

    let setup_done = started.elapsed();
    // Fifty labelers, each with its own client and token, claim on one
    // instance and answer on the other, alternating, until both are empty.
    let claims: Arc<Mutex<Vec<SeenClaim>>> = Arc::default();
    let barrier = Arc::new(tokio::sync::Barrier::new(LABELERS));
    let mut workers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let token = tokens[name].clone();
        let name = name.clone();
        let bases = [a.base.clone(), b.base.clone()];
        let claims = claims.clone();
        let barrier = barrier.clone();
        let answers = answers.clone();
        workers.push(tokio::spawn(async move {
            let apis = [Api::new(&bases[0]), Api::new(&bases[1])];
            barrier.wait().await;
            let mut turn = i;
            let mut empty_in_a_row = 0;
            let mut answered = 0usize;
            while empty_in_a_row < 2 {
                let here = turn % 2;
                turn += 1;
                let (status, body) = apis[here]
                    .claim(&token)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: claim: {e}"));
                match status {
                    StatusCode::NO_CONTENT => empty_in_a_row += 1,
                    StatusCode::OK => {
                        empty_in_a_row = 0;
                        let task_id = body["task"]["task_id"].as_str().expect("task_id");
                        let event_id = body["task"]["event_id"].as_str().expect("event_id");
                        claims.lock().unwrap().push(SeenClaim {
                            task_id: task_id.to_string(),
                            labeler: name.clone(),
                            at_ms: now_ms(),
                        });
                        let verdict = &answers[event_id];
                        let (status, out) = apis[1 - here]
                            .verdict(&token, task_id, verdict)
                            .await
                            .unwrap_or_else(|e| panic!("{name}: verdict: {e}"));
                        assert_eq!(status, StatusCode::OK, "{name} on {task_id}: {out}");
                        assert_eq!(out["status"], "resolved", "{name} on {task_id}: {out}");
                        answered += 1;
                    }
                    other => panic!("{name}: claim answered {other}: {body}"),
                }
            }
            answered
        }));
    }
    let answered: usize = tokio::time::timeout(Duration::from_secs(60), async {
        let mut n = 0;
        for w in workers {
            n += w.await.expect("a labeler task panicked");
        }
        n
    })
    .await
    .expect("fifty labelers should empty the queue within 60 s");
    assert_eq!(answered, SESSIONS * EVENTS_PER_SESSION);

    // What the labelers saw: each task handed out exactly once.
    let claims = claims.lock().unwrap().clone();
    let mut claimed: HashMap<&str, Vec<&SeenClaim>> = HashMap::new();
    for c in &claims {
        claimed.entry(&c.task_id).or_default().push(c);
    }
    for (task, list) in &claimed {
        assert_eq!(
            list.len(),
            1,
            "task {task} was claimed {} times (the lease TTL is 60 s, none expired): {list:?}",
            list.len()
        );
        assert!(task_to_event.contains_key(*task), "unknown task {task}");
    }
    assert_eq!(claimed.len(), task_to_event.len(), "every task claimed");
    let labelers_used: HashSet<&str> = claims.iter().map(|c| c.labeler.as_str()).collect();
    assert!(labelers_used.len() > 1, "the load was spread over labelers");

    // What the database recorded.
    let pool = pool(&db.url).await;
    let lease_rows = leases(&pool).await;
    assert_no_overlapping_leases(&lease_rows);
    assert_eq!(lease_rows.len(), task_to_event.len(), "one lease per task");
    for l in &lease_rows {
        let seen = &claimed[l.task_id.as_str()][0];
        assert_eq!(l.labeler, seen.labeler, "lease holder of {}", l.task_id);
        assert_eq!(l.end_reason.as_deref(), Some("verdict"), "{l:?}");
        assert!(
            (l.claimed_at - seen.at_ms).abs() < 30_000,
            "lease time {l:?} vs claim seen at {}",
            seen.at_ms
        );
    }
    let total_tasks = task_to_event.len() as i64;
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM review_tasks").await,
        total_tasks
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM review_tasks WHERE status = 'resolved'"
        )
        .await,
        total_tasks,
        "every task resolved"
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM verdicts").await,
        total_tasks
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM (SELECT task_id FROM verdicts GROUP BY task_id HAVING COUNT(*) <> 1) x"
        )
        .await,
        0,
        "exactly one verdict per task"
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM verdicts v JOIN task_leases l ON l.id = v.lease_id \
             WHERE l.task_id = v.task_id AND l.labeler_id = v.labeler_id"
        )
        .await,
        total_tasks,
        "each verdict came from the lease holder"
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM events WHERE status = 'resolved'"
        )
        .await,
        total_tasks
    );

    // Receipts: finalized once each, with the labelers' answers.
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM receipts").await,
        SESSIONS as i64
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(DISTINCT session_id) FROM receipts").await,
        SESSIONS as i64
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM sessions WHERE status = 'finalized' AND open_reviews = 0"
        )
        .await,
        SESSIONS as i64
    );
    for (s, (session, total)) in expected_total.iter().enumerate() {
        let (status, body) = apis[s % 2]
            .receipt(&key, session)
            .await
            .expect("read a receipt");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "final", "{session}: {body}");
        assert_eq!(body["total_cents"], json!(total), "{session}: {body}");
        assert_eq!(body["events_in_review"], 0, "{body}");
    }

    let labeling_done = started.elapsed();
    // Webhooks: exactly one delivery per session, within a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids: HashSet<String> = hooks
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.id.clone())
            .collect();
        let pending = scalar(
            &pool,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'receipt-webhook' AND status <> 'done'",
        )
        .await;
        if ids.len() >= SESSIONS && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks: {} distinct deliveries, {pending} jobs not done after 30 s",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'receipt-webhook'"
        )
        .await,
        SESSIONS as i64,
        "one webhook job per receipt"
    );
    let deliveries = hooks.seen.lock().unwrap().clone();
    let mut per_session: HashMap<String, HashSet<String>> = HashMap::new();
    for d in &deliveries {
        assert!(!d.id.is_empty(), "a delivery without webhook-id");
        let ts: i64 = d.timestamp.parse().expect("webhook-timestamp in seconds");
        assert_eq!(
            d.signature,
            recount::jobs::webhook::sign(&secret, &d.id, ts, &d.body),
            "signature of delivery {}",
            d.id
        );
        let body: Value = serde_json::from_slice(&d.body).expect("a JSON webhook");
        assert_eq!(body["type"], "receipt.finalized", "{body}");
        assert_eq!(body["store_id"], json!(store_id), "{body}");
        let session = body["receipt"]["session_id"]
            .as_str()
            .expect("session_id")
            .to_string();
        assert_eq!(body["receipt"]["status"], "final", "{body}");
        assert_eq!(
            body["receipt"]["total_cents"],
            json!(expected_total[&session]),
            "{body}"
        );
        per_session.entry(session).or_default().insert(d.id.clone());
    }
    assert_eq!(per_session.len(), SESSIONS, "every session announced");
    for (session, ids) in &per_session {
        assert_eq!(
            ids.len(),
            1,
            "session {session} got {} distinct deliveries: {ids:?}",
            ids.len()
        );
    }

    for s in [&a, &b] {
        let log = s.log_text();
        assert!(
            !log.contains("panicked"),
            "server log shows a panic:\n{log}"
        );
    }
    eprintln!(
        "two instances: {} tasks, {} claims, {} deliveries ({} raw); users at {:?}, \
         events and exits at {:?}, queue empty at {:?}, done at {:?}",
        total_tasks,
        claims.len(),
        per_session.len(),
        deliveries.len(),
        users_done,
        setup_done,
        labeling_done,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 2. SIGKILL mid-load
// ---------------------------------------------------------------------------

/// Everything the server acknowledged with a 2xx before it died.
#[derive(Default)]
struct Ledger {
    events: HashSet<String>,
    /// (task id, labeler, sku, quantity).
    verdicts: Vec<(String, String, String, i64)>,
    /// Session → (total, finalized_at) as last reported final.
    finals: HashMap<String, (i64, String)>,
    exited: Vec<String>,
    /// Answers no correct server gives under this load.
    unexpected: Vec<String>,
    lease_expired_verdicts: usize,
    failed_after_stop: usize,
}

impl Ledger {
    fn record_final(&mut self, body: &Value) {
        if body["status"] == "final" {
            let session = body["session_id"].as_str().unwrap_or_default().to_string();
            let total = body["total_cents"].as_i64().unwrap_or(-1);
            let at = body["finalized_at"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(prev) = self.finals.get(&session) {
                if prev != &(total, at.clone()) {
                    self.unexpected.push(format!(
                        "receipt {session} was final as {prev:?}, later as ({total}, {at})"
                    ));
                }
            }
            self.finals.insert(session, (total, at));
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

/// A connection error is expected once the server is being killed.
fn failed(ledger: &Shared, stop: &AtomicBool, what: &str, e: reqwest::Error) {
    let mut l = ledger.lock().unwrap();
    if stop.load(Ordering::SeqCst) {
        l.failed_after_stop += 1;
    } else {
        l.unexpected.push(format!("{what}: {e}"));
    }
}

/// Event `j` of a poster's session `n`: some confident (auto-accepted), most
/// not (review). Labelers answer with the top candidate, so the final label
/// is always the top candidate and quantity either way.
fn crash_event(session: &str, n: usize, j: usize) -> Value {
    let sku = CATALOG[(n + j) % CATALOG.len()].0;
    let other = CATALOG[(n + j + 2) % CATALOG.len()].0;
    let candidates = if (n + j) % 3 == 0 {
        json!([{"sku": sku, "confidence": 0.97}])
    } else {
        json!([{"sku": sku, "confidence": 0.6}, {"sku": other, "confidence": 0.3}])
    };
    json!({
        "event_id": format!("{session}-e{j}"),
        "session_id": session,
        "kind": "pick",
        "quantity": 1 + (j % 2),
        "occurred_at": "2026-11-25T10:00:00Z",
        "candidates": candidates,
    })
}

async fn poster(p: usize, api: Api, key: String, stop: Arc<AtomicBool>, ledger: Shared) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let session = format!("p{p}-s{n:04}");
        let events: Vec<Value> = (0..1 + n % 4)
            .map(|j| crash_event(&session, n, j))
            .collect();
        let requests: Vec<(Value, Vec<String>)> = if n % 2 == 0 {
            let ids = events
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_string())
                .collect();
            vec![(Value::Array(events), ids)]
        } else {
            events
                .into_iter()
                .map(|e| {
                    let id = e["event_id"].as_str().unwrap().to_string();
                    (e, vec![id])
                })
                .collect()
        };
        for (body, ids) in requests {
            match api
                .call(Method::POST, "/api/v1/events", Some(&key), Some(&body))
                .await
            {
                Ok((StatusCode::OK, _)) => ledger.lock().unwrap().events.extend(ids),
                Ok((status, out)) => {
                    ledger
                        .lock()
                        .unwrap()
                        .unexpected
                        .push(format!("POST events {ids:?}: {status} {out}"));
                    return;
                }
                Err(e) => return failed(&ledger, &stop, "POST events", e),
            }
        }
        let exit = json!({"exited_at": "2026-11-25T10:30:00Z"});
        match api
            .call(
                Method::POST,
                &format!("/api/v1/sessions/{session}/exit"),
                Some(&key),
                Some(&exit),
            )
            .await
        {
            Ok((StatusCode::OK, body)) => {
                let mut l = ledger.lock().unwrap();
                l.exited.push(session);
                l.record_final(&body);
            }
            Ok((status, out)) => {
                ledger
                    .lock()
                    .unwrap()
                    .unexpected
                    .push(format!("exit {session}: {status} {out}"));
                return;
            }
            Err(e) => return failed(&ledger, &stop, "exit", e),
        }
        n += 1;
    }
}

/// The verdict a labeler gives: the model's top candidate and quantity.
fn top_answer(task: &Value) -> (String, i64, Value) {
    let sku = task["candidates"][0]["sku"]
        .as_str()
        .expect("a candidate")
        .to_string();
    let quantity = task["quantity"].as_i64().expect("a quantity");
    let body = json!({"action": "pick", "sku": sku, "quantity": quantity});
    (sku, quantity, body)
}

async fn crash_labeler(
    name: String,
    token: String,
    api: Api,
    stop: Arc<AtomicBool>,
    ledger: Shared,
) {
    while !stop.load(Ordering::SeqCst) {
        let (status, body) = match api.claim(&token).await {
            Ok(answer) => answer,
            Err(e) => return failed(&ledger, &stop, "claim", e),
        };
        match status {
            StatusCode::NO_CONTENT => {
                // Nothing ready yet: poll again shortly.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            StatusCode::OK => {
                let task_id = body["task"]["task_id"].as_str().expect("task_id");
                let (sku, quantity, verdict) = top_answer(&body["task"]);
                match api.verdict(&token, task_id, &verdict).await {
                    Ok((StatusCode::OK, _)) => ledger.lock().unwrap().verdicts.push((
                        task_id.to_string(),
                        name.clone(),
                        sku,
                        quantity,
                    )),
                    // A slow machine may let a 1.5 s lease run out; that is the contract.
                    Ok((StatusCode::CONFLICT, out)) if out["error"]["code"] == "lease-expired" => {
                        ledger.lock().unwrap().lease_expired_verdicts += 1
                    }
                    Ok((status, out)) => {
                        ledger
                            .lock()
                            .unwrap()
                            .unexpected
                            .push(format!("{name} verdict on {task_id}: {status} {out}"));
                        return;
                    }
                    Err(e) => return failed(&ledger, &stop, "verdict", e),
                }
            }
            other => {
                ledger
                    .lock()
                    .unwrap()
                    .unexpected
                    .push(format!("{name} claim: {other} {body}"));
                return;
            }
        }
    }
}

/// Reads receipts of exited sessions and remembers those reported final.
async fn receipt_watcher(api: Api, key: String, stop: Arc<AtomicBool>, ledger: Shared) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let next = {
            let l = ledger.lock().unwrap();
            let open: Vec<&String> = l
                .exited
                .iter()
                .filter(|s| !l.finals.contains_key(*s))
                .collect();
            (!open.is_empty()).then(|| open[i % open.len()].clone())
        };
        i += 1;
        let Some(session) = next else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        match api.receipt(&key, &session).await {
            Ok((StatusCode::OK, body)) => ledger.lock().unwrap().record_final(&body),
            Ok((status, out)) => {
                ledger
                    .lock()
                    .unwrap()
                    .unexpected
                    .push(format!("receipt {session}: {status} {out}"));
                return;
            }
            Err(e) => return failed(&ledger, &stop, "receipt", e),
        }
    }
}

/// Keeps a lease alive until the stop flag, without ever answering.
async fn holder(
    name: String,
    token: String,
    task_id: String,
    api: Api,
    stop: Arc<AtomicBool>,
    ledger: Shared,
) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let path = format!("/api/v1/tasks/{task_id}/heartbeat");
        match api.call(Method::POST, &path, Some(&token), None).await {
            Ok((StatusCode::OK, _)) => {}
            Ok((status, out)) => {
                ledger
                    .lock()
                    .unwrap()
                    .unexpected
                    .push(format!("{name} heartbeat: {status} {out}"));
                return;
            }
            Err(e) => return failed(&ledger, &stop, "heartbeat", e),
        }
    }
}

/// Expected total of a session from its stored events: every event ends as
/// a pick of its top candidate with its quantity.
async fn expected_totals(pool: &sqlx::AnyPool) -> HashMap<String, i64> {
    let rows = sqlx::query("SELECT session_id, quantity, candidates FROM events")
        .fetch_all(pool)
        .await
        .expect("read events");
    let mut totals: HashMap<String, i64> = HashMap::new();
    for r in rows {
        let candidates: Value =
            serde_json::from_str(&r.get::<String, _>("candidates")).expect("stored candidates");
        let top = candidates
            .as_array()
            .expect("candidate list")
            .iter()
            .max_by(|a, b| {
                a["confidence"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["confidence"].as_f64().unwrap())
            })
            .expect("a candidate");
        let quantity: i64 = r.get("quantity");
        *totals.entry(r.get("session_id")).or_default() +=
            quantity * price(top["sku"].as_str().unwrap());
    }
    totals
}

async fn sigkill_during_load_loses_nothing_acknowledged(backend: Backend) {
    let started = Instant::now();
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");

    let store = cli(&db.url, dir.path(), &["store", "add", "Crash store"]).await;
    let key = store["api_key"].as_str().expect("api_key").to_string();
    // No random audit sample: labelers answer what the model said, which a
    // blind audit would not show them.
    let store_id = store["store_id"].as_str().expect("store_id");
    cli(
        &db.url,
        dir.path(),
        &["store", "policy", store_id, "--audit-rate", "0"],
    )
    .await;
    let mut names: Vec<String> = (0..4).map(|i| format!("worker-{i}")).collect();
    names.extend(["holder-0".to_string(), "holder-1".to_string()]);
    let passwords = add_labelers(&db.url, dir.path(), &names).await;
    let pool = pool(&db.url).await;

    let env = [
        ("RECOUNT_LEASE_TTL_MS", "1500"),
        ("RECOUNT_LEASE_SWEEP_INTERVAL_MS", "200"),
        ("RECOUNT_MAX_CONNECTIONS", "8"),
        // The events are dated days before the server's real clock, so
        // every receipt is past its deadline and the deadline guarantee
        // would hand tasks to supervisors (nobody resolves them here). This
        // test is about what a kill loses; tests/deadlines.rs covers that.
        ("RECOUNT_DEADLINE_SWEEP_INTERVAL_MS", "0"),
    ];
    let server = Server::start("before-kill", &db.url, dir.path(), &env).await;
    let api = server.api();
    let (status, body) = api
        .must(Method::PUT, "/api/v1/products", &key, Some(&catalog_body()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = tokens(std::slice::from_ref(&api), &passwords).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ledger: Shared = Arc::default();

    // Two tasks that will be held, heartbeated and never answered.
    let mut held: HashMap<String, String> = HashMap::new();
    for h in 0..2 {
        let holder_name = format!("holder-{h}");
        let event = json!({
            "event_id": format!("held-{h}"),
            "session_id": format!("held-session-{h}"),
            "kind": "pick",
            "quantity": 1,
            "occurred_at": "2026-11-25T09:00:00Z",
            "candidates": [{"sku": "milk", "confidence": 0.5}, {"sku": "cola", "confidence": 0.4}],
        });
        let (status, out) = api
            .must(Method::POST, "/api/v1/events", &key, Some(&event))
            .await;
        assert_eq!(status, StatusCode::OK, "{out}");
        ledger.lock().unwrap().events.insert(format!("held-{h}"));
        let (status, claim) = api
            .claim(&tokens[&holder_name])
            .await
            .expect("holder claims");
        assert_eq!(status, StatusCode::OK, "{claim}");
        let task_id = claim["task"]["task_id"].as_str().unwrap().to_string();
        held.insert(task_id, holder_name);
    }

    // The load.
    let mut clients = Vec::new();
    for (task_id, holder_name) in &held {
        clients.push(tokio::spawn(holder(
            holder_name.clone(),
            tokens[holder_name].clone(),
            task_id.clone(),
            server.api(),
            stop.clone(),
            ledger.clone(),
        )));
    }
    for p in 0..3 {
        clients.push(tokio::spawn(poster(
            p,
            server.api(),
            key.clone(),
            stop.clone(),
            ledger.clone(),
        )));
    }
    for name in names.iter().filter(|n| n.starts_with("worker")) {
        clients.push(tokio::spawn(crash_labeler(
            name.clone(),
            tokens[name].clone(),
            server.api(),
            stop.clone(),
            ledger.clone(),
        )));
    }
    clients.push(tokio::spawn(receipt_watcher(
        server.api(),
        key.clone(),
        stop.clone(),
        ledger.clone(),
    )));

    // Kill once there is enough acknowledged work of every kind.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (unexpected, events, verdicts, finals) = {
            let l = ledger.lock().unwrap();
            (
                l.unexpected.clone(),
                l.events.len(),
                l.verdicts.len(),
                l.finals.len(),
            )
        };
        assert!(
            unexpected.is_empty(),
            "unexpected answers under load: {unexpected:?}\n{}",
            server.log_text()
        );
        if events >= 150 && verdicts >= 40 && finals >= 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "load too slow: {events} events, {verdicts} verdicts, {finals} final receipts after 45 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let killed_at = now_ms();
    let log_before = server.log_text();
    server.sigkill().await;
    for c in clients {
        c.await.expect("a client task panicked");
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        ledger.unexpected.is_empty(),
        "unexpected answers under load: {:?}\n{log_before}",
        ledger.unexpected
    );

    // The held leases were live when the server died.
    for (task_id, holder_name) in &held {
        let row = sqlx::query(
            "SELECT t.status, u.username, t.lease_expires_at FROM review_tasks t \
             JOIN users u ON u.id = t.leased_by WHERE t.id = $1",
        )
        .bind(task_id)
        .fetch_one(&pool)
        .await
        .expect("the held task is leased");
        assert_eq!(row.get::<String, _>("status"), "leased");
        assert_eq!(&row.get::<String, _>("username"), holder_name);
        let expires: i64 = row.get("lease_expires_at");
        assert!(
            expires > killed_at,
            "{holder_name}'s lease on {task_id} expired at {expires}, before the kill at {killed_at}"
        );
    }

    let server = Server::start("after-kill", &db.url, dir.path(), &env).await;
    let api = server.api();

    // Every acknowledged event is stored.
    let stored: HashSet<String> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(&pool)
        .await
        .expect("read events")
        .into_iter()
        .collect();
    let lost: Vec<&String> = ledger.events.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");

    // Every acknowledged verdict is stored, as given.
    let verdict_rows: HashSet<(String, String, String, i64)> = sqlx::query(
        "SELECT v.task_id, u.username, v.sku, v.quantity FROM verdicts v \
         JOIN users u ON u.id = v.labeler_id WHERE v.action = 'pick'",
    )
    .fetch_all(&pool)
    .await
    .expect("read verdicts")
    .iter()
    .map(|r| {
        (
            r.get("task_id"),
            r.get("username"),
            r.get("sku"),
            r.get("quantity"),
        )
    })
    .collect();
    for v in &ledger.verdicts {
        assert!(verdict_rows.contains(v), "acknowledged verdict lost: {v:?}");
    }

    // Every receipt reported final is still final, unchanged.
    for (session, (total, at)) in &ledger.finals {
        let (status, body) = api.receipt(&key, session).await.expect("read a receipt");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "final", "{session}: {body}");
        assert_eq!(body["total_cents"], json!(total), "{session}: {body}");
        assert_eq!(body["finalized_at"], json!(at), "{session}: {body}");
    }

    // The held leases run out and their tasks come back to the queue.
    let deadline = Instant::now() + Duration::from_secs(20);
    let held_ids: Vec<String> = held.keys().cloned().collect();
    loop {
        let mut back = 0;
        for id in &held_ids {
            let status: String =
                sqlx::query_scalar("SELECT status FROM review_tasks WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("task status");
            if status != "leased" {
                back += 1;
            }
        }
        if back == held_ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "held leases still not expired 20 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (task_id, holder_name) in &held {
        let (status, out) = api
            .verdict(
                &tokens[holder_name],
                task_id,
                &json!({"action": "pick", "sku": "milk", "quantity": 1}),
            )
            .await
            .expect("late verdict");
        assert_eq!(status, StatusCode::CONFLICT, "{out}");
        assert_eq!(out["error"]["code"], "lease-expired", "{out}");
    }

    // Workers drain the queue: the held tasks are claimable again, and every
    // exited session ends with a final receipt.
    // Everyone drains, holders included: no task may be stranded because all
    // its possible claimers held it before (a task never returns to them).
    let workers: Vec<&String> = names.iter().collect();
    let mut reclaimed: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut turn = 0usize;
    let mut empty_in_a_row = 0usize;
    loop {
        let name = workers[turn % workers.len()];
        turn += 1;
        let (status, body) = api.claim(&tokens[name]).await.expect("claim after restart");
        match status {
            StatusCode::OK => {
                empty_in_a_row = 0;
                let task_id = body["task"]["task_id"].as_str().unwrap().to_string();
                let (_, _, verdict) = top_answer(&body["task"]);
                let (status, out) = api
                    .verdict(&tokens[name], &task_id, &verdict)
                    .await
                    .expect("verdict after restart");
                assert_eq!(status, StatusCode::OK, "{name} on {task_id}: {out}");
                reclaimed.insert(task_id, name.clone());
            }
            StatusCode::NO_CONTENT => {
                empty_in_a_row += 1;
                if empty_in_a_row >= workers.len() {
                    let open = scalar(
                        &pool,
                        "SELECT COUNT(*) FROM review_tasks WHERE status IN ('ready', 'leased')",
                    )
                    .await;
                    if open == 0 {
                        break;
                    }
                    // Leases of clients killed mid-answer have yet to run out.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            StatusCode::CONFLICT if body["error"]["code"] == "too-many-leases" => {
                // Still holds leases from before the kill; they run out soon.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("claim after restart: {other} {body}"),
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not drain within 30 s of the restart"
        );
    }
    for (task_id, holder_name) in &held {
        let by = reclaimed
            .get(task_id)
            .unwrap_or_else(|| panic!("held task {task_id} never came back to the queue"));
        assert_ne!(by, holder_name);
    }
    let lease_rows = leases(&pool).await;
    assert_no_overlapping_leases(&lease_rows);
    for (task_id, holder_name) in &held {
        let list: Vec<&LeaseRow> = lease_rows
            .iter()
            .filter(|l| &l.task_id == task_id)
            .collect();
        assert_eq!(&list[0].labeler, holder_name, "{list:?}");
        assert_eq!(list[0].end_reason.as_deref(), Some("expired"), "{list:?}");
        assert_eq!(
            list.last().unwrap().end_reason.as_deref(),
            Some("verdict"),
            "{list:?}"
        );
    }

    // Nothing left half-done: every exited session is final, once, with the
    // total its stored events call for; reported finals never changed.
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM sessions WHERE status = 'exited'"
        )
        .await,
        0,
        "exited sessions without a final receipt"
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM receipts").await,
        scalar(
            &pool,
            "SELECT COUNT(*) FROM sessions WHERE status = 'finalized'"
        )
        .await
    );
    let expected = expected_totals(&pool).await;
    let finalized: Vec<String> =
        sqlx::query_scalar("SELECT session_id FROM sessions WHERE status = 'finalized'")
            .fetch_all(&pool)
            .await
            .expect("finalized sessions");
    assert!(finalized.len() >= ledger.finals.len());
    for session in &finalized {
        let (status, body) = api.receipt(&key, session).await.expect("read a receipt");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "final", "{body}");
        assert_eq!(
            body["total_cents"],
            json!(expected[session]),
            "{session}: {body}"
        );
        if let Some((total, at)) = ledger.finals.get(session) {
            assert_eq!(body["total_cents"], json!(total), "{body}");
            assert_eq!(body["finalized_at"], json!(at), "{body}");
        }
    }
    for e in &ledger.exited {
        assert!(finalized.contains(e), "exited session {e} is not final");
    }

    let log = server.log_text();
    assert!(
        !log.contains("panicked"),
        "server log shows a panic:\n{log}"
    );
    eprintln!(
        "{backend:?}: killed after {} events, {} verdicts, {} finals acknowledged \
         ({} requests cut off, {} lease-expired verdicts); {} tasks drained after restart; {:?}",
        ledger.events.len(),
        ledger.verdicts.len(),
        ledger.finals.len(),
        ledger.failed_after_stop,
        ledger.lease_expired_verdicts,
        reclaimed.len(),
        started.elapsed()
    );
}

dual!(sigkill_during_load_loses_nothing_acknowledged);

// ---------------------------------------------------------------------------
// 3. A receipt webhook of a killed instance goes out within one job lease
// ---------------------------------------------------------------------------

/// A webhook endpoint that hangs on the first delivery it gets (the worker
/// sending it is about to be killed) and answers the later ones: the
/// headers of the first, and the later deliveries with when they arrived.
struct StuckHooks {
    url: String,
    first: tokio::sync::oneshot::Receiver<Delivery>,
    later: Arc<Mutex<Vec<(Delivery, Instant)>>>,
    _server: tokio::task::JoinHandle<()>,
}

async fn start_stuck_hooks() -> StuckHooks {
    use axum::http::HeaderMap;
    let (tx, first) = tokio::sync::oneshot::channel();
    let first_tx = Arc::new(Mutex::new(Some(tx)));
    let later: Arc<Mutex<Vec<(Delivery, Instant)>>> = Arc::default();
    let record = later.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let first_tx = first_tx.clone();
            let record = record.clone();
            async move {
                let delivery = Delivery::of(&headers, &body);
                let first = first_tx.lock().unwrap().take();
                if let Some(tx) = first {
                    let _ = tx.send(delivery.clone());
                    // Never answer: the sender dies waiting.
                    std::future::pending::<()>().await;
                }
                record.lock().unwrap().push((delivery, Instant::now()));
                axum::http::StatusCode::OK
            }
        }),
    );
    let (url, server) = serve_hooks(app).await;
    StuckHooks {
        url,
        first,
        later,
        _server: server,
    }
}

async fn a_webhook_of_a_killed_instance_goes_out_within_one_job_lease(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let hooks = start_stuck_hooks().await;
    let store = cli(
        &db.url,
        dir.path(),
        &["store", "add", "Hooked", "--webhook-url", &hooks.url],
    )
    .await;
    let store_id = store["store_id"].as_str().expect("store_id").to_string();
    let key = store["api_key"].as_str().expect("api_key").to_string();
    // No random audit sample: the event below is settled at once.
    cli(
        &db.url,
        dir.path(),
        &["store", "policy", &store_id, "--audit-rate", "0"],
    )
    .await;
    // The default job lease (15 s): the bound this test states.
    let env = [
        ("RECOUNT_JOB_POLL_INTERVAL_MS", "100"),
        ("RECOUNT_WEBHOOK_TIMEOUT_MS", "120000"),
    ];
    let a = Server::start("a", &db.url, dir.path(), &env).await;
    let api = a.api();
    let (status, body) = api
        .must(Method::PUT, "/api/v1/products", &key, Some(&catalog_body()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = recount::domain::time::format_rfc3339_ms;
    let now = now_ms();
    let event = json!({
        "event_id": "e1", "session_id": "s1", "kind": "pick", "quantity": 1,
        "occurred_at": at(now),
        "candidates": [{"sku": "milk", "confidence": 0.99}],
    });
    let (status, body) = api
        .must(Method::POST, "/api/v1/events", &key, Some(&event))
        .await;
    assert_eq!(
        (status, body["route"].as_str()),
        (StatusCode::OK, Some("auto_accepted")),
        "{body}"
    );
    let (status, receipt) = api
        .must(
            Method::POST,
            "/api/v1/sessions/s1/exit",
            &key,
            Some(&json!({"exited_at": at(now)})),
        )
        .await;
    assert_eq!(
        (status, receipt["status"].as_str()),
        (StatusCode::OK, Some("final")),
        "{receipt}"
    );

    // Instance A sends the receipt webhook and dies before the answer.
    let first = tokio::time::timeout(Duration::from_secs(20), hooks.first)
        .await
        .expect("instance A sends the webhook")
        .expect("the receiver saw it");
    a.sigkill().await;
    let killed = Instant::now();

    // Instance B takes the job over once A's lease runs out.
    let b = Server::start("b", &db.url, dir.path(), &env).await;
    let delivered = loop {
        if let Some((d, when)) = hooks.later.lock().unwrap().first().cloned() {
            break (d, when);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no delivery within 60 s of the kill:\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (delivery, when) = delivered;
    let took = when.duration_since(killed);
    assert!(
        took < Duration::from_secs(30),
        "delivered {took:?} after the kill: one 15 s lease plus a restart should do"
    );
    assert_eq!(
        delivery.id, first.id,
        "the same delivery, so the store can drop a repeat"
    );
    assert_eq!(delivery.body, first.body);
    let sent: Value = serde_json::from_slice(&delivery.body).expect("JSON body");
    assert_eq!(sent["receipt"]["status"], "final", "{sent}");
    assert_eq!(sent["receipt"]["total_cents"], 129, "{sent}");
    // B records the delivery done; the attempt A died in is counted.
    let pool = pool(&db.url).await;
    let done_by = Instant::now() + Duration::from_secs(30);
    while scalar(
        &pool,
        "SELECT COUNT(*) FROM jobs WHERE kind = 'receipt-webhook' AND status = 'done'",
    )
    .await
        != 1
    {
        assert!(
            Instant::now() < done_by,
            "the job never completed:\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        scalar(
            &pool,
            "SELECT attempts FROM jobs WHERE kind = 'receipt-webhook'"
        )
        .await,
        2
    );
    assert_eq!(
        hooks.later.lock().unwrap().len(),
        1,
        "delivered once after the kill"
    );
}
dual!(a_webhook_of_a_killed_instance_goes_out_within_one_job_lease);
