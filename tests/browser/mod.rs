//! Headless Chromium for browser tests, driven over WebDriver.
//!
//! Each [`Browser`] is one Debian `chromedriver` on its own loopback port
//! (`--port=0`, the driver picks a free one and prints it), one WebDriver
//! session and one fresh Chromium profile in a temp dir. Several browsers can
//! run at once in one test (two labelers side by side). Dropping a `Browser`
//! kills its driver's whole process group (the driver and every Chromium
//! process it started) and removes the profile.
//!
//! Nothing is downloaded: the harness uses `/usr/bin/chromedriver` and the
//! Chromium binary Debian installs (`chromium`, `chromium-driver`, which
//! `scripts/setup.sh` installs). If either is missing, [`Browser::launch`]
//! fails with a message naming `scripts/setup.sh`; it never skips.
//! `RECOUNT_CHROMEDRIVER` and `RECOUNT_CHROMIUM` override the two paths.
//!
//! Console messages are collected through chromedriver's log endpoint
//! (`goog:loggingPrefs` {"browser": "ALL"} and `POST /session/{id}/se/log`).
//! Reading that log drains it, so the harness keeps every entry it has read;
//! [`Browser::console_errors`] returns the SEVERE and WARNING ones (console
//! errors and warnings, uncaught exceptions, failed loads).
//!
//! Use from a test file in `tests/`:
//!
//! ```ignore
//! mod browser;
//! use browser::{Browser, BrowserOptions};
//!
//! let b = Browser::launch(BrowserOptions::default()).await?;
//! b.goto(&format!("{base}/console")).await?;
//! b.click("#claim").await?;
//! b.press_key("ArrowRight").await?;
//! b.wait_for("the next clip is shown", "document.querySelector('#clip')?.dataset.index === '1'",
//!            Duration::from_secs(5)).await?;
//! b.assert_no_console_errors().await;
//! ```
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

const SETUP_HINT: &str =
    "run `bash scripts/setup.sh` (installs Debian's chromium and chromium-driver)";

/// Console messages that are never counted as errors by default: Chromium
/// fetches `/favicon.ico` on its own, some time after the load event, and a
/// 404 there is logged as SEVERE. Counting it would make assertions racy.
pub const DEFAULT_CONSOLE_IGNORES: &[&str] = &["/favicon.ico - Failed to load resource"];

/// How often [`Browser::wait_for`] re-evaluates its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long the driver may take to print its port and to open a session.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(15);
const SESSION_START_TIMEOUT: Duration = Duration::from_secs(30);

static LAUNCHED: AtomicUsize = AtomicUsize::new(0);

/// How to launch one browser.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Window (and, headless, viewport) size in CSS pixels.
    pub width: u32,
    pub height: u32,
    /// Names this browser in failure screenshots and errors ("alice", "bob").
    /// Defaults to `browser1`, `browser2`, … in launch order.
    pub label: Option<String>,
    /// Directory name under `target/browser-artifacts/`. Defaults to the
    /// running test's name (nextest's `NEXTEST_TEST_NAME`, else the test
    /// thread's name, else the test binary's name).
    pub test_name: Option<String>,
    /// Extra Chromium command-line flags.
    pub extra_args: Vec<String>,
    /// Console messages containing any of these substrings are kept in
    /// [`Browser::console_log`] but not reported by
    /// [`Browser::console_errors`].
    pub console_ignores: Vec<String>,
    /// The chromedriver and Chromium executables; default: the environment
    /// variables `RECOUNT_CHROMEDRIVER` / `RECOUNT_CHROMIUM`, else Debian's
    /// `/usr/bin/chromedriver` and `/usr/lib/chromium/chromium`.
    pub chromedriver: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            width: 1366,
            height: 768,
            label: None,
            test_name: None,
            extra_args: Vec::new(),
            console_ignores: DEFAULT_CONSOLE_IGNORES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            chromedriver: None,
            chromium: None,
        }
    }
}

impl BrowserOptions {
    pub fn window_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn test_name(mut self, name: impl Into<String>) -> Self {
        self.test_name = Some(name.into());
        self
    }

    pub fn arg(mut self, flag: impl Into<String>) -> Self {
        self.extra_args.push(flag.into());
        self
    }

    pub fn chromedriver(mut self, path: impl Into<PathBuf>) -> Self {
        self.chromedriver = Some(path.into());
        self
    }

