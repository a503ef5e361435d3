//! `ticketing verify-draw --room ID`: checks a room's published draw from public data only
//! (`GET /api/rooms/{roomId}`), as any fan could, with the domain's own [`drawn_order`].

use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::Value;
use ticketing_domain::queue::{
    drawn_order, order_digest, DrawCommitment, DrawRange, DrawSeed, Seq,
};
use ticketing_domain::rooms::RoomId;

/// What to check, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyDrawCommand {
    pub url: String,
    pub room: RoomId,
    /// `--arrival N`: also say which ticket number the draw gave arrival number N.
    pub arrival: Option<Seq>,
    /// `--commitment HEX`: the commitment the caller saw before the opening, checked as well as
    /// the one the room publishes now.
    pub commitment: Option<DrawCommitment>,
}

pub const VERIFY_DRAW_USAGE: &str =
    "usage: ticketing verify-draw --room ID [--url URL] [--arrival N] [--commitment HEX]
  Fetches GET /api/rooms/ID, checks that SHA-256 of the published seed is the published
  commitment (and --commitment, one seen before the opening), recomputes the drawn order from
  the seed and range, and prints the range, the order's digest (SHA-256 of the arrival numbers
  in drawn order, 8 bytes big-endian each) and, with --arrival N, the ticket number of arrival
  number N. Exits non-zero when no draw is published or the seed does not match.
The server is --url, else $TICKETING_URL, else http://127.0.0.1:8080.";

impl VerifyDrawCommand {
    /// Parses the arguments after `verify-draw`; `default_url` is used without `--url`.
    ///
    /// # Errors
    /// The usage text, with the reason first.
    pub fn parse(arguments: &[String], default_url: &str) -> Result<Self, String> {
        let refuse = |reason: &str| format!("{reason}\n{VERIFY_DRAW_USAGE}");
        let mut url = default_url.to_string();
        let mut room = None;
        let mut arrival = None;
        let mut commitment = None;
        let mut iter = arguments.iter();
        while let Some(flag) = iter.next() {
            let mut value = || {
                iter.next()
                    .ok_or_else(|| refuse(&format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--url" => url = value()?.clone(),
                "--room" => {
                    let text = value()?;
                    room = Some(
                        RoomId::parse(text)
                            .map_err(|_| refuse(&format!("{text:?} is not a room id")))?,
                    );
                }
                "--arrival" => {
                    let text = value()?;
                    arrival = Some(text.parse::<Seq>().map_err(|_| {
                        refuse(&format!("--arrival needs a whole number, not {text:?}"))
                    })?);
                }
                "--commitment" => {
                    let text = value()?;
                    commitment = Some(
                        DrawCommitment::from_hex(text)
                            .map_err(|_| refuse("--commitment needs 64 hex digits"))?,
                    );
                }
                "--help" | "-h" => return Err(VERIFY_DRAW_USAGE.to_string()),
                other => return Err(refuse(&format!("unknown argument {other}"))),
            }
        }
        let room = room.ok_or_else(|| refuse("--room is required"))?;
        Ok(Self {
            url,
            room,
            arrival,
            commitment,
        })
    }
}

/// Why a room's draw could not be verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrawNotVerified {
    /// The room publishes no seed: no draw was made yet (or it was forgotten).
    #[error("room {0} publishes no draw (no drawSeed and drawRange): nothing to verify yet")]
    NotPublished(String),
    /// A field is missing or not what the API documents.
    #[error("room {room} publishes a malformed draw: {reason}")]
    Malformed { room: String, reason: String },
    /// SHA-256 of the seed is not the commitment.
    #[error("the seed does not match the {which} commitment: SHA-256(seed) = {computed}, commitment = {committed}")]
    CommitmentMismatch {
        which: &'static str,
        computed: String,
        committed: String,
    },
}

/// A draw recomputed from what a room published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDraw {
    pub commitment: DrawCommitment,
    pub seed: DrawSeed,
    pub range: DrawRange,
    /// `order[i]` is the arrival number given the ticket number `range.after + 1 + i`.
    pub order: Vec<Seq>,
}

impl VerifiedDraw {
    /// The ticket number the draw gave arrival number `arrival`: arrivals outside the range
    /// were not drawn and keep their number.
    pub fn ticket_number_of(&self, arrival: Seq) -> Seq {
        self.order
            .iter()
            .position(|seq| *seq == arrival)
            .map_or(arrival, |index| self.range.after + 1 + index as u64)
    }
}

fn field<'a>(room: &'a Value, name: &str) -> Option<&'a Value> {
    room.get(name).filter(|value| !value.is_null())
}

/// Checks the draw published in `room` (the body of `GET /api/rooms/{roomId}`) and recomputes
/// its order; `seen_before` is a commitment the caller saw before the opening, if any.
///
/// # Errors
/// [`DrawNotVerified`] when no draw is published, a field is malformed, or the seed does not
/// match a commitment.
pub fn verify(
    room: &Value,
    seen_before: Option<DrawCommitment>,
) -> Result<VerifiedDraw, DrawNotVerified> {
    let id = room["id"].as_str().unwrap_or("?").to_string();
    let malformed = |reason: &str| DrawNotVerified::Malformed {
        room: id.clone(),
        reason: reason.to_string(),
    };
    let (Some(seed), Some(range)) = (field(room, "drawSeed"), field(room, "drawRange")) else {
        return Err(DrawNotVerified::NotPublished(id));
    };
    let seed = seed
        .as_str()
        .and_then(|text| DrawSeed::from_hex(text).ok())
        .ok_or_else(|| malformed("drawSeed is not 64 hex digits"))?;
    let commitment = field(room, "drawCommitment")
        .and_then(Value::as_str)
        .and_then(|text| DrawCommitment::from_hex(text).ok())
        .ok_or_else(|| malformed("drawCommitment is missing or not 64 hex digits"))?;
    let after = range["after"].as_u64();
    let through = range["through"].as_u64();
    let (Some(after), Some(through)) = (after, through) else {
        return Err(malformed("drawRange needs whole numbers after and through"));
    };
    if through < after {
        return Err(malformed("drawRange ends before it starts"));
    }
    let range = DrawRange { after, through };
    for (which, committed) in [("published", Some(commitment)), ("given", seen_before)] {
        if let Some(committed) = committed {
            if !committed.opens_to(&seed) {
                return Err(DrawNotVerified::CommitmentMismatch {
                    which,
                    computed: seed.commitment().to_hex(),
                    committed: committed.to_hex(),
                });
            }
        }
    }
    Ok(VerifiedDraw {
        commitment,
        seed,
        range,
        order: drawn_order(&seed, range),
    })
}

