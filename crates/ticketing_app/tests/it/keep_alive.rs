//! The server's keep-alive (`APP__SERVER__KEEP_ALIVE_SECONDS`): an idle client connection stays
//! open that long for its next request, then the server closes it. actix-web's own default, 5 s,
//! closed connections that k6 (Go's `net/http`) was about to reuse for a `POST`, which went
//! unanswered (docs/resilience.md, Soak).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::TestApp;

/// Sends `GET /healthz` on `stream` and reads the whole answer (headers and `Content-Length`
/// body), so that nothing of it is left to be read later; returns its status line.
fn health_check_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).expect("an answer within 5 s");
        assert!(read > 0, "closed before the answer was complete");
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some(end_of_headers) = text.find("\r\n\r\n") {
            let length: usize = text[..end_of_headers]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            if answer.len() >= end_of_headers + 4 + length {
                return text.lines().next().unwrap_or_default().to_string();
            }
        }
    }
}

/// Whether the server closes the idle `stream` within `wait` (a read sees the end, or a reset).
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(read) => panic!("{read} unexpected bytes on an idle connection"),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_reset) => true,
    }
}

/// Runs `check` on a connection to `app` that has had one request answered, off the test's
/// runtime (the reads block).
async fn on_a_used_connection(app: &TestApp, check: impl FnOnce(&mut TcpStream) + Send + 'static) {
    let address = app.address.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        assert_eq!(health_check_on(&mut stream), "HTTP/1.1 200 OK");
        check(&mut stream);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_once_the_keep_alive_has_passed() {
    let app = TestApp::spawn_with(&[("APP__SERVER__KEEP_ALIVE_SECONDS", "1")]).await;
    on_a_used_connection(&app, |stream| {
        assert!(
            !closed_within(stream, Duration::from_millis(500)),
            "open within the keep-alive"
        );
        assert!(
            closed_within(stream, Duration::from_secs(3)),
            "closed by the server after the keep-alive"
        );
    })
    .await;
}

#[tokio::test]
async fn by_default_an_idle_connection_outlives_actix_webs_own_five_seconds() {
    let app = TestApp::spawn().await;
    assert_eq!(app.settings.server.keep_alive_seconds, 90);
    on_a_used_connection(&app, |stream| {
        assert!(!closed_within(stream, Duration::from_secs(6)));
        assert_eq!(
            health_check_on(stream),
            "HTTP/1.1 200 OK",
            "the connection is reused"
        );
    })
    .await;
}

#[tokio::test]
async fn a_keep_alive_of_zero_closes_each_connection_after_its_answer() {
    let app = TestApp::spawn_with(&[("APP__SERVER__KEEP_ALIVE_SECONDS", "0")]).await;
    on_a_used_connection(&app, |stream| {
        assert!(closed_within(stream, Duration::from_secs(1)));
    })
    .await;
}
