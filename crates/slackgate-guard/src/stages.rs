//! The request pipeline as typed stages.
//!
//! Step 2 ([`admit`]) runs before the body is read and yields an [`Admitted`] request.
//! Steps 4 to 9 run on the whole body ([`Stages::run`]). Each takes what the step before it
//! proved and returns the next proof, or the request's final [`Decision`] when the request
//! ends there (a denial or a gateway answer):
//!
//! ```text
//! Inbound -ssl_check-> -verify-> Signed -facts-> Facts -app_pin-> Pinned -scope-> InScope
//! shared state: -replay-> Fresh -dedupe-> Undelivered -rate_limits-> Permit
//! ```
//!
//! `Stages::checks` chains them with `?`: the order of the checks is the order of their
//! lines, and no step can run without the proof of the one before it. The steps that read
//! only the body and the policy (facts, app pin, scope) run before the shared state is
//! asked anything, so that it is asked every question of the request at once ([`Ask`]:
//! one round trip to Redis); their answer (`malformed_payload`, `url_verification`,
//! `app_mismatch`, a scope denial) is given after the replay check's, as when they ran
//! after it, and the questions after the replay check are asked only when they let the
//! request on. The request's data (secret, facts, fallbacks) stays in one place and the
//! stages read it by reference, so it is not copied from stage to stage; their decisions
//! get it attached once. Shadow mode is not a stage; it changes the finished decision
//! ([`apply_mode`]). The model is linkerd2-proxy's inbound policy, whose authorization
//! yields a typed permit or a denial.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use slackgate_policy::{Dedupe, LimitKey, RateLimitRule, Route};
use slackgate_slack::{Facts, RequestKind, SignatureError, MAC_LEN};

use crate::client_ip::{canonical, IpText};
use crate::clock::{self, Clock};
use crate::decision::{apply_mode, Action, Decision, Rule};
use crate::ratelimit::{BucketKey, Take};
use crate::reason::Reason;
use crate::remote::{Answer, Ask, Questions, RemoteState, StateOp, Told};
use crate::replay::ReplayCheck;
use crate::{scope, Guard};

/// The `secret_id` of a Socket Mode envelope: no signing secret verified it, the app's
/// own Socket Mode connection carried it.
pub const SOCKET_SECRET_ID: &str = "socket";

/// The parts of a request the pipeline reads. Header values are raw bytes as received.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The client address (see [`client_ip`](crate::client_ip)).
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

/// A request whose client address the route's `source_ips` admitted, or denied on a shadow
/// route (the denial is then carried along and reported if nothing else answers).
///
/// Only [`Guard::admit`] makes one, so holding it proves step 2 ran.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub(crate) client_ip: IpAddr,
    // Boxed (as `admit`'s answer is) so that the common case, an address admitted
    // outright, stays small.
    pub(crate) shadowed: Option<Box<Decision<'static>>>,
    /// A Socket Mode envelope ([`Guard::admit_socket`](crate::Guard::admit_socket)).
    pub(crate) socket: bool,
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

/// The decision a stage ends a request with. Boxed: a denial happens once per request,
/// while every stage's `Ok` should stay small.
type End<'a> = Box<Decision<'a>>;

// === step 2 ===

/// The route's `source_ips` rule on `ip`, ignoring the route's mode.
pub(crate) fn source_ip(route: &Route, ip: IpAddr) -> Option<Decision<'static>> {
    if route.source_ips.permits(canonical(ip)) {
        return None;
    }
    Some(Decision::respond_by(
        Reason::IpDenied,
        Rule::Static("source_ips"),
    ))
}

/// Step 2: an enforced `ip_denied` is the answer; on a shadow route it is carried along.
pub(crate) fn admit(route: &Route, ip: IpAddr) -> Result<Admitted, End<'static>> {
    let shadowed = match source_ip(route, ip) {
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
        socket: false,
    })
}

// === steps 4 to 9: what each proves ===

/// The signature matched a live secret of the route's app (step 5).
struct Signed {
    secret_id: Arc<str>,
    signature: [u8; MAC_LEN],
    /// When the signature leaves the clock-skew window (unix seconds).
    expires: i64,
}

/// The signature was not seen before within its window.
struct Fresh {
    secret_id: Arc<str>,
    degraded: Vec<StateOp>,
}

/// The request's data that its decision gets attached once it is made: the secret that
/// verified it, the fallbacks, and the verified body's facts (read in step 6, and no
/// `url_verification`).
struct Parsed<'a> {
    secret_id: Arc<str>,
    degraded: Vec<StateOp>,
    facts: Facts<'a>,
}

/// What the steps in the shared state read: the facts, the address as text (for a
/// per-ip rule), the questions, and where fallbacks are recorded.
struct Shared<'s, 'q, 'a, R> {
    facts: &'s Facts<'a>,
    ip: Option<&'s IpText>,
    questions: &'s mut Questions<'q, R>,
    degraded: &'s mut Vec<StateOp>,
}

