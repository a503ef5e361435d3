//! `ticketing admin ...`: the admin API from the command line, for operators during a sale.

use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

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
        [--challenge-difficulty N]
  rooms delete <id>           delete a room nobody waits or shops in
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
            ])
            .map(|c| c.action),
            Ok(AdminAction::RoomsCreate(json!({
                "id": "golden-hour",
                "name": "Golden Hour",
                "performanceIds": [119, 120],
                "admitPerSecond": 200,
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
    fn bad_arguments_get_the_usage() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["set"]).is_err());
        assert!(parse(&["set", "--admit-per-second", "many"]).is_err());
        assert!(parse(&["set", "--speed", "5"]).is_err());
        assert!(parse(&["open-at"]).is_err());
        assert!(parse(&["--url"]).is_err());
    }
}
