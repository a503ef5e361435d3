//! A key set once: what the single-use records (spent proofs, used invites) share. `SET NX` is
//! one atomic step in Redis, so of any number of racing callers, on any instance, exactly one
//! finds the key absent and sets it.

use ticketing_domain::InfrastructureError;

use crate::pool::RedisPool;

/// When a key set once lapses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lapse {
    /// After this many milliseconds (`PX`).
    After(u64),
    /// At this Unix time in milliseconds, by Redis's clock (`PXAT`).
    At(i64),
}

/// Sets `key` unless it exists; true when this call set it.
pub(crate) async fn set_once(
    pool: &RedisPool,
    key: &str,
    lapse: Lapse,
) -> Result<bool, InfrastructureError> {
    // At least a millisecond, or a moment after the epoch: Redis refuses 0 and a past PXAT.
    let (option, when) = match lapse {
        Lapse::After(millis) => ("PX", i64::try_from(millis.max(1)).unwrap_or(i64::MAX)),
        Lapse::At(at) => ("PXAT", at.max(1)),
    };
    let set: Option<String> = pool
        .run(async |connection| {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg(option)
                .arg(when)
                .query_async(connection)
                .await
        })
        .await?;
    Ok(set.is_some())
}