/// The payload is for the route's app, when the app is pinned (step 7).
struct Pinned(());

/// The route's scope admits the request (step 8).
struct InScope(());

/// The event was not delivered before, on a route with `dedupe: event_id`.
struct Undelivered {
    /// Whether a 2xx from the upstream is to be recorded as a delivery.
    mark_delivered: bool,
}

/// Every rate limit of the route had a token (step 9): the request may be forwarded.
struct Permit {
    mark_delivered: bool,
}

impl<'a> Parsed<'a> {
    /// Gives `d` what the request has gathered: its secret, fallbacks and facts.
    fn attach(self, d: &mut Decision<'a>) {
        d.secret_id = Some(self.secret_id);
        d.degraded = self.degraded;
        d.facts = Some(self.facts);
    }
}

impl Permit {
    fn forward<'a>(self) -> Decision<'a> {
        Decision {
            mark_delivered: self.mark_delivered,
            ..Decision::forward()
        }
    }
}

// === steps 4 to 9: the stages ===

/// Steps 4 to 9 for one request, with what every step reads.
pub(crate) struct Stages<'s, 'a, C: Clock, R> {
    guard: &'s Guard<C>,
    remote: Option<&'s R>,
    route: &'s Route,
    req: &'s Inbound<'a>,
    now: SystemTime,
    now_unix: i64,
    max_skew: u64,
    /// The request came over the app's own Socket Mode connection (see
    /// [`Stages::socket_sourced`]).
    socket: bool,
}

impl<'s, 'a, C: Clock, R: RemoteState> Stages<'s, 'a, C, R> {
    pub(crate) fn new(
        guard: &'s Guard<C>,
        remote: Option<&'s R>,
        route: &'s Route,
        req: &'s Inbound<'a>,
        settings: &GuardSettings,
    ) -> Self {
        let now = guard.clock.now();
        Stages {
            guard,
            remote,
            route,
            req,
            now,
            now_unix: clock::unix_secs(now),
            max_skew: settings.max_clock_skew.as_secs(),
            socket: false,
        }
    }

    /// The request is a Socket Mode envelope, read from the WebSocket the gateway opened
    /// with the app's token: the connection is the proof of origin, so the signature and
    /// replay stages (step 5) are skipped, and only they. Its secret id is
    /// [`SOCKET_SECRET_ID`]; every later stage runs as for a signed request.
    pub(crate) fn socket_sourced(mut self) -> Self {
        self.socket = true;
        self
    }

