//! `ticketing admin ...`: the admin API from the command line, for operators during a sale.

use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use ticketing_domain::rooms::{Invite, InviteAccount, InviteKey, InviteNonce, RoomId};

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminAction {
    Status,
    Pause,
    Resume,
    Set {
        admit_per_second: Option<u64>,
        max_active: Option<u64>,
        active_ttl_seconds: Option<u64>,
        /// The proof of work asked at entry (0: off).
        challenge_difficulty: Option<u64>,
    },
    /// An RFC 3339 time, or `None` to cancel the scheduled opening.
    OpenAt(Option<String>),
    Revoke(String),
    /// Every room with its line.
    RoomsList,
    /// A new room: the body of `POST /api/admin/rooms`.
    RoomsCreate(Value),
    /// Deletes the room of this id.
    RoomsDelete(String),
    /// Prints an invite code for the account `user` (its subject) into `--room`, signed here
    /// with `APP__AUTH__INVITE_KEY`; `expires` is RFC 3339 (default: 7 days ahead).
    Invite {
        user: String,
        expires: Option<String>,
    },
}

/// An admin command: the action, the room it acts on and the server it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCommand {
    pub url: String,
    /// `--room ID`: the room whose line the action steers; the room `default` without it.
    pub room: Option<String>,
    pub action: AdminAction,
}

pub const ADMIN_USAGE: &str = "usage: ticketing admin [--url URL] [--room ID] <command>
  status                      the line's settings and size
  pause | resume              stop or restart admissions (entries still wait)
  set [--admit-per-second N] [--max-active N] [--active-ttl-seconds N]
      [--challenge-difficulty N]  N: the proof of work asked at entry (0: off)
  open-at <RFC 3339 time | none>
                              make the line a pre-queue until then (a fair draw at it); none cancels
  revoke <token>              end one queue token on every instance
  rooms list                  every waiting room with its line
  rooms create <id> --name NAME --performances 119,120 [--admit-per-second N] [--max-active N]
        [--active-ttl-seconds N] [--mode fifo|random|passthrough|reject] [--opens-at T] [--closes-at T]
        [--entry open|invite]
        [--challenge-difficulty N]
  rooms delete <id>           delete a room nobody waits or shops in
  invite --user SUBJECT [--expires T]
                              print an invite code into --room for that account, good until T
                              (RFC 3339; default 7 days ahead), signed locally with
                              APP__AUTH__INVITE_KEY (no call to the server)
--room ID steers that room's line (default: the room default). The server is --url, else
$TICKETING_URL, else http://127.0.0.1:8080; the token is APP__ADMIN__TOKEN.";

fn number(flag: &str, value: Option<&String>) -> Result<u64, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag} needs a whole number\n{ADMIN_USAGE}"))
}

impl AdminCommand {
    /// Parses the arguments after `admin`; `default_url` is used without `--url`.
    ///
    /// # Errors
    /// The usage text, with the reason first.
    pub fn parse(arguments: &[String], default_url: &str) -> Result<Self, String> {
        let mut url = default_url.to_string();
        let mut room = None;
        let mut rest = Vec::new();
        let mut iter = arguments.iter();
        while let Some(argument) = iter.next() {
            if argument == "--url" {
                url = iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("--url needs a value\n{ADMIN_USAGE}"))?;
            } else if argument == "--room" {
                room = Some(
                    iter.next()
                        .cloned()
                        .ok_or_else(|| format!("--room needs a value\n{ADMIN_USAGE}"))?,
                );
            } else {
                rest.push(argument.clone());
            }
        }
        let action = match rest.as_slice() {
            [noun, verb] if noun == "rooms" && verb == "list" => AdminAction::RoomsList,
            [noun, verb, id] if noun == "rooms" && verb == "delete" => {
                AdminAction::RoomsDelete(id.clone())
            }
            [noun, verb, id, flags @ ..] if noun == "rooms" && verb == "create" => {
                AdminAction::RoomsCreate(new_room(id, flags)?)
            }
            [verb, flags @ ..] if verb == "invite" => invite_of(flags)?,
            [verb] if verb == "status" => AdminAction::Status,
            [verb] if verb == "pause" => AdminAction::Pause,
            [verb] if verb == "resume" => AdminAction::Resume,
            [verb, time] if verb == "open-at" => AdminAction::OpenAt(match time.as_str() {
                "none" | "null" => None,
                time => Some(time.to_string()),
            }),
            [verb, token] if verb == "revoke" => AdminAction::Revoke(token.clone()),
            [verb, flags @ ..] if verb == "set" && !flags.is_empty() => {
                let (mut admit_per_second, mut max_active, mut active_ttl_seconds) =
                    (None, None, None);
                let mut challenge_difficulty = None;
                let mut flags = flags.iter();
                while let Some(flag) = flags.next() {
                    let value = Some(number(flag, flags.next())?);
                    match flag.as_str() {
                        "--admit-per-second" => admit_per_second = value,
                        "--max-active" => max_active = value,
                        "--active-ttl-seconds" => active_ttl_seconds = value,
                        "--challenge-difficulty" => challenge_difficulty = value,
                        other => return Err(format!("unknown option {other}\n{ADMIN_USAGE}")),
                    }
                }
                AdminAction::Set {
                    admit_per_second,
                    max_active,
                    active_ttl_seconds,
                    challenge_difficulty,
                }
            }
            _ => return Err(ADMIN_USAGE.to_string()),
        };
        Ok(Self { url, room, action })
    }
}

