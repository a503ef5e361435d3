//! The `ticketing` binary itself: SIGTERM drains and exits cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ticketing_testkit::{TestDatabase, TestRedis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let db = TestDatabase::with_demo_data().await;
    let redis = TestRedis::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_ticketing"))
        .arg("serve")
        .env(
            "APP_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        )
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis.url())
        .env("APP__REDIS__KEY_PREFIX", redis.prefix())
        .env("APP__SERVER__PORT", port.to_string())
        .env("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token: serde_json::Value = client
        .post(format!("{base}/api/queue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();

    // A burst of requests in flight when the signal lands.
    let in_flight: Vec<_> = (0..50)
        .map(|_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                client
                    .get(format!("{base}/api/concerts/1/performances/119/seats"))
                    .header("Queue-Token", token)
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
            })
        })
        .collect();
    // Let the requests reach the server before the signal: the test is of requests in flight.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let signalled = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());

    let mut answered = 0;
    for request in in_flight {
        match request.await.unwrap() {
            Ok(status) => {
                assert_eq!(status, 200, "an accepted request was answered in full");
                answered += 1;
            }
            // Sent after the listener closed: refused, never cut off half-way with a 5xx.
            Err(error) => assert!(error.is_connect() || error.is_request(), "{error}"),
        }
    }
    assert!(
        answered > 0,
        "no request was in flight when the signal landed"
    );
    let deadline = Instant::now() + Duration::from_secs(35);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let mut log = String::new();
    if let Some(mut stderr) = server.stderr.take() {
        use std::io::Read;
        stderr.read_to_string(&mut log).unwrap();
    }
    assert!(
        !log.contains("step failed"),
        "a clean stop logs no failed background step:\n{log}"
    );
}
