//! Shared state outside this process (Redis for several replicas), as the guard sees it.
//!
//! The guard stays free of any I/O: a backend implements [`RemoteState`] and the guard
//! awaits it. Every failure is a [`StateError`]; the route's `state_failure` decides
//! whether the guard then falls back to this replica's own state (`fail_open`,
//! marked `degraded`) or answers 503 `state_unavailable` (`fail_closed`).
//!
//! An inbound decision asks all its questions at once ([`RemoteState::ask_all`] with its
//! [`Ask`]s, driven by [`Questions`]); a backend that answers them together makes the
//! decision one round trip, and a failure still falls back per operation.

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

    /// Answers the questions of one inbound decision in their order, up to the first
    /// answer that ends the decision ([`Told::ends`]) or the first failure, which is then
    /// [`Asked::failed`]. The guard asks again from the next question after a fallback.
    ///
    /// By default each question is one call of the methods above, in sequence; a backend
    /// that can answer them together (Redis: one script) does so in one round trip.
    fn ask_all(&self, asks: &[Ask<'_>]) -> impl Future<Output = Asked> + Send {
        async move {
            let mut told = Vec::with_capacity(asks.len());
            for ask in asks {
                let answer = match *ask {
                    Ask::Replay {
                        signature,
                        ttl_secs,
                        ..
                    } => self
                        .check_replay(signature, ttl_secs)
                        .await
                        .map(Told::Replay),
                    Ask::Delivered { app, event_id } => {
                        self.was_delivered(app, event_id).await.map(Told::Delivered)
                    }
                    Ask::Take {
                        ref key,
                        rate_per_sec,
                        burst,
                        ..
                    } => self.take(key, rate_per_sec, burst).await.map(Told::Take),
                };
                match answer {
                    Ok(t) => {
                        let ends = t.ends();
                        told.push(t);
                        if ends {
                            break;
                        }
                    }
                    Err(e) => {
                        return Asked {
                            told,
                            failed: Some(e),
                        }
                    }
                }
            }
            Asked { told, failed: None }
        }
    }
}

/// `R` asked one question per call (the default of [`RemoteState::ask_all`]), whatever
/// its own `ask_all` does: what a decision cost before its questions went together.
#[derive(Debug, Clone, Copy)]
pub struct OneAtATime<'r, R>(pub &'r R);

impl<R: RemoteState> RemoteState for OneAtATime<'_, R> {
    async fn check_replay(&self, sig: &[u8; 32], ttl: u64) -> Result<ReplayCheck, StateError> {
        self.0.check_replay(sig, ttl).await
    }
    async fn take(&self, key: &BucketKey<'_>, rate: f64, burst: u32) -> Result<Take, StateError> {
        self.0.take(key, rate, burst).await
    }
    async fn was_delivered(&self, app: &str, id: &str) -> Result<bool, StateError> {
        self.0.was_delivered(app, id).await
    }
    async fn mark_delivered(&self, app: &str, id: &str, ttl: u64) -> Result<(), StateError> {
        self.0.mark_delivered(app, id, ttl).await
    }
}

/// One question of an inbound decision to the shared state ([`RemoteState::ask_all`]).
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// [`RemoteState::check_replay`] of a request to a route of `app`.
    Replay {
        /// The route's app (a backend may keep the app's questions together).
        app: &'a str,
        /// The verified signature.
        signature: &'a [u8; 32],
        /// How long to remember it.
        ttl_secs: u64,
    },
    /// [`RemoteState::was_delivered`].
    Delivered {
        /// The route's app.
        app: &'a str,
        /// The event id.
        event_id: &'a str,
    },
    /// [`RemoteState::take`] from a bucket of a route of `app`.
    Take {
        /// The route's app.
        app: &'a str,
        /// The bucket.
        key: BucketKey<'a>,
        /// Its rule's rate.
        rate_per_sec: f64,
        /// Its rule's burst.
        burst: u32,
    },
}

impl Ask<'_> {
    /// The operation this question belongs to.
    pub const fn op(&self) -> StateOp {
        match self {
            Ask::Replay { .. } => StateOp::Replay,
            Ask::Delivered { .. } => StateOp::Dedupe,
            Ask::Take { .. } => StateOp::RateLimit,
        }
    }
}

/// The answer to one [`Ask`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Told {
    /// To [`Ask::Replay`].
    Replay(ReplayCheck),
    /// To [`Ask::Delivered`]: whether the event was delivered.
    Delivered(bool),
    /// To [`Ask::Take`].
    Take(Take),
}

