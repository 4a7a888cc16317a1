//! The real clock and id generator that production wires into [`crate::services::Deps`]
//! (the test doubles are in `memory`, behind the `testing` feature).

use crate::ports::{Clock, IdGenerator};
use chrono::{DateTime, Utc};

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn pause(&self, delay: std::time::Duration) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(delay))
    }
}

/// Random v4 UUIDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidIds;

impl IdGenerator for UuidIds {
    fn new_id(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}
