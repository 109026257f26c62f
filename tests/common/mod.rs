//! Test harness: a real Recount server on a loopback port, on a fresh SQLite
//! file or a fresh PostgreSQL database, driven over real HTTP; and what the
//! media tests share: fixtures, the media job loop, MP4 box walking, a
//! reference decoder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use recount::auth::{hash_password, Role};
use recount::clock::ManualClock;
use recount::config::Config;
use recount::db::Db;
use recount::domain::audit::Actor;
use recount::domain::scope::Scope;
use recount::review::admin;
use recount::AppState;

/// The two engines every database test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where tests find PostgreSQL (a database they may create others from).
pub fn pg_admin_url() -> String {
    std::env::var("RECOUNT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database of one engine.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("recount.db").display()
                );
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("rt_{}", uuid::Uuid::now_v7().simple());
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running for the tests (see README)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').expect("database URL has a path").0;
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                }
            }
        }
    }

    /// Connects and migrates.
    pub async fn connect(&self) -> Db {
        self.connect_with(16).await
    }

    /// Connects with at most `connections` pooled connections, and migrates.
    pub async fn connect_with(&self, connections: u32) -> Db {
        let db = Db::connect(&self.url, connections).await.expect("connect");
        db.migrate().await.expect("migrate");
        db
    }
}

/// A running server with a hand-driven clock.
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub db_handle: TestDb,
    pub data_dir: tempfile::TempDir,
}