/// Fetches the room, verifies its draw and prints what it found.
///
/// # Errors
/// A one-line reason: the server is unreachable or refused, or [`DrawNotVerified`].
pub async fn run(command: &VerifyDrawCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let base = command.url.trim_end_matches('/');
    let url = format!("{base}/api/rooms/{}", command.room);
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|error| anyhow!("cannot reach {base}: {error}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(anyhow!("GET {url} answered {}", status.as_u16()));
    }
    let room: Value = response
        .json()
        .await
        .map_err(|error| anyhow!("GET {url} answered no JSON: {error}"))?;
    let draw = verify(&room, command.commitment)?;
    let DrawRange { after, through } = draw.range;
    println!("room: {}", command.room);
    println!(
        "commitment: {} (SHA-256 of the seed: matches)",
        draw.commitment.to_hex()
    );
    println!("seed: {}", draw.seed.to_hex());
    println!(
        "range: after {after}, through {through} ({} places)",
        draw.range.len()
    );
    println!("order digest: {}", order_digest(&draw.order));
    if let Some(arrival) = command.arrival {
        let number = draw.ticket_number_of(arrival);
        if arrival > after && arrival <= through {
            println!("arrival {arrival}: ticket number {number}");
        } else {
            println!("arrival {arrival}: not in the draw, ticket number {number}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(list: &[&str]) -> Result<VerifyDrawCommand, String> {
        let arguments: Vec<String> = list.iter().map(|a| a.to_string()).collect();
        VerifyDrawCommand::parse(&arguments, "http://default:8080")
    }

    fn seed() -> DrawSeed {
        DrawSeed::from_bytes([3; 32])
    }

    fn published(seed: &DrawSeed, commitment: &DrawCommitment) -> Value {
        json!({"id": "default", "drawCommitment": commitment.to_hex(),
               "drawSeed": seed.to_hex(), "drawRange": {"after": 10, "through": 20}})
    }

    #[test]
    fn arguments_parse_and_bad_ones_get_the_usage() {
        let command = parse(&["--room", "golden-hour", "--arrival", "12"]).expect("parses");
        assert_eq!(command.url, "http://default:8080");
        assert_eq!(command.room.to_string(), "golden-hour");
        assert_eq!(command.arrival, Some(12));
        let command = parse(&["--url", "http://x:1", "--room", "default"]).expect("parses");
        assert_eq!(
            (command.url.as_str(), command.arrival),
            ("http://x:1", None)
        );
        for bad in [
            &[][..],
            &["--room"],
            &["--room", "Not A Room"],
            &["--room", "default", "--arrival", "x"],
            &["--room", "default", "--commitment", "00"],
            &["--room", "default", "extra"],
        ] {
            let refused = parse(bad).expect_err("refused");
            assert!(
                refused.contains("usage: ticketing verify-draw"),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_published_draw_is_recomputed_and_places_an_arrival() {
        let draw = verify(&published(&seed(), &seed().commitment()), None).expect("verified");
        let range = DrawRange {
            after: 10,
            through: 20,
        };
        assert_eq!(draw.range, range);
        assert_eq!(draw.order, drawn_order(&seed(), range));
        let first = draw.order[0];
        assert_eq!(draw.ticket_number_of(first), 11);
        assert_eq!(draw.ticket_number_of(25), 25, "not drawn: keeps its number");
        assert!(verify(
            &published(&seed(), &seed().commitment()),
            Some(seed().commitment())
        )
        .is_ok());
    }

    #[test]
    fn a_seed_that_does_not_open_the_commitment_is_refused() {
        let other = DrawSeed::from_bytes([4; 32]).commitment();
        assert!(matches!(
            verify(&published(&seed(), &other), None),
            Err(DrawNotVerified::CommitmentMismatch {
                which: "published",
                ..
            })
        ));
        assert!(matches!(
            verify(&published(&seed(), &seed().commitment()), Some(other)),
            Err(DrawNotVerified::CommitmentMismatch { which: "given", .. })
        ));
    }

    #[test]
    fn no_draw_or_a_malformed_one_is_refused() {
        let pending = json!({"id": "default", "drawCommitment": seed().commitment().to_hex(),
                             "drawSeed": null, "drawRange": null});
        assert_eq!(
            verify(&pending, None),
            Err(DrawNotVerified::NotPublished("default".into()))
        );
        let mut bad = published(&seed(), &seed().commitment());
        bad["drawRange"] = json!({"after": 20, "through": 10});
        assert!(matches!(
            verify(&bad, None),
            Err(DrawNotVerified::Malformed { .. })
        ));
        bad["drawSeed"] = json!("zz");
        assert!(matches!(
            verify(&bad, None),
            Err(DrawNotVerified::Malformed { .. })
        ));
    }
}
