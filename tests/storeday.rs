//! `recount bench storeday` as users run it: the same store day with and
//! without audit samples, compared shopper by shopper. Audits give way to
//! receipt work, so no receipt is later for them.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_recount");

#[test]
fn audit_samples_make_no_receipt_later_than_without_them() {
    let dir = tempfile::tempdir().unwrap();
    // A third of the confident events drawn for audit, so the crew is on an
    // audit often when receipt work arrives.
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["bench", "storeday", "--backend", "sqlite", "--hours", "1"])
        .args([
            "--sessions-per-hour",
            "120",
            "--audit-rate",
            "0.3",
            "--seed",
            "3",
        ])
        .env_remove("RECOUNT_DATABASE_URL")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.lines().last().unwrap();
    let runs: Vec<Value> = serde_json::from_str(json).unwrap();
    let run = |mode: &str| runs.iter().find(|r| r["mode"] == mode).unwrap().clone();
    let (baseline, off, on) = (run("baseline"), run("off-path"), run("on-path"));
    for r in [&baseline, &off, &on] {
        assert_eq!(r["receipts"], 120, "every receipt final: {r}");
    }
    assert_eq!(baseline["audit_tasks"], 0);
    assert!(off["audit_tasks"].as_i64().unwrap() > 20, "{off}");
    assert!(
        off["audits_yielded"].as_i64().unwrap() > 0,
        "audits gave way to receipt work: {off}"
    );
    assert_eq!(off["later_than_baseline"], 0, "{off}");
    assert_eq!(off["most_added_s"], 0.0);
    for q in ["p50_s", "p95_s", "p99_s"] {
        assert_eq!(off[q], baseline[q], "{q}");
    }
    // The same day with audits holding receipts, as before: the comparison
    // can tell.
    assert!(on["later_than_baseline"].as_i64().unwrap() > 0, "{on}");
}