/// Sends the server's warnings and errors to the test's captured output, so
/// a failing test shows why the server answered 500 (the harness prints a
/// test's output only when it fails). `RECOUNT_TEST_LOG` overrides the filter.
pub fn init_logs() {
    let filter = std::env::var("RECOUNT_TEST_LOG").unwrap_or_else(|_| "warn".into());
    // Several apps in one test binary: only the first call installs it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// Every test user's password.
pub const PASSWORD: &str = "pw-for-tests";

/// The clock starts here in every test: 2026-11-25T10:00:00Z.
pub const T0: i64 = 1_795_600_800_000;

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        TestApp::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start_pooled(backend, 16, tweak).await
    }

    /// An app whose database pool holds at most `connections` connections
    /// (one makes every request reuse the same connection and its cached
    /// statements).
    pub async fn start_pooled(
        backend: Backend,
        connections: u32,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        TestApp::start_full(backend, connections, tweak, None).await
    }

    /// An app whose events take their audit draws from `draws`, one each
    /// in the order they are stored (a repeatable run); an event beyond the
    /// list is a test's mistake and fails it.
    pub async fn start_with_draws(
        backend: Backend,
        draws: impl IntoIterator<Item = f64>,
    ) -> TestApp {
        let queue = std::sync::Mutex::new(
            draws
                .into_iter()
                .collect::<std::collections::VecDeque<f64>>(),
        );
        let draw: recount::AuditDraw =
            Arc::new(move || queue.lock().unwrap().pop_front().expect("a draw per event"));
        TestApp::start_full(backend, 16, |_| {}, Some(draw)).await
    }

    async fn start_full(
        backend: Backend,
        connections: u32,
        tweak: impl FnOnce(&mut Config),
        draws: Option<recount::AuditDraw>,
    ) -> TestApp {
        init_logs();
        let db_handle = TestDb::new(backend).await;
        let db = db_handle.connect_with(connections).await;
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            // This test binary is not `recount`: media workers are.
            media_worker_command: vec![env!("CARGO_BIN_EXE_recount").to_string()],
            ..Config::default()
        };
        tweak(&mut config);
        let clock = Arc::new(ManualClock::new(T0));
        let mut state = AppState::new(db, config, clock.clone()).expect("app state");
        if let Some(draws) = draws {
            state.audit_draw = draws;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Served as `recount serve` serves: through its connection limits,
        // with the peer's address (the login limits read it).
        let limits = recount::http::serve::Limits::of(&state.config);
        let app = recount::app(state.clone());
        tokio::spawn(recount::http::serve::serve(
            listener,
            app,
            limits,
            std::future::pending(),
        ));
        TestApp {
            base,
            state,
            clock,
            http: reqwest::Client::new(),
            db_handle,
            data_dir,
        }
    }

    /// Another instance of the service on the same database, data directory
    /// and clock, as a second `recount serve` would be (its own pools and
    /// caches; not serving HTTP).
    pub async fn second_instance(&self) -> AppState {
        let db = self.db_handle.connect().await;
        AppState::new(db, (*self.state.config).clone(), self.clock.clone()).expect("app state")
    }

    /// Creates a store; returns (store id, API key).
    ///
    /// Its policy is the default one without random audit samples (the
    /// default samples 2% of confident events): a test's routing is decided
    /// by the test, never by a draw. Tests of auditing set a rate.
    pub async fn store(&self, name: &str, webhook: Option<&str>) -> (String, String) {
        let s = admin::create_store(
            &self.state.db,
            &Actor::operator(),
            name,
            webhook,
            self.state.now(),
        )
        .await
        .unwrap();
        let no_audits =
            |p: &recount::domain::routing::RoutingPolicy| recount::domain::routing::RoutingPolicy {
                audit_rate: 0.0,
                ..p.clone()
            };
        admin::change_policy(
            &self.state.db,
            &Actor::operator(),
            &s.store.id,
            no_audits,
            self.state.now(),
        )
        .await
        .unwrap();
        (s.store.id, s.api_key)
    }

    /// Sets a store's routing policy, as an operator at the command line.
    pub async fn set_policy(
        &self,
        store_id: &str,
        policy: recount::domain::routing::RoutingPolicy,
    ) {
        admin::change_policy(
            &self.state.db,
            &Actor::operator(),
            store_id,
            |_| policy,
            self.state.now(),
        )
        .await
        .unwrap();
    }

    /// Allows or forbids training use of a store's data, as an operator.
    pub async fn set_training(&self, store_id: &str, allowed: bool) {
        let s = &self.state;
        assert!(
            admin::set_training(&s.db, &Actor::operator(), store_id, allowed, s.now())
                .await
                .unwrap()
        );
    }

    /// Creates a store with a small catalog; returns (store id, API key).
    pub async fn store_with_catalog(&self) -> (String, String) {
        let (id, key) = self.store("Test store", None).await;
        self.catalog(&key).await;
        (id, key)
    }

    /// Uploads the test catalog: milk 129, bread 399, cola 149, tv 49900.
    pub async fn catalog(&self, key: &str) {
        self.products(
            key,
            json!([
                {"sku": "milk", "name": "Milk 1 l", "price_cents": 129},
                {"sku": "bread", "name": "Bread", "price_cents": 399},
                {"sku": "cola", "name": "Cola 330 ml", "price_cents": 149},
                {"sku": "tv", "name": "Television", "price_cents": 49900},
            ]),
        )
        .await;
    }

    /// Uploads `list` to the store's catalog (added or updated by sku).
    pub async fn products(&self, key: &str, list: Value) {
        let (status, body) = self
            .call(Method::PUT, "/api/v1/products", key, Some(list))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Creates a user and signs in; returns the API token.
    pub async fn user(&self, name: &str, role: Role) -> String {
        self.user_in(name, role, Scope::All).await
    }

    /// Creates a user covering `scope` and signs in; returns the API token.
    pub async fn user_in(&self, name: &str, role: Role, scope: Scope) -> String {
        self.add_user_in(name, role, scope).await;
        let (status, body) = self
            .call_anon(
                Method::POST,
                "/api/v1/auth/token",
                Some(json!({"username": name, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Creates (or updates) a user with the tests' password, without signing in.
    pub async fn add_user(&self, name: &str, role: Role) {
        self.add_user_in(name, role, Scope::All).await;
    }

    /// Creates (or updates) a user covering `scope`, without signing in.
    pub async fn add_user_in(&self, name: &str, role: Role, scope: Scope) {
        let hash = hash_password(PASSWORD).unwrap();
        let s = &self.state;
        admin::add_user(
            &s.db,
            &s.tokens,
            &Actor::operator(),
            name,
            &hash,
            role,
            &scope,
            s.now(),
        )
        .await
        .unwrap();
    }

    /// Uploads a media fixture as a camera clip starting at `start`
    /// (RFC 3339); returns the clip id.
    pub async fn upload_clip(&self, key: &str, name: &str, camera: &str, start: &str) -> String {
        let (status, body) = self
            .post_clip(key, fixture(name), camera, Some(start))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["clip_id"].as_str().unwrap().to_string()
    }

    /// Sends `bytes` as a camera's clip (starting at `start`, if given);
    /// returns status and JSON body.
    pub async fn post_clip(
        &self,
        key: &str,
        bytes: Vec<u8>,
        camera: &str,
        start: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/clips", self.base))
            .bearer_auth(key)
            .header("content-type", "video/mp4")
            .header("x-camera-id", camera);
        if let Some(start) = start {
            req = req.header("x-clip-start", start);
        }
        read(req.body(bytes).send().await.unwrap()).await
    }

    /// Sends a request with a bearer secret; returns status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn call_anon(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    /// Sends raw bytes as the body.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .header("content-type", content_type)
            .body(body);
        read(req.send().await.unwrap()).await
    }

    pub async fn claim(&self, token: &str) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/tasks/claim", token, None)
            .await
    }

    pub async fn verdict(&self, token: &str, task_id: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/tasks/{task_id}/verdict"),
            token,
            Some(body),
        )
        .await
    }

    /// Posts one event (or an array).
    pub async fn events(&self, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/events", key, Some(body))
            .await
    }

    pub async fn exit(&self, key: &str, session: &str, at: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/sessions/{session}/exit"),
            key,
            Some(json!({"exited_at": at})),
        )
        .await
    }

    pub async fn receipt(&self, key: &str, session: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/api/v1/sessions/{session}/receipt"),
            key,
            None,
        )
        .await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// A scalar from the database, for assertions on stored state.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.state.db.reader())
            .await
            .unwrap()
    }
}

