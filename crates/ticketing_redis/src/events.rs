//! The event stream: [`EventPublisher`] appending to a Redis stream, and a consumer-group reader
//! for services (and `ticketing events tail`) that follow it.
//!
//! The stream is `<APP__REDIS__KEY_PREFIX>:events`, the name the contract gives, without the
//! hash tag the stack's other keys carry: it is one key, written alone (a MULTI of XADDs to it
//! alone), so it needs no slot shared with anything, also on a cluster. Each entry's
//! fields are those of [`Event::fields`]; its `id` field is the event's own id, the same on
//! every retry, on which consumers deduplicate (the entry's stream ID differs on a retry).

use std::num::NonZeroU64;
use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisError, Value};
use ticketing_domain::events::{Event, EventPublisher};
use ticketing_domain::InfrastructureError;

use crate::keys::KeySpace;
use crate::pool::RedisPool;

/// The stream's key in a key space.
pub fn stream_key(keys: &KeySpace) -> String {
    keys.untagged_key("events")
}

/// Appends events to the stack's stream.
#[derive(Clone, Debug)]
pub struct RedisEventPublisher {
    pool: RedisPool,
    key: String,
    max_len: Option<NonZeroU64>,
}

impl RedisEventPublisher {
    /// Publishes to the stream of `keys`, trimmed to about `max_len` entries when given (the
    /// oldest go first; `None` keeps everything).
    pub fn new(pool: RedisPool, keys: &KeySpace, max_len: Option<NonZeroU64>) -> Self {
        Self {
            pool,
            key: stream_key(keys),
            max_len,
        }
    }
}

#[async_trait]
impl EventPublisher for RedisEventPublisher {
    async fn publish(&self, events: &[Event]) -> Result<(), InfrastructureError> {
        if events.is_empty() {
            return Ok(());
        }
        // One MULTI/EXEC: the batch is appended whole, in order, or not at all as far as Redis
        // can tell (a connection lost before the EXEC's answer may still have appended it: the
        // relay then publishes it again, with the same ids).
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in events {
            let command = pipe.cmd("XADD").arg(&self.key);
            if let Some(max_len) = self.max_len {
                command.arg("MAXLEN").arg("~").arg(max_len.get());
            }
            command.arg("*");
            for (name, value) in event.fields() {
                command.arg(name).arg(value);
            }
            command.ignore();
        }
        self.pool
            .run(async |connection| pipe.query_async::<()>(connection).await)
            .await
    }
}

/// One entry read from the stream: its stream ID and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Redis's ID of the entry (what is acknowledged), not the event's `id` field.
    pub stream_id: String,
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The order fields are shown in: the contract's.
const FIELD_ORDER: [&str; 9] = [
    "id",
    "type",
    "occurredAt",
    "reservationId",
    "userId",
    "performanceId",
    "seatId",
    "amount",
    "balance",
];

fn entry(raw: StreamId) -> StreamEntry {
    let mut fields: Vec<(String, String)> = raw
        .map
        .iter()
        .filter_map(|(name, value)| match value {
            Value::BulkString(bytes) => {
                Some((name.clone(), String::from_utf8_lossy(bytes).into_owned()))
            }
            Value::SimpleString(text) => Some((name.clone(), text.clone())),
            _ => None,
        })
        .collect();
    fields.sort_by_key(|(name, _)| {
        FIELD_ORDER
            .iter()
            .position(|known| known == name)
            .unwrap_or(FIELD_ORDER.len())
    });
    StreamEntry {
        stream_id: raw.id,
        fields,
    }
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupStart {
    /// With the oldest entry the stream still has.
    Beginning,
    /// With entries appended from now on.
    New,
}

/// Reads the stream as a member of a consumer group: each entry goes to one consumer of the
/// group, stays pending until acknowledged, and is read again by that consumer after a crash.
#[derive(Clone, Debug)]
pub struct RedisEventStream {
    pool: RedisPool,
    key: String,
}

impl RedisEventStream {
    pub fn new(pool: RedisPool, keys: &KeySpace) -> Self {
        Self {
            pool,
            key: stream_key(keys),
        }
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Creates the group (and the stream) if missing; an existing group is left as it is.
    ///
    /// # Errors
    /// [`InfrastructureError`] when Redis cannot be reached.
    pub async fn join(&self, group: &str, start: GroupStart) -> Result<(), InfrastructureError> {
        let from = match start {
            GroupStart::Beginning => "0",
            GroupStart::New => "$",
        };
        self.pool
            .run(async |connection| {
                let created: Result<(), RedisError> = connection
                    .xgroup_create_mkstream(&self.key, group, from)
                    .await;
                match created {
                    Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
                    other => other,
                }
            })
            .await
    }

    /// Up to `count` entries for `consumer` of `group`: with `pending`, those delivered to it
    /// before and not acknowledged (after a restart); otherwise new ones, waiting up to `block`
    /// for one (keep it below the pool's command timeout).
    ///
    /// # Errors
    /// [`InfrastructureError`] when Redis cannot be reached or the group does not exist.
    pub async fn read(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
        pending: bool,
    ) -> Result<Vec<StreamEntry>, InfrastructureError> {
        let mut options = StreamReadOptions::default()
            .group(group, consumer)
            .count(count);
        if !pending {
            options = options.block(usize::try_from(block.as_millis()).unwrap_or(usize::MAX));
        }
        let from = if pending { "0" } else { ">" };
        let reply: Option<StreamReadReply> = self
            .pool
            .run(async |connection| {
                connection
                    .xread_options(&[&self.key], &[from], &options)
                    .await
            })
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(entry)
            .collect())
    }

    /// Acknowledges entries of `group`: they are not delivered again.
    ///
    /// # Errors
    /// [`InfrastructureError`] when Redis cannot be reached.
    pub async fn ack(&self, group: &str, stream_ids: &[String]) -> Result<(), InfrastructureError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        self.pool
            .run(async |connection| {
                connection
                    .xack::<_, _, _, ()>(&self.key, group, stream_ids)
                    .await
            })
            .await
    }

    /// Every entry the stream holds, oldest first (for tests and inspection).
    ///
    /// # Errors
    /// [`InfrastructureError`] when Redis cannot be reached.
    pub async fn all(&self) -> Result<Vec<StreamEntry>, InfrastructureError> {
        let reply: redis::streams::StreamRangeReply = self
            .pool
            .run(async |connection| connection.xrange_all(&self.key).await)
            .await?;
        Ok(reply.ids.into_iter().map(entry).collect())
    }
}
