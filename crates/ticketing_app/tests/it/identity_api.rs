//! Who the caller is (identity on): `GET /api/me`, accounts made on first sight, and every
//! endpoint that acts for a user acting for the caller only. Most tests use the trusted-header
//! mode (a gateway at 127.0.0.2 names the account); one uses bearer JWTs of a local issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};

use crate::support::{assert_problem, TestApp, TOKEN_HEADER};

const HEADER: &str = "X-User-Subject";
/// The gateway's address: the only peer whose header is believed.
const GATEWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The app behind a trusted gateway, and a client that connects from the gateway's address.
struct Gated {
    app: TestApp,
    gateway: Client,
}

impl Gated {
    async fn spawn() -> Self {
        let app = TestApp::spawn_with(&[
            ("APP__AUTH__TRUSTED_HEADER", HEADER),
            ("APP__SERVER__TRUSTED_PROXIES", "127.0.0.2"),
        ])
        .await;
        let gateway = Client::builder().local_address(GATEWAY).build().unwrap();
        Self { app, gateway }
    }

    /// A request sent through the gateway for `subject`.
    fn as_(&self, subject: &str, method: Method, path: &str) -> RequestBuilder {
        self.gateway
            .request(method, self.app.url(path))
            .header(HEADER, subject)
    }