    pub fn chromium(mut self, path: impl Into<PathBuf>) -> Self {
        self.chromium = Some(path.into());
        self
    }

    pub fn ignore_console(mut self, substring: impl Into<String>) -> Self {
        self.console_ignores.push(substring.into());
        self
    }
}

/// One entry of the browser's console log, as chromedriver reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleEntry {
    /// `SEVERE` (console.error, uncaught exceptions, failed loads),
    /// `WARNING`, `INFO` (console.log/info) or `DEBUG`.
    pub level: String,
    /// For console calls: `<url> <line>:<col> <args>`, string arguments
    /// JSON-quoted. For exceptions: `<url> <line>:<col> Uncaught Error: …`.
    pub message: String,
    /// `console-api`, `javascript` (exceptions), `network`, …
    #[serde(default)]
    pub source: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp: i64,
}

impl ConsoleEntry {
    /// Whether this entry is an error or warning.
    pub fn is_error(&self) -> bool {
        self.level == "SEVERE" || self.level == "WARNING"
    }
}

impl fmt::Display for ConsoleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "[{} {}] {}", self.level, source, self.message),
            None => write!(f, "[{}] {}", self.level, self.message),
        }
    }
}

/// A cookie of the current page's origin, as the browser holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieInfo {
    pub name: String,
    pub value: String,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax` or `None`, when set.
    pub same_site: Option<String>,
    pub path: Option<String>,
}

/// WebDriver's (Selenium-era) log endpoint, which chromedriver still serves in
/// W3C mode: `POST /session/{id}/se/log` with `{"type": "browser"}`.
#[derive(Debug)]
struct GetBrowserLog;

impl WebDriverCompatibleCommand for GetBrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// chromedriver's network emulation: `POST /session/{id}/chromium/network_conditions`.
#[derive(Debug)]
struct SetNetworkConditions {
    offline: bool,
}

impl WebDriverCompatibleCommand for SetNetworkConditions {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/chromium/network_conditions",
            session_id.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"network_conditions": {
            "offline": self.offline,
            "latency": 0,
            "download_throughput": -1,
            "upload_throughput": -1,
        }});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The chromedriver process; killing it kills its process group, i.e. the
/// driver and every Chromium process it started (Chromium outlives a killed
/// driver otherwise).
struct Driver {
    child: Child,
    port: u16,
    output: Arc<Mutex<VecDeque<String>>>,
}

impl Driver {
    /// Starts chromedriver, up to three times: told `--port=0`, it picks a
    /// free port itself and, when another process takes that port first,
    /// exits with "IPv4 port not available" instead of picking another.
    fn spawn(chromedriver: &Path, log_dir: &Path) -> Result<Driver> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            match Self::spawn_once(chromedriver, log_dir) {
                Ok(driver) => return Ok(driver),
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!("chromedriver start {attempt} of {ATTEMPTS} failed: {e:#}");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn_once(chromedriver: &Path, log_dir: &Path) -> Result<Driver> {
        use std::os::unix::process::CommandExt;

        let stderr = std::fs::File::create(log_dir.join("chromedriver-stderr.log"))
            .context("create chromedriver stderr log")?;
        let mut child = Command::new(chromedriver)
            .arg("--port=0")
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Keep Chromium's crash-report database and caches in the temp dir
            // too, not under $HOME.
            .env("XDG_CONFIG_HOME", log_dir.join("xdg-config"))
            .env("XDG_CACHE_HOME", log_dir.join("xdg-cache"))
            // Its own process group, so that Drop can kill Chromium with it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {}; {SETUP_HINT}", chromedriver.display()))?;

        // Read stdout until the driver says its port; keep draining it after,
        // so a chatty driver never blocks on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        {
            let output = output.clone();
            std::thread::Builder::new()
                .name("chromedriver-stdout".into())
                .spawn(move || {
                    let mut port_tx = Some(port_tx);
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if let Some(port) = parse_started_port(&line) {
                            if let Some(tx) = port_tx.take() {
                                let _ = tx.send(port);
                            }
                        }
                        let mut out = output.lock().unwrap();
                        if out.len() >= 200 {
                            out.pop_front();
                        }
                        out.push_back(line);
                    }
                })
                .context("spawn chromedriver reader thread")?;
        }

        let mut driver = Driver {
            child,
            port: 0,
            output,
        };
        match port_rx.recv_timeout(DRIVER_START_TIMEOUT) {
            Ok(port) => {
                driver.port = port;
                Ok(driver)
            }
            Err(_) => {
                let status = driver.child.try_wait().ok().flatten();
                bail!(
                    "chromedriver did not report its port within {:?} (exit status: {:?}); \
                     its output:\n{}\nstderr:\n{}",
                    DRIVER_START_TIMEOUT,
                    status,
                    driver.output_tail(),
                    std::fs::read_to_string(log_dir.join("chromedriver-stderr.log"))
                        .unwrap_or_default()
                )
            }
        }
    }

    fn output_tail(&self) -> String {
        let out = self.output.lock().unwrap();
        out.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGKILL the whole group: chromedriver and the Chromium it started.
        // The group id is the driver's pid (`process_group(0)`), and the
        // driver is not reaped yet, so the id cannot have been reused.
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_started_port(line: &str) -> Option<u16> {
    // "ChromeDriver was started successfully on port 37599."
    let rest = line.split("started successfully on port ").nth(1)?;
    rest.trim().trim_end_matches('.').parse().ok()
}

/// A headless Chromium with its own chromedriver, session and profile.
pub struct Browser {
    client: Client,
    label: String,
    test_name: String,
    console_ignores: Vec<String>,
    /// Every console entry read so far (reading the log drains it).
    console: Mutex<Vec<ConsoleEntry>>,
    // Field order matters: the driver (and Chromium) die before the profile
    // directory is removed.
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("label", &self.label)
            .field("test_name", &self.test_name)
            .field("driver_port", &self.driver.port)
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session on a
    /// fresh headless Chromium profile.
    pub async fn launch(opts: BrowserOptions) -> Result<Browser> {
        let started = Instant::now();
        let chromedriver = find_chromedriver(opts.chromedriver.as_deref())?;
        let chromium = find_chromium(opts.chromium.as_deref())?;
        let n = LAUNCHED.fetch_add(1, Ordering::SeqCst) + 1;
        let label = opts.label.clone().unwrap_or_else(|| format!("browser{n}"));
        let test_name = opts.test_name.clone().unwrap_or_else(current_test_name);

        let profile = tempfile::Builder::new()
            .prefix("recount-chromium-")
            .tempdir()
            .context("create a temp dir for the Chromium profile")?;
        let user_data_dir = profile.path().join("profile");
        std::fs::create_dir_all(&user_data_dir).context("create profile dir")?;

        let driver = tokio::task::spawn_blocking({
            let chromedriver = chromedriver.clone();
            let log_dir = profile.path().to_path_buf();
            move || Driver::spawn(&chromedriver, &log_dir)
        })
        .await
        .context("chromedriver start task")??;
        let driver_ready = started.elapsed();

        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-breakpad".into(),
            "--hide-scrollbars".into(),
            "--mute-audio".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            format!("--window-size={},{}", opts.width, opts.height),
            format!("--user-data-dir={}", user_data_dir.display()),
        ];
        args.extend(opts.extra_args.iter().cloned());

        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        // WebDriver's defaults let a stuck page load hang a test for 5 min.
        caps.insert(
            "timeouts".into(),
            json!({ "pageLoad": 30_000, "script": 30_000, "implicit": 0 }),
        );

        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            SESSION_START_TIMEOUT,
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&driver.url()),
        )
        .await
        .map_err(|_| anyhow!("no WebDriver session within {SESSION_START_TIMEOUT:?}"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "open a Chromium session ({} via {}); chromedriver said:\n{}",
                chromium.display(),
                chromedriver.display(),
                driver.output_tail()
            )
        })?;

        let browser = Browser {
            client,
            label,
            test_name,
            console_ignores: opts.console_ignores,
            console: Mutex::new(Vec::new()),
            driver,
            _profile: profile,
        };
        let session_ready = started.elapsed();
        browser.fit_viewport(opts.width, opts.height).await?;
        if std::env::var_os("RECOUNT_BROWSER_TRACE").is_some() {
            eprintln!(
                "browser {}: launched in {:?} (driver {driver_ready:?}, session {session_ready:?})",
                browser.label,
                started.elapsed()
            );
        }
        Ok(browser)
    }

    /// Headless Chromium's `--window-size` sizes the window, and the
    /// viewport comes out smaller (1366x768 gives a 1366x625 viewport), so
    /// grow the window by the difference: pages see exactly `width`x`height`.
    async fn fit_viewport(&self, width: u32, height: u32) -> Result<()> {
        let script = "return [window.innerWidth, window.innerHeight, \
                      window.outerWidth, window.outerHeight]";
        let [inner_w, inner_h, outer_w, outer_h]: [u32; 4] = self.eval(script).await?;
        if (inner_w, inner_h) == (width, height) {
            return Ok(());
        }
        let chrome_w = outer_w.saturating_sub(inner_w);
        let chrome_h = outer_h.saturating_sub(inner_h);
        self.client
            .set_window_size(width + chrome_w, height + chrome_h)
            .await
            .context("resize the window")?;
        let [inner_w, inner_h, ..]: [u32; 4] = self.eval(script).await?;
        if (inner_w, inner_h) != (width, height) {
            bail!(
                "{}: asked for a {width}x{height} viewport, got {inner_w}x{inner_h}",
                self.label
            );
        }
        Ok(())
    }

    /// Ends the session (Chromium exits cleanly), then kills the driver.
    /// Dropping the browser also cleans up, by killing the process group.
    pub async fn close(self) -> Result<()> {
        self.client.clone().close().await.context("close session")?;
        Ok(())
    }

    /// The underlying WebDriver client, for anything the harness lacks.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Navigates and waits for the load event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("{}: goto {url}", self.label))
    }

    pub async fn current_url(&self) -> Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    pub async fn reload(&self) -> Result<()> {
        self.client.refresh().await.context("reload")
    }

    /// The first element matching a CSS selector, now (no implicit wait; use
    /// [`Browser::wait_for_selector`] for elements that appear later).
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("{}: find `{css}`", self.label))
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("{}: find all `{css}`", self.label))
    }

    /// Clicks the element's centre with a real (trusted) mouse event.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("{}: click `{css}`", self.label))
    }

    /// Focuses the element and types `text` with real key events (appends to
    /// what is there; see [`Browser::clear`]).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.find(css)
            .await?
            .send_keys(text)
            .await
            .with_context(|| format!("{}: type into `{css}`", self.label))
    }

    /// Empties an input or textarea.
    pub async fn clear(&self, css: &str) -> Result<()> {
        self.find(css)
            .await?
            .clear()
            .await
            .with_context(|| format!("{}: clear `{css}`", self.label))
    }

    /// Moves keyboard focus to the element (for [`Browser::press_key`]).
    pub async fn focus(&self, css: &str) -> Result<()> {
        let quoted = serde_json::to_string(css)?;
        let found: bool = self
            .eval(&format!(
                "const el = document.querySelector({quoted}); \
                 if (!el) return false; el.focus(); return true;"
            ))
            .await?;
        if !found {
            bail!("{}: focus: no element matches `{css}`", self.label);
        }
        Ok(())
    }

    /// Presses and releases one key with real keyboard events, delivered to
    /// the focused element (or the page's body). `key` is one character
    /// ("k", "?", " ") or a key name: Enter, Tab, Escape, Space, Backspace,
    /// Delete, ArrowLeft, ArrowRight, ArrowUp, ArrowDown, Home, End, PageUp,
    /// PageDown, F1…F12. Modifiers chord with `+`: "Shift+ArrowRight",
    /// "Control+z" (Shift, Control/Ctrl, Alt, Meta).
    pub async fn press_key(&self, key: &str) -> Result<()> {
        let (modifiers, key_char) = parse_key_chord(key)?;
        let mut actions = KeyActions::new("keyboard".to_string());
        for &m in &modifiers {
            actions = actions.then(KeyAction::Down { value: m });
        }
        actions = actions
            .then(KeyAction::Down { value: key_char })
            .then(KeyAction::Up { value: key_char });
        for &m in modifiers.iter().rev() {
            actions = actions.then(KeyAction::Up { value: m });
        }
        self.client
            .perform_actions(actions)
            .await
            .with_context(|| format!("{}: press {key:?}", self.label))
    }

    /// Presses several keys in turn (see [`Browser::press_key`]).
    pub async fn press_keys(&self, keys: &[&str]) -> Result<()> {
        for key in keys {
            self.press_key(key).await?;
        }
        Ok(())
    }

    /// Runs `js` as the body of a function (WebDriver "execute script": use
    /// `return`) and deserializes what it returns. Arguments are not passed;
    /// build them into the script with `serde_json::to_string`.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> Result<T> {
        let value = self
            .client
            .execute(js, Vec::new())
            .await
            .with_context(|| format!("{}: eval script:\n{js}", self.label))?;
        decode_script_value(value, js)
    }

    /// Runs `js` as the body of an `async` function (so it may `await`) and
    /// deserializes the value its promise resolves to. A rejection is an
    /// error carrying the JS error's stack.
    pub async fn eval_async<T: DeserializeOwned>(&self, js: &str) -> Result<T> {
        let wrapped = format!(
            "const __recountDone = arguments[arguments.length - 1];\n\
             (async () => {{\n{js}\n}})().then(\n\
               (v) => __recountDone({{ ok: v === undefined ? null : v }}),\n\
               (e) => __recountDone({{ err: String((e && e.stack) || e) }}));"
        );
        let value = self
            .client
            .execute_async(&wrapped, Vec::new())
            .await
            .with_context(|| format!("{}: eval_async script:\n{js}", self.label))?;
        match value {
            Value::Object(mut map) => {
                if let Some(err) = map.remove("err") {
                    bail!(
                        "{}: eval_async script rejected: {}\nscript:\n{js}",
                        self.label,
                        err.as_str().unwrap_or_default()
                    );
                }
                decode_script_value(map.remove("ok").unwrap_or(Value::Null), js)
            }
            other => bail!("eval_async: unexpected reply {other}"),
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        self.find(css)
            .await?
            .text()
            .await
            .with_context(|| format!("{}: text of `{css}`", self.label))
    }

    /// An element property (`value`, `checked`, …) as a string.
    pub async fn prop(&self, css: &str, prop: &str) -> Result<Option<String>> {
        self.find(css)
            .await?
            .prop(prop)
            .await
            .with_context(|| format!("{}: property {prop} of `{css}`", self.label))
    }

    /// Polls `js_condition`, a JS expression, until it is `true`. A script
    /// error counts as "not yet" (the element may not exist yet). On timeout,
    /// saves a screenshot and fails with `description`, the condition, the
    /// last result and the console errors seen so far.
    pub async fn wait_for(
        &self,
        description: &str,
        js_condition: &str,
        timeout: Duration,
    ) -> Result<()> {
        let script = format!("return !!({js_condition});");
        let deadline = Instant::now() + timeout;
        let last = loop {
            let outcome = self.client.execute(&script, Vec::new()).await;
            match outcome {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(other) => {
                    if Instant::now() >= deadline {
                        break format!("last value: {other}");
                    }
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        break format!("last script error: {e}");
                    }
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        let shot_name = format!("timeout-{}-{}", self.label, slug(description));
        let shot = match self.screenshot(&shot_name).await {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("(screenshot failed: {e:#})"),
        };
        let console = match self.console_errors().await {
            Ok(errors) if errors.is_empty() => "none".to_string(),
            Ok(errors) => errors
                .iter()
                .map(|e| format!("\n  {e}"))
                .collect::<String>(),
            Err(e) => format!("(unreadable: {e:#})"),
        };
        let url = self.current_url().await.unwrap_or_default();
        bail!(
            "{}: timed out after {timeout:?} waiting for: {description}\n\
             condition: {js_condition}\n{last}\npage: {url}\nscreenshot: {shot}\n\
             console errors: {console}",
            self.label
        )
    }

    /// Waits until an element matching `css` exists and returns it.
    pub async fn wait_for_selector(&self, css: &str, timeout: Duration) -> Result<Element> {
        let quoted = serde_json::to_string(css)?;
        self.wait_for(
            &format!("element `{css}`"),
            &format!("document.querySelector({quoted}) !== null"),
            timeout,
        )
        .await?;
        self.find(css).await
    }

    /// Saves a PNG of the viewport to
    /// `target/browser-artifacts/<test-name>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .with_context(|| format!("{}: screenshot", self.label))?;
        let dir = artifacts_dir().join(slug(&self.test_name));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{}.png", slug(name)));
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// Cuts the page off the network (`true`) or reconnects it (`false`):
    /// requests fail as they would with the cable pulled.
    pub async fn set_offline(&self, offline: bool) -> Result<()> {
        self.client
            .issue_cmd(SetNetworkConditions { offline })
            .await
            .context("setting network conditions")?;
        Ok(())
    }

    /// Every console entry since launch (or [`Browser::clear_console`]), of
    /// every level.
    pub async fn console_log(&self) -> Result<Vec<ConsoleEntry>> {
        self.pull_console().await?;
        Ok(self.console.lock().unwrap().clone())
    }

    /// Console errors and warnings since launch (or
    /// [`Browser::clear_console`]): SEVERE and WARNING entries, which include
    /// `console.error`/`console.warn`, uncaught exceptions and unhandled
    /// rejections, and failed resource loads; minus the ignored patterns.
    pub async fn console_errors(&self) -> Result<Vec<ConsoleEntry>> {
        self.pull_console().await?;
        let all = self.console.lock().unwrap();
        Ok(all
            .iter()
            .filter(|e| e.is_error())
            .filter(|e| !self.console_ignores.iter().any(|p| e.message.contains(p)))
            .cloned()
            .collect())
    }

    /// Panics, listing them, if the page logged console errors or warnings.
    pub async fn assert_no_console_errors(&self) {
        let errors = self
            .console_errors()
            .await
            .unwrap_or_else(|e| panic!("{}: read the console log: {e:#}", self.label));
        if !errors.is_empty() {
            let list: String = errors.iter().map(|e| format!("\n  {e}")).collect();
            panic!(
                "{}: the browser console has {} error(s)/warning(s):{list}",
                self.label,
                errors.len()
            );
        }
    }

    /// Forgets the console entries seen so far.
    pub async fn clear_console(&self) -> Result<()> {
        self.pull_console().await?;
        self.console.lock().unwrap().clear();
        Ok(())
    }

    async fn pull_console(&self) -> Result<()> {
        let value = self
            .client
            .issue_cmd(GetBrowserLog)
            .await
            .with_context(|| format!("{}: read the browser log", self.label))?;
        let entries: Vec<ConsoleEntry> =
            serde_json::from_value(value).context("decode the browser log")?;
        self.console.lock().unwrap().extend(entries);
        Ok(())
    }

    /// The cookies the browser holds for the current page's origin.
    pub async fn cookies(&self) -> Result<Vec<CookieInfo>> {
        let cookies = self
            .client
            .get_all_cookies()
            .await
            .with_context(|| format!("{}: read cookies", self.label))?;
        Ok(cookies
            .into_iter()
            .map(|c| CookieInfo {
                name: c.name().to_string(),
                value: c.value().to_string(),
                http_only: c.http_only().unwrap_or(false),
                secure: c.secure().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
                path: c.path().map(str::to_string),
            })
            .collect())
    }

    /// One cookie of the current page's origin, by name.
    pub async fn cookie(&self, name: &str) -> Result<Option<CookieInfo>> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name == name))
    }

    pub async fn delete_all_cookies(&self) -> Result<()> {
        self.client
            .delete_all_cookies()
            .await
            .context("delete cookies")
    }
}