impl Told {
    /// Whether this answer ends the decision, so that no later question is asked: a
    /// replay, a delivered event, an empty bucket.
    pub fn ends(&self) -> bool {
        matches!(
            self,
            Told::Replay(ReplayCheck::Replayed)
                | Told::Delivered(true)
                | Told::Take(Take::Limited { .. })
        )
    }

    /// The operation this is an answer of.
    pub const fn op(&self) -> StateOp {
        match self {
            Told::Replay(_) => StateOp::Replay,
            Told::Delivered(_) => StateOp::Dedupe,
            Told::Take(_) => StateOp::RateLimit,
        }
    }
}

/// What [`RemoteState::ask_all`] answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Asked {
    /// The answers in the order asked, up to the first that ends the decision.
    pub told: Vec<Told>,
    /// Why the question after the answers was not answered, if it failed.
    pub failed: Option<StateError>,
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

/// Who answers a question about shared state: see [`Questions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer<T> {
    /// The shared state answered.
    Shared(T),
    /// This replica's own state answers: there is no shared state, or it failed on a
    /// `fail_open` route.
    Local,
}

/// Who answers `op` after the shared state failed on it: this replica's own state on a
/// `fail_open` route (the failure is recorded in `degraded`, once per operation); nobody on
/// a `fail_closed` route, which is `Err(op)`: the request is answered `state_unavailable`.
fn fallback<T>(
    op: StateOp,
    failure: StateFailure,
    degraded: &mut Vec<StateOp>,
) -> Result<Answer<T>, StateOp> {
    if failure != StateFailure::FailOpen {
        return Err(op);
    }
    if !degraded.contains(&op) {
        degraded.push(op);
    }
    Ok(Answer::Local)
}

/// The questions of one inbound decision ([`Ask`]), asked in their order of the shared
/// state in as few calls as the backend allows. Each is answered by the shared state when
/// it did; by this replica's own state when there is none; after a failure, as
/// [`fallback`] says. A question the backend failed on falls back on its own,
/// and the questions after it are asked again in a new call, as each was asked by itself
/// before. The guard takes the answers one by one ([`Questions::next`]) and stops at the
/// first that ends the decision, as the backend does.
pub(crate) struct Questions<'q, R> {
    remote: Option<&'q R>,
    asks: &'q [Ask<'q>],
    failure: StateFailure,
    next: usize,
    told: std::vec::IntoIter<Told>,
    /// The backend failed on the question after the answers in `told`.
    failed: bool,
}

