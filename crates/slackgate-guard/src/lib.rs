//! The decision pipeline of slackgate over one immutable policy snapshot.
//!
//! Given a route, the client address and the raw request (headers that matter and the
//! whole body), the guard runs the checks of the request pipeline in order — source IP,
//! `ssl_check`, signature with every live secret, replay, facts, app pin, scope, rate
//! limits — and returns a [`Decision`]: a value, not a side effect.
//!
//! The pipeline has two typed stages, because the body is read between them:
//! [`Guard::admit`] checks the client address before any body byte is read and yields an
//! [`Admitted`] request (or the answer), and [`Guard::decide_admitted_with`] runs the rest
//! on the whole body and merges a shadowed source-IP denial into the decision. The gateway
//! (`slackgate run`) and `slackgate explain` both call exactly these two, so they cannot
//! disagree.
//!
//! The guard owns the state that must outlive policy reloads: the replay cache and
//! the rate-limit buckets. Time comes from an injected [`Clock`].
//!
//! This crate must not depend on pingora, tokio or any I/O: `slackgate explain` runs it
//! with no network, and the proxy runs it inside pingora.

mod client_ip;
mod clock;
mod ratelimit;
mod reason;
mod remote;
mod replay;
mod scope;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use slackgate_policy::{Dedupe, LimitKey, Mode, OnDeny, Route, StateFailure};
use slackgate_slack::{Facts, Lifecycle, SignatureError};

pub use client_ip::{canonical, client_ip, parse_entry, IpText};
pub use clock::{Clock, FakeClock, SystemClock};
pub use ratelimit::{BucketKey, RateLimiter, Take};
pub use reason::Reason;
pub use remote::{LocalOnly, RemoteState, StateError, StateOp};
pub use replay::{ReplayCache, ReplayCheck};

/// How long a delivered event id is remembered for `dedupe: event_id`: Slack retries
/// within minutes (three times: at once, after 1 and after 5 minutes).
pub const DEDUPE_TTL: Duration = Duration::from_secs(3600);

/// The rule that decided a request, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A fixed part of the pipeline or policy, e.g. `source_ips.deny` or `allow.teams`.
    Static(&'static str),
    /// A rate-limit rule, by its label from the policy.
    RateLimit(Arc<str>),
}

impl Rule {
    /// The rule as text.
    pub fn as_str(&self) -> &str {
        match self {
            Rule::Static(s) => s,
            Rule::RateLimit(s) => s,
        }
    }
}

/// What the gateway does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send it to the route's upstream.
    Forward,
    /// Answer it at the gateway with [`Decision::status`].
    Respond,
}

/// The outcome of the pipeline for one request.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// Why.
    pub reason: Reason,
    /// Forward or answer.
    pub action: Action,
    /// The status the gateway answers with when `action` is `Respond`.
    pub status: u16,
    /// True when the route is in shadow mode and the request would have been denied.
    pub shadow: bool,
    /// Which rule decided, when one did.
    pub rule: Option<Rule>,
    /// The id of the secret whose signature matched.
    pub secret_id: Option<Arc<str>>,
    /// Facts of the verified body, when it got that far.
    pub facts: Option<Facts<'a>>,
    /// Seconds for `Retry-After`, set on `rate_limited`.
    pub retry_after: Option<u32>,
    /// Whether the answer carries `X-Slack-No-Retry: 1`.
    pub no_retry: bool,
    /// Shared-state operations that failed and fell back to this replica's state.
    pub degraded: Vec<StateOp>,
    /// Whether a 2xx from the upstream should be recorded for `dedupe: event_id`.
    pub mark_delivered: bool,
}

impl Decision<'_> {
    /// The gateway's own answer for `reason`, with the reason's status and nothing else set
    /// (also for answers decided outside the guard, such as `body_too_large`).
    pub fn respond(reason: Reason) -> Self {
        Decision {
            reason,
            action: Action::Respond,
            status: reason.status(),
            shadow: false,
            rule: None,
            secret_id: None,
            facts: None,
            retry_after: None,
            no_retry: false,
            degraded: Vec::new(),
            mark_delivered: false,
        }
    }

    /// Whether the body of a gateway answer should be the `url_verification` challenge.
    pub fn challenge(&self) -> Option<&str> {
        if self.reason == Reason::UrlVerification {
            self.facts.as_ref().and_then(|f| f.challenge.as_deref())
        } else {
            None
        }
    }

    /// The lifecycle event this request carries, if any.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        self.facts.as_ref().and_then(|f| f.lifecycle)
    }
}