    /// The decision of steps 4 to 9, before the route's mode is applied.
    pub(crate) async fn run(self) -> Decision<'a> {
        match self.checks().await {
            Ok(forward) => forward,
            Err(end) => *end,
        }
    }

    async fn checks(&self) -> Result<Decision<'a>, End<'a>> {
        self.ssl_check()?;
        let signed = if self.socket {
            None
        } else {
            Some(self.verify()?)
        };
        let facts = slackgate_slack::parse_facts(self.req.content_type, self.req.body).ok();
        let local = facts.as_ref().map(|f| self.local_checks(f));
        // Only a per-ip rule needs the address as text; build it once if so.
        let ip = self
            .route
            .rate_limits
            .iter()
            .any(|r| matches!(r.per, LimitKey::Ip))
            .then(|| IpText::new(self.req.client_ip));
        let admitted = match (&facts, &local) {
            (Some(f), Some(Ok(_))) => Some(f),
            _ => None,
        };
        let asks = self.asks(signed.as_ref(), admitted, ip.as_ref());
        let mut questions = Questions::new(self.remote, &asks, self.route.state_failure);
        let Fresh {
            secret_id,
            mut degraded,
        } = match &signed {
            Some(signed) => self.replay(signed, &mut questions).await?,
            None => Fresh {
                secret_id: Arc::from(SOCKET_SECRET_ID),
                degraded: Vec::new(),
            },
        };
        let ended = match (&facts, local) {
            (Some(f), Some(Ok(in_scope))) => {
                let shared = Shared {
                    facts: f,
                    ip: ip.as_ref(),
                    questions: &mut questions,
                    degraded: &mut degraded,
                };
                Some(self.admission(shared, in_scope).await)
            }
            (Some(_), Some(Err(end))) => Some(Err(end)),
            _ => None,
        };
        let (Some(facts), Some(ended)) = (facts, ended) else {
            // The replay check may have fallen back to local state: that is counted too.
            return Err(Box::new(Decision {
                secret_id: Some(secret_id),
                degraded,
                ..Decision::respond(Reason::MalformedPayload)
            }));
        };
        let parsed = Parsed {
            secret_id,
            degraded,
            facts,
        };
        match ended {
            Ok(permit) => {
                let mut d = permit.forward();
                parsed.attach(&mut d);
                Ok(d)
            }
            Err(mut end) => {
                parsed.attach(&mut end);
                Err(end)
            }
        }
    }

    /// Steps 6 to 8 on the verified body's facts: `url_verification` is answered, then
    /// the app pin and the scope. No shared state is asked.
    fn local_checks(&self, facts: &Facts<'a>) -> Result<InScope, End<'a>> {
        if facts.kind == RequestKind::UrlVerification {
            return Err(Box::new(Decision::respond(Reason::UrlVerification)));
        }
        let pinned = self.app_pin(facts)?;
        self.scope(facts, pinned)
    }

    /// Every question of the request to the shared state, in the pipeline's order: the
    /// replay check of a signed request, then, for a request the local steps `admitted`,
    /// its dedupe lookup and its rate limits' buckets. None without shared state.
    fn asks<'q>(
        &'q self,
        signed: Option<&'q Signed>,
        admitted: Option<&'q Facts<'a>>,
        ip: Option<&'q IpText>,
    ) -> Vec<Ask<'q>> {
        if self.remote.is_none() {
            return Vec::new();
        }
        let app = self.route.app.name.as_ref();
        let mut asks = Vec::with_capacity(2 + self.route.rate_limits.len());
        if let Some(signed) = signed {
            let ttl = u64::try_from(signed.expires.saturating_sub(self.now_unix)).unwrap_or(0) + 1;
            asks.push(Ask::Replay {
                app,
                signature: &signed.signature,
                ttl_secs: ttl,
            });
        }
        if let Some(facts) = admitted {
            if let Some(event_id) = self.dedupe_id(facts) {
                asks.push(Ask::Delivered { app, event_id });
            }
            asks.extend(self.buckets(facts, ip).map(|(rule, key)| Ask::Take {
                app,
                key,
                rate_per_sec: rule.rate.tokens_per_sec,
                burst: rule.burst.get(),
            }));
        }
        asks
    }

    /// Steps 8 and 9 in the shared state: dedupe, then the rate limits.
    async fn admission(
        &self,
        mut shared: Shared<'_, '_, 'a, R>,
        in_scope: InScope,
    ) -> Result<Permit, End<'a>> {
        let undelivered = self.dedupe(&mut shared, in_scope).await?;
        self.rate_limits(&mut shared, undelivered).await
    }

    /// Step 4. Slack's certificate probe carries no event and reaches no bot; it is
    /// answered before signature checks, as Slack's own SDKs do.
    fn ssl_check(&self) -> Result<(), End<'a>> {
        if slackgate_slack::is_ssl_check(self.req.content_type, self.req.body) {
            return Err(Box::new(Decision::respond(Reason::SslCheck)));
        }
        Ok(())
    }

    /// Step 5: the signature, with every live secret of the app, and the timestamp window.
    fn verify(&self) -> Result<Signed, End<'a>> {
        let verified = slackgate_slack::verify(
            self.route.app.live_keys(self.now),
            self.req.signature,
            self.req.timestamp,
            self.req.body,
            self.now_unix,
            self.max_skew,
        )
        .map_err(|e| {
            Box::new(Decision::respond_by(
                signature_reason(e),
                Rule::Static("signature"),
            ))
        })?;
        Ok(Signed {
            secret_id: Arc::clone(verified.key.id_arc()),
            signature: verified.signature,
            expires: verified
                .timestamp
                .saturating_add(i64::try_from(self.max_skew).unwrap_or(i64::MAX)),
        })
    }

    /// Step 5, continued: a signature seen within its window is a replay (the first
    /// question to the shared state).
    async fn replay(
        &self,
        signed: &Signed,
        questions: &mut Questions<'_, R>,
    ) -> Result<Fresh, End<'a>> {
        let secret_id = Arc::clone(&signed.secret_id);
        let mut degraded = Vec::new();
        let local = || {
            self.guard
                .replay
                .check_and_insert(&signed.signature, signed.expires, self.now_unix)
        };
        let check = match questions.next(&mut degraded).await {
            Ok(Answer::Shared(Told::Replay(check))) => {
                // Keep the local cache warm too, so a fallback later still knows what
                // this replica saw.
                local();
                check
            }
            Ok(_) => local(),
            Err(op) => {
                return Err(Box::new(Decision {
                    secret_id: Some(secret_id),
                    ..Decision::state_unavailable(op)
                }))
            }
        };
        if check == ReplayCheck::Replayed {
            return Err(Box::new(Decision {
                secret_id: Some(secret_id),
                degraded,
                ..Decision::respond_by(Reason::Replayed, Rule::Static("replay"))
            }));
        }
        Ok(Fresh {
            secret_id,
            degraded,
        })
    }

    /// Step 7: a pinned app's `api_app_id`.
    fn app_pin(&self, facts: &Facts<'a>) -> Result<Pinned, End<'a>> {
        let Some(pin) = self.route.app.api_app_id.as_deref() else {
            return Ok(Pinned(()));
        };
        // Slack leaves `api_app_id` out of global and message shortcuts; for those the
        // verified signature alone ties the request to the app. Every other kind must
        // carry the pinned id.
        let exempt = facts.api_app_id.is_none()
            && matches!(
                facts.kind,
                RequestKind::Shortcut | RequestKind::MessageAction
            );
        if !exempt && facts.api_app_id.as_deref() != Some(pin) {
            return Err(Box::new(Decision::respond_by(
                Reason::AppMismatch,
                Rule::Static("app.api_app_id"),
            )));
        }
        Ok(Pinned(()))
    }

    /// Step 8: the route's `deny` and `allow`, answered as its `on_deny` says.
    fn scope(&self, facts: &Facts<'a>, _: Pinned) -> Result<InScope, End<'a>> {
        match scope::denied_by(self.route, facts, &self.guard.members) {
            Some(rule) => Err(Box::new(Decision::scope_denied(rule, self.route.on_deny))),
            None => Ok(InScope(())),
        }
    }

    /// The event id `dedupe: event_id` looks up, on a route with it.
    fn dedupe_id<'f>(&self, facts: &'f Facts<'a>) -> Option<&'f str> {
        match (self.route.dedupe, facts.event_id.as_deref()) {
            (Some(Dedupe::EventId), Some(id)) => Some(id),
            _ => None,
        }
    }

    /// `dedupe: event_id`: a Slack retry of an event delivered with a 2xx is answered
    /// `deduplicated` and not forwarded again.
    async fn dedupe(
        &self,
        shared: &mut Shared<'_, '_, 'a, R>,
        _: InScope,
    ) -> Result<Undelivered, End<'a>> {
        let Some(event_id) = self.dedupe_id(shared.facts) else {
            return Ok(Undelivered {
                mark_delivered: false,
            });
        };
        let app = self.route.app.name.as_ref();
        let local = || self.guard.delivered.contains(app, event_id, self.now_unix);
        let seen = match shared.questions.next(shared.degraded).await {
            Ok(Answer::Shared(Told::Delivered(seen))) => seen || local(),
            Ok(_) => local(),
            Err(op) => return Err(Box::new(Decision::state_unavailable(op))),
        };
        if seen {
            return Err(Box::new(Decision::respond_by(
                Reason::Deduplicated,
                Rule::Static("dedupe.event_id"),
            )));
        }
        Ok(Undelivered {
            mark_delivered: true,
        })
    }

    /// Every rate limit of the route with its bucket, keyed on verified facts.
    fn buckets<'q>(
        &'q self,
        facts: &'q Facts<'a>,
        ip: Option<&'q IpText>,
    ) -> impl Iterator<Item = (&'q RateLimitRule, BucketKey<'q>)> {
        let route = self.route;
        route
            .rate_limits
            .iter()
            .enumerate()
            .map(move |(index, rule)| {
                let key = BucketKey {
                    route: &route.name,
                    rule: index,
                    per: rule.per.as_str(),
                    value: limit_value(rule.per, facts, ip),
                };
                (rule, key)
            })
    }

    /// Step 9: one token from every rate limit of the route, keyed on verified facts.
    async fn rate_limits(
        &self,
        shared: &mut Shared<'_, '_, 'a, R>,
        undelivered: Undelivered,
    ) -> Result<Permit, End<'a>> {
        let now = clock::unix_secs_f64(self.now);
        for (rule, key) in self.buckets(shared.facts, shared.ip) {
            let (rate, burst) = (rule.rate.tokens_per_sec, rule.burst.get());
            let taken = match shared.questions.next(shared.degraded).await {
                Ok(Answer::Shared(Told::Take(taken))) => taken,
                Ok(_) => self.guard.limiter.take(&key, rate, burst, now),
                Err(op) => return Err(Box::new(Decision::state_unavailable(op))),
            };
            if let Take::Limited { retry_after_secs } = taken {
                // Marked like a forwarded request: on a shadow route it is forwarded.
                return Err(Box::new(Decision {
                    mark_delivered: undelivered.mark_delivered,
                    ..Decision::rate_limited(Arc::clone(&rule.label), retry_after_secs)
                }));
            }
        }
        Ok(Permit {
            mark_delivered: undelivered.mark_delivered,
        })
    }
}

/// The verified value a rate-limit bucket of `per` is keyed on ("" when absent).
fn limit_value<'f>(per: LimitKey, facts: &'f Facts<'_>, ip: Option<&'f IpText>) -> &'f str {
    match per {
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
        LimitKey::Ip => ip.map_or("", IpText::as_str),
    }
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
