//! The S3 blob store against a real S3-compatible server: moto's, started by
//! each test on a free loopback port (installed by `scripts/setup.sh`).
//! `Blobs` on its own, then a clip uploaded, processed and served over real
//! HTTP with nothing written to the local blob directory.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};

use common::{files_under, fixture, run_media_jobs, Backend, TestApp};
use recount::config::Config;
use recount::storage::Blobs;

/// A moto S3 server on 127.0.0.1, killed when dropped.
struct Moto {
    child: Child,
    url: String,
    /// For requests straight to moto.
    http: reqwest::Client,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    async fn start() -> Moto {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap();
        // The port is free when we look; should another process take it
        // before moto binds it, moto exits and we try another one.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("python3 must be installed (see scripts/setup.sh)");
            let mut moto = Moto {
                child,
                url: format!("http://127.0.0.1:{port}"),
                http: http.clone(),
                log,
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                if let Some(status) = moto.child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(moto.log.path()).unwrap_or_default();
                    assert!(
                        log.contains("in use"),
                        "moto exited with {status} (is moto[server] installed? see scripts/setup.sh):\n{log}"
                    );
                    break;
                }
                if let Ok(resp) = moto.http.get(&moto.url).send().await {
                    if resp.status().is_success() {
                        return moto;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                moto.child.try_wait().unwrap().is_some(),
                "moto did not answer on {} within 60 s",
                moto.url
            );
        }
        panic!("moto could not bind a free port");
    }

