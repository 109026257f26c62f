//! Self-test of the headless Chromium harness (tests/browser/) against a tiny
//! axum app served on a loopback port inside the test.

use crate::browser;

use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::{AppendHeaders, Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use browser::{Browser, BrowserOptions};

const WAIT: Duration = Duration::from_secs(5);

const HOME: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Harness home</title>
<style>
  body { font: 16px sans-serif; margin: 24px; background: #f4f6fb; }
  h1 { color: #1d3a8a; }
  button { font-size: 18px; padding: 6px 14px; }
  #count, #echo, #lastkey { font-weight: bold; }
</style></head>
<body>
  <h1>Recount browser harness</h1>
  <p><button id="bump">Bump</button> count: <span id="count">0</span>
     <span id="late" hidden>late arrival</span></p>
  <p><label>Name <input id="name" autocomplete="off"></label>
     echo: <span id="echo"></span></p>
  <p>last key: <span id="lastkey">none</span></p>
  <script>
    window.keys = [];
    document.addEventListener('keydown', (e) => {
      if (e.target.id === 'name') return;
      window.keys.push({ key: e.key, shift: e.shiftKey, trusted: e.isTrusted });
      document.getElementById('lastkey').textContent = e.key;
    });
    document.getElementById('bump').addEventListener('click', (e) => {
      const count = document.getElementById('count');
      count.textContent = String(Number(count.textContent) + 1);
      window.clickTrusted = e.isTrusted;
      // Something that shows up a little later, for wait_for.
      setTimeout(() => { document.getElementById('late').hidden = false; }, 150);
    });
    document.getElementById('name').addEventListener('input', (e) => {
      document.getElementById('echo').textContent = e.target.value;
    });
    console.log('home ready');
  </script>
</body></html>"#;

const ERRORS: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Errors</title></head>
<body><p>This page misbehaves.</p>
<script>
  console.error('labeler console exploded', 42);
  console.warn('deprecated thing used');
  setTimeout(() => { throw new Error('uncaught boom'); }, 0);
  setTimeout(() => { window.finished = true; }, 20);
</script></body></html>"#;

async fn serve() -> String {
    let app = Router::new()
        .route("/", get(|| async { Html(HOME) }))
        .route("/errors", get(|| async { Html(ERRORS) }))
        .route(
            "/login",
            get(|| async {
                (
                    // AppendHeaders: a plain array would keep only the last.
                    AppendHeaders([
                        (
                            header::SET_COOKIE,
                            "recount_session=s3cr3t; HttpOnly; Path=/; SameSite=Lax",
                        ),
                        (header::SET_COOKIE, "theme=dark; Path=/"),
                    ]),
                    Html("<!doctype html><title>in</title><p id=who>signed in</p>"),
                )
                    .into_response()
            }),
        )
        .route(
            "/api/ping",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Json(json!({ "pong": true, "n": 7 }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn drives_a_page_with_clicks_typing_keys_and_scripts() -> anyhow::Result<()> {
    let base = serve().await;
    let started = Instant::now();
    let b = Browser::launch(BrowserOptions::default()).await?;
    // Printed, not asserted: a loaded machine must not fail the test.
    eprintln!("launch took {:?}", started.elapsed());

    b.goto(&format!("{base}/")).await?;
    assert_eq!(b.text("h1").await?, "Recount browser harness");
    assert_eq!(
        b.eval::<String>("return document.title").await?,
        "Harness home"
    );

    // The configured window is the viewport.
    let size: (u32, u32) = b
        .eval("return [window.innerWidth, window.innerHeight]")
        .await?;
    assert_eq!(size, (1366, 768));

    // Clicks are real, trusted events; wait_for sees what comes later.
    b.click("#bump").await?;
    b.click("#bump").await?;
    assert_eq!(b.text("#count").await?, "2");
    assert!(b.eval::<bool>("return window.clickTrusted").await?);
    b.wait_for(
        "the late element shows",
        "!document.getElementById('late').hidden",
        WAIT,
    )
    .await?;
    assert_eq!(b.text("#late").await?, "late arrival");

    // Typing fires input events.
    b.type_into("#name", "Ada L.").await?;
    assert_eq!(b.text("#echo").await?, "Ada L.");
    assert_eq!(b.prop("#name", "value").await?.as_deref(), Some("Ada L."));
    b.clear("#name").await?;
    assert_eq!(
        b.eval::<String>("return document.getElementById('name').value")
            .await?,
        ""
    );
    b.focus("#name").await?;
    b.press_keys(&["a", "b", "Backspace", "?"]).await?;
    assert_eq!(b.text("#echo").await?, "a?");

    // Keys go to the focused element: move focus off the input first.
    b.eval::<()>("document.activeElement.blur(); return null")
        .await?;
    b.press_keys(&[
        "ArrowLeft",
        "ArrowRight",
        "Space",
        "Escape",
        "?",
        "Enter",
        "k",
        "Shift+ArrowRight",
    ])
    .await?;
    #[derive(serde::Deserialize, Debug)]
    struct Pressed {
        key: String,
        shift: bool,
        trusted: bool,
    }
    let pressed: Vec<Pressed> = b.eval("return window.keys").await?;
    let names: Vec<&str> = pressed.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "ArrowLeft",
            "ArrowRight",
            " ",
            "Escape",
            "?",
            "Enter",
            "k",
            "Shift",
            "ArrowRight"
        ]
    );
    assert!(pressed.iter().all(|p| p.trusted), "{pressed:?}");
    assert!(pressed.last().unwrap().shift, "{pressed:?}");
    assert_eq!(b.text("#lastkey").await?, "ArrowRight");

    // Async scripts await promises; rejections are errors with the JS message.
    #[derive(serde::Deserialize)]
    struct Ping {
        pong: bool,
        n: u32,
    }
    let ping: Ping = b
        .eval_async("const r = await fetch('/api/ping'); return await r.json();")
        .await?;
    assert!(ping.pong);
    assert_eq!(ping.n, 7);
    let rejected = b
        .eval_async::<()>("throw new Error('nope from js')")
        .await
        .unwrap_err();
    assert!(
        format!("{rejected:#}").contains("nope from js"),
        "{rejected:#}"
    );
    let forgot_return = b.eval::<String>("document.title").await.unwrap_err();
    assert!(
        format!("{forgot_return:#}").contains("did it `return`"),
        "{forgot_return:#}"
    );

    let shot = b.screenshot("home").await?;
    assert!(
        shot.ends_with(
            "browser-artifacts/browser_harness-drives_a_page_with_clicks_typing_keys_and_scripts/home.png"
        ),
        "{}",
        shot.display()
    );
    let png = std::fs::read(&shot)?;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // A clean page: its console.log is seen, but nothing counts as an error.
    let log = b.console_log().await?;
    assert!(
        log.iter()
            .any(|e| e.level == "INFO" && e.message.contains("home ready")),
        "{log:?}"
    );
    assert!(b.console_errors().await?.is_empty());
    b.assert_no_console_errors().await;
    Ok(())
}

#[tokio::test]
async fn reports_console_errors_and_uncaught_exceptions() -> anyhow::Result<()> {
    let base = serve().await;
    let b = Browser::launch(BrowserOptions::default()).await?;
    b.goto(&format!("{base}/errors")).await?;
    b.wait_for(
        "the page finished throwing",
        "window.finished === true",
        WAIT,
    )
    .await?;

    let errors = b.console_errors().await?;
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.level == "SEVERE" && e.message.contains("labeler console exploded")),
        "{messages:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.level == "SEVERE" && e.message.contains("Uncaught Error: uncaught boom")),
        "{messages:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.level == "WARNING" && e.message.contains("deprecated thing used")),
        "{messages:#?}"
    );
    // Entries stay reported although reading the driver's log drains it.
    assert_eq!(b.console_errors().await?.len(), errors.len());

    let failed = tokio::spawn(async move {
        b.assert_no_console_errors().await;
    })
    .await
    .unwrap_err();
    let panic = failed.into_panic();
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("uncaught boom"), "{text}");
    assert!(text.contains("labeler console exploded"), "{text}");

    // After clearing, a clean page reports nothing.
    let b = Browser::launch(BrowserOptions::default()).await?;
    b.goto(&format!("{base}/errors")).await?;
    b.wait_for(
        "the page finished throwing",
        "window.finished === true",
        WAIT,
    )
    .await?;
    assert!(!b.console_errors().await?.is_empty());
    b.clear_console().await?;
    b.goto(&format!("{base}/")).await?;
    b.click("#bump").await?;
    b.assert_no_console_errors().await;
    Ok(())
}

#[tokio::test]
async fn two_browsers_are_independent() -> anyhow::Result<()> {
    let base = serve().await;
    let (alice, bob) = tokio::try_join!(
        Browser::launch(BrowserOptions::default().label("alice")),
        Browser::launch(BrowserOptions::default().label("bob").window_size(800, 600)),
    )?;

    alice.goto(&format!("{base}/login")).await?;
    bob.goto(&format!("{base}/")).await?;

    // Cookies, with their HttpOnly flag, live in alice's profile only.
    let session = alice
        .cookie("recount_session")
        .await?
        .expect("session cookie");
    assert!(session.http_only);
    assert_eq!(session.value, "s3cr3t");
    assert_eq!(session.same_site.as_deref(), Some("Lax"));
    let theme = alice.cookie("theme").await?.expect("theme cookie");
    assert!(!theme.http_only);
    // HttpOnly cookies are invisible to page scripts.
    assert_eq!(
        alice.eval::<String>("return document.cookie").await?,
        "theme=dark"
    );
    assert!(bob.cookies().await?.is_empty());

    // Each has its own window size and page state.
    let alice_width: u32 = alice.eval("return window.innerWidth").await?;
    let bob_size: (u32, u32) = bob
        .eval("return [window.innerWidth, window.innerHeight]")
        .await?;
    assert_eq!(alice_width, 1366);
    assert_eq!(bob_size, (800, 600));
    bob.click("#bump").await?;
    alice.goto(&format!("{base}/")).await?;
    assert_eq!(bob.text("#count").await?, "1");
    assert_eq!(alice.text("#count").await?, "0");
    alice.screenshot("alice").await?;
    bob.screenshot("bob").await?;

    alice.assert_no_console_errors().await;
    bob.assert_no_console_errors().await;
    alice.close().await?;
    // Bob is unaffected by alice's browser going away.
    bob.press_key("x").await?;
    assert_eq!(bob.text("#lastkey").await?, "x");
    Ok(())
}

#[tokio::test]
async fn wait_for_times_out_with_its_description_and_a_screenshot() -> anyhow::Result<()> {
    let base = serve().await;
    let b = Browser::launch(BrowserOptions::default().label("waiter")).await?;
    b.goto(&format!("{base}/")).await?;

    let started = Instant::now();
    let err = b
        .wait_for(
            "the count to reach 99",
            "document.getElementById('count').textContent === '99'",
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    let msg = format!("{err:#}");
    assert!(msg.contains("the count to reach 99"), "{msg}");
    assert!(msg.contains("last value: false"), "{msg}");
    let shot = msg
        .lines()
        .find_map(|l| l.strip_prefix("screenshot: "))
        .expect("screenshot line");
    assert!(shot.ends_with(".png"), "{msg}");
    assert!(std::path::Path::new(shot).is_file(), "{msg}");

    // A condition that throws is "not yet", and the error is reported.
    let err = b
        .wait_for(
            "a missing element's text",
            "document.getElementById('nope').textContent === 'x'",
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("last script error"), "{err:#}");

    // wait_for_selector returns the element once it exists.
    b.eval::<()>(
        "setTimeout(() => { const p = document.createElement('p'); p.id = 'fresh'; \
         p.textContent = 'fresh'; document.body.append(p); }, 100); return null",
    )
    .await?;
    let fresh = b.wait_for_selector("#fresh", WAIT).await?;
    assert_eq!(fresh.text().await?, "fresh");
    Ok(())
}

#[tokio::test]
async fn a_missing_browser_fails_loudly_naming_the_setup_script() {
    let err = Browser::launch(BrowserOptions::default().chromium("/nonexistent/chromium"))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("scripts/setup.sh"), "{msg}");
    assert!(msg.contains("/nonexistent/chromium"), "{msg}");

    let err = Browser::launch(BrowserOptions::default().chromedriver("/nonexistent/chromedriver"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("scripts/setup.sh"), "{err:#}");
}