/// A request whose client address the route's `source_ips` admitted, or denied on a shadow
/// route (the denial is then carried along and reported if nothing else answers).
///
/// Only [`Guard::admit`] makes one, so holding it proves step 2 ran.
#[derive(Debug, Clone)]
pub struct Admitted {
    client_ip: IpAddr,
    // Boxed (as `admit`'s answer is) so that the common case, an address admitted
    // outright, stays small.
    shadowed: Option<Box<Decision<'static>>>,
}

impl Admitted {
    /// The client address that was checked.
    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    /// The would-be `ip_denied` of a shadow route, if the address was denied.
    pub fn shadowed(&self) -> Option<&Decision<'static>> {
        self.shadowed.as_deref()
    }
}

/// The parts of a request the pipeline reads. Header values are raw bytes as received.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The client address (see [`client_ip`]).
    pub client_ip: IpAddr,
    /// `X-Slack-Signature`.
    pub signature: Option<&'a [u8]>,
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: Option<&'a [u8]>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The whole body.
    pub body: &'a [u8],
}

/// Settings of the pipeline that come from the server config, not the policy.
#[derive(Debug, Clone, Copy)]
pub struct GuardSettings {
    /// The largest allowed difference between the request timestamp and now, either way.
    pub max_clock_skew: Duration,
}

/// The decision pipeline with its long-lived state.
#[derive(Debug)]
pub struct Guard<C: Clock = SystemClock> {
    replay: ReplayCache,
    limiter: RateLimiter,
    delivered: ReplayCache,
    dedupe_keys: std::collections::hash_map::RandomState,
    clock: C,
}

impl<C: Clock> Guard<C> {
    /// A guard whose replay cache and rate limiter hold at most the given number of entries.
    pub fn new(clock: C, max_replay_entries: usize, max_rate_limit_keys: usize) -> Self {
        Self {
            replay: ReplayCache::new(max_replay_entries),
            limiter: RateLimiter::new(max_rate_limit_keys),
            delivered: ReplayCache::new(max_replay_entries),
            dedupe_keys: std::collections::hash_map::RandomState::new(),
            clock,
        }
    }

    fn dedupe_key(&self, app: &str, event_id: &str) -> [u8; 32] {
        use std::hash::BuildHasher;
        let mut key = [0u8; 32];
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            let h = self.dedupe_keys.hash_one((app, event_id, i));
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        key
    }

    /// Records locally that `event_id` of `app` was delivered with a 2xx.
    pub fn mark_delivered_local(&self, app: &str, event_id: &str) {
        let now = clock::unix_secs(self.clock.now());
        let ttl = i64::try_from(DEDUPE_TTL.as_secs()).unwrap_or(i64::MAX);
        let key = self.dedupe_key(app, event_id);
        self.delivered
            .check_and_insert(&key, now.saturating_add(ttl), now);
    }

    /// Records that `event_id` of `app` was delivered with a 2xx: in the shared state
    /// when there is one (falling back to this replica on failure), else locally.
    /// Returns the failed operation when the fallback was used.
    pub async fn mark_delivered<R: RemoteState>(
        &self,
        remote: Option<&R>,
        app: &str,
        event_id: &str,
    ) -> Option<StateOp> {
        self.mark_delivered_local(app, event_id);
        match remote {
            None => None,
            Some(r) => r
                .mark_delivered(app, event_id, DEDUPE_TTL.as_secs())
                .await
                .err()
                .map(|_| StateOp::Dedupe),
        }
    }

    /// The guard's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The replay cache.
    pub fn replay_cache(&self) -> &ReplayCache {
        &self.replay
    }

