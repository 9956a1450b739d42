//! Shared state outside this process (Redis for several replicas), as the guard sees it.
//!
//! The guard stays free of any I/O: a backend implements [`RemoteState`] and the guard
//! awaits it. Every failure is a [`StateError`]; the route's `state_failure` decides
//! whether the guard then falls back to this replica's own state (`fail_open`,
//! marked `degraded`) or answers 503 `state_unavailable` (`fail_closed`).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::ratelimit::{BucketKey, Take};
use crate::replay::ReplayCheck;

/// The shared-state backend failed or was too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The round trip exceeded the configured timeout.
    #[error("shared state timed out")]
    Timeout,
    /// The backend refused, reset or answered something unexpected.
    #[error("shared state failed")]
    Failed,
    /// The circuit breaker is open after repeated failures; no call was made.
    #[error("shared state circuit open")]
    CircuitOpen,
}

/// Which operation of the shared state a failure or fallback concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateOp {
    /// Replay cache.
    Replay,
    /// Rate limits.
    RateLimit,
    /// Delivered-event lookup and marking.
    Dedupe,
}

impl StateOp {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateOp::Replay => "replay",
            StateOp::RateLimit => "rate_limit",
            StateOp::Dedupe => "dedupe",
        }
    }
}

/// Shared state consulted by the guard.
pub trait RemoteState: Send + Sync {
    /// Remembers `signature` for `ttl_secs`; `Replayed` when it was already there.
    fn check_replay(
        &self,
        signature: &[u8; 32],
        ttl_secs: u64,
    ) -> impl Future<Output = Result<ReplayCheck, StateError>> + Send;

    /// Takes one token from the bucket for `key` (created full with `burst`).
    fn take(
        &self,
        key: &BucketKey<'_>,
        rate_per_sec: f64,
        burst: u32,
    ) -> impl Future<Output = Result<Take, StateError>> + Send;

    /// Whether `event_id` of `app` was already delivered with a 2xx.
    fn was_delivered(
        &self,
        app: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// Records that `event_id` of `app` was delivered with a 2xx, for `ttl_secs`.
    fn mark_delivered(
        &self,
        app: &str,
        event_id: &str,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
}

/// No shared state: everything stays in this replica.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnly;

impl RemoteState for LocalOnly {
    async fn check_replay(&self, _: &[u8; 32], _: u64) -> Result<ReplayCheck, StateError> {
        Err(StateError::Failed)
    }
    async fn take(&self, _: &BucketKey<'_>, _: f64, _: u32) -> Result<Take, StateError> {
        Err(StateError::Failed)
    }
    async fn was_delivered(&self, _: &str, _: &str) -> Result<bool, StateError> {
        Err(StateError::Failed)
    }
    async fn mark_delivered(&self, _: &str, _: &str, _: u64) -> Result<(), StateError> {
        Err(StateError::Failed)
    }
}

/// Runs a future that never waits (the guard without remote state) to completion.
pub(crate) fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::hint::spin_loop();
    }
}