/// `invite --user SUBJECT [--expires T]`.
fn invite_of(flags: &[String]) -> Result<AdminAction, String> {
    let (mut user, mut expires) = (None, None);
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let value = flags
            .next()
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value\n{ADMIN_USAGE}"))?;
        match flag.as_str() {
            "--user" => user = Some(value),
            "--expires" => expires = Some(value),
            other => return Err(format!("unknown option {other}\n{ADMIN_USAGE}")),
        }
    }
    let user = user.ok_or_else(|| format!("invite needs --user SUBJECT\n{ADMIN_USAGE}"))?;
    Ok(AdminAction::Invite { user, expires })
}

/// The invite code `invite --room R --user U [--expires T]` prints, signed with `key_text`
/// (`APP__AUTH__INVITE_KEY`) at `now` with a fresh random nonce.
///
/// # Errors
/// A one-line reason: no key or a short one, a room id or account that cannot be, an expiry
/// that is not RFC 3339 or not in the future.
pub fn invite_code(
    command: &AdminCommand,
    key_text: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<String> {
    let AdminAction::Invite { user, expires } = &command.action else {
        anyhow::bail!("not an invite command");
    };
    let key = match key_text {
        None | Some("") => anyhow::bail!(
            "set APP__AUTH__INVITE_KEY to the server's invite key (at least 32 bytes)"
        ),
        Some(text) => InviteKey::new(text.as_bytes())
            .map_err(|weak| anyhow!("APP__AUTH__INVITE_KEY: {weak}"))?,
    };
    let room_text = command.room.as_deref().unwrap_or("default");
    let room = RoomId::parse(room_text).map_err(|_| {
        anyhow!("--room {room_text:?} is not a room id ([a-z0-9-], 1 to 40 characters)")
    })?;
    let account =
        InviteAccount::new(user).map_err(|invalid| anyhow!("--user {user:?}: {invalid}"))?;
    let expires_at = match expires {
        None => now + chrono::Duration::days(7),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| anyhow!("--expires must be an RFC 3339 time, not {text:?}"))?
            .with_timezone(&chrono::Utc),
    };
    if expires_at <= now {
        anyhow::bail!("--expires must be in the future");
    }
    let nonce = InviteNonce::from_random(rand::random());
    let invite = Invite::new(room, account, expires_at, nonce);
    Ok(key.sign(&invite).to_string())
}

/// The body of `POST /api/admin/rooms` from `rooms create <id> <flags>`.
fn new_room(id: &str, flags: &[String]) -> Result<Value, String> {
    let mut body = serde_json::Map::new();
    body.insert("id".into(), json!(id));
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let value = flags
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{ADMIN_USAGE}"))?;
        let (name, value) = match flag.as_str() {
            "--name" => ("name", json!(value)),
            "--performances" => {
                let ids: Result<Vec<i64>, _> = value
                    .split(',')
                    .map(|id| id.trim().parse::<i64>())
                    .collect();
                (
                    "performanceIds",
                    json!(ids.map_err(|_| format!(
                        "--performances needs ids separated by commas\n{ADMIN_USAGE}"
                    ))?),
                )
            }
            "--admit-per-second" => ("admitPerSecond", json!(number(flag, Some(value))?)),
            "--max-active" => ("maxActive", json!(number(flag, Some(value))?)),
            "--active-ttl-seconds" => ("activeTtlSeconds", json!(number(flag, Some(value))?)),
            "--mode" => ("mode", json!(value)),
            "--opens-at" => ("opensAt", json!(value)),
            "--closes-at" => ("closesAt", json!(value)),
            "--entry" => ("entry", json!(value)),
            "--challenge-difficulty" => ("challengeDifficulty", json!(number(flag, Some(value))?)),
            other => return Err(format!("unknown option {other}\n{ADMIN_USAGE}")),
        };
        body.insert(name.into(), value);
    }
    for required in ["name", "performanceIds"] {
        if !body.contains_key(required) {
            return Err(format!(
                "rooms create needs --name and --performances\n{ADMIN_USAGE}"
            ));
        }
    }
    Ok(Value::Object(body))
}