    async fn me(&self, subject: &str) -> Value {
        let response = self
            .as_(subject, Method::GET, "/api/me")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn user_of(&self, subject: &str) -> i64 {
        self.me(subject).await["userId"].as_i64().unwrap()
    }

    /// An ACTIVE token bound to `subject`'s user.
    async fn token(&self, subject: &str) -> String {
        let response = self
            .as_(subject, Method::POST, "/api/queue")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ACTIVE", "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    async fn hold(&self, subject: &str, token: &str, user: i64, seat: i64) -> Response {
        self.as_(subject, Method::POST, "/api/reservations")
            .header(TOKEN_HEADER, token)
            .json(&json!({"userId": user, "concertId": 1, "performanceId": 119, "seatId": seat}))
            .send()
            .await
            .unwrap()
    }

    async fn charge(&self, subject: &str, user: i64, amount: i64) -> Response {
        self.as_(
            subject,
            Method::POST,
            &format!("/api/users/{user}/balance/charge"),
        )
        .json(&json!({"amount": amount}))
        .send()
        .await
        .unwrap()
    }

    async fn balance(&self, subject: &str, user: i64) -> i64 {
        let response = self
            .as_(subject, Method::GET, &format!("/api/users/{user}/balance"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["balance"].as_i64().unwrap()
    }
}

fn assert_bearer_challenge(response: &Response) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
}

#[tokio::test]
async fn an_account_is_made_on_first_sight_and_kept() {
    let gated = Gated::spawn().await;

    let alice = gated.me("alice").await;
    let again = gated.me("alice").await;
    let bob = gated.me("bob").await;

    assert_eq!(alice["subject"], "alice");
    assert_eq!(alice, again);
    assert_ne!(alice["userId"], bob["userId"]);
    let alice = alice["userId"].as_i64().unwrap();
    assert_eq!(
        gated.balance("alice", alice).await,
        0,
        "a new user starts at 0"
    );
    assert_eq!(
        gated
            .app
            .db
            .query_i64("SELECT count(*) FROM accounts")
            .await,
        2
    );
}

#[tokio::test]
async fn without_credentials_protected_endpoints_are_refused_and_public_ones_answer() {
    let gated = Gated::spawn().await;

    for (method, path) in [
        (Method::GET, "/api/me"),
        (Method::POST, "/api/queue"),
        (Method::GET, "/api/users/7/balance"),
        (Method::GET, "/api/users/7/reservations"),
    ] {
        let response = gated
            .gateway
            .request(method, gated.app.url(path))
            .send()
            .await
            .unwrap();
        assert_bearer_challenge(&response);
        assert_problem(response, 401, "AUTH_REQUIRED").await;
    }
    assert_eq!(gated.app.get("/api/rooms").await.status(), 200);
    assert_eq!(gated.app.get("/healthz").await.status(), 200);
    // A queue token is polled by itself, as before.
    let token = gated.token("alice").await;
    assert_eq!(gated.app.poll_queue(&token).await.status(), 200);
    // The catalog asks for an ACTIVE token only.
    assert_eq!(gated.app.concerts(&token).await.status(), 200);
    // A reservation read acts for a user: credentials first.
    let read = gated.app.reservation(&token, 1).await;
    assert_bearer_challenge(&read);
    assert_problem(read, 401, "AUTH_REQUIRED").await;
}

#[tokio::test]
async fn a_subject_header_from_an_untrusted_peer_is_ignored() {
    let gated = Gated::spawn().await;

    // The test's own client connects from 127.0.0.1, which is not the gateway.
    let forged = gated
        .app
        .client
        .get(gated.app.url("/api/me"))
        .header(HEADER, "alice")
        .send()
        .await
        .unwrap();

    assert_problem(forged, 401, "AUTH_REQUIRED").await;
    assert_eq!(
        gated
            .app
            .db
            .query_i64("SELECT count(*) FROM accounts")
            .await,
        0
    );
}

#[tokio::test]
async fn the_queue_binds_its_token_to_the_caller() {
    let gated = Gated::spawn().await;
    let alice = gated.user_of("alice").await;
    let bob = gated.user_of("bob").await;

    let for_bob = gated
        .as_("alice", Method::POST, "/api/queue")
        .json(&json!({"userId": bob}))
        .send()
        .await
        .unwrap();
    assert_problem(for_bob, 403, "USER_MISMATCH").await;
    let named_self = gated
        .as_("alice", Method::POST, "/api/queue")
        .json(&json!({"userId": alice}))
        .send()
        .await
        .unwrap();
    assert_eq!(named_self.status(), 200);

    // Alice's token does not act for Bob, even for Bob's own user.
    let alices_token = gated.token("alice").await;
    assert_problem(
        gated.hold("bob", &alices_token, bob, 1).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_eq!(
        gated.hold("alice", &alices_token, alice, 1).await.status(),
        200
    );
}

#[tokio::test]
async fn every_endpoint_acting_for_a_user_refuses_another_user_and_changes_nothing() {
    let gated = Gated::spawn().await;
    let alice = gated.user_of("alice").await;
    let bob = gated.user_of("bob").await;
    let token = gated.token("alice").await;
    assert_eq!(gated.charge("alice", alice, 1_000_000).await.status(), 200);
    let bobs_token = gated.token("bob").await;
    let held: Value = gated
        .hold("bob", &bobs_token, bob, 5)
        .await
        .json()
        .await
        .unwrap();
    let bobs_hold = held["reservationId"].as_i64().unwrap();

    // Hold for Bob.
    assert_problem(
        gated.hold("alice", &token, bob, 1).await,
        403,
        "USER_MISMATCH",
    )
    .await;
    // Pay as Bob.
    let pay = gated
        .as_("alice", Method::POST, "/api/payments")
        .header(TOKEN_HEADER, &token)
        .json(&json!({"reservationId": bobs_hold, "userId": bob}))
        .send()
        .await
        .unwrap();
    assert_problem(pay, 403, "USER_MISMATCH").await;
    // Refund as Bob.
    let refund = gated
        .as_(
            "alice",
            Method::POST,
            &format!("/api/reservations/{bobs_hold}/refund"),
        )
        .json(&json!({"userId": bob}))
        .send()
        .await
        .unwrap();
    assert_problem(refund, 403, "USER_MISMATCH").await;
    // Bob's balance, read and charged.
    let read = gated
        .as_("alice", Method::GET, &format!("/api/users/{bob}/balance"))
        .send()
        .await
        .unwrap();
    assert_problem(read, 403, "USER_MISMATCH").await;
    assert_problem(gated.charge("alice", bob, 500).await, 403, "USER_MISMATCH").await;
    // Bob's list.
    let list = gated
        .as_(
            "alice",
            Method::GET,
            &format!("/api/users/{bob}/reservations"),
        )
        .send()
        .await
        .unwrap();
    assert_problem(list, 403, "USER_MISMATCH").await;

    // Nothing of Bob's changed.
    assert_eq!(gated.balance("bob", bob).await, 0);
    let bobs: Value = gated
        .as_(
            "bob",
            Method::GET,
            &format!("/api/reservations/{bobs_hold}"),
        )
        .header(TOKEN_HEADER, &bobs_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bobs["status"], "HELD");
    assert_eq!(gated.balance("alice", alice).await, 1_000_000);
    assert_eq!(
        gated
            .app
            .db
            .query_i64("SELECT count(*) FROM reservations WHERE seat_no = 1")
            .await,
        0,
        "no hold was taken for Bob by Alice"
    );
}

#[tokio::test]
async fn another_users_reservation_is_not_found_and_stays_as_it_was() {
    let gated = Gated::spawn().await;
    let alice = gated.user_of("alice").await;
    let alices_token = gated.token("alice").await;
    let held: Value = gated
        .hold("alice", &alices_token, alice, 3)
        .await
        .json()
        .await
        .unwrap();
    let reservation = held["reservationId"].as_i64().unwrap();
    let bobs_token = gated.token("bob").await;

    let read = gated
        .as_(
            "bob",
            Method::GET,
            &format!("/api/reservations/{reservation}"),
        )
        .header(TOKEN_HEADER, &bobs_token)
        .send()
        .await
        .unwrap();
    assert_problem(read, 404, "NOT_FOUND").await;
    let cancel = gated
        .as_(
            "bob",
            Method::DELETE,
            &format!("/api/reservations/{reservation}"),
        )
        .header(TOKEN_HEADER, &bobs_token)
        .send()
        .await
        .unwrap();
    assert_problem(cancel, 404, "NOT_FOUND").await;

    let still: Value = gated
        .as_(
            "alice",
            Method::GET,
            &format!("/api/reservations/{reservation}"),
        )
        .header(TOKEN_HEADER, &alices_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "HELD");
}

#[tokio::test]
async fn the_caller_pays_and_lists_for_itself() {
    let gated = Gated::spawn().await;
    let alice = gated.user_of("alice").await;
    let token = gated.token("alice").await;
    assert_eq!(gated.charge("alice", alice, 1_000_000).await.status(), 200);
    let held: Value = gated
        .hold("alice", &token, alice, 9)
        .await
        .json()
        .await
        .unwrap();
    let reservation = held["reservationId"].as_i64().unwrap();

    let paid = gated
        .as_("alice", Method::POST, "/api/payments")
        .header(TOKEN_HEADER, &token)
        .json(&json!({"reservationId": reservation, "userId": alice}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    // No Queue-Token needed for one's own list or refund: the caller is proof enough.
    let list: Vec<Value> = gated
        .as_(
            "alice",
            Method::GET,
            &format!("/api/users/{alice}/reservations"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "CONFIRMED");
    let refund = gated
        .as_(
            "alice",
            Method::POST,
            &format!("/api/reservations/{reservation}/refund"),
        )
        .json(&json!({"userId": alice}))
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 200);
}

mod jwt {
    //! Bearer JWTs of a local issuer, verified against its JWKS.

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ticketing_oidc/tests/keys");

    /// Serves `jwks` at `/jwks` on a port of its own; returns the issuer's URL.
    async fn issuer(jwks: Value) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let body = jwks.to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        url
    }

    fn token(issuer: &str, kid: &str, subject: &str) -> String {
        let pem = std::fs::read(format!("{KEYS}/rsa-1.pem")).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let now = chrono::Utc::now().timestamp();
        jsonwebtoken::encode(
            &header,
            &json!({"iss": issuer, "aud": "ticketing", "sub": subject, "exp": now + 600}),
            &EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_valid_bearer_token_identifies_and_a_bad_one_is_refused() {
        let jwk: Value =
            serde_json::from_slice(&std::fs::read(format!("{KEYS}/rsa-1.jwk.json")).unwrap())
                .unwrap();
        let issuer = issuer(json!({"keys": [jwk]})).await;
        let app = TestApp::spawn_with(&[
            ("APP__AUTH__ISSUER", &issuer),
            ("APP__AUTH__AUDIENCE", "ticketing"),
            ("APP__AUTH__JWKS_URL", &format!("{issuer}/jwks")),
        ])
        .await;
        let me = |bearer: String| {
            app.client
                .get(app.url("/api/me"))
                .header("Authorization", format!("Bearer {bearer}"))
                .send()
        };

        let answer: Value = me(token(&issuer, "rsa-1", "carol"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["subject"], "carol");
        assert!(answer["userId"].as_i64().unwrap() > 0);

        for bad in [
            "garbage".to_string(),
            token("https://elsewhere.example", "rsa-1", "carol"),
            token(&issuer, "no-such-key", "carol"),
        ] {
            let response = me(bad).await.unwrap();
            assert_bearer_challenge(&response);
            assert_problem(response, 401, "AUTH_INVALID").await;
        }
        let bare = app.get("/api/me").await;
        assert_bearer_challenge(&bare);
        assert_problem(bare, 401, "AUTH_REQUIRED").await;
        assert_eq!(
            app.db.query_i64("SELECT count(*) FROM accounts").await,
            1,
            "refused tokens made no account"
        );
    }
}
