//! Video retention and a shopper's erasure: exactly the video past its
//! store's retention is deleted, also when a run was cut short; an erasure
//! deletes one shopper's video at once and nothing else; later exports lack
//! it; the daily run exists once a day. On SQLite and PostgreSQL, with the
//! local blob directory (S3: tests/storage_s3.rs).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{code, event, files_under, fixture, run_media_jobs, Backend, TestApp};
use recount::domain::audit::Actor;
use recount::domain::retention::DAY_MS;
use recount::review::{admin, retention};

const SURE: &[(&str, f64)] = &[("milk", 0.99), ("cola", 0.005)];

/// The blob keys in the local blob directory.
fn stored(app: &TestApp) -> Vec<String> {
    let root = app.data_dir.path().join("blobs");
    files_under(&root)
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Whether any stored blob belongs to `id` (a clip or a recording).
fn has_blobs(app: &TestApp, id: &str) -> bool {
    stored(app).iter().any(|k| k.contains(id))
}

/// Posts a confident event of `session` shown by `clips` (and the camera
/// windows `cameras`); it is settled at once.
async fn sure_event(
    app: &TestApp,
    key: &str,
    id: &str,
    session: &str,
    clips: &[&str],
    cameras: Value,
) {
    let mut ev = event(id, session, "pick", 1, SURE);
    ev["occurred_at"] = json!("2026-11-25T10:00:03Z");
    ev["clips"] = json!(clips);
    ev["cameras"] = cameras;
    let (s, out) = app.events(key, ev).await;
    assert_eq!(
        (s, out["route"].as_str()),
        (StatusCode::OK, Some("auto_accepted")),
        "{out}"
    );
}

/// Uploads a camera recording of cam-9 from 10:00:00; its id.
async fn footage(app: &TestApp, key: &str) -> String {
    let resp = app
        .http
        .post(format!("{}/api/v1/footage", app.base))
        .bearer_auth(key)
        .header("content-type", "video/mp4")
        .header("x-camera-id", "cam-9")
        .header("x-footage-start", "2026-11-25T10:00:00Z")
        .body(fixture("h264.mp4"))
        .send()
        .await
        .unwrap();
    let (s, body) = crate::common::read(resp).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["footage_id"].as_str().unwrap().to_string()
}

fn window() -> Value {
    json!([{"camera_id": "cam-9", "from": "2026-11-25T10:00:02.500Z", "to": "2026-11-25T10:00:03.500Z"}])
}

/// The clip ids of a session's events (the ids they named and their cuts).
async fn clips_of(app: &TestApp, session: &str) -> Vec<String> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT clip_id FROM clip_sessions WHERE session_id = $1 ORDER BY clip_id",
    )
    .bind(session)
    .fetch_all(app.state.db.reader())
    .await
    .unwrap();
    rows
}

async fn clip_status(app: &TestApp, key: &str, clip: &str) -> String {
    let (s, body) = app
        .call(Method::GET, &format!("/api/v1/clips/{clip}"), key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["status"].as_str().unwrap().to_string()
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"
    ))
    .await
}

async fn set_retention(app: &TestApp, store: &str, days: i64) {
    let s = &app.state;
    assert!(
        admin::set_retention(&s.db, &Actor::operator(), store, days, s.now())
            .await
            .unwrap()
    );
}