fn decode_script_value<T: DeserializeOwned>(value: Value, js: &str) -> Result<T> {
    let was_null = value.is_null();
    serde_json::from_value(value).map_err(|e| {
        let hint = if was_null {
            " (the script returned nothing: did it `return` its value?)"
        } else {
            ""
        };
        anyhow!("decode the script's result: {e}{hint}\nscript:\n{js}")
    })
}

/// Splits "Shift+ArrowRight" into modifier key codes and the key's code.
fn parse_key_chord(spec: &str) -> Result<(Vec<char>, char)> {
    if spec.chars().count() == 1 {
        return Ok((Vec::new(), spec.chars().next().unwrap()));
    }
    let mut parts: Vec<&str> = spec.split('+').collect();
    // "Control++" means Control and the "+" key.
    if spec.ends_with("++") {
        parts.truncate(parts.len() - 2);
        parts.push("+");
    }
    let (last, mods) = parts.split_last().ok_or_else(|| anyhow!("empty key"))?;
    let mut modifiers = Vec::new();
    for m in mods {
        let key = match *m {
            "Shift" => Key::Shift,
            "Control" | "Ctrl" => Key::Control,
            "Alt" => Key::Alt,
            "Meta" | "Command" => Key::Meta,
            other => bail!("unknown modifier {other:?} in key {spec:?}"),
        };
        modifiers.push(char::from(key));
    }
    Ok((modifiers, key_code(last)?))
}

