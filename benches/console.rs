//! Console bench: the time from submitting a verdict to the next task's video
//! being ready to play, measured in a real headless Chromium by the page's
//! own performance marks (`verdict-submit` → `task-ready`, the measure
//! `verdict-to-ready`), with prefetch and with prefetch disabled
//! (`/console?prefetch=0`) in the same run, on the same server and data.
//!
//! ```sh
//! cargo bench --features bench,demo --bench console -- [--answers 8] [--think-ms 1500]
//! ```
//!
//! The server is the real app on a loopback port (release build, SQLite in a
//! temporary directory, wall clock); tasks are the demo's: two synthetic
//! 640×360 camera clips each, processed by the real media jobs before the
//! measuring starts. The labeler "thinks" `--think-ms` before each answer,
//! as a person watching the clips would; that is when the console prefetches.
//! Prints a table and, last, one JSON line.

#[path = "../tests/browser/mod.rs"]
mod browser;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use browser::{Browser, BrowserOptions};
use recount::bench::server::{self, Server};
use recount::config::Config;
use recount::db::Db;
use recount::{demo, jobs, AppState};

const WAIT: Duration = Duration::from_secs(60);

struct Args {
    answers: usize,
    think_ms: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        answers: 8,
        think_ms: 1500,
    };
    let mut it = std::env::args().skip(1);
    if std::env::args().any(|f| f == "--list") {
        // A test runner listing tests (`cargo nextest run --all-targets`):
        // this target has none.
        std::process::exit(0);
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--answers" => a.answers = it.next().context("--answers N")?.parse()?,
            "--think-ms" => a.think_ms = it.next().context("--think-ms MS")?.parse()?,
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            other => bail!("unknown flag {other:?} (use --answers N, --think-ms MS)"),
        }
    }
    Ok(a)
}

/// Films demo shoppers and processes their clips until `n` fresh tasks are ready.
async fn top_up(state: &AppState, store_id: &str, n: i64) -> Result<()> {
    let client = jobs::webhook::client(&state.config);
    let mut visits = Vec::new();
    for _ in 0..200 {
        // Tasks this labeler has never held: the queue never offers the
        // others to them again (audit samples wait for a second labeler,
        // tasks released at the end of a run).
        let ready: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_tasks t WHERE t.status = 'ready' \
             AND NOT EXISTS (SELECT 1 FROM task_leases l WHERE l.task_id = t.id)",
        )
        .fetch_one(state.db.reader())
        .await?;
        if ready >= n {
            return Ok(());
        }
        demo::simulate_step(state, store_id, &mut visits).await?;
        while jobs::run_next_job(state, &client, jobs::MEDIA_JOBS).await? {}
    }
    bail!("the demo did not produce {n} ready tasks")
}

/// Answers `answers` tasks and returns each verdict-to-ready time in ms.
async fn run(b: &Browser, base: &str, prefetch: bool, a: &Args) -> Result<Vec<f64>> {
    let url = if prefetch {
        format!("{base}/console")
    } else {
        format!("{base}/console?prefetch=0")
    };
    b.goto(&url).await?;
    b.wait_for(
        "the start screen",
        "document.getElementById('console')?.dataset.state === 'start'",
        WAIT,
    )
    .await?;
    b.eval::<serde_json::Value>(
        "window.__ready = 0; document.addEventListener('recount:task-ready', () => window.__ready++); return null",
    )
    .await?;
    b.press_key("Enter").await?;
    let mut times = Vec::new();
    for i in 0..=a.answers {
        b.wait_for(
            "a task ready to play",
            &format!("window.__ready >= {}", i + 1),
            WAIT,
        )
        .await?;
        // A video that failed to decode would count as "ready" to the page;
        // the figure is only honest when every camera can really play.
        let broken: Vec<String> = b
            .eval(
                "return [...document.querySelectorAll('#players-host .players:not([hidden]) video')] \
                 .filter(v => v.error || v.readyState < 3).map(v => v.src + ': ' + (v.error?.message ?? v.readyState))",
            )
            .await?;
        if !broken.is_empty() {
            bail!("videos not playable: {broken:?}");
        }
        if i > 0 {
            let ms: f64 = b
                .eval(
                    "const m = performance.getEntriesByName('verdict-to-ready'); \
                     return m[m.length - 1].duration",
                )
                .await?;
            times.push(ms);
        }
        if i == a.answers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(a.think_ms)).await;
        b.press_keys(&["n", "Enter"]).await?;
    }
    b.click("#pause").await?;
    Ok(times)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/recount.db?mode=rwc", dir.path().display());
    let db = Db::connect(&url, 8).await?;
    db.migrate().await?;
    let state = server::state(db, &Config::default(), dir.path())?;
    let creds = demo::setup(&state).await?;
    let (user, password, _) = creds
        .users
        .iter()
        .find(|(u, _, _)| u == "labeler")
        .cloned()
        .context("demo labeler")?;
    eprintln!("console bench: filming demo shoppers and processing their clips…");
    // Each run shows answers + 1 tasks and prefetches one more.
    let per_run = a.answers as i64 + 2;
    top_up(&state, &creds.store_id, per_run).await?;
    let srv = Server::start(state.clone()).await?;
    let load_before = load_average();

    let b = Browser::launch(BrowserOptions::default().test_name("bench-console")).await?;
    b.goto(&format!("{}/login", srv.base)).await?;
    b.type_into("#username", &user).await?;
    b.type_into("#password", &password).await?;
    b.press_key("Enter").await?;
    b.wait_for(
        "signed in",
        "document.getElementById('console')?.dataset.state === 'start'",
        WAIT,
    )
    .await?;

    let started = Instant::now();
    let with = run(&b, &srv.base, true, &a).await?;
    top_up(&state, &creds.store_id, per_run).await?;
    let without = run(&b, &srv.base, false, &a).await?;
    let wall = started.elapsed();
    let load_after = load_average();
    let errors = b.console_errors().await?;
    b.close().await?;
    srv.stop().await;

    let (m_with, m_without) = (median(&with), median(&without));
    println!(
        "console bench: {} answers per mode, {} ms think time, demo clips (2 cameras, 640x360, 4 s)",
        a.answers, a.think_ms
    );
    println!(
        "machine: load average before {load_before} / after {load_after} (1, 5, 15 min); \
         server, browser and bench share the CPUs; {:.1} s",
        wall.as_secs_f64()
    );
    println!("mode         median ms   max ms   runs");
    println!(
        "prefetch     {:>9.1} {:>8.1} {:>6}",
        m_with,
        max(&with),
        with.len()
    );
    println!(
        "no prefetch  {:>9.1} {:>8.1} {:>6}",
        m_without,
        max(&without),
        without.len()
    );
    let ratio = m_with / m_without;
    println!(
        "verdict → next video ready: {m_with:.1} ms with prefetch (target ≤ 300 ms: {}), \
         {ratio:.2}× the time without prefetch",
        if m_with <= 300.0 { "met" } else { "MISSED" }
    );
    if !errors.is_empty() {
        println!("browser console errors: {errors:?}");
    }
    println!(
        "{}",
        json!({
            "bench": "console",
            "answers": a.answers,
            "think_ms": a.think_ms,
            "prefetch_ms": with,
            "no_prefetch_ms": without,
            "prefetch_median_ms": m_with,
            "no_prefetch_median_ms": m_without,
            "ratio": ratio,
            "load_before": load_before,
            "load_after": load_after,
            "console_errors": errors.len(),
        })
    );
    Ok(())
}
