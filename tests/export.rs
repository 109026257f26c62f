//! Training-data exports, each test on SQLite and on PostgreSQL: the exact
//! contents of an export of a small dataset built over real HTTP (real clips
//! processed by FFmpeg), every filter, the per-store training switch, the
//! background job with its range-able downloads, split determinism without
//! session leakage, shards read back by `tar` and by Python's `webdataset`,
//! and a 100 000-sample export from the CLI staying under 100 MB of memory.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, run_media_jobs, seed_training_data, Backend, TestApp};
use recount::auth::Role;
use recount::domain::export::{ExportSpec, Filter, Resolution, SplitPlan};
use recount::domain::time::parse_rfc3339_ms;
use recount::export::{run, Destination, Summary};

const SURE: &[(&str, f64)] = &[("milk", 0.97), ("cola", 0.01)];
const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

/// The small dataset: store A allows training use, store B does not.
///
/// | event | session | model | clips  | what happened                         |
/// |-------|---------|-------|--------|---------------------------------------|
/// | e1    | s1      | m1    | c1, c2 | auto-accepted milk                    |
/// | e2    | s1      | m1    | c1     | ann corrects the model: cola (hard)   |
/// | e3    | s2      | m2    | c2     | ann confirms milk; later made gold    |
/// | e4    | s3      | m2    | —      | "can't tell", sue decides bread (hard)|
/// | e7    | s4      | m1    | —      | audit sample, ann and bob say milk    |
/// | e5    | s5      | m1    | —      | still in review: never exported       |
/// | b1    | s1 (B)  | m1    | —      | auto-accepted in store B: never       |
struct Fx {
    app: TestApp,
    a: String,
    b: String,
    sue: String,
    boss: String,
    ann: String,
    clips: [String; 2],
    /// Recount's event id (the sample key) of each store event id of A.
    keys: BTreeMap<String, String>,
}

