//! Why a port call failed: the errors the adapters report, below both the port traits
//! ([`crate::ports`]) and the domain's own error ([`crate::error`]), so neither imports the other.

use crate::ids::{EventId, WarId};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write's condition failed (stale version, record already exists, duplicate event).
    /// `index` is the position of the failing write in the transaction, when known.
    #[error("conditional write failed at write #{index:?}")]
    Conflict { index: Option<usize> },
    /// The backend could not be reached or refused the call; the operation may be retried.
    #[error("store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A page cursor that this store did not produce.
    #[error("invalid page cursor")]
    BadCursor,
    /// The request itself is invalid for the backend (e.g. two writes to one key).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// A stored item could not be decoded.
    #[error("corrupt record {key}: {message}")]
    Corrupt { key: String, message: String },
    /// A score write reached counters that the end of the war sealed: nothing was written.
    #[error("the score counters of war {0} are sealed")]
    Sealed(WarId),
    /// Competing writers kept cancelling this write; retrying later may succeed.
    #[error("write contention persisted after {attempts} attempts")]
    Contention { attempts: u32 },
}

impl StoreError {
    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Publishing failed for these events (they stay in the outbox).
#[derive(Debug, thiserror::Error)]
#[error("{} event(s) not published: {message}", failed.len())]
pub struct PublishError {
    pub failed: Vec<EventId>,
    pub message: String,
}

/// A workflow could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[error("workflow call failed: {message}")]
pub struct WorkflowError {
    pub message: String,
}