impl<'q, R: RemoteState> Questions<'q, R> {
    pub(crate) fn new(remote: Option<&'q R>, asks: &'q [Ask<'q>], failure: StateFailure) -> Self {
        Self {
            remote,
            asks,
            failure,
            next: 0,
            told: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Who answers the next question (see [`Questions`]); the shared state is called when
    /// no answer of an earlier call is left.
    pub(crate) async fn next(
        &mut self,
        degraded: &mut Vec<StateOp>,
    ) -> Result<Answer<Told>, StateOp> {
        let from = self.next;
        self.next += 1;
        let (Some(remote), Some(op)) = (self.remote, self.asks.get(from).map(Ask::op)) else {
            return Ok(Answer::Local);
        };
        if let Some(told) = self.told.next() {
            return self.checked(told, op, degraded);
        }
        if !std::mem::take(&mut self.failed) {
            let rest = self.asks.get(from..).unwrap_or_default();
            let asked = remote.ask_all(rest).await;
            self.told = asked.told.into_iter();
            if let Some(told) = self.told.next() {
                self.failed = asked.failed.is_some();
                return self.checked(told, op, degraded);
            }
        }
        fallback(op, self.failure, degraded)
    }

    /// `told`, when it answers `op`; else the backend answered out of order: a failure.
    fn checked(
        &mut self,
        told: Told,
        op: StateOp,
        degraded: &mut Vec<StateOp>,
    ) -> Result<Answer<Told>, StateOp> {
        if told.op() == op {
            return Ok(Answer::Shared(told));
        }
        self.told = Vec::new().into_iter();
        self.failed = false;
        fallback(op, self.failure, degraded)
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
    use parking_lot::Mutex;

    /// Shared state that answers every question fresh, allowed, undelivered, except the
    /// operations it fails; it records the questions of each call.
    #[derive(Default)]
    struct Backend {
        fails: Vec<StateOp>,
        calls: Mutex<Vec<Vec<StateOp>>>,
    }

    impl Backend {
        fn failing(fails: &[StateOp]) -> Self {
            Self {
                fails: fails.to_vec(),
                ..Self::default()
            }
        }
        fn answer<T>(&self, op: StateOp, v: T) -> Result<T, StateError> {
            if self.fails.contains(&op) {
                Err(StateError::Timeout)
            } else {
                Ok(v)
            }
        }
    }

    impl RemoteState for Backend {
        async fn check_replay(&self, _: &[u8; 32], _: u64) -> Result<ReplayCheck, StateError> {
            self.answer(StateOp::Replay, ReplayCheck::Fresh)
        }
        async fn take(&self, _: &BucketKey<'_>, _: f64, _: u32) -> Result<Take, StateError> {
            self.answer(StateOp::RateLimit, Take::Allowed)
        }
        async fn was_delivered(&self, _: &str, _: &str) -> Result<bool, StateError> {
            self.answer(StateOp::Dedupe, false)
        }
        async fn mark_delivered(&self, _: &str, _: &str, _: u64) -> Result<(), StateError> {
            Ok(())
        }
        async fn ask_all(&self, asks: &[Ask<'_>]) -> Asked {
            self.calls.lock().push(asks.iter().map(Ask::op).collect());
            let mut told = Vec::new();
            for ask in asks {
                let answer = match ask.op() {
                    StateOp::Replay => Told::Replay(ReplayCheck::Fresh),
                    StateOp::Dedupe => Told::Delivered(false),
                    _ => Told::Take(Take::Allowed),
                };
                if self.fails.contains(&ask.op()) {
                    return Asked {
                        told,
                        failed: Some(StateError::Failed),
                    };
                }
                told.push(answer);
            }
            Asked { told, failed: None }
        }
    }

    const SIG: [u8; 32] = [7; 32];

    fn asks() -> [Ask<'static>; 3] {
        [
            Ask::Replay {
                app: "a",
                signature: &SIG,
                ttl_secs: 1,
            },
            Ask::Delivered {
                app: "a",
                event_id: "Ev1",
            },
            Ask::Take {
                app: "a",
                key: BucketKey {
                    route: "r",
                    rule: 0,
                    per: "team",
                    value: "T1",
                },
                rate_per_sec: 1.0,
                burst: 1,
            },
        ]
    }

    /// Every answer of the questions of `asks()`, on `failure`, with what was degraded.
    fn answers(
        backend: Option<&Backend>,
        failure: StateFailure,
    ) -> (Vec<Result<Answer<Told>, StateOp>>, Vec<StateOp>) {
        let asks = asks();
        let mut q = Questions::new(backend, &asks, failure);
        let mut degraded = Vec::new();
        let got = (0..asks.len())
            .map(|_| run_ready(q.next(&mut degraded)))
            .collect();
        (got, degraded)
    }

    #[test]
    fn who_answers() {
        use StateFailure::{FailClosed, FailOpen};
        let shared = [
            Ok(Answer::Shared(Told::Replay(ReplayCheck::Fresh))),
            Ok(Answer::Shared(Told::Delivered(false))),
            Ok(Answer::Shared(Told::Take(Take::Allowed))),
        ];
        for failure in [FailOpen, FailClosed] {
            // All in one call.
            let backend = Backend::default();
            assert_eq!(answers(Some(&backend), failure), (shared.to_vec(), vec![]));
            assert_eq!(backend.calls.lock().len(), 1);
            // Without shared state: this replica answers, nothing is degraded.
            let (got, degraded) = answers(None, failure);
            assert!(got.iter().all(|a| *a == Ok(Answer::Local)) && degraded.is_empty());
            // A failed question falls back on its own; the next ones are asked again.
            let backend = Backend::failing(&[StateOp::Dedupe]);
            let (got, degraded) = answers(Some(&backend), failure);
            let fallback = match failure {
                FailOpen => Ok(Answer::Local),
                FailClosed => Err(StateOp::Dedupe),
            };
            assert_eq!(got, [shared[0], fallback, shared[2]]);
            let recorded: &[StateOp] = match failure {
                FailOpen => &[StateOp::Dedupe],
                FailClosed => &[],
            };
            assert_eq!(degraded, recorded);
            use StateOp::{Dedupe, RateLimit, Replay};
            assert_eq!(
                *backend.calls.lock(),
                [vec![Replay, Dedupe, RateLimit], vec![RateLimit]]
            );
        }
    }

    #[test]
    fn the_default_asks_each_question_in_turn_and_stops_at_the_end_or_a_failure() {
        let asks = asks();
        let backend = Backend::failing(&[StateOp::Dedupe]);
        assert_eq!(
            run_ready(OneAtATime(&backend).ask_all(&asks)),
            Asked {
                told: vec![Told::Replay(ReplayCheck::Fresh)],
                failed: Some(StateError::Timeout),
            }
        );
        assert_eq!(
            run_ready(OneAtATime(&Backend::default()).ask_all(&asks))
                .told
                .len(),
            3
        );
        assert!(Told::Take(Take::Limited {
            retry_after_secs: 1
        })
        .ends());
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
