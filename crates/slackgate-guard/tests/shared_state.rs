//! The pipeline over shared state (a scripted `RemoteState`): who answers each of the
//! replay, dedupe and rate-limit questions, and what `fail_open` and `fail_closed` do
//! when the shared state fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use slackgate_fixtures::policy::compiled;
use slackgate_guard::{
    Action, BucketKey, Decision, FakeClock, Guard, GuardSettings, Inbound, Reason, RemoteState,
    ReplayCheck, StateError, StateOp, Take,
};
use slackgate_policy::{Policy, SecretSource};
use slackgate_slack::SigningKey;

const NOW: u64 = 1_800_000_000;
const SECRET: &str = "guard-test-secret-0123456789abcdef";
const SETTINGS: GuardSettings = GuardSettings {
    max_clock_skew: Duration::from_secs(300),
};

struct Env;

impl SecretSource for Env {
    fn env(&self, _: &str) -> Option<String> {
        Some(SECRET.into())
    }
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Shared state whose every operation either fails or answers as scripted.
#[derive(Default)]
struct Scripted {
    fail_replay: AtomicBool,
    fail_dedupe: AtomicBool,
    fail_take: AtomicBool,
    replayed: AtomicBool,
}

fn answer<T>(fail: &AtomicBool, v: T) -> Result<T, StateError> {
    if fail.load(Ordering::SeqCst) {
        Err(StateError::Timeout)
    } else {
        Ok(v)
    }
}

impl RemoteState for Scripted {
    async fn check_replay(&self, _: &[u8; 32], _: u64) -> Result<ReplayCheck, StateError> {
        let check = if self.replayed.load(Ordering::SeqCst) {
            ReplayCheck::Replayed
        } else {
            ReplayCheck::Fresh
        };
        answer(&self.fail_replay, check)
    }
    async fn take(&self, _: &BucketKey<'_>, _: f64, _: u32) -> Result<Take, StateError> {
        answer(&self.fail_take, Take::Allowed)
    }
    async fn was_delivered(&self, _: &str, _: &str) -> Result<bool, StateError> {
        answer(&self.fail_dedupe, false)
    }
    async fn mark_delivered(&self, _: &str, _: &str, _: u64) -> Result<(), StateError> {
        Ok(())
    }
}

fn policy(state_failure: &str) -> Policy {
    let text = format!(
        "version: 1\napps:\n  app:\n    signing_secrets: [{{ id: current, env: S1 }}]\nupstreams:\n  bot: {{ targets: [\"127.0.0.1:3000\"] }}\nroutes:\n  - {{ name: r, path: /s, app: app, upstream: bot, dedupe: event_id, state_failure: {state_failure}, rate_limits: [{{ per: team, rate: 10/s, burst: 10 }}] }}\n"
    );
    compiled(&text, &Env, NOW)
}

struct Req {
    body: Vec<u8>,
    ts: String,
    sig: String,
}

fn event() -> Req {
    let body = slackgate_fixtures::fixture("event_app_mention.json");
    let ts = NOW.to_string();
    let sig = SigningKey::new("k", SECRET.as_bytes())
        .unwrap()
        .sign(&ts, &body);
    Req { body, ts, sig }
}

fn decide<'r>(guard: &Guard<FakeClock>, remote: &Scripted, p: &Policy, r: &'r Req) -> Decision<'r> {
    let inbound = Inbound {
        client_ip: "192.0.2.7".parse().unwrap(),
        signature: Some(r.sig.as_bytes()),
        timestamp: Some(r.ts.as_bytes()),
        content_type: Some("application/json"),
        body: &r.body,
    };
    let route = p.routes.by_name("r").unwrap();
    let mut f = std::pin::pin!(guard.decide_with(Some(remote), route, &inbound, &SETTINGS));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(d) = f.as_mut().poll(&mut cx) {
            return d;
        }
    }
}

fn guard() -> Guard<FakeClock> {
    Guard::new(FakeClock::at(NOW), 1000, 1000)
}

#[test]
fn fail_open_answers_from_this_replica_and_says_so() {
    let p = policy("fail_open");
    let (g, r) = (guard(), event());
    let down = Scripted::default();
    for fail in [&down.fail_replay, &down.fail_dedupe, &down.fail_take] {
        fail.store(true, Ordering::SeqCst);
    }
    let d = decide(&g, &down, &p, &r);
    assert_eq!((d.reason, d.action), (Reason::Allowed, Action::Forward));
    assert_eq!(
        d.degraded,
        [StateOp::Replay, StateOp::Dedupe, StateOp::RateLimit]
    );
    assert!(d.mark_delivered);
    // This replica remembered the signature.
    let d = decide(&g, &down, &p, &r);
    assert_eq!(
        (d.reason, d.degraded),
        (Reason::Replayed, vec![StateOp::Replay])
    );
}

/// A signed body that cannot be decoded still reports that its replay check fell back
/// to this replica (it was once dropped, so the fallback went uncounted).
#[test]
fn a_malformed_payload_keeps_the_replay_fallback() {
    let p = policy("fail_open");
    let g = guard();
    let body = b"{not json".to_vec();
    let ts = NOW.to_string();
    let sig = SigningKey::new("k", SECRET.as_bytes())
        .unwrap()
        .sign(&ts, &body);
    let r = Req { body, ts, sig };
    let down = Scripted::default();
    down.fail_replay.store(true, Ordering::SeqCst);
    let d = decide(&g, &down, &p, &r);
    assert_eq!(
        (d.reason, d.degraded),
        (Reason::MalformedPayload, vec![StateOp::Replay])
    );
}

#[test]
fn fail_closed_answers_state_unavailable_where_the_shared_state_failed() {
    let p = policy("fail_closed");
    let r = event();
    for (op, has_facts) in [
        (StateOp::Replay, false),
        (StateOp::Dedupe, true),
        (StateOp::RateLimit, true),
    ] {
        let remote = Scripted::default();
        match op {
            StateOp::Replay => &remote.fail_replay,
            StateOp::Dedupe => &remote.fail_dedupe,
            StateOp::RateLimit | StateOp::Custody => &remote.fail_take,
        }
        .store(true, Ordering::SeqCst);
        let d = decide(&guard(), &remote, &p, &r);
        assert_eq!(
            (d.reason, d.action, d.status),
            (Reason::StateUnavailable, Action::Respond, 503),
            "{op:?}"
        );
        assert_eq!(d.rule.unwrap().as_str(), op.rule());
        assert_eq!(d.secret_id.as_deref(), Some("current"));
        assert_eq!(d.facts.is_some(), has_facts, "{op:?}");
        assert!(d.degraded.is_empty() && !d.mark_delivered, "{op:?}");
    }
}

#[test]
fn the_shared_answer_wins_and_the_local_cache_stays_warm() {
    let p = policy("fail_open");
    let (g, r) = (guard(), event());
    let remote = Scripted::default();
    remote.replayed.store(true, Ordering::SeqCst);
    assert_eq!(decide(&g, &remote, &p, &r).reason, Reason::Replayed);
    // The shared state says fresh, whatever this replica saw before.
    remote.replayed.store(false, Ordering::SeqCst);
    assert_eq!(decide(&g, &remote, &p, &r).reason, Reason::Allowed);
    // When it fails, this replica still knows the signature.
    remote.fail_replay.store(true, Ordering::SeqCst);
    assert_eq!(decide(&g, &remote, &p, &r).reason, Reason::Replayed);
}