    /// The rate limiter.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Step 2 of the pipeline: admits the client address by the route's `source_ips`.
    ///
    /// Runs before the body is read. `Err` is the answer to send (an enforced
    /// `ip_denied`); on a shadow route a denial is kept in the [`Admitted`] request and
    /// the request goes on.
    pub fn admit(&self, route: &Route, ip: IpAddr) -> Result<Admitted, Box<Decision<'static>>> {
        let shadowed = match self.check_source_ip(route, ip) {
            None => None,
            Some(d) => {
                let d = Box::new(apply_mode(route, d));
                if d.action == Action::Respond {
                    return Err(d);
                }
                Some(d)
            }
        };
        Ok(Admitted {
            client_ip: ip,
            shadowed,
        })
    }

    /// Steps 4 to 9 for an [`Admitted`] request, without shared state: see
    /// [`Guard::decide_admitted_with`].
    pub fn decide_admitted<'a>(
        &self,
        admitted: Admitted,
        route: &Route,
        req: &Inbound<'a>,
        settings: &GuardSettings,
    ) -> Decision<'a> {
        remote::run_ready(
            self.decide_admitted_with::<LocalOnly>(None, admitted, route, req, settings),
        )
    }

    /// Steps 4 to 9 of the pipeline for an [`Admitted`] request on its fully read body:
    /// the decision the gateway acts on and records, and `explain` prints.
    ///
    /// The first denial wins: when the request is forwarded and step 2 was a shadowed
    /// `ip_denied`, that is the decision's reason and rule (with `shadow: true`), whatever
    /// the later steps would have said. When a later step answers (an enforced signature
    /// failure, `ssl_check`, `url_verification`, `deduplicated`, `state_unavailable`),
    /// that answer is the decision.
    /// The client address is the admitted one; `req.client_ip` is not read.
    pub async fn decide_admitted_with<'a, R: RemoteState>(
        &self,
        remote: Option<&R>,
        admitted: Admitted,
        route: &Route,
        req: &Inbound<'a>,
        settings: &GuardSettings,
    ) -> Decision<'a> {
        let req = Inbound {
            client_ip: admitted.client_ip,
            ..*req
        };
        let mut d = self.decide_with(remote, route, &req, settings).await;
        if let (Some(first), Action::Forward) = (admitted.shadowed, d.action) {
            d.reason = first.reason;
            d.status = first.status;
            d.rule = first.rule;
            d.shadow = true;
        }
        d
    }

    /// Checks the client address against the route's `source_ips`, ignoring the route's
    /// mode ([`Guard::admit`] is the pipeline step).
    pub fn check_source_ip(&self, route: &Route, ip: IpAddr) -> Option<Decision<'static>> {
        if route.source_ips.permits(canonical(ip)) {
            return None;
        }
        let mut d = Decision::respond(Reason::IpDenied);
        d.rule = Some(Rule::Static("source_ips"));
        Some(d)
    }

    /// Runs steps 4 to 9 of the pipeline (`ssl_check` to rate limits) on a fully read body,
    /// for a request whose client address was not checked here; the gateway and `explain`
    /// use [`Guard::decide_admitted`] instead.
    ///
    /// A route in shadow mode gets the would-be denial with `shadow: true` and
    /// `action: Forward`, except that verification failures stay enforced unless the
    /// route sets `allow_unverified_shadow`. Gateway answers (`ssl_check`,
    /// `url_verification`) are always answered.
    pub fn decide<'a>(
        &self,
        route: &Route,
        req: &Inbound<'a>,
        settings: &GuardSettings,
    ) -> Decision<'a> {
        remote::run_ready(self.decide_with::<LocalOnly>(None, route, req, settings))
    }

    /// [`Guard::decide`] with shared state: the replay cache, rate-limit buckets and
    /// delivered events live in `remote` when it is given.
    pub async fn decide_with<'a, R: RemoteState>(
        &self,
        remote: Option<&R>,
        route: &Route,
        req: &Inbound<'a>,
        settings: &GuardSettings,
    ) -> Decision<'a> {
        let d = self.evaluate(remote, route, req, settings).await;
        apply_mode(route, d)
    }

    async fn evaluate<'a, R: RemoteState>(
        &self,
        remote: Option<&R>,
        route: &Route,
        req: &Inbound<'a>,
        settings: &GuardSettings,
    ) -> Decision<'a> {
        let mut degraded = Vec::new();
        // Slack's certificate probe carries no event and reaches no bot; it is answered
        // before signature checks, as Slack's own SDKs do.
        if slackgate_slack::is_ssl_check(req.content_type, req.body) {
            return Decision::respond(Reason::SslCheck);
        }

        let now = self.clock.now();
        let now_unix = clock::unix_secs(now);
        let skew = settings.max_clock_skew.as_secs();
        let verified = match slackgate_slack::verify(
            route.app.live_keys(now),
            req.signature,
            req.timestamp,
            req.body,
            now_unix,
            skew,
        ) {
            Ok(v) => v,
            Err(e) => {
                let mut d = Decision::respond(signature_reason(e));
                d.rule = Some(Rule::Static("signature"));
                return d;
            }
        };
        let secret_id = Some(Arc::clone(verified.key.id_arc()));

        let expires = verified
            .timestamp
            .saturating_add(i64::try_from(skew).unwrap_or(i64::MAX));
        let replay = match remote {
            None => self
                .replay
                .check_and_insert(&verified.signature, expires, now_unix),
            Some(r) => {
                let ttl = u64::try_from(expires.saturating_sub(now_unix)).unwrap_or(0) + 1;
                match r.check_replay(&verified.signature, ttl).await {
                    Ok(check) => {
                        // Keep the local cache warm too, so a fallback later still
                        // knows what this replica saw.
                        self.replay
                            .check_and_insert(&verified.signature, expires, now_unix);
                        check
                    }
                    Err(_) if route.state_failure == StateFailure::FailOpen => {
                        degraded.push(StateOp::Replay);
                        self.replay
                            .check_and_insert(&verified.signature, expires, now_unix)
                    }
                    Err(_) => return state_unavailable(secret_id, StateOp::Replay),
                }
            }
        };
        if replay == ReplayCheck::Replayed {
            let mut d = Decision::respond(Reason::Replayed);
            d.rule = Some(Rule::Static("replay"));
            d.secret_id = secret_id;
            d.degraded = degraded;
            return d;
        }

        let facts = match slackgate_slack::parse_facts(req.content_type, req.body) {
            Ok(f) => f,
            Err(_) => {
                let mut d = Decision::respond(Reason::MalformedPayload);
                d.secret_id = secret_id;
                return d;
            }
        };

        let mut d = Decision::respond(Reason::Allowed);
        d.secret_id = secret_id;
        d.degraded = degraded;

        if facts.kind == slackgate_slack::RequestKind::UrlVerification {
            d.reason = Reason::UrlVerification;
            d.status = Reason::UrlVerification.status();
            d.facts = Some(facts);
            return d;
        }

        if let Some(pin) = route.app.api_app_id.as_deref() {
            // Slack leaves `api_app_id` out of global and message shortcuts; for those the
            // verified signature alone ties the request to the app. Every other kind must
            // carry the pinned id.
            let exempt = facts.api_app_id.is_none()
                && matches!(
                    facts.kind,
                    slackgate_slack::RequestKind::Shortcut
                        | slackgate_slack::RequestKind::MessageAction
                );
            if !exempt && facts.api_app_id.as_deref() != Some(pin) {
                d.reason = Reason::AppMismatch;
                d.status = Reason::AppMismatch.status();
                d.rule = Some(Rule::Static("app.api_app_id"));
                d.facts = Some(facts);
                return d;
            }
        }

        if let Some(rule) = scope::denied_by(route, &facts) {
            d.reason = Reason::ScopeDenied;
            d.rule = Some(Rule::Static(rule));
            match route.on_deny {
                OnDeny::Reject => d.status = Reason::ScopeDenied.status(),
                OnDeny::Ack => {
                    d.status = 200;
                    d.no_retry = true;
                }
            }
            d.facts = Some(facts);
            return d;
        }

        if route.dedupe == Some(Dedupe::EventId) {
            if let Some(event_id) = facts.event_id.as_deref() {
                let app = route.app.name.as_ref();
                let local = || {
                    self.delivered
                        .contains(&self.dedupe_key(app, event_id), now_unix)
                };
                let seen = match remote {
                    None => local(),
                    Some(r) => match r.was_delivered(app, event_id).await {
                        Ok(seen) => seen || local(),
                        Err(_) if route.state_failure == StateFailure::FailOpen => {
                            d.degraded.push(StateOp::Dedupe);
                            local()
                        }
                        Err(_) => {
                            let mut u = state_unavailable(d.secret_id, StateOp::Dedupe);
                            u.facts = Some(facts);
                            return u;
                        }
                    },
                };
                if seen {
                    d.reason = Reason::Deduplicated;
                    d.status = Reason::Deduplicated.status();
                    d.rule = Some(Rule::Static("dedupe.event_id"));
                    d.facts = Some(facts);
                    return d;
                }
                d.mark_delivered = true;
            }
        }

        let now_f = clock::unix_secs_f64(now);
        // Only a per-ip rule needs the address as text; build it once if so.
        let ip_text = route
            .rate_limits
            .iter()
            .any(|r| matches!(r.per, LimitKey::Ip))
            .then(|| IpText::new(req.client_ip));
        for (index, rule) in route.rate_limits.iter().enumerate() {
            let value: &str = match rule.per {
                LimitKey::Team => facts
                    .team_id
                    .as_deref()
                    .or(facts.enterprise_id.as_deref())
                    .unwrap_or(""),
                LimitKey::Enterprise => facts.enterprise_id.as_deref().unwrap_or(""),
                LimitKey::User => facts.user_id.as_deref().unwrap_or(""),
                LimitKey::Channel => facts.channel_id.as_deref().unwrap_or(""),
                LimitKey::App => facts.api_app_id.as_deref().unwrap_or(""),
                LimitKey::Route => "",
                LimitKey::Ip => ip_text.as_ref().map_or("", IpText::as_str),
            };
            let key = BucketKey {
                route: &route.name,
                rule: index,
                per: rule.per.as_str(),
                value,
            };
            let local = || {
                self.limiter
                    .take(&key, rule.rate.tokens_per_sec, rule.burst.get(), now_f)
            };
            let taken = match remote {
                None => local(),
                Some(r) => match r
                    .take(&key, rule.rate.tokens_per_sec, rule.burst.get())
                    .await
                {
                    Ok(t) => t,
                    Err(_) if route.state_failure == StateFailure::FailOpen => {
                        if !d.degraded.contains(&StateOp::RateLimit) {
                            d.degraded.push(StateOp::RateLimit);
                        }
                        local()
                    }
                    Err(_) => {
                        let mut u = state_unavailable(d.secret_id, StateOp::RateLimit);
                        u.facts = Some(facts);
                        return u;
                    }
                },
            };
            if let Take::Limited { retry_after_secs } = taken {
                d.reason = Reason::RateLimited;
                d.status = Reason::RateLimited.status();
                d.rule = Some(Rule::RateLimit(Arc::clone(&rule.label)));
                d.retry_after = Some(retry_after_secs);
                d.no_retry = true;
                d.facts = Some(facts);
                return d;
            }
        }

        d.action = Action::Forward;
        d.facts = Some(facts);
        d
    }
}