async fn post_event(app: &TestApp, key: &str, mut body: Value) -> Value {
    let (status, out) = app.events(key, body.take()).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

fn ev(id: &str, session: &str, model: &str, at: &str, candidates: &[(&str, f64)]) -> Value {
    let mut e = event(id, session, "pick", 1, candidates);
    e["model_version"] = json!(model);
    e["occurred_at"] = json!(at);
    e
}

/// Claims as `token` and answers `body`; returns the verdict's status.
async fn answer(app: &TestApp, token: &str, body: Value) -> String {
    let (s, c) = app.claim(token).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let task = c["task"]["task_id"].as_str().unwrap().to_string();
    app.clock.advance(5_000);
    let (s, v) = app.verdict(token, &task, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["status"].as_str().unwrap().to_string()
}

async fn fx(backend: Backend) -> Fx {
    let app = TestApp::start_with(backend, |c| c.gold_rate = 0.0).await;
    let (a, a_key) = app.store("Allowed", None).await;
    app.catalog(&a_key).await;
    let (b, b_key) = app.store("Private", None).await;
    app.catalog(&b_key).await;
    let boss = app.user("boss", Role::Admin).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let (s, out) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{a}/training"),
            &boss,
            Some(json!({"allowed": true})),
        )
        .await;
    assert_eq!((s, out.clone()), (StatusCode::OK, json!({"allowed": true})));
    let policy = |store: &str, rate: f64| {
        let (app, store, boss) = (&app, store.to_string(), boss.clone());
        async move {
            let (s, out) = app
                .call(
                    Method::PUT,
                    &format!("/api/v1/stores/{store}/policy"),
                    &boss,
                    Some(json!({"audit_rate": rate})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{out}");
        }
    };
    // No random audit samples: which events need a human is the table's.
    policy(&a, 0.0).await;
    policy(&b, 0.0).await;
    let c1 = app
        .upload_clip(&a_key, "h264.mp4", "shelf-1", "2026-11-25T09:59:58Z")
        .await;
    let c2 = app
        .upload_clip(
            &a_key,
            "h264-faststart.mp4",
            "door-2",
            "2026-11-25T09:59:59Z",
        )
        .await;
    run_media_jobs(&app).await;

    let mut keys = BTreeMap::new();
    let mut e1 = ev("e1", "s1", "m1", "2026-11-25T10:00:00Z", SURE);
    e1["clips"] = json!([c1, c2]);
    let out = post_event(&app, &a_key, e1).await;
    assert_eq!(out["route"], "auto_accepted", "{out}");
    post_event(
        &app,
        &b_key,
        ev("b1", "s1", "m1", "2026-11-25T10:00:30Z", SURE),
    )
    .await;

    let mut e2 = ev("e2", "s1", "m1", "2026-11-25T10:01:00Z", UNSURE);
    e2["clips"] = json!([c1]);
    post_event(&app, &a_key, e2).await;
    run_media_jobs(&app).await;
    assert_eq!(
        answer(&app, &ann, json!({"action": "pick", "sku": "cola"})).await,
        "resolved"
    );

    let mut e3 = ev("e3", "s2", "m2", "2026-11-25T10:02:00Z", UNSURE);
    e3["clips"] = json!([c2]);
    let e3_task = post_event(&app, &a_key, e3).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    run_media_jobs(&app).await;
    assert_eq!(
        answer(&app, &ann, json!({"action": "pick", "sku": "milk"})).await,
        "resolved"
    );

    let e4_task = post_event(
        &app,
        &a_key,
        ev("e4", "s3", "m2", "2026-11-25T10:03:00Z", UNSURE),
    )
    .await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        answer(&app, &ann, json!({"cant_tell": true})).await,
        "escalated"
    );
    app.clock.advance(60_000);
    let (s, r) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{e4_task}/resolve"),
            &sue,
            Some(json!({"action": "pick", "sku": "bread"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");

    policy(&a, 1.0).await;
    let out = post_event(
        &app,
        &a_key,
        ev("e7", "s4", "m1", "2026-11-25T10:05:00Z", SURE),
    )
    .await;
    assert_eq!(out["reason"], "audit-sample", "{out}");
    // A blind audit: the quantity is the labeler's to give.
    let milk = json!({"action": "pick", "sku": "milk", "quantity": 1});
    assert_eq!(answer(&app, &ann, milk.clone()).await, "ready");
    assert_eq!(answer(&app, &bob, milk).await, "resolved");
    policy(&a, 0.0).await;
    post_event(
        &app,
        &a_key,
        ev("e5", "s5", "m1", "2026-11-25T10:04:00Z", UNSURE),
    )
    .await;
    app.clock.advance(1_000);
    let (s, g) = app
        .call(
            Method::POST,
            "/api/v1/gold",
            &sue,
            Some(json!({"task_id": e3_task})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    app.clock.advance(1_000);

    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, id FROM events WHERE store_id = $1 AND route <> 'gold'")
            .bind(&a)
            .fetch_all(app.state.db.reader())
            .await
            .unwrap();
    keys.extend(rows);
    Fx {
        app,
        a,
        b,
        sue,
        boss,
        ann,
        clips: [c1, c2],
        keys,
    }
}

/// Exports into a fresh directory as the CLI does.
async fn export_dir(app: &TestApp, spec: &ExportSpec) -> (Summary, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(
        &app.state.db,
        &app.state.blobs,
        spec,
        app.state.now(),
        &Destination::Dir(dir.path().to_path_buf()),
        |_| async { Ok(()) },
    )
    .await
    .unwrap();
    (summary, dir)
}

fn manifest(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tar_list(shard: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(shard)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn tar_extract(shard: &Path, into: &Path) {
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(shard)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The event ids (store's) of an export's samples, in manifest order.
fn event_ids(samples: &[Value]) -> Vec<String> {
    samples
        .iter()
        .map(|s| s["event_id"].as_str().unwrap().to_string())
        .collect()
}

async fn bytes_of(app: &TestApp, token: &str, path: &str) -> Vec<u8> {
    let resp = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

async fn an_export_holds_exactly_the_resolved_events_of_allowed_stores(backend: Backend) {
    let f = fx(backend).await;
    let (summary, dir) = export_dir(&f.app, &ExportSpec::default()).await;
    let samples = manifest(dir.path());
    assert_eq!(event_ids(&samples), ["e1", "e2", "e3", "e4", "e7"]);

    let t = |s: &str| parse_rfc3339_ms(s).unwrap();
    // event → (session, model, label sku, resolution, reason, verdicts,
    //          agreement, audit, gold, hard)
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Value,
        u64,
        Value,
        bool,
        bool,
        bool,
    );
    let expected: [(&str, Row); 5] = [
        (
            "e1",
            (
                "s1",
                "m1",
                "milk",
                "auto",
                Value::Null,
                0,
                Value::Null,
                false,
                false,
                false,
            ),
        ),
        (
            "e2",
            (
                "s1",
                "m1",
                "cola",
                "human",
                json!("low-confidence"),
                1,
                Value::Null,
                false,
                false,
                true,
            ),
        ),
        (
            "e3",
            (
                "s2",
                "m2",
                "milk",
                "human",
                json!("low-confidence"),
                1,
                Value::Null,
                false,
                true,
                false,
            ),
        ),
        (
            "e4",
            (
                "s3",
                "m2",
                "bread",
                "supervisor",
                json!("low-confidence"),
                1,
                Value::Null,
                false,
                false,
                true,
            ),
        ),
        (
            "e7",
            (
                "s4",
                "m1",
                "milk",
                "human",
                json!("audit-sample"),
                2,
                json!(1.0),
                true,
                false,
                false,
            ),
        ),
    ];
    let plan = SplitPlan::default();
    for (
        s,
        (id, (session, model, sku, resolution, reason, verdicts, agreement, audit, gold, hard)),
    ) in samples.iter().zip(expected)
    {
        assert_eq!(s["event_id"], id);
        assert_eq!(s["key"], f.keys[id].as_str(), "{id}");
        assert_eq!(s["store_id"], f.a.as_str());
        assert_eq!(s["session_id"], session, "{id}");
        assert_eq!(s["prediction"]["model_version"], model, "{id}");
        assert_eq!(s["prediction"]["kind"], "pick");
        assert_eq!(s["prediction"]["quantity"], 1);
        assert_eq!(s["prediction"]["top_sku"], "milk");
        assert_eq!(
            s["label"],
            json!({"action": "pick", "sku": sku, "quantity": 1}),
            "{id}"
        );
        assert_eq!(s["resolution"], resolution, "{id}");
        assert_eq!(s["review_reason"], reason, "{id}");
        assert_eq!(s["verdicts"], verdicts, "{id}");
        assert_eq!(s["agreement"], agreement, "{id}");
        assert_eq!(s["audit"], audit, "{id}");
        assert_eq!(s["gold"], gold, "{id}");
        assert_eq!(s["hard"], hard, "{id}");
        let split = plan.split_of(&f.a, session);
        assert_eq!(s["split"], split.as_str(), "{id}");
        assert_eq!(s["shard"], format!("{}-000000.tar", split.as_str()), "{id}");
        assert_eq!(
            s["occurred_at_ms"].as_i64(),
            Some(t(s["occurred_at"].as_str().unwrap()))
        );
    }
    // Resolved in the order the fixture settled them.
    let resolved: Vec<i64> = samples
        .iter()
        .map(|s| s["resolved_at_ms"].as_i64().unwrap())
        .collect();
    assert!(resolved.windows(2).all(|w| w[0] < w[1]), "{resolved:?}");
    let sure = &samples[0]["prediction"]["candidates"];
    assert_eq!(
        sure,
        &json!([{"sku": "milk", "confidence": 0.97}, {"sku": "cola", "confidence": 0.01}])
    );

    // Clips: named members, with the processed video's size and window.
    let videos: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        for c in &f.clips {
            v.push(bytes_of(&f.app, &f.sue, &format!("/api/v1/clips/{c}/video")).await);
        }
        v
    };
    let e1 = &samples[0];
    let k1 = e1["key"].as_str().unwrap();
    assert_eq!(e1["clips"].as_array().unwrap().len(), 2);
    for (i, (clip, camera, start)) in [
        (&f.clips[0], "shelf-1", "2026-11-25T09:59:58Z"),
        (&f.clips[1], "door-2", "2026-11-25T09:59:59Z"),
    ]
    .into_iter()
    .enumerate()
    {
        let c = &e1["clips"][i];
        assert_eq!(c["clip_id"], clip.as_str());
        assert_eq!(c["camera_id"], camera);
        assert_eq!(c["file"], format!("{k1}.cam{i}.mp4"));
        assert_eq!(c["bytes"].as_u64(), Some(videos[i].len() as u64));
        assert_eq!(c["window_from_ms"].as_i64(), Some(t(start)));
        assert_eq!(
            c["event_offset_ms"].as_i64(),
            Some(t("2026-11-25T10:00:00Z") - t(start))
        );
        assert!(c["duration_ms"].as_i64().unwrap() > 0);
        assert!(c["width"].as_i64().unwrap() > 0);
    }
    assert_eq!(
        e1["window"],
        json!({"from_ms": t("2026-11-25T09:59:58Z"), "to_ms": e1["clips"].as_array().unwrap().iter()
            .map(|c| c["window_to_ms"].as_i64().unwrap()).max().unwrap()})
    );
    assert_eq!(samples[3]["clips"], json!([]));
    assert_eq!(samples[3]["window"], Value::Null);

    // The shards hold, per sample, its JSON (= its manifest line) and clips.
    let mut shards: Vec<&str> = summary
        .files
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    shards.sort();
    let mut expected_shards: Vec<String> = samples
        .iter()
        .map(|s| s["shard"].as_str().unwrap().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    expected_shards.sort();
    assert_eq!(shards, expected_shards);
    let unpacked = tempfile::tempdir().unwrap();
    for shard in &shards {
        let members = tar_list(&dir.path().join(shard));
        let mut expected = Vec::new();
        for s in samples.iter().filter(|s| s["shard"] == *shard) {
            let key = s["key"].as_str().unwrap();
            expected.push(format!("{key}.json"));
            for c in s["clips"].as_array().unwrap() {
                expected.push(c["file"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(members, expected, "{shard}");
        tar_extract(&dir.path().join(shard), unpacked.path());
    }
    let lines: Vec<&str> = std::fs::read_to_string(dir.path().join("manifest.jsonl"))
        .unwrap()
        .leak()
        .lines()
        .collect();
    for (s, line) in samples.iter().zip(&lines) {
        let key = s["key"].as_str().unwrap();
        let member = std::fs::read_to_string(unpacked.path().join(format!("{key}.json"))).unwrap();
        assert_eq!(member, *line);
    }
    assert_eq!(
        std::fs::read(unpacked.path().join(format!("{k1}.cam0.mp4"))).unwrap(),
        videos[0]
    );
    assert_eq!(
        std::fs::read(unpacked.path().join(format!("{k1}.cam1.mp4"))).unwrap(),
        videos[1]
    );

    // The card counts what is there, and lists every file with its digest.
    let card: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dataset-card.json")).unwrap())
            .unwrap();
    assert_eq!(card["samples"], 5);
    assert_eq!(card["hard"], 2);
    assert_eq!(
        card["resolutions"],
        json!({"auto": 1, "human": 3, "supervisor": 1})
    );
    assert_eq!(
        card["labels"],
        json!({"pick milk ×1": 3, "pick cola ×1": 1, "pick bread ×1": 1})
    );
    assert_eq!(card["stores"], json!({ f.a.clone(): 5 }));
    assert_eq!(card["model_versions"], json!({"m1": 3, "m2": 2}));
    assert_eq!(card["clips"], 4);
    assert_eq!(card["clips_missing"], 0);
    let md = std::fs::read_to_string(dir.path().join("dataset-card.md")).unwrap();
    assert!(md.contains("5 samples (2 hard examples"), "{md}");
    for file in &summary.files {
        let bytes = std::fs::read(dir.path().join(&file.name)).unwrap();
        assert_eq!(bytes.len() as u64, file.bytes, "{}", file.name);
        if file.name != "dataset-card.md" {
            assert!(
                md.contains(&file.sha256),
                "{} listed in the card",
                file.name
            );
        }
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")),
        "no partial file is left"
    );

    // Without video: the same samples, clips listed without files.
    let (_, bare) = export_dir(
        &f.app,
        &ExportSpec {
            include_video: false,
            ..ExportSpec::default()
        },
    )
    .await;
    let bare = manifest(bare.path());
    assert_eq!(event_ids(&bare), event_ids(&samples));
    assert_eq!(bare[0]["clips"][0]["file"], Value::Null);
    assert_eq!(bare[0]["clips"][0]["clip_id"], f.clips[0].as_str());
}

async fn each_filter_keeps_what_it_says(backend: Backend) {
    let f = fx(backend).await;
    let t = |s: &str| Some(parse_rfc3339_ms(s).unwrap());
    let cases: Vec<(&str, Filter, Vec<&str>)> = vec![
        (
            "everything",
            Filter::default(),
            vec!["e1", "e2", "e3", "e4", "e7"],
        ),
        (
            "store",
            Filter {
                stores: vec![f.a.clone()],
                ..Filter::default()
            },
            vec!["e1", "e2", "e3", "e4", "e7"],
        ),
        (
            "time range (from inclusive, to exclusive)",
            Filter {
                from_ms: t("2026-11-25T10:01:00Z"),
                to_ms: t("2026-11-25T10:03:00Z"),
                ..Filter::default()
            },
            vec!["e2", "e3"],
        ),
        (
            "model version",
            Filter {
                model_versions: vec!["m2".into()],
                ..Filter::default()
            },
            vec!["e3", "e4"],
        ),
        (
            "resolution",
            Filter {
                resolutions: vec![Resolution::Supervisor, Resolution::Auto],
                ..Filter::default()
            },
            vec!["e1", "e4"],
        ),
        (
            "minimum agreement 1 (two or more verdicts)",
            Filter {
                min_agreement: Some(1.0),
                ..Filter::default()
            },
            vec!["e7"],
        ),
        (
            "minimum agreement 0 (any two or more verdicts)",
            Filter {
                min_agreement: Some(0.0),
                ..Filter::default()
            },
            vec!["e7"],
        ),
        (
            "hard examples",
            Filter {
                hard_only: true,
                ..Filter::default()
            },
            vec!["e2", "e4"],
        ),
        (
            "all at once",
            Filter {
                stores: vec![f.a.clone()],
                model_versions: vec!["m1".into(), "m2".into()],
                resolutions: vec![Resolution::Human],
                hard_only: true,
                ..Filter::default()
            },
            vec!["e2"],
        ),
    ];
    for (what, filter, expected) in cases {
        let (summary, dir) = export_dir(
            &f.app,
            &ExportSpec {
                filter,
                ..ExportSpec::default()
            },
        )
        .await;
        assert_eq!(event_ids(&manifest(dir.path())), expected, "{what}");
        assert_eq!(summary.card.samples, expected.len() as u64, "{what}");
    }

    // With both stores allowed, the store filter picks one or the other.
    f.app.set_training(&f.b, true).await;
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        ("both", vec![], vec!["b1", "e1", "e2", "e3", "e4", "e7"]),
        (
            "only A",
            vec![f.a.clone()],
            vec!["e1", "e2", "e3", "e4", "e7"],
        ),
        ("only B", vec![f.b.clone()], vec!["b1"]),
    ];
    for (what, stores, expected) in cases {
        let spec = ExportSpec {
            filter: Filter {
                stores,
                ..Filter::default()
            },
            ..ExportSpec::default()
        };
        let (_, dir) = export_dir(&f.app, &spec).await;
        let mut got = event_ids(&manifest(dir.path()));
        got.sort();
        assert_eq!(got, expected, "{what}");
    }
}

async fn the_training_switch_is_honoured(backend: Backend) {
    let f = fx(backend).await;
    let app = &f.app;
    let put = |store: String, token: String, allowed: Value| async move {
        app.call(
            Method::PUT,
            &format!("/api/v1/stores/{store}/training"),
            &token,
            Some(json!({"allowed": allowed})),
        )
        .await
    };
    // Only admins change it, and only with a boolean for a known store.
    let (s, b) = put(f.b.clone(), f.sue.clone(), json!(true)).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, b) = put("no-such-store".into(), f.boss.clone(), json!(true)).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
    let (s, b) = put(f.b.clone(), f.boss.clone(), json!("yes")).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body")
    );

    // Naming a store that does not allow it is refused, not emptied.
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/exports",
            &f.sue,
            Some(json!({"filter": {"stores": [f.b]}})),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "training-not-allowed"),
        "{b}"
    );
    let only_b = ExportSpec {
        filter: Filter {
            stores: vec![f.b.clone()],
            ..Filter::default()
        },
        ..ExportSpec::default()
    };
    let all = recount::domain::scope::Scope::All;
    let refused = recount::review::exports::check(&app.state.db, &all, only_b)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "training-not-allowed");

    // Allowing B brings its event in; forbidding A takes A's out.
    let (s, _) = put(f.b.clone(), f.boss.clone(), json!(true)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, dir) = export_dir(app, &ExportSpec::default()).await;
    assert_eq!(
        event_ids(&manifest(dir.path())),
        ["e1", "b1", "e2", "e3", "e4", "e7"]
    );
    let (s, _) = put(f.a.clone(), f.boss.clone(), json!(false)).await;
    assert_eq!(s, StatusCode::OK);
    let (summary, dir) = export_dir(app, &ExportSpec::default()).await;
    assert_eq!(event_ids(&manifest(dir.path())), ["b1"]);
    assert_eq!(summary.card.stores.keys().collect::<Vec<_>>(), [&f.b]);
}

/// Runs export jobs until none is due.
async fn run_export_jobs(app: &TestApp) -> usize {
    let client = recount::jobs::webhook::client(&app.state.config);
    let mut n = 0;
    while recount::jobs::run_next_job(&app.state, &client, recount::jobs::EXPORT_JOBS)
        .await
        .unwrap()
    {
        n += 1;
    }
    n
}

async fn the_api_runs_an_export_in_the_background_with_range_able_files(backend: Backend) {
    let f = fx(backend).await;
    let app = &f.app;
    let post = |token: String, body: Value| async move {
        app.call(Method::POST, "/api/v1/exports", &token, Some(body))
            .await
    };
    // Wrong role, bad input: precise errors, nothing queued.
    let (s, b) = post(f.ann.clone(), json!({})).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, b) = post(
        f.sue.clone(),
        json!({"split": {"train": 0.9, "validation": 0.2}}),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-export"),
        "{b}"
    );
    let (s, b) = post(f.sue.clone(), json!({"shard_bytes": 10})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-export"),
        "{b}"
    );
    let (s, b) = post(f.sue.clone(), json!({"filter": {"min_agreement": 2}})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-export"),
        "{b}"
    );
    let (s, b) = post(f.sue.clone(), json!({"filter": {"colour": "red"}})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body")
    );
    // Every field has a default, so an array would read as "all defaults"
    // (serde takes a struct from a sequence by position): it is refused.
    let (s, b) = post(f.sue.clone(), json!([])).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        "{b}"
    );
    let resp = app
        .http
        .post(format!("{}/api/v1/exports", app.base))
        .bearer_auth(&f.sue)
        .header("content-type", "application/json")
        .body("{\"filter\": ")
        .send()
        .await
        .unwrap();
    let (s, b) = common::read(resp).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "malformed-json"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exports").await,
        0,
        "refused requests leave nothing behind"
    );

    let spec = json!({"filter": {"stores": [f.a]}, "shard_bytes": 65536});
    let (s, created) = post(f.sue.clone(), spec.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["export_id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "queued");
    assert_eq!(created["files"], json!([]));
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/v1/exports/{id}/files/manifest.jsonl"),
            &f.sue,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, "unknown-export-file"),
        "not before it is done"
    );

    assert_eq!(run_export_jobs(app).await, 1);
    let done = export_of(app, &f.sue, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["samples"], 5);
    assert_eq!(done["progress"], 5);
    assert_eq!(done["total"], 5);
    let names: Vec<&str> = done["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"manifest.jsonl"));
    assert_eq!(
        &names[names.len() - 2..],
        ["dataset-card.json", "dataset-card.md"]
    );
    assert!(names.iter().any(|n| n.ends_with(".tar")));
    let (s, list) = app.call(Method::GET, "/api/v1/exports", &f.sue, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["export_id"], id.as_str());

    // The API's export is the CLI's export, byte for byte.
    let spec: ExportSpec = serde_json::from_value(spec).unwrap();
    let as_of = parse_rfc3339_ms(done["as_of"].as_str().unwrap()).unwrap();
    let local = tempfile::tempdir().unwrap();
    run(
        &app.state.db,
        &app.state.blobs,
        &spec,
        as_of,
        &Destination::Dir(local.path().to_path_buf()),
        |_| async { Ok(()) },
    )
    .await
    .unwrap();
    for file in done["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        let got = bytes_of(app, &f.sue, file["url"].as_str().unwrap()).await;
        assert_eq!(got.len() as u64, file["bytes"].as_u64().unwrap(), "{name}");
        if name != "dataset-card.md" {
            assert_eq!(
                got,
                std::fs::read(local.path().join(name)).unwrap(),
                "{name}"
            );
        }
        let digest = sha256_hex(&got);
        assert_eq!(file["sha256"].as_str(), Some(digest.as_str()), "{name}");
    }

    // Ranges: a resumed download gets exactly the missing bytes.
    let shard = done["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().ends_with(".tar"))
        .unwrap();
    let whole = bytes_of(app, &f.sue, shard["url"].as_str().unwrap()).await;
    let resp = app
        .http
        .get(format!("{}{}", app.base, shard["url"].as_str().unwrap()))
        .bearer_auth(&f.sue)
        .header("range", "bytes=512-1535")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes 512-1535/{}", whole.len())
    );
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        whole[512..1536].to_vec()
    );
    let resp = app
        .http
        .get(format!("{}{}", app.base, shard["url"].as_str().unwrap()))
        .bearer_auth(&f.sue)
        .header("range", format!("bytes={}-", whole.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Unknown ids and names, and labelers: precise errors.
    let (s, b) = app
        .call(Method::GET, "/api/v1/exports/nope", &f.sue, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-export"));
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/v1/exports/{id}/files/passwd"),
            &f.sue,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, "unknown-export-file")
    );
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/v1/exports/{id}/files/manifest.jsonl"),
            &f.ann,
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));

    // Consent withdrawn while an export waits: the job refuses to run it.
    let (s, again) = post(f.sue.clone(), json!({"filter": {"stores": [f.a]}})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let again = again["export_id"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{}/training", f.a),
            &f.boss,
            Some(json!({"allowed": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    run_export_jobs(app).await;
    refused_for_consent(app, &f.sue, &again, &f.a).await;
}

async fn a_run_that_was_taken_over_can_neither_report_nor_finish(backend: Backend) {
    use recount::db::export as exports;
    use recount::review::exports as review;
    let f = fx(backend).await;
    let app = &f.app;
    let (s, created) = app
        .call(Method::POST, "/api/v1/exports", &f.sue, Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["export_id"].as_str().unwrap();
    let db = &app.state.db;
    let now = app.state.now();
    // A worker starts, loses its lease, and another takes the export over.
    let first = exports::start(db, id, now).await.unwrap().unwrap();
    let second = exports::start(db, id, now).await.unwrap().unwrap();
    assert_ne!(first.run_id, second.run_id);
    assert!(review::progress(db, id, &first.run_id, 1, 5, 1, 10)
        .await
        .is_err());
    let stores = [f.a.clone()];
    assert!(review::finish(db, id, &first.run_id, &stores, &[], 0, now)
        .await
        .is_err());
    review::progress(db, id, &second.run_id, 5, 5, 5, 10)
        .await
        .unwrap();
    // Consent withdrawn at the last moment: not done, the store named.
    app.set_training(&f.a, false).await;
    assert_eq!(
        review::finish(db, id, &second.run_id, &stores, &[], 5, now)
            .await
            .unwrap(),
        review::Finish::Refused(vec![f.a.clone()])
    );
    assert_eq!(export_of(app, &f.sue, id).await["status"], "running");
    app.set_training(&f.a, true).await;
    assert_eq!(
        review::finish(db, id, &second.run_id, &stores, &[], 5, now)
            .await
            .unwrap(),
        review::Finish::Done
    );
    let done = export_of(app, &f.sue, id).await;
    assert_eq!(
        (done["status"].as_str(), done["samples"].as_u64()),
        (Some("done"), Some(5))
    );
    // A done export can neither restart nor be failed afterwards.
    assert!(exports::start(db, id, now).await.unwrap().is_none());
    exports::fail(db, id, exports::ERROR_FAILED, "late", now)
        .await
        .unwrap();
    let still = export_of(app, &f.sue, id).await;
    assert_eq!(still["status"], "done");
}

/// Asserts an export failed because `store` withdrew its consent: the code,
/// a message naming the store, no files.
async fn refused_for_consent(app: &TestApp, token: &str, id: &str, store: &str) {
    let failed = export_of(app, token, id).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error_code"].as_str()),
        (Some("failed"), Some("training-not-allowed")),
        "{failed}"
    );
    assert!(
        failed["error"].as_str().unwrap().contains(store),
        "the message names the store: {failed}"
    );
    assert_eq!(failed["files"], json!([]));
}

/// An export as `GET /api/v1/exports/{id}` answers it (which must be 200).
async fn export_of(app: &TestApp, token: &str, id: &str) -> Value {
    let (s, export) = app
        .call(Method::GET, &format!("/api/v1/exports/{id}"), token, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{export}");
    export
}

/// The blob keys stored under an export's prefix.
async fn export_blobs(app: &TestApp, id: &str) -> Vec<String> {
    use futures::StreamExt;
    let prefix = recount::db::export::blob_key(id, "");
    let mut keys: Vec<String> = app
        .state
        .blobs
        .list(prefix.trim_end_matches('/'))
        .map(|entry| entry.unwrap().0)
        .collect()
        .await;
    keys.sort();
    keys
}

/// Takes the due export job and runs it, calling `watch` after each
/// progress report; returns whether the run succeeded and how many reports
/// the watch saw.
async fn run_watched<W, Fut>(app: &TestApp, watch: W) -> (Result<(), String>, usize)
where
    W: Fn(recount::export::Progress, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let state = &app.state;
    let job = recount::jobs::take_due(
        &state.db,
        recount::jobs::EXPORT_JOBS,
        state.now(),
        state.config.job_lease_ms,
    )
    .await
    .unwrap()
    .expect("an export job is due");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let watch = Arc::new(watch);
    let result = recount::jobs::export::run_watched(state, &job, &move |p| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(watch(p, n))
    })
    .await;
    let result = result.map_err(|e| format!("{e:?}"));
    (result, seen.load(Ordering::SeqCst))
}

async fn deleting_an_export_removes_its_files_and_stops_its_run(backend: Backend) {
    let f = fx(backend).await;
    let app = &f.app;
    let spec = json!({"filter": {"stores": [f.a]}, "shard_bytes": 65536});
    let (s, created) = app
        .call(Method::POST, "/api/v1/exports", &f.sue, Some(spec.clone()))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["export_id"].as_str().unwrap().to_string();
    let sue_id = created["created_by"].as_str().unwrap().to_string();
    assert_eq!(run_export_jobs(app).await, 1);
    let done = export_of(app, &f.sue, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    let urls: Vec<String> = done["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(export_blobs(app, &id).await.len(), urls.len());
    assert!(urls.len() >= 4, "{done}");
    let path = format!("/api/v1/exports/{id}");

    // Labelers may not, unknown ids are named: nothing changes.
    let (s, b) = app.call(Method::DELETE, &path, &f.ann, None).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, b) = app
        .call(Method::DELETE, "/api/v1/exports/nope", &f.sue, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-export"));
    assert_eq!(export_blobs(app, &id).await.len(), urls.len());
    assert!(!bytes_of(app, &f.sue, &urls[0]).await.is_empty());

    // A supervisor deletes it: files gone from storage and from the API,
    // the record kept with who and when.
    app.clock.advance(60_000);
    let (s, deleted) = app.call(Method::DELETE, &path, &f.sue, None).await;
    assert_eq!(s, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(deleted["deleted_by"], sue_id.as_str());
    let deleted_at = deleted["deleted_at"].as_str().unwrap().to_string();
    assert_eq!(
        parse_rfc3339_ms(&deleted_at),
        Some(app.state.now()),
        "{deleted}"
    );
    assert_eq!(deleted["files"], json!([]));
    assert_eq!(
        deleted["samples"], done["samples"],
        "what it held stays on record"
    );
    assert_eq!(export_blobs(app, &id).await, Vec::<String>::new());
    for url in &urls {
        let (s, b) = app.call(Method::GET, url, &f.sue, None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::NOT_FOUND, "unknown-export-file"),
            "{url}"
        );
    }
    let (_, list) = app.call(Method::GET, "/api/v1/exports", &f.sue, None).await;
    assert_eq!(list[0]["status"], "deleted");
    // Again: the same answer, nothing moves.
    app.clock.advance(60_000);
    let (s, again) = app.call(Method::DELETE, &path, &f.sue, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["deleted_at"], deleted_at.as_str());

    // A queued export deleted never runs.
    let (_, queued) = app
        .call(Method::POST, "/api/v1/exports", &f.sue, Some(spec.clone()))
        .await;
    let queued = queued["export_id"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/exports/{queued}"),
            &f.sue,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // What a run that died uploaded after the deletion: the job removes it.
    let late = recount::db::export::blob_key(&queued, "train-000000.tar");
    app.state
        .blobs
        .put_bytes(&late, b"late upload".to_vec())
        .await
        .unwrap();
    assert_eq!(export_blobs(app, &queued).await, [late]);
    assert_eq!(run_export_jobs(app).await, 1, "its job is taken and ends");
    let after = export_of(app, &f.sue, &queued).await;
    assert_eq!(
        (after["status"].as_str(), after["started_at"].as_str()),
        (Some("deleted"), None),
        "{after}"
    );
    assert_eq!(export_blobs(app, &queued).await, Vec::<String>::new());

    // A running export deleted after its first page: it stops, and what it
    // uploaded after the deletion (its manifest, its last shards) goes too.
    let (_, running) = app
        .call(Method::POST, "/api/v1/exports", &f.sue, Some(spec))
        .await;
    let running = running["export_id"].as_str().unwrap().to_string();
    let (base, http, sue) = (app.base.clone(), app.http.clone(), f.sue.clone());
    let target = running.clone();
    let (result, reports) = run_watched(app, move |p, _| {
        let (base, http, sue, target) = (base.clone(), http.clone(), sue.clone(), target.clone());
        async move {
            if p.samples > 0 && p.bytes > 0 {
                let resp = http
                    .delete(format!("{base}/api/v1/exports/{target}"))
                    .bearer_auth(&sue)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
        }
    })
    .await;
    assert_eq!(result, Ok(()), "a deleted export's job ends quietly");
    assert_eq!(
        reports, 2,
        "the report after the first page, then it stopped"
    );
    let after = export_of(app, &f.sue, &running).await;
    assert_eq!(after["status"], "deleted", "{after}");
    assert_eq!(after["files"], json!([]));
    assert_eq!(export_blobs(app, &running).await, Vec::<String>::new());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM export_files").await,
        0,
        "no export has files listed"
    );
}

/// An export whose clip cannot be read fails at every attempt; after the
/// last one it is failed with `export-failed`, its partial files removed.
async fn an_export_that_keeps_failing_ends_failed_with_its_code(backend: Backend) {
    let f = fx(backend).await;
    let app = &f.app;
    let video: String = sqlx::query_scalar("SELECT video_key FROM clips WHERE id = $1")
        .bind(&f.clips[0])
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
    app.state.blobs.delete(&video).await.unwrap();
    let (s, created) = app
        .call(
            Method::POST,
            "/api/v1/exports",
            &f.sue,
            Some(json!({"filter": {"stores": [f.a]}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["export_id"].as_str().unwrap().to_string();
    let attempts = app.state.config.webhook_max_attempts;
    for attempt in 1..=attempts {
        assert_eq!(run_export_jobs(app).await, 1, "attempt {attempt}");
        let x = export_of(app, &f.sue, &id).await;
        let expected = if attempt < attempts {
            "running"
        } else {
            "failed"
        };
        assert_eq!(x["status"], expected, "attempt {attempt}: {x}");
        let c = &app.state.config;
        app.clock.advance(recount::domain::job::backoff_ms(
            attempt,
            c.webhook_backoff_base_ms,
            c.webhook_backoff_max_ms,
        ));
    }
    assert_eq!(run_export_jobs(app).await, 0, "no attempt after the last");
    let failed = export_of(app, &f.sue, &id).await;
    assert_eq!(failed["error_code"], "export-failed", "{failed}");
    assert!(!failed["error"].as_str().unwrap().is_empty());
    assert_eq!(failed["files"], json!([]));
    assert_eq!(export_blobs(app, &id).await, Vec::<String>::new());
}

async fn consent_withdrawn_while_an_export_runs_ships_nothing(backend: Backend) {
    let f = fx(backend).await;
    let app = &f.app;
    let (s, created) = app
        .call(
            Method::POST,
            "/api/v1/exports",
            &f.sue,
            Some(json!({"filter": {"stores": [f.a]}, "shard_bytes": 65536})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["export_id"].as_str().unwrap().to_string();
    let (base, http, boss, store) = (
        app.base.clone(),
        app.http.clone(),
        f.boss.clone(),
        f.a.clone(),
    );
    // The admin withdraws store A's consent once the first page is written.
    let (result, reports) = run_watched(app, move |p, _| {
        let (base, http, boss, store) = (base.clone(), http.clone(), boss.clone(), store.clone());
        async move {
            if p.samples > 0 {
                let resp = http
                    .put(format!("{base}/api/v1/stores/{store}/training"))
                    .bearer_auth(&boss)
                    .json(&json!({"allowed": false}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
        }
    })
    .await;
    let err = result.unwrap_err();
    assert!(err.contains("no longer allow"), "{err}");
    assert!(reports >= 2, "the run went past its first page: {reports}");
    refused_for_consent(app, &f.sue, &id, &f.a).await;
    assert_eq!(
        export_blobs(app, &id).await,
        Vec::<String>::new(),
        "files written before the withdrawal are removed"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

async fn splits_are_deterministic_and_no_session_spans_two(backend: Backend) {
    let app = TestApp::start(backend).await;
    let work = tempfile::tempdir().unwrap();
    let seeded = seed_training_data(&app, work.path(), 3_000, 200, 40).await;
    let spec = ExportSpec {
        shard_bytes: 256 * 1024,
        ..ExportSpec::default()
    };
    let (first, a) = export_dir(&app, &spec).await;
    let (second, b) = export_dir(&app, &spec).await;
    for (x, y) in first.files.iter().zip(&second.files) {
        assert_eq!(
            (&x.name, &x.sha256),
            (&y.name, &y.sha256),
            "byte-identical runs"
        );
    }
    assert_eq!(first.files.len(), second.files.len());
    let samples = manifest(a.path());
    assert_eq!(samples.len() as u64, seeded.samples);
    assert_eq!(first.card.hard, seeded.hard);

    let sessions = |samples: &[Value]| {
        let mut by_session: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in samples {
            by_session
                .entry(format!("{}/{}", s["store_id"], s["session_id"]))
                .or_default()
                .insert(s["split"].as_str().unwrap().to_string());
        }
        by_session
    };
    let by_session = sessions(&samples);
    assert_eq!(by_session.len() as u64, seeded.sessions);
    assert!(
        by_session.values().all(|splits| splits.len() == 1),
        "a session in two splits"
    );
    let share = |split: &str| {
        by_session.values().filter(|s| s.contains(split)).count() as f64 / by_session.len() as f64
    };
    assert!((share("train") - 0.8).abs() < 0.05, "{}", share("train"));
    assert!((share("validation") - 0.1).abs() < 0.04);
    assert!((share("test") - 0.1).abs() < 0.04);

    // A filtered export puts each session where the full one did.
    let (_, hard) = export_dir(
        &app,
        &ExportSpec {
            filter: Filter {
                hard_only: true,
                ..Filter::default()
            },
            ..spec.clone()
        },
    )
    .await;
    let hard = sessions(&manifest(hard.path()));
    assert!(!hard.is_empty());
    for (session, splits) in &hard {
        assert_eq!(splits, &by_session[session], "{session}");
    }
    // Another seed draws another split, still without leakage.
    let (_, reseeded) = export_dir(
        &app,
        &ExportSpec {
            split: SplitPlan {
                seed: "another".into(),
                ..SplitPlan::default()
            },
            ..spec.clone()
        },
    )
    .await;
    let reseeded = sessions(&manifest(reseeded.path()));
    assert!(reseeded.values().all(|s| s.len() == 1));
    assert!(
        reseeded
            .iter()
            .filter(|(k, v)| by_session[*k] != **v)
            .count()
            > 100
    );

    // Shards stay under their size (none holds a single oversized sample
    // here), and every one reads back with tar and with webdataset.
    let shards: Vec<PathBuf> = first
        .files
        .iter()
        .filter(|f| f.name.ends_with(".tar"))
        .map(|f| a.path().join(&f.name))
        .collect();
    assert!(shards.len() > 3, "{} shards", shards.len());
    let mut listed = 0;
    for shard in &shards {
        assert!(std::fs::metadata(shard).unwrap().len() <= 256 * 1024);
        listed += tar_list(shard).len();
    }
    assert_eq!(listed, samples.len() * 2, "a JSON and a clip per sample");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(WEBDATASET_READER)
        .args(&shards)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read.len(), samples.len());
    let keys: BTreeSet<&str> = samples.iter().map(|s| s["key"].as_str().unwrap()).collect();
    for r in &read {
        assert!(keys.contains(r["key"].as_str().unwrap()));
        assert_eq!(
            r["key"], r["json_key"],
            "the JSON member belongs to its sample"
        );
        assert_eq!(r["members"], json!(["cam0.mp4", "json"]));
        assert_eq!(
            r["mp4_bytes"].as_u64(),
            Some(std::fs::read(work.path().join("tiny.mp4")).unwrap().len() as u64)
        );
    }
    drop(b);
}

/// Reads shards with webdataset as training code would; prints per sample
/// its key, member extensions, the key inside its JSON and the clip's size.
const WEBDATASET_READER: &str = r#"
import json, sys
import webdataset as wds
out = []
for s in wds.WebDataset(sys.argv[1:], shardshuffle=False):
    meta = json.loads(s["json"])
    out.append({
        "key": s["__key__"],
        "members": sorted(k for k in s if not k.startswith("__")),
        "json_key": meta["key"],
        "mp4_bytes": len(s["cam0.mp4"]),
    })
print(json.dumps(out))
"#;

dual!(
    an_export_holds_exactly_the_resolved_events_of_allowed_stores,
    each_filter_keeps_what_it_says,
    the_training_switch_is_honoured,
    the_api_runs_an_export_in_the_background_with_range_able_files,
    a_run_that_was_taken_over_can_neither_report_nor_finish,
    deleting_an_export_removes_its_files_and_stops_its_run,
    consent_withdrawn_while_an_export_runs_ships_nothing,
    an_export_that_keeps_failing_ends_failed_with_its_code,
    splits_are_deterministic_and_no_session_spans_two,
);

/// 100 000 samples exported by the CLI binary: every one written, the
/// forbidden store's left out, and the process's peak resident memory
/// under 100 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_export_stays_under_100_mb_of_memory() {
    let app = TestApp::start(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let seeded = seed_training_data(&app, work.path(), 100_000, 1_000, 16).await;
    let out = work.path().join("export");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
        .arg("export")
        .arg("--out")
        .arg(&out)
        .args(["--shard-size", "64MiB", "--quiet"])
        .env("RECOUNT_DATABASE_URL", &app.db_handle.url)
        .env("RECOUNT_DATA_DIR", app.data_dir.path())
        .env("RECOUNT_LOG", "warn")
        .output()
        .unwrap();
    let printed = String::from_utf8(run.stdout).unwrap();
    assert!(
        run.status.success(),
        "export failed: {printed}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(summary["samples"].as_u64(), Some(seeded.samples));
    assert_eq!(seeded.samples, 100_000);
    let lines = std::fs::read_to_string(out.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 100_000);
    // The export's own high-water mark of resident memory (VmHWM), which
    // the CLI reads from the kernel as it finishes. (The rusage of a child
    // is no good here: Linux folds the parent's resident size into it at
    // exec.)
    let peak_mb = summary["peak_rss_mb"].as_f64().unwrap();
    println!("peak memory of a 100 000-sample export: {peak_mb:.1} MB");
    assert!(peak_mb < 100.0, "peak memory {peak_mb:.1} MB");
}