async fn retention_deletes_exactly_the_video_past_its_time(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    set_retention(&app, &store, 10).await;
    let start = "2026-11-25T09:59:58Z";
    let old = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let new = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let open = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let unused = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let recording = footage(&app, &key).await;
    sure_event(&app, &key, "e-old", "s-old", &[&old], window()).await;
    sure_event(&app, &key, "e-new", "s-new", &[&new], json!([])).await;
    sure_event(&app, &key, "e-open", "s-open", &[&open], json!([])).await;
    run_media_jobs(&app).await;
    let cut = clips_of(&app, "s-old")
        .await
        .into_iter()
        .find(|c| *c != old)
        .expect("the cut of the recording");
    assert_eq!(clip_status(&app, &key, &cut).await, "ready");
    for id in [&old, &new, &open, &unused, &cut, &recording] {
        assert!(has_blobs(&app, id), "{id} stored");
    }
    let (s, _) = app.exit(&key, "s-old", "2026-11-25T10:05:00Z").await;
    assert_eq!(s, StatusCode::OK);
    let (_, receipt_before) = app.receipt(&key, "s-old").await;
    assert_eq!(receipt_before["status"], "final");

    // Eight days on, s-new's receipt is final too.
    app.clock.advance(8 * DAY_MS);
    app.exit(&key, "s-new", "2026-11-25T10:05:00Z").await;
    // Ten days after s-old's receipt (and the unused clip's upload).
    app.clock.advance(2 * DAY_MS + 1);
    let report = retention::run(&app.state.db, &app.state.blobs, app.state.now(), 730)
        .await
        .unwrap();
    assert_eq!(report.stores.len(), 1, "{report:?}");
    assert_eq!(
        (report.stores[0].clips, report.stores[0].footage),
        (3, 1),
        "s-old's clip and cut, the unused clip, the recording: {report:?}"
    );
    assert_eq!(report.deleted.failed, 0);
    for id in [&old, &unused, &cut, &recording] {
        assert!(!has_blobs(&app, id), "{id} deleted");
    }
    for id in [&new, &open] {
        assert!(has_blobs(&app, id), "{id} kept");
        assert_eq!(clip_status(&app, &key, id).await, "ready");
    }
    assert_eq!(clip_status(&app, &key, &old).await, "erased");
    let (s, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/clips/{old}/video"),
            &key,
            None,
        )
        .await;
    assert_eq!((s, code(&body)), (StatusCode::GONE, "clip-erased"));
    // The receipt and the labels stay.
    assert_eq!(app.receipt(&key, "s-old").await.1, receipt_before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE event_id = 'e-old' AND final_sku = 'milk'")
            .await,
        1
    );
    // The run is in the audit trail, with what it removed.
    assert_eq!(audit_count(&app, "media.expired").await, 1);
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'media.expired'")
            .fetch_one(app.state.db.reader())
            .await
            .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["clips"].as_array().unwrap().len(), 3, "{detail}");
    assert_eq!(detail["footage"], json!([recording]));
    // The store's stored video no longer counts them.
    let left: i64 = app
        .count("SELECT COALESCE(CAST(SUM(size_bytes) AS BIGINT), 0) FROM clips WHERE erased_at IS NULL")
        .await;
    assert!(left > 0);

    // A second run the same day finds nothing more.
    let again = retention::run(&app.state.db, &app.state.blobs, app.state.now(), 730)
        .await
        .unwrap();
    assert!(again.stores.is_empty(), "{again:?}");
    assert_eq!(audit_count(&app, "media.expired").await, 1);

    // Eight more days: s-new's clip goes; s-open's shopper has no receipt.
    app.clock.advance(8 * DAY_MS);
    let report = retention::run(&app.state.db, &app.state.blobs, app.state.now(), 730)
        .await
        .unwrap();
    assert_eq!(report.stores[0].clips, 1, "{report:?}");
    assert!(!has_blobs(&app, &new));
    assert!(
        has_blobs(&app, &open),
        "a receipt not final keeps its video"
    );
}
dual!(retention_deletes_exactly_the_video_past_its_time);

async fn a_retention_run_cut_short_is_finished_by_the_next(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    set_retention(&app, &store, 1).await;
    let clip = app
        .upload_clip(&key, "h264.mp4", "cam-1", "2026-11-25T09:59:58Z")
        .await;
    let kept = app
        .upload_clip(&key, "h264.mp4", "cam-1", "2026-11-25T09:59:58Z")
        .await;
    sure_event(&app, &key, "e1", "s1", &[&clip], json!([])).await;
    sure_event(&app, &key, "e2", "s2", &[&kept], json!([])).await;
    run_media_jobs(&app).await;
    app.exit(&key, "s1", "2026-11-25T10:05:00Z").await;
    app.clock.advance(DAY_MS + 1);

    // The run marks s1's clip erased and stops there (its process dies
    // before deleting anything).
    let marked = retention::mark_expired(&app.state.db, app.state.now())
        .await
        .unwrap();
    assert_eq!(marked[0].clips, 1);
    assert_eq!(
        clip_status(&app, &key, &clip).await,
        "erased",
        "shown to nobody"
    );
    assert!(has_blobs(&app, &clip), "its files are still there");

    // The next run deletes them, records nothing twice and keeps the rest.
    let report = retention::run(&app.state.db, &app.state.blobs, app.state.now(), 730)
        .await
        .unwrap();
    assert!(
        report.stores.is_empty(),
        "nothing new past retention: {report:?}"
    );
    assert!(
        report.deleted.blobs >= 3,
        "source, MP4, filmstrip: {report:?}"
    );
    assert!(!has_blobs(&app, &clip));
    assert!(has_blobs(&app, &kept));
    assert_eq!(audit_count(&app, "media.expired").await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM clips WHERE id = '{clip}' AND video_key IS NULL \
             AND filmstrip_key IS NULL AND source_key IS NULL"
        ))
        .await,
        1
    );
}
dual!(a_retention_run_cut_short_is_finished_by_the_next);