/// Turns a would-be denial on a shadow route into a logged, forwarded request.
pub fn apply_mode<'a>(route: &Route, mut d: Decision<'a>) -> Decision<'a> {
    if route.mode != Mode::Shadow || d.action == Action::Forward {
        return d;
    }
    let shadowable = match d.reason {
        Reason::SslCheck | Reason::UrlVerification => false,
        r if r.is_verification_failure() => route.allow_unverified_shadow,
        Reason::IpDenied
        | Reason::MalformedPayload
        | Reason::AppMismatch
        | Reason::ScopeDenied
        | Reason::RateLimited => true,
        _ => false,
    };
    if shadowable {
        d.shadow = true;
        d.action = Action::Forward;
        d.no_retry = false;
        d.retry_after = None;
    }
    d
}

/// The answer of a `fail_closed` route whose shared state failed.
fn state_unavailable<'a>(secret_id: Option<Arc<str>>, op: StateOp) -> Decision<'a> {
    let mut d = Decision::respond(Reason::StateUnavailable);
    d.rule = Some(Rule::Static(match op {
        StateOp::Replay => "state.replay",
        StateOp::RateLimit => "state.rate_limit",
        StateOp::Dedupe => "state.dedupe",
    }));
    d.secret_id = secret_id;
    d
}

fn signature_reason(e: SignatureError) -> Reason {
    match e {
        SignatureError::MissingSignature | SignatureError::MissingTimestamp => {
            Reason::MissingSignature
        }
        SignatureError::StaleTimestamp { .. } => Reason::StaleTimestamp,
        SignatureError::MalformedSignature
        | SignatureError::MalformedTimestamp
        | SignatureError::BadSignature
        | SignatureError::NoKeys
        | SignatureError::EmptySecret => Reason::BadSignature,
    }
}
