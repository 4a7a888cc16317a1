//! Counting the AWS calls of one invocation: an SDK interceptor on every client counts each
//! operation and the *sequential round trips* they form — a round trip starts whenever a call
//! begins while no other call is in flight, so calls sent side by side count once. The edge
//! reads the tally per invocation (a `Server-Timing` header and an EMF metric), and the
//! integration tests pin the call budgets with it.
//!
//! A Lambda execution environment runs one invocation at a time, so one process-wide tally,
//! reset when an invocation starts, belongs to exactly that invocation.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The AWS calls made since the last [`reset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallTally {
    pub calls: u32,
    /// Sequential round trips: busy periods of the AWS clients.
    pub round_trips: u32,
    /// Time with at least one call in flight.
    pub busy: Duration,
    /// Calls per `Service.Operation`.
    pub operations: BTreeMap<String, u32>,
}

#[derive(Debug, Default)]
struct State {
    tally: CallTally,
    in_flight: u32,
    busy_since: Option<Instant>,
}

static STATE: Mutex<State> = Mutex::new(State {
    tally: CallTally {
        calls: 0,
        round_trips: 0,
        busy: Duration::ZERO,
        operations: BTreeMap::new(),
    },
    in_flight: 0,
    busy_since: None,
});

fn state() -> MutexGuard<'static, State> {
    // Plain counters: a panic elsewhere cannot leave them inconsistent.
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a new tally (at the start of an invocation).
pub fn reset() {
    let mut s = state();
    s.tally = CallTally::default();
    if s.in_flight > 0 {
        // Calls still running from before count for the new invocation from now on.
        s.busy_since = Some(Instant::now());
    }
}

/// The tally so far.
pub fn snapshot() -> CallTally {
    let s = state();
    let mut tally = s.tally.clone();
    if let Some(since) = s.busy_since {
        tally.busy += since.elapsed();
    }
    tally
}

/// The interceptor: add it to every SDK client ([`counted`] does).
#[derive(Debug, Clone, Copy, Default)]
pub struct CallCounter;

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "clanwar::CallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut s = state();
        s.tally.calls += 1;
        if s.in_flight == 0 {
            s.tally.round_trips += 1;
            s.busy_since = Some(Instant::now());
        }
        s.in_flight += 1;
        Ok(())
    }

    /// The operation's name is known from here on: a client's `read_before_execution` runs
    /// before the operation's own configuration (its `Metadata`) is applied.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".to_owned());
        *state().tally.operations.entry(operation).or_default() += 1;
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut s = state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            if let Some(since) = s.busy_since.take() {
                s.tally.busy += since.elapsed();
            }
        }
        Ok(())
    }
}

/// SDK clients built from one shared configuration, each with the [`CallCounter`].
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sfn: aws_sdk_sfn::Client,
}

/// The counted clients of `sdk`.
pub fn counted(sdk: &aws_config::SdkConfig) -> Clients {
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(CallCounter)
                .build(),
        ),
        eventbridge: aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(sdk)
                .interceptor(CallCounter)
                .build(),
        ),
        sfn: aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::config::Builder::from(sdk)
                .interceptor(CallCounter)
                .build(),
        ),
    }
}