    /// Creates a bucket (moto does not check signatures).
    async fn bucket(&self, name: &str) {
        let resp = self
            .http
            .put(format!("{}/{name}", self.url))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "creating bucket {name}: {}",
            resp.status()
        );
    }

    /// The keys stored in a bucket, read straight from the server.
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = self
            .http
            .get(format!("{}/{bucket}?list-type=2", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        xml.split("<Key>")
            .skip(1)
            .map(|s| s.split("</Key>").next().unwrap().to_string())
            .collect()
    }

    /// The configuration of a Recount instance that stores its blobs here.
    fn configure(&self, c: &mut Config, bucket: &str) {
        c.blob_store = format!("s3://{bucket}");
        c.s3_endpoint = self.url.clone();
        c.s3_region = "us-east-1".into();
        c.s3_access_key_id = "test".into();
        c.s3_secret_access_key = "test".into();
        c.s3_allow_http = true;
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic bytes that differ from offset to offset.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_through_s3() {
    let moto = Moto::start().await;
    moto.bucket("blobs").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    moto.configure(&mut config, "blobs");
    let blobs = Blobs::from_config(&config).unwrap();
    assert_eq!(blobs.description, "s3://blobs");

    // A small blob: one PUT.
    let small = pattern(1000);
    let path = write(dir.path(), "small", &small);
    assert_eq!(blobs.put_file("s/small", &path).await.unwrap(), 1000);
    assert_eq!(blobs.size("s/small").await.unwrap(), 1000);
    assert_eq!(
        &blobs.get_range("s/small", 0..1000).await.unwrap()[..],
        &small[..]
    );
    assert_eq!(
        &blobs.get_range("s/small", 10..20).await.unwrap()[..],
        &small[10..20]
    );

    // Past one 8 MiB part: a multipart upload of two parts.
    let part = 8 * 1024 * 1024;
    let big = pattern(part + 1024 * 1024 + 7);
    let len = big.len() as u64;
    let path = write(dir.path(), "big", &big);
    assert_eq!(blobs.put_file("s/big", &path).await.unwrap(), len);
    assert_eq!(blobs.size("s/big").await.unwrap(), len);
    let head = moto
        .http
        .head(format!("{}/blobs/s/big", moto.url))
        .send()
        .await
        .unwrap();
    let etag = head.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.trim_matches('"').ends_with("-2"),
        "not a two-part upload: ETag {etag}"
    );
    let pending = moto
        .http
        .get(format!("{}/blobs?uploads", moto.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pending.contains("ListMultipartUploadsResult"), "{pending}");
    assert!(
        !pending.contains("<Upload>"),
        "an upload was left open: {pending}"
    );
    let p = part as u64;
    for range in [
        0..1,
        0..4096,
        p - 10..p + 10,
        p..p + 1,
        12_345..3_000_000,
        len - 7..len,
        0..len,
    ] {
        let got = blobs.get_range("s/big", range.clone()).await.unwrap();
        let want = &big[range.start as usize..range.end as usize];
        assert!(got[..] == *want, "range {range:?} differs");
    }

    // Download streams the whole blob back to a file.
    let copy = dir.path().join("copy");
    assert_eq!(blobs.download("s/big", &copy).await.unwrap(), len);
    assert!(
        std::fs::read(&copy).unwrap() == big,
        "the downloaded copy differs"
    );

    // Small artifacts from memory.
    blobs
        .put_bytes("s/poster.jpg", vec![0xFF, 0xD8, 0xFF])
        .await
        .unwrap();
    assert_eq!(blobs.size("s/poster.jpg").await.unwrap(), 3);

    let mut keys = moto.keys("blobs").await;
    keys.sort();
    assert_eq!(keys, ["s/big", "s/poster.jpg", "s/small"]);

    // Deleting, and deleting what is not there, both succeed.
    blobs.delete("s/big").await.unwrap();
    blobs.delete("s/big").await.unwrap();
    blobs.delete("never/stored").await.unwrap();
    assert!(
        blobs.size("s/big").await.is_err(),
        "a deleted blob has no size"
    );
    assert!(blobs.get_range("s/big", 0..1).await.is_err());
    assert_eq!(moto.keys("blobs").await.len(), 2);

    // Nothing went to a local directory.
    assert!(!dir.path().join("blobs").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_is_stored_processed_and_served_from_s3() {
    let moto = Moto::start().await;
    moto.bucket("bucket").await;
    let app = TestApp::start_with(Backend::Sqlite, |c| moto.configure(c, "bucket")).await;
    let (store_id, key) = app.store_with_catalog().await;

    let video = fixture("h264.mp4");
    let resp = app
        .http
        .post(format!("{}/api/v1/clips", app.base))
        .bearer_auth(&key)
        .header("content-type", "video/mp4")
        .header("x-camera-id", "cam-1")
        .body(video.clone())
        .send()
        .await
        .unwrap();
    let (s, clip) = common::read(resp).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();
    // The source is in the bucket, byte for byte.
    let source = app
        .state
        .blobs
        .get_range(
            &recount::db::clips::blob_key(&store_id, &clip_id, "source"),
            0..video.len() as u64,
        )
        .await
        .unwrap();
    assert!(
        source[..] == video[..],
        "the stored source differs from the upload"
    );

    run_media_jobs(&app).await;
    let (_, status) = app
        .call(Method::GET, &format!("/api/v1/clips/{clip_id}"), &key, None)
        .await;
    assert_eq!(status["status"], "ready", "{status}");

    let resp = app
        .http
        .get(format!("{}/api/v1/clips/{clip_id}/video", app.base))
        .bearer_auth(&key)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let range = resp.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(range.starts_with("bytes 0-99/"), "{range}");
    let head = resp.bytes().await.unwrap();
    assert_eq!(head.len(), 100);
    assert_eq!(&head[4..8], b"ftyp");

    let resp = app
        .http
        .get(format!("{}/api/v1/clips/{clip_id}/filmstrip", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&resp.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);

    // Source, video and filmstrip are in the bucket; none on local disk.
    let keys = moto.keys("bucket").await;
    assert!(keys.len() >= 3, "{keys:?}");
    assert!(keys.iter().all(|k| k.contains(&clip_id)), "{keys:?}");
    let blobs = app.data_dir.path().join("blobs");
    let local = files_under(&blobs);
    assert!(local.is_empty(), "blobs written locally: {local:?}");
}

/// A training-data export on an S3 blob store: clips are fetched from the
/// bucket, the finished files are put there and served from there, and no
/// downloaded clip or partial file stays on local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_export_reads_and_writes_the_bucket() {
    let moto = Moto::start().await;
    moto.bucket("bucket").await;
    let app = TestApp::start_with(Backend::Sqlite, |c| moto.configure(c, "bucket")).await;
    let work = tempfile::tempdir().unwrap();
    let seeded = common::seed_training_data(&app, work.path(), 40, 5, 4).await;
    let sue = app.user("sue", recount::auth::Role::Supervisor).await;
    let (s, created) = app
        .call(
            Method::POST,
            "/api/v1/exports",
            &sue,
            Some(serde_json::json!({"shard_bytes": 65536})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["export_id"].as_str().unwrap().to_string();
    let client = recount::jobs::webhook::client(&app.state.config);
    assert!(
        recount::jobs::run_next_job(&app.state, &client, recount::jobs::EXPORT_JOBS)
            .await
            .unwrap()
    );
    let (_, done) = app
        .call(Method::GET, &format!("/api/v1/exports/{id}"), &sue, None)
        .await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["samples"].as_u64(), Some(seeded.samples));
    let files = done["files"].as_array().unwrap();
    let keys = moto.keys("bucket").await;
    for f in files {
        let name = f["name"].as_str().unwrap();
        assert!(
            keys.contains(&format!("exports/{id}/{name}")),
            "{name} not in the bucket: {keys:?}"
        );
    }
    // Each shard holds a JSON and a clip per sample, clip bytes intact.
    let clip = std::fs::read(work.path().join("tiny.mp4")).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let mut members = 0;
    for f in files
        .iter()
        .filter(|f| f["name"].as_str().unwrap().ends_with(".tar"))
    {
        let resp = app
            .http
            .get(format!("{}{}", app.base, f["url"].as_str().unwrap()))
            .bearer_auth(&sue)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let tar = write(unpacked.path(), "shard.tar", &resp.bytes().await.unwrap());
        let out = Command::new("tar")
            .arg("-xvf")
            .arg(&tar)
            .arg("-C")
            .arg(unpacked.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        for member in String::from_utf8(out.stdout).unwrap().lines() {
            members += 1;
            if member.ends_with(".mp4") {
                assert_eq!(std::fs::read(unpacked.path().join(member)).unwrap(), clip);
            }
        }
    }
    assert_eq!(members as u64, seeded.samples * 2);
    let local = files_under(&app.data_dir.path().join("tmp"));
    assert!(local.is_empty(), "left on local disk: {local:?}");
}

/// Erasure and retention on an S3 blob store: a shopper's clip (source, MP4,
/// filmstrip, poster) leaves the bucket at once on the store's request,
/// another shopper's when its retention runs out, and nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_and_expired_video_leaves_the_bucket() {
    let moto = Moto::start().await;
    moto.bucket("bucket").await;
    let app = TestApp::start_with(Backend::Sqlite, |c| moto.configure(c, "bucket")).await;
    let (store_id, key) = app.store_with_catalog().await;
    let s = &app.state;
    let operator = recount::domain::audit::Actor::operator();
    recount::review::admin::set_retention(&s.db, &operator, &store_id, 1, s.now())
        .await
        .unwrap();
    let start = "2026-11-25T09:59:58Z";
    let erased = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let expired = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let kept = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    for (event_id, session, clip) in [
        ("e1", "s1", &erased),
        ("e2", "s2", &expired),
        ("e3", "s3", &kept),
    ] {
        let mut ev = common::event(
            event_id,
            session,
            "pick",
            1,
            &[("milk", 0.55), ("cola", 0.3)],
        );
        ev["clips"] = serde_json::json!([clip]);
        let (st, out) = app.events(&key, ev).await;
        assert_eq!(st, StatusCode::OK, "{out}");
    }
    run_media_jobs(&app).await;
    let in_bucket = |id: &str| {
        let id = id.to_string();
        let moto = &moto;
        async move {
            moto.keys("bucket")
                .await
                .into_iter()
                .filter(|k| k.contains(&id))
                .count()
        }
    };
    assert!(in_bucket(&erased).await >= 3);
    assert!(in_bucket(&expired).await >= 3);

    let (st, done) = app
        .call(Method::DELETE, "/api/v1/sessions/s1/media", &key, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["blobs_pending"], 0);
    assert_eq!(in_bucket(&erased).await, 0, "erased at once");
    assert!(in_bucket(&expired).await >= 3);

    // s2's receipt is final once its task is resolved and the shopper left;
    // a day later its video expires. s3's shopper has not left.
    let ann = app.user("ann", recount::auth::Role::Labeler).await;
    loop {
        let (st, c) = app.claim(&ann).await;
        if st == StatusCode::NO_CONTENT {
            break;
        }
        let task = c["task"]["task_id"].as_str().unwrap().to_string();
        let answer = serde_json::json!({"action": "pick", "sku": "milk", "quantity": 1});
        app.verdict(&ann, &task, answer).await;
    }
    let (_, r) = app.exit(&key, "s2", "2026-11-25T10:05:00Z").await;
    assert_eq!(r["status"], "final", "{r}");
    app.clock.advance(recount::domain::retention::DAY_MS + 1);
    let report = recount::review::retention::run(&s.db, &s.blobs, s.now(), 730)
        .await
        .unwrap();
    assert_eq!(report.stores[0].clips, 1, "{report:?}");
    assert_eq!(in_bucket(&expired).await, 0, "expired");
    assert!(in_bucket(&kept).await >= 3, "kept");
}