/// Sends the command and prints what the server answered.
///
/// # Errors
/// A one-line reason: the server is unreachable, or refused (with its status, code and detail).
pub async fn run(command: &AdminCommand, admin_token: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let base = command.url.trim_end_matches('/');
    let rooms = format!("{base}/api/admin/rooms");
    // The room `default` keeps the v2 paths (and answers).
    let queue = match command.room.as_deref() {
        None | Some("default") => format!("{base}/api/admin/queue"),
        Some(room) => format!("{rooms}/{room}"),
    };
    let request = match &command.action {
        AdminAction::Invite { .. } => {
            anyhow::bail!("an invite is signed locally; it needs no server")
        }
        AdminAction::RoomsList => client.get(&rooms),
        AdminAction::RoomsCreate(body) => client.post(&rooms).json(body),
        AdminAction::RoomsDelete(id) => client.delete(format!("{rooms}/{id}")),
        AdminAction::Status => client.get(&queue),
        AdminAction::Pause => client.patch(&queue).json(&json!({ "paused": true })),
        AdminAction::Resume => client.patch(&queue).json(&json!({ "paused": false })),
        AdminAction::Set {
            admit_per_second,
            max_active,
            active_ttl_seconds,
            challenge_difficulty,
        } => {
            let mut body = serde_json::Map::new();
            let mut put = |name: &str, value: &Option<u64>| {
                if let Some(value) = value {
                    body.insert(name.to_string(), json!(value));
                }
            };
            put("admitPerSecond", admit_per_second);
            put("maxActive", max_active);
            put("activeTtlSeconds", active_ttl_seconds);
            put("challengeDifficulty", challenge_difficulty);
            client.patch(&queue).json(&Value::Object(body))
        }
        AdminAction::OpenAt(at) => client.patch(&queue).json(&json!({ "opensAt": at })),
        AdminAction::Revoke(token) => client.delete(format!("{queue}/tokens/{token}")),
    };
    let response = request
        .bearer_auth(admin_token)
        .send()
        .await
        .map_err(|error| anyhow!("cannot reach {base}: {}", root_cause(&error)))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        match serde_json::from_str::<Value>(&text) {
            Ok(body) => println!(
                "{}",
                serde_json::to_string_pretty(&body).unwrap_or(text.clone())
            ),
            Err(_) if matches!(command.action, AdminAction::Revoke(_)) => println!("revoked"),
            Err(_) if matches!(command.action, AdminAction::RoomsDelete(_)) => println!("deleted"),
            Err(_) => println!("{status}"),
        }
        return Ok(());
    }
    let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = problem["code"].as_str().unwrap_or("");
    let detail = problem["detail"].as_str().unwrap_or(text.as_str());
    let hint = if status.as_u16() == 404 && code == "NOT_FOUND" {
        " (is the admin API on? it needs APP__ADMIN__TOKEN on the server)"
    } else {
        ""
    };
    Err(anyhow!(
        "the server refused ({} {code}): {detail}{hint}",
        status.as_u16()
    ))
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<AdminCommand, String> {
        let arguments: Vec<String> = list.iter().map(|a| a.to_string()).collect();
        AdminCommand::parse(&arguments, "http://default:8080")
    }

    #[test]
    fn every_verb_of_the_contract_parses() {
        assert_eq!(
            parse(&["status"]).map(|c| c.action),
            Ok(AdminAction::Status)
        );
        assert_eq!(parse(&["pause"]).map(|c| c.action), Ok(AdminAction::Pause));
        assert_eq!(
            parse(&["resume"]).map(|c| c.action),
            Ok(AdminAction::Resume)
        );
        assert_eq!(
            parse(&["set", "--admit-per-second", "50", "--max-active", "500"]).map(|c| c.action),
            Ok(AdminAction::Set {
                admit_per_second: Some(50),
                max_active: Some(500),
                active_ttl_seconds: None,
                challenge_difficulty: None,
            })
        );
        assert_eq!(
            parse(&["--room", "r", "set", "--challenge-difficulty", "100000"]).map(|c| c.action),
            Ok(AdminAction::Set {
                admit_per_second: None,
                max_active: None,
                active_ttl_seconds: None,
                challenge_difficulty: Some(100_000),
            })
        );
        assert_eq!(
            parse(&["open-at", "2026-12-01T10:00:00Z"]).map(|c| c.action),
            Ok(AdminAction::OpenAt(Some("2026-12-01T10:00:00Z".into())))
        );
        assert_eq!(
            parse(&["open-at", "none"]).map(|c| c.action),
            Ok(AdminAction::OpenAt(None))
        );
        assert_eq!(
            parse(&["revoke", "abc"]).map(|c| c.action),
            Ok(AdminAction::Revoke("abc".into()))
        );
    }

    #[test]
    fn rooms_verbs_and_the_room_option_parse() {
        let command = parse(&["--room", "golden-hour", "pause"]).expect("parses");
        assert_eq!(command.room.as_deref(), Some("golden-hour"));
        assert_eq!(command.action, AdminAction::Pause);
        assert_eq!(
            parse(&["rooms", "list"]).map(|c| c.action),
            Ok(AdminAction::RoomsList)
        );
        assert_eq!(
            parse(&["rooms", "delete", "x"]).map(|c| c.action),
            Ok(AdminAction::RoomsDelete("x".into()))
        );
        assert_eq!(
            parse(&[
                "rooms",
                "create",
                "golden-hour",
                "--name",
                "Golden Hour",
                "--performances",
                "119,120",
                "--admit-per-second",
                "200",
                "--entry",
                "invite",
            ])
            .map(|c| c.action),
            Ok(AdminAction::RoomsCreate(json!({
                "id": "golden-hour",
                "name": "Golden Hour",
                "performanceIds": [119, 120],
                "admitPerSecond": 200,
                "entry": "invite",
            })))
        );
        assert!(parse(&["rooms", "create", "x", "--name", "X"]).is_err());
        assert!(parse(&["rooms", "create", "x", "--name", "X", "--performances", "a"]).is_err());
        assert!(parse(&["--room"]).is_err());
    }

    #[test]
    fn the_url_defaults_and_can_be_given_anywhere() {
        assert_eq!(
            parse(&["status"]).map(|c| c.url),
            Ok("http://default:8080".into())
        );
        assert_eq!(
            parse(&["--url", "http://x:1", "status"]).map(|c| c.url),
            Ok("http://x:1".into())
        );
        assert_eq!(
            parse(&["pause", "--url", "http://y:2"]).map(|c| c.url),
            Ok("http://y:2".into())
        );
    }

    #[test]
    fn invite_parses_and_signs_a_code_the_key_verifies() {
        let command = parse(&["--room", "presale", "invite", "--user", "auth0|7"]).expect("parses");
        assert_eq!(
            command.action,
            AdminAction::Invite {
                user: "auth0|7".into(),
                expires: None
            }
        );
        let key_text = "k".repeat(32);
        let now = chrono::Utc::now();
        let code = invite_code(&command, Some(&key_text), now).expect("a code");
        let key = InviteKey::new(key_text.as_bytes()).expect("a key");
        let parsed = ticketing_domain::rooms::InviteCode::parse(&code).expect("a code's shape");
        let room = RoomId::parse("presale").expect("a room");
        let account = InviteAccount::new("auth0|7").expect("an account");
        let invite = key.verify(&parsed, &room, &account, now).expect("verifies");
        let week = now + chrono::Duration::days(7);
        assert!((week - invite.expires_at).num_seconds().abs() <= 1);
        assert_ne!(
            invite_code(&command, Some(&key_text), now).expect("a code"),
            code,
            "each code has a nonce of its own"
        );
    }

    #[test]
    fn invite_refuses_bad_input() {
        let key_text = "k".repeat(32);
        let now = chrono::Utc::now();
        let sign =
            |list: &[&str], key: Option<&str>| invite_code(&parse(list).expect("parses"), key, now);
        assert!(parse(&["invite"]).is_err(), "--user is required");
        assert!(parse(&["invite", "--user"]).is_err());
        assert!(parse(&["invite", "--user", "7", "--speed", "1"]).is_err());
        assert!(sign(&["invite", "--user", "7"], None).is_err(), "no key");
        assert!(sign(&["invite", "--user", "7"], Some("short")).is_err());
        assert!(sign(
            &["--room", "Bad Room", "invite", "--user", "7"],
            Some(&key_text)
        )
        .is_err());
        assert!(sign(
            &["invite", "--user", "7", "--expires", "soon"],
            Some(&key_text)
        )
        .is_err());
        assert!(sign(
            &["invite", "--user", "7", "--expires", "2000-01-01T00:00:00Z"],
            Some(&key_text)
        )
        .is_err());
        assert!(sign(&["invite", "--user", "7"], Some(&key_text)).is_ok());
    }

    #[test]
    fn bad_arguments_get_the_usage() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["set"]).is_err());
        assert!(parse(&["set", "--admit-per-second", "many"]).is_err());
        assert!(parse(&["set", "--speed", "5"]).is_err());
        assert!(parse(&["open-at"]).is_err());
        assert!(parse(&["--url"]).is_err());
    }
}