fn key_code(name: &str) -> Result<char> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Ok(c);
    }
    let key = match name {
        "Enter" => Key::Enter,
        "Return" => Key::Return,
        "Tab" => Key::Tab,
        "Escape" | "Esc" => Key::Escape,
        "Space" | "Spacebar" => return Ok(' '),
        "Backspace" => Key::Backspace,
        "Delete" | "Del" => Key::Delete,
        "Insert" => Key::Insert,
        "ArrowLeft" | "Left" => Key::Left,
        "ArrowRight" | "Right" => Key::Right,
        "ArrowUp" | "Up" => Key::Up,
        "ArrowDown" | "Down" => Key::Down,
        "Home" => Key::Home,
        "End" => Key::End,
        "PageUp" => Key::PageUp,
        "PageDown" => Key::PageDown,
        "Shift" => Key::Shift,
        "Control" | "Ctrl" => Key::Control,
        "Alt" => Key::Alt,
        "Meta" | "Command" => Key::Meta,
        "F1" => Key::F1,
        "F2" => Key::F2,
        "F3" => Key::F3,
        "F4" => Key::F4,
        "F5" => Key::F5,
        "F6" => Key::F6,
        "F7" => Key::F7,
        "F8" => Key::F8,
        "F9" => Key::F9,
        "F10" => Key::F10,
        "F11" => Key::F11,
        "F12" => Key::F12,
        other => bail!("unknown key name {other:?}"),
    };
    Ok(char::from(key))
}

