//! The failure every port may report besides its business outcomes.

/// A dependency failed; nothing the caller did is wrong.
///
/// Adapters translate their driver errors into one of these two variants so that no driver type
/// crosses a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfrastructureError {
    /// The dependency is down, overloaded or too slow (pool timeout, refused connection,
    /// statement timeout). The request may succeed if retried later.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// The dependency answered something this code does not expect: a bug.
    #[error("unexpected infrastructure failure: {0}")]
    Unexpected(String),
}
