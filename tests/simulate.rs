//! `recount simulate` as users run it: the binary, a day file, policies,
//! its JSON and its refusals.

use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_recount");

/// A short day: 300 shoppers over three hours, 60 products.
const SHORT_DAY: &str =
    r#"{"shoppers": 300, "arrivals_by_hour": [1, 2, 1], "catalog": {"products": 60}}"#;

fn simulate(day: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day.json");
    std::fs::write(&path, day).unwrap();
    Command::new(BIN)
        .arg("simulate")
        .arg("--day")
        .arg(&path)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("runs")
}

#[test]
fn a_day_file_runs_policies_side_by_side_and_the_same_seed_repeats_itself() {
    let args = [
        "--seed",
        "4",
        "--policy",
        "baseline",
        "--policy",
        "charge-aware,review-cost-cents=8",
        "--json",
    ];
    let out = simulate(SHORT_DAY, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["shoppers"], 300);
    assert_eq!(report["seed"], 4);
    let policies = report["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0]["figures"]["policy"], "baseline");
    assert_eq!(
        policies[1]["figures"]["policy"],
        "charge-aware,review-cost-cents=8"
    );
    for p in policies {
        let f = &p["figures"];
        assert_eq!(f["receipts"], 300);
        assert_eq!(f["unfinished"], 0);
        assert_eq!(
            f["events"].as_u64().unwrap(),
            f["events_to_people"].as_u64().unwrap() + f["auto_accepted"].as_u64().unwrap()
        );
        assert!(f["latency_p95_s"].as_f64().unwrap() <= 600.0, "{f}");
        assert!(p["needed_labeler_hours"].as_u64().unwrap() >= 1);
    }
    assert_eq!(report["curve"].as_array().unwrap().len(), 50);
    assert_eq!(report["marks"].as_array().unwrap().len(), 2);

    let again = simulate(SHORT_DAY, &args);
    assert_eq!(out.stdout, again.stdout, "deterministic for a seed");

    let text = simulate(SHORT_DAY, &["--policy", "baseline"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("Store day: 300 shoppers"), "{text}");
    assert!(text.contains("latency p50 / p95 / p99 s"), "{text}");
    assert!(text.contains("% of events reviewed"), "{text}");
}

#[test]
fn impossible_days_and_unknown_policies_are_refused_naming_what_is_wrong() {
    for (day, args, says) in [
        (
            r#"{"labelers": {"accuracy": 1.5}}"#,
            &[][..],
            "labelers.accuracy: must be between 0 and 1",
        ),
        (r#"{"return_share": -0.1}"#, &[][..], "return_share"),
        (
            r#"{"arrivals_by_hour": [3, -1]}"#,
            &[][..],
            "arrivals_by_hour[1]",
        ),
        (r#"{"shoppers": "many"}"#, &[][..], "shoppers"),
        (r#"{"shopers": 10}"#, &[][..], "shopers"),
        ("not json", &[][..], "day file"),
        (
            SHORT_DAY,
            &["--policy", "cheapest"][..],
            "unknown policy \"cheapest\"",
        ),
        (
            SHORT_DAY,
            &["--policy", "threshold,threshold=1.5"][..],
            "threshold: must be between 0 and 1",
        ),
    ] {
        let out = simulate(day, args);
        assert!(!out.status.success(), "{day} {args:?}");
        assert!(out.stdout.is_empty(), "nothing printed but the error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{day} {args:?}: {stderr}");
    }
}
