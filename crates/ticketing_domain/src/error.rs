//! The failure every port may report besides its business outcomes.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// What made a dependency fail: the driver's own error (kept whole, so its cause chain reaches
/// the log), or a message where the failure has no error value of its own.
///
/// Shared, so that an [`InfrastructureError`] stays `Clone` like the use cases' errors that
/// carry it.
pub type Cause = Arc<dyn Error + Send + Sync + 'static>;

/// A dependency failed; nothing the caller did is wrong.
///
/// Adapters translate their driver errors into one of these two variants so that no driver type
/// crosses a port; the driver error itself stays reachable as the [`source`](Error::source), for
/// the log. The message of this error says only which kind of failure it is: print the whole
/// chain (each `source()` in turn) to see why.
///
/// Two infrastructure errors are equal when they are of the same kind and their causes read the
/// same: a driver error has no equality of its own, and tests compare use-case outcomes that
/// carry one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum InfrastructureError {
    /// The dependency is down, overloaded or too slow (pool timeout, refused connection,
    /// statement timeout). The request may succeed if retried later.
    #[error("a dependency is unavailable")]
    Unavailable(#[source] Cause),
    /// The dependency answered something this code does not expect: a bug.
    #[error("unexpected infrastructure failure")]
    Unexpected(#[source] Cause),
}

impl InfrastructureError {
    /// A dependency that is down, overloaded or too slow, because of `cause`: the driver's error,
    /// or a message (`&str`, `String`) where there is none.
    pub fn unavailable(cause: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Self::Unavailable(Arc::from(cause.into()))
    }

    /// A dependency that answered what this code does not expect, because of `cause`: the
    /// driver's error, or a message (`&str`, `String`) where there is none.
    pub fn unexpected(cause: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Self::Unexpected(Arc::from(cause.into()))
    }

    /// Whether retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The error that made the dependency fail.
    pub fn cause(&self) -> &(dyn Error + Send + Sync + 'static) {
        match self {
            Self::Unavailable(cause) | Self::Unexpected(cause) => cause.as_ref(),
        }
    }

    /// Displays this error followed by each of its causes, `: `-separated, for a log line:
    /// `a dependency is unavailable: redis: connection refused (os error 111)`.
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }
}

impl PartialEq for InfrastructureError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.cause().to_string() == other.cause().to_string()
    }
}

impl Eq for InfrastructureError {}

/// An error followed by each of its causes, `: `-separated (see [`InfrastructureError::chain`]).
/// Works for any error: `ErrorChain(&error)`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[derive(Debug, thiserror::Error)]
    #[error("pool timed out")]
    struct PoolTimeout(#[source] Refused);

    #[test]
    fn the_driver_error_is_kept_as_the_source_with_its_own_chain() {
        let error = InfrastructureError::unavailable(PoolTimeout(Refused));
        let source = error.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("pool timed out"));
        assert_eq!(
            error.chain().to_string(),
            "a dependency is unavailable: pool timed out: connection refused"
        );
        assert!(error.is_unavailable());
    }

    #[test]
    fn a_message_is_a_cause_too() {
        let error = InfrastructureError::unexpected(format!("stored row {} is invalid", 7));
        assert_eq!(
            error.chain().to_string(),
            "unexpected infrastructure failure: stored row 7 is invalid"
        );
        assert!(!error.is_unavailable());
    }

    #[test]
    fn equal_when_of_one_kind_with_causes_that_read_the_same() {
        assert_eq!(
            InfrastructureError::unavailable("down"),
            InfrastructureError::unavailable("down")
        );
        assert_ne!(
            InfrastructureError::unavailable("down"),
            InfrastructureError::unexpected("down")
        );
        assert_ne!(
            InfrastructureError::unavailable("down"),
            InfrastructureError::unavailable("slow")
        );
    }
}
