//! Shared state outside this process (Redis for several replicas), as the guard sees it.
//!
//! The guard stays free of any I/O: a backend implements [`RemoteState`] and the guard
//! awaits it. Every failure is a [`StateError`]; the route's `state_failure` decides
//! whether the guard then falls back to this replica's own state (`fail_open`,
//! marked `degraded`) or answers 503 `state_unavailable` (`fail_closed`).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use slackgate_policy::StateFailure;

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
    /// Custody capabilities (response URLs, workflow tokens) shared by the replicas.
    Custody,
}

impl StateOp {
    /// Every operation: the closed set of the `op` metric label.
    pub const ALL: [StateOp; 4] = [
        StateOp::Replay,
        StateOp::RateLimit,
        StateOp::Dedupe,
        StateOp::Custody,
    ];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateOp::Replay => "replay",
            StateOp::RateLimit => "rate_limit",
            StateOp::Dedupe => "dedupe",
            StateOp::Custody => "custody",
        }
    }

    /// The audit `rule` of a `state_unavailable` answer caused by this operation.
    pub const fn rule(self) -> &'static str {
        match self {
            StateOp::Replay => "state.replay",
            StateOp::RateLimit => "state.rate_limit",
            StateOp::Dedupe => "state.dedupe",
            StateOp::Custody => "state.custody",
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

/// Who answers a question about shared state: see [`ask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer<T> {
    /// The shared state answered.
    Shared(T),
    /// This replica's own state answers: there is no shared state, or it failed on a
    /// `fail_open` route.
    Local,
}

/// Asks the shared state `op` (`call` is `None` without shared state), and decides who
/// answers: the shared state when it did; this replica's own state when there is none or
/// when it failed on a `fail_open` route (the failure is recorded in `degraded`, once per
/// operation); nobody when it failed on a `fail_closed` route, which is `Err(op)`: the
/// request is answered `state_unavailable`.
pub(crate) async fn ask<T>(
    call: Option<impl Future<Output = Result<T, StateError>>>,
    op: StateOp,
    failure: StateFailure,
    degraded: &mut Vec<StateOp>,
) -> Result<Answer<T>, StateOp> {
    let Some(call) = call else {
        return Ok(Answer::Local);
    };
    match call.await {
        Ok(v) => Ok(Answer::Shared(v)),
        Err(_) if failure == StateFailure::FailOpen => {
            if !degraded.contains(&op) {
                degraded.push(op);
            }
            Ok(Answer::Local)
        }
        Err(_) => Err(op),
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

#[cfg(test)]
mod tests {
    use super::*;

    type Call = std::future::Ready<Result<u8, StateError>>;

    fn fails() -> Option<Call> {
        Some(std::future::ready(Err(StateError::Timeout)))
    }

    fn answers() -> Option<Call> {
        Some(std::future::ready(Ok(7)))
    }

    #[test]
    fn who_answers() {
        use StateFailure::{FailClosed, FailOpen};
        for failure in [FailOpen, FailClosed] {
            let mut degraded = Vec::new();
            let ask_ = |call, degraded: &mut Vec<StateOp>| {
                run_ready(ask(call, StateOp::Dedupe, failure, degraded))
            };
            assert_eq!(ask_(answers(), &mut degraded), Ok(Answer::Shared(7)));
            assert!(degraded.is_empty());
            let fallback = match failure {
                FailOpen => Ok(Answer::Local),
                FailClosed => Err(StateOp::Dedupe),
            };
            assert_eq!(ask_(fails(), &mut degraded), fallback);
            assert_eq!(ask_(fails(), &mut degraded), fallback);
            let recorded: &[StateOp] = match failure {
                FailOpen => &[StateOp::Dedupe],
                FailClosed => &[],
            };
            assert_eq!(degraded, recorded, "each operation is recorded once");
            let mut untouched = Vec::new();
            assert_eq!(
                run_ready(ask(None::<Call>, StateOp::Replay, failure, &mut untouched)),
                Ok(Answer::Local)
            );
            assert!(untouched.is_empty());
        }
    }

    #[test]
    fn labels_and_rules_are_one_closed_set() {
        let labels: Vec<&str> = StateOp::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(labels, ["replay", "rate_limit", "dedupe", "custody"]);
        for op in StateOp::ALL {
            assert_eq!(op.rule(), format!("state.{}", op.as_str()));
        }
    }
}