/// Path of a media fixture (`fixtures/media/<name>`).
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/media")
        .join(name)
}

/// The bytes of a media fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

/// Runs media jobs (clip processing, posters) until none is due; returns
/// how many ran.
pub async fn run_media_jobs(app: &TestApp) -> usize {
    let client = recount::jobs::webhook::client(&app.state.config);
    let mut n = 0;
    while recount::jobs::run_next_job(&app.state, &client, recount::jobs::MEDIA_JOBS)
        .await
        .unwrap()
    {
        n += 1;
        assert!(n < 200, "media jobs never settle");
    }
    n
}

/// Every file below `dir` (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Top-level ISO-BMFF box types, in file order.
pub fn top_level_boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).expect("read");
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).to_string();
        let size = match size32 {
            0 => bytes.len() - pos,
            1 => u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize,
            s => s,
        };
        assert!(
            size >= 8 && pos + size <= bytes.len(),
            "box {kind} overruns"
        );
        boxes.push(kind);
        pos += size;
    }
    assert_eq!(pos, bytes.len(), "boxes cover the file");
    boxes
}

/// A faststart MP4: its `moov` index comes before its `mdat` frame data.
pub fn assert_moov_before_mdat(path: &Path) {
    let boxes = top_level_boxes(path);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
    assert!(moov < mdat, "moov must come before mdat: {boxes:?}");
}

/// Every frame of `path` as the reference decoder sees it (plain
/// ffmpeg-next, from the first packet, no seeking): stored orientation,
/// RGB, in presentation order, each with its time in ms from the start of
/// the video stream.
pub fn decode_frames(path: &Path) -> Vec<(i64, image::RgbImage)> {
    use ffmpeg_next as ff;
    ff::init().expect("ffmpeg");
    let mut ictx = ff::format::input(path).expect("open");
    let stream = ictx.streams().best(ff::media::Type::Video).expect("video");
    let index = stream.index();
    let tb = stream.time_base();
    let start = match stream.start_time() {
        s if s == ff::ffi::AV_NOPTS_VALUE => 0,
        s => s,
    };
    let mut decoder = ff::codec::context::Context::from_parameters(stream.parameters())
        .expect("params")
        .decoder()
        .video()
        .expect("decoder");
    let mut scaler: Option<ff::software::scaling::Context> = None;
    let mut frames = Vec::new();
    let mut receive = |decoder: &mut ff::decoder::Video, frames: &mut Vec<_>| {
        let mut frame = ff::frame::Video::empty();
        while decoder.receive_frame(&mut frame).is_ok() {
            let scaler = scaler.get_or_insert_with(|| {
                ff::software::scaling::Context::get(
                    frame.format(),
                    frame.width(),
                    frame.height(),
                    ff::format::Pixel::RGB24,
                    frame.width(),
                    frame.height(),
                    ff::software::scaling::Flags::BICUBIC,
                )
                .expect("scaler")
            });
            let mut rgb = ff::frame::Video::empty();
            scaler.run(&frame, &mut rgb).expect("scale");
            let ticks = frame.timestamp().expect("pts") - start;
            let ms = (ticks as f64 * f64::from(tb) * 1000.0).round() as i64;
            frames.push((ms, to_image(&rgb)));
        }
    };
    for (stream, packet) in ictx.packets() {
        if stream.index() == index {
            decoder.send_packet(&packet).expect("send");
            receive(&mut decoder, &mut frames);
        }
    }
    decoder.send_eof().expect("eof");
    receive(&mut decoder, &mut frames);
    frames
}