async fn a_shoppers_erasure_deletes_their_video_at_once_and_nothing_else(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    app.set_training(&store, true).await;
    let start = "2026-11-25T09:59:58Z";
    let theirs = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let others = app.upload_clip(&key, "h264.mp4", "cam-1", start).await;
    let recording = footage(&app, &key).await;
    sure_event(&app, &key, "e1", "s1", &[&theirs], window()).await;
    sure_event(&app, &key, "e2", "s2", &[&others], json!([])).await;
    run_media_jobs(&app).await;
    let cut = clips_of(&app, "s1")
        .await
        .into_iter()
        .find(|c| *c != theirs)
        .unwrap();

    let erase = |session: &str| {
        let path = format!("/api/v1/sessions/{session}/media");
        let app = &app;
        let key = key.clone();
        async move { app.call(Method::DELETE, &path, &key, None).await }
    };
    let (s, done) = erase("s1").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(
        (&done["clips"], &done["footage"], &done["blobs_pending"]),
        (&json!(2), &json!(1), &json!(0)),
        "{done}"
    );
    for id in [&theirs, &cut, &recording] {
        assert!(!has_blobs(&app, id), "{id} deleted at once");
    }
    assert!(has_blobs(&app, &others), "another shopper's clip stays");
    assert_eq!(clip_status(&app, &key, &theirs).await, "erased");
    assert_eq!(clip_status(&app, &key, &others).await, "ready");
    assert_eq!(audit_count(&app, "media.erased").await, 1);
    let (s, again) = erase("s1").await;
    assert_eq!(
        (s, &again["clips"], &again["footage"]),
        (StatusCode::OK, &json!(0), &json!(0))
    );
    assert_eq!(
        audit_count(&app, "media.erased").await,
        1,
        "nothing more recorded"
    );
    let (s, body) = erase("nobody").await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "unknown-session"));
    let (s, body) = app
        .call(
            Method::DELETE,
            "/api/v1/sessions/s1/media",
            &app.user("sue", recount::auth::Role::Supervisor).await,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::FORBIDDEN, "store-key-required")
    );

    // An export made afterwards has the labels of both and the video of s2
    // only.
    let dir = tempfile::tempdir().unwrap();
    let spec = recount::domain::export::ExportSpec::default();
    recount::export::run(
        &app.state.db,
        &app.state.blobs,
        &spec,
        app.state.now(),
        &recount::export::Destination::Dir(dir.path().to_path_buf()),
        |_| async { Ok(()) },
    )
    .await
    .unwrap();
    let manifest = std::fs::read_to_string(dir.path().join("manifest.jsonl")).unwrap();
    let samples: Vec<Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 2, "{manifest}");
    for sample in &samples {
        for clip in sample["clips"].as_array().unwrap() {
            let shown = clip["file"].is_string();
            let erased = clip["clip_id"] == theirs.as_str() || clip["clip_id"] == cut.as_str();
            assert_eq!(shown, !erased, "{clip}");
        }
    }
    // The shards hold one video: s2's.
    let videos: usize = files_under(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .map(|tar| {
            let out = std::process::Command::new("tar")
                .arg("-tf")
                .arg(&tar)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|m| m.ends_with(".mp4"))
                .count()
        })
        .sum();
    assert_eq!(videos, 1);
}
dual!(a_shoppers_erasure_deletes_their_video_at_once_and_nothing_else);

async fn the_daily_run_exists_once_a_day_and_runs_on_any_instance(backend: Backend) {
    let app = TestApp::start(backend).await;
    let other = app.second_instance().await;
    assert!(recount::jobs::retention::schedule(&app.state)
        .await
        .unwrap());
    assert!(!recount::jobs::retention::schedule(&other).await.unwrap());
    assert!(!recount::jobs::retention::schedule(&app.state)
        .await
        .unwrap());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'retention'")
            .await,
        1
    );
    let client = reqwest::Client::new();
    assert!(
        recount::jobs::run_next_job(&other, &client, recount::jobs::MAINTENANCE_JOBS)
            .await
            .unwrap()
    );
    assert!(
        !recount::jobs::run_next_job(&app.state, &client, recount::jobs::MAINTENANCE_JOBS)
            .await
            .unwrap(),
        "nothing left for the first instance"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'retention' AND status = 'done'")
            .await,
        1
    );
    app.clock.advance(DAY_MS);
    assert!(
        recount::jobs::retention::schedule(&other).await.unwrap(),
        "a new day"
    );
}
dual!(the_daily_run_exists_once_a_day_and_runs_on_any_instance);

async fn a_stores_retention_is_one_day_to_ten_years(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, _) = app.store_with_catalog().await;
    let s = &app.state;
    for bad in [0, -1, 3_651] {
        let err = admin::set_retention(&s.db, &Actor::operator(), &store, bad, s.now())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid-retention");
    }
    assert!(
        !admin::set_retention(&s.db, &Actor::operator(), "nope", 5, s.now())
            .await
            .unwrap()
    );
    set_retention(&app, &store, 3_650).await;
    assert_eq!(
        app.count("SELECT media_retention_days FROM stores").await,
        3_650
    );
    assert_eq!(audit_count(&app, "store.changed").await, 1);
}
dual!(a_stores_retention_is_one_day_to_ten_years);
