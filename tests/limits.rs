//! What a connection may take: headers within `header_read_timeout_ms`,
//! bodies without pauses longer than `body_idle_timeout_ms`, at most
//! `http_max_connections` open at once; real TCP clients against the server as
//! `recount serve` runs it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Backend, TestApp};

/// Generous bound for what must happen "soon": a hang fails the test
/// instead of stalling the suite.
const SOON: Duration = Duration::from_secs(20);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(SOON, stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

async fn healthz(app: &TestApp) -> StatusCode {
    reqwest::get(format!("{}/healthz", app.base))
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off_while_others_are_served() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.header_read_timeout_ms = 300).await;
    let mut slow = connect(&app).await;
    // Half a request, then nothing.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: recount\r\nX-Slow: 1")
        .await
        .unwrap();
    assert_eq!(healthz(&app).await, StatusCode::OK, "others are served");
    let answer = read_to_close(&mut slow).await;
    assert!(
        !answer.contains("200 OK"),
        "the half request was never answered: {answer}"
    );
    assert_eq!(healthz(&app).await, StatusCode::OK);
}

async fn a_body_that_stalls_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.body_idle_timeout_ms = 300).await;
    let (_, key) = app.store_with_catalog().await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: recount\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"event_id\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a 408 for the stalled body: {answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap();
    assert_eq!(body["error"]["code"], "request-timeout");
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 0);
}
dual!(a_body_that_stalls_is_refused_and_changes_nothing);

#[tokio::test]
async fn connections_past_the_limit_wait_for_one_to_close() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.http_max_connections = 1).await;
    // One idle connection holds the only place.
    let idle = connect(&app).await;
    let base = app.base.clone();
    let mut waiting = tokio::spawn(async move {
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status()
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "a second connection is not served while the first is open"
    );
    drop(idle);
    let status = tokio::time::timeout(SOON, waiting)
        .await
        .expect("served once the first closed")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}