/// A decoded RGB24 frame as an image (rows copied past the stride padding).
pub fn to_image(frame: &ffmpeg_next::frame::Video) -> image::RgbImage {
    let (w, h, stride) = (frame.width(), frame.height(), frame.stride(0));
    let mut data = Vec::new();
    for y in 0..h as usize {
        data.extend_from_slice(&frame.data(0)[y * stride..y * stride + w as usize * 3]);
    }
    image::RgbImage::from_raw(w, h, data).expect("image")
}

pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, body)
}

/// An event body: `candidates` as (sku, confidence) pairs.
pub fn event(id: &str, session: &str, kind: &str, qty: i64, candidates: &[(&str, f64)]) -> Value {
    json!({
        "event_id": id,
        "session_id": session,
        "kind": kind,
        "quantity": qty,
        "occurred_at": "2026-11-25T10:00:00Z",
        "candidates": candidates.iter().map(|(s, c)| json!({"sku": s, "confidence": c})).collect::<Vec<_>>(),
        "model_version": "m1",
    })
}

/// A tiny real H.264 clip (64×48, 1 s) from the ffmpeg CLI, written in
/// `dir`; returns its bytes.
pub fn tiny_clip(dir: &Path) -> Vec<u8> {
    let path = dir.join("tiny.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=64x48:rate=5:duration=1")
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("running ffmpeg");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

/// Seeds `samples` resolved events of a store that allows training use and
/// `forbidden` of one that does not, each with a clip pointing at one of
/// `videos` copies of [`tiny_clip`] (made in `dir`).
#[cfg(feature = "bench")]
pub async fn seed_training_data(
    app: &TestApp,
    dir: &Path,
    samples: usize,
    forbidden: usize,
    videos: usize,
) -> recount::bench::export::Seeded {
    recount::bench::export::seed(
        &app.state.db,
        &app.db_handle.url,
        &app.state.blobs,
        &recount::bench::export::SeedSpec {
            samples,
            forbidden,
            videos,
            video: tiny_clip(dir),
        },
        app.state.now(),
    )
    .await
    .unwrap()
}

/// Records webhook deliveries; answers 500 to the first `fail_first`.
#[derive(Clone, Default)]
pub struct Receiver {
    /// Every delivery: its headers and body.
    pub seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    fail_first: usize,
}

/// Starts a webhook receiver on loopback; its `/hook` URL.
pub async fn start_receiver(fail_first: usize) -> (String, Receiver) {
    let receiver = Receiver {
        fail_first,
        ..Default::default()
    };
    let r = receiver.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let r = r.clone();
            async move {
                let mut seen = r.seen.lock().unwrap();
                seen.push((headers, body));
                if seen.len() <= r.fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
}

/// The error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Runs a test body once on SQLite and once on PostgreSQL:
/// `dual!(name);` for `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! dual {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )+};
}

/// Waits until `done` says so, looking every 5 ms, or fails after 10 s
/// saying `never`.
pub async fn until<F: std::future::Future<Output = bool>>(
    mut done: impl FnMut() -> F,
    never: &str,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{never}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Waits until a statement of the app's database (PostgreSQL) waits for a
/// row lock, or fails after 10 s.
pub async fn until_a_lock_wait(app: &TestApp) {
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    until(
        || async { app.count(waiting).await > 0 },
        "no statement ever waited for a row lock",
    )
    .await;
}

/// Starts `instance`'s listener for other instances' announcements
/// (PostgreSQL) and waits until it listens: the listener moves the ready
/// signal once it is connected (announcements may have been missed
/// before), and from then on only a notification moves it. The listener's
/// task, to abort at the end.
pub async fn listening(instance: &recount::AppState) -> tokio::task::JoinHandle<()> {
    let mut connected = instance.db.ready.watch();
    connected.borrow_and_update();
    let listener = tokio::spawn(recount::jobs::listener(instance.clone()));
    tokio::time::timeout(std::time::Duration::from_secs(10), connected.changed())
        .await
        .expect("the listener never connected")
        .unwrap();
    listener
}