fn find_chromedriver(chosen: Option<&Path>) -> Result<PathBuf> {
    find_binary(
        chosen,
        "RECOUNT_CHROMEDRIVER",
        &["/usr/bin/chromedriver"],
        "chromedriver (Debian package chromium-driver)",
    )
}

/// The Chromium executable itself, not Debian's `/usr/bin/chromium` shell
/// wrapper: the wrapper adds flags from /etc/chromium.d (extensions, GPU
/// rasterization) and costs a shell start; the harness sets its own flags.
fn find_chromium(chosen: Option<&Path>) -> Result<PathBuf> {
    find_binary(
        chosen,
        "RECOUNT_CHROMIUM",
        &["/usr/lib/chromium/chromium", "/usr/bin/chromium"],
        "Chromium (Debian package chromium)",
    )
}

fn find_binary(
    chosen: Option<&Path>,
    env: &str,
    candidates: &[&str],
    what: &str,
) -> Result<PathBuf> {
    if let Some(path) = chosen {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("{what} not found at {}; {SETUP_HINT}", path.display());
    }
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{what} not found at {} (from ${env}); {SETUP_HINT}",
            path.display()
        );
    }
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
    }
    bail!(
        "{what} not found (looked at {}); browser tests need it: {SETUP_HINT}",
        candidates.join(", ")
    )
}

/// `target/browser-artifacts`, next to the test binary's target dir.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
        };
        return dir.join("browser-artifacts");
    }
    // The test binary lives in <target>/<profile>/deps/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(deps) = exe.parent() {
            if deps.file_name().is_some_and(|n| n == "deps") {
                if let Some(target) = deps.parent().and_then(Path::parent) {
                    return target.join("browser-artifacts");
                }
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("browser-artifacts")
}

/// The running test's name: nextest's `NEXTEST_TEST_NAME`, else the test
/// thread's name (libtest names it after the test), else the binary's name.
fn current_test_name() -> String {
    if let Ok(name) = std::env::var("NEXTEST_TEST_NAME") {
        if !name.is_empty() {
            return name;
        }
    }
    if let Some(name) = std::thread::current().name() {
        if name != "main" && !name.starts_with("tokio-runtime") {
            return name.to_string();
        }
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((stem, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => stem.to_string(),
            _ => s,
        })
        .unwrap_or_else(|| "unnamed".to_string())
}

/// A file-name-safe version of `s`.
fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    let out: String = out.chars().take(100).collect();
    if out.is_empty() {
        "unnamed".to_string()
    } else {
        out
    }
}
