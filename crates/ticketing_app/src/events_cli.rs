//! `ticketing events tail`: an example consumer of the event stream. It follows
//! `<APP__REDIS__KEY_PREFIX>:events` as a member of a consumer group, prints each event as one
//! JSON line on stdout and acknowledges it: what a mail, accounting or live-map service would do.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use ticketing_domain::error::ErrorChain;
use ticketing_redis::{GroupStart, KeySpace, RedisEventStream, RedisPool, StreamEntry};

use crate::Settings;

pub const EVENTS_USAGE: &str =
    "usage: ticketing events tail [--group NAME] [--consumer NAME] [--from-start] [--count N]
  Follows the event stream <APP__REDIS__KEY_PREFIX>:events in a consumer group (default
  group `tail`; each event goes to one consumer of a group, and stays pending until acknowledged),
  printing each event as a JSON line. Events left pending by an earlier run of this consumer come
  first; an event delivered twice (the same `id`) is printed once. A new group starts with the
  events appended from then on, or with the oldest the stream keeps with --from-start.
  --count N stops after N events.";

/// What `ticketing events tail` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCommand {
    pub group: String,
    pub consumer: String,
    pub start: GroupStart,
    pub count: Option<u64>,
}

impl TailCommand {
    /// Parses the arguments after `events`.
    ///
    /// # Errors
    /// The usage text, with the reason first.
    pub fn parse(arguments: &[String]) -> Result<Self, String> {
        let usage = |reason: &str| format!("{reason}\n{EVENTS_USAGE}");
        let Some((verb, options)) = arguments.split_first() else {
            return Err(EVENTS_USAGE.to_string());
        };
        if verb != "tail" {
            return Err(usage(&format!("unknown events command {verb:?}")));
        }
        let mut command = TailCommand {
            group: "tail".to_string(),
            consumer: format!("tail-{}", std::process::id()),
            start: GroupStart::New,
            count: None,
        };
        let mut iter = options.iter();
        while let Some(option) = iter.next() {
            let mut value = || {
                iter.next()
                    .filter(|value| !value.is_empty())
                    .cloned()
                    .ok_or_else(|| usage(&format!("{option} needs a value")))
            };
            match option.as_str() {
                "--group" => command.group = value()?,
                "--consumer" => command.consumer = value()?,
                "--from-start" => command.start = GroupStart::Beginning,
                "--count" => {
                    command.count = Some(
                        value()?
                            .parse()
                            .map_err(|_| usage("--count needs a whole number"))?,
                    );
                }
                other => return Err(usage(&format!("unknown option {other:?}"))),
            }
        }
        Ok(command)
    }
}

/// The ids of the last events printed, so that an event delivered twice is printed once.
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    const KEEP: usize = 100_000;

    fn new() -> Self {
        Self {
            order: VecDeque::new(),
            ids: HashSet::new(),
        }
    }

    /// Whether `id` is new (and remembers it).
    fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_string());
        self.order.push_back(id.to_string());
        if self.order.len() > Self::KEEP {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        true
    }
}

fn json_line(entry: &StreamEntry) -> String {
    let object: serde_json::Map<String, serde_json::Value> = entry
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Follows the stream until stopped (or `--count` events).
///
/// # Errors
/// When Redis cannot be reached to join the group; read failures are retried.
pub async fn tail(settings: &Settings, command: &TailCommand) -> anyhow::Result<()> {
    let pool = RedisPool::new(&settings.redis()).context("building the Redis pool")?;
    let stream = RedisEventStream::new(pool, &KeySpace::new(&settings.redis.key_prefix));
    stream
        .join(&command.group, command.start)
        .await
        .with_context(|| format!("joining group {:?} of {}", command.group, stream.key()))?;
    // Blocking reads end well within the pool's command timeout.
    let block = Duration::from_millis(settings.redis.command_timeout_ms / 2);
    let mut seen = Seen::new();
    let mut printed: u64 = 0;
    let mut pending = true;
    let mut stdout = std::io::stdout();
    loop {
        if command.count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
        let entries = match stream
            .read(&command.group, &command.consumer, 100, block, pending)
            .await
        {
            Ok(entries) => entries,
            Err(error) => {
                eprintln!(
                    "ticketing events tail: reading the stream failed ({}); retrying",
                    ErrorChain(&error)
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if pending && entries.is_empty() {
            pending = false;
            continue;
        }
        let mut done = Vec::with_capacity(entries.len());
        for entry in &entries {
            if command.count.is_some_and(|count| printed >= count) {
                break;
            }
            if seen.first_time(entry.field("id").unwrap_or(&entry.stream_id)) {
                writeln!(stdout, "{}", json_line(entry)).context("writing to stdout")?;
                printed += 1;
            }
            done.push(entry.stream_id.clone());
        }
        stdout.flush().context("writing to stdout")?;
        if let Err(error) = stream.ack(&command.group, &done).await {
            eprintln!(
                "ticketing events tail: acknowledging failed ({}); they will be read again",
                ErrorChain(&error)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn tail_has_defaults_and_options() {
        let default = TailCommand::parse(&args(&["tail"])).expect("valid");
        assert_eq!(default.group, "tail");
        assert_eq!(default.start, GroupStart::New);
        assert_eq!(default.count, None);

        let all = TailCommand::parse(&args(&[
            "tail",
            "--group",
            "mail",
            "--consumer",
            "m1",
            "--from-start",
            "--count",
            "5",
        ]))
        .expect("valid");
        assert_eq!(
            all,
            TailCommand {
                group: "mail".into(),
                consumer: "m1".into(),
                start: GroupStart::Beginning,
                count: Some(5),
            }
        );
    }

    #[test]
    fn bad_arguments_get_the_usage() {
        for bad in [
            &[][..],
            &["follow"],
            &["tail", "--group"],
            &["tail", "--count", "many"],
            &["tail", "--loud"],
        ] {
            assert!(TailCommand::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_event_delivered_twice_is_printed_once() {
        let mut seen = Seen::new();
        assert!(seen.first_time("1"));
        assert!(seen.first_time("2"));
        assert!(!seen.first_time("1"));
    }
}
