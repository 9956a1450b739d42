//! The request pipeline as typed stages.
//!
//! Step 2 ([`admit`]) runs before the body is read and yields an [`Admitted`] request.
//! Steps 4 to 9 run on the whole body ([`Stages::run`]). Each takes what the step before it
//! proved and returns the next proof, or the request's final [`Decision`] when the request
//! ends there (a denial or a gateway answer):
//!
//! ```text
//! Inbound -ssl_check-> -verify-> Signed -replay-> Fresh -facts-> Parsed
//! Parsed: -app_pin-> Pinned -scope-> InScope -dedupe-> Undelivered -rate_limits-> Permit
//! ```
//!
//! `Stages::checks` and `Stages::admission` chain them with `?`: the order of the checks
//! is the order of their lines, and no step can run without the proof of the one before
//! it. From `Parsed` on, the request's data (secret, facts, fallbacks) stays in one place
//! and the stages read it by reference, so it is not copied from stage to stage; their
//! decisions get it attached once. Shadow mode is not a stage; it changes the finished
//! decision ([`apply_mode`]). The model is linkerd2-proxy's inbound policy, whose
//! authorization yields a typed permit or a denial.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use slackgate_policy::{Dedupe, LimitKey, Route};
use slackgate_slack::{Facts, RequestKind, SignatureError, MAC_LEN};

use crate::client_ip::{canonical, IpText};
use crate::clock::{self, Clock};
use crate::decision::{apply_mode, Action, Decision, Rule};
use crate::ratelimit::{BucketKey, Take};
use crate::reason::Reason;
use crate::remote::{ask, Answer, RemoteState, StateOp};
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

/// The verified body's facts were read, and it is no `url_verification` (step 6). The
/// later stages read it by reference and prove their step with a token.
struct Parsed<'a> {
    secret_id: Arc<str>,
    degraded: Vec<StateOp>,
    facts: Facts<'a>,
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
        let fresh = if self.socket {
            Fresh {
                secret_id: Arc::from(SOCKET_SECRET_ID),
                degraded: Vec::new(),
            }
        } else {
            let signed = self.verify()?;
            self.replay(signed).await?
        };
        let mut parsed = self.facts(fresh)?;
        match self.admission(&mut parsed).await {
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

    /// Steps 7 to 9 on the parsed request; their decisions get its data in `checks`.
    async fn admission(&self, parsed: &mut Parsed<'a>) -> Result<Permit, End<'a>> {
        let pinned = self.app_pin(parsed)?;
        let in_scope = self.scope(parsed, pinned)?;
        let undelivered = self.dedupe(parsed, in_scope).await?;
        self.rate_limits(parsed, undelivered).await
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

    /// Step 5, continued: a signature seen within its window is a replay.
    async fn replay(&self, signed: Signed) -> Result<Fresh, End<'a>> {
        let Signed {
            secret_id,
            signature,
            expires,
        } = signed;
        let mut degraded = Vec::new();
        let local = || {
            self.guard
                .replay
                .check_and_insert(&signature, expires, self.now_unix)
        };
        let shared = self.remote.map(|r| {
            let ttl = u64::try_from(expires.saturating_sub(self.now_unix)).unwrap_or(0) + 1;
            r.check_replay(&signature, ttl)
        });
        let answer = ask(
            shared,
            StateOp::Replay,
            self.route.state_failure,
            &mut degraded,
        )
        .await;
        let check = match answer {
            Ok(Answer::Shared(check)) => {
                // Keep the local cache warm too, so a fallback later still knows what
                // this replica saw.
                local();
                check
            }
            Ok(Answer::Local) => local(),
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

    /// Step 6: the facts of the verified body; `url_verification` is answered here.
    fn facts(&self, fresh: Fresh) -> Result<Parsed<'a>, End<'a>> {
        let Fresh {
            secret_id,
            degraded,
        } = fresh;
        let Ok(facts) = slackgate_slack::parse_facts(self.req.content_type, self.req.body) else {
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
        if parsed.facts.kind == RequestKind::UrlVerification {
            let mut answer = Box::new(Decision::respond(Reason::UrlVerification));
            parsed.attach(&mut answer);
            return Err(answer);
        }
        Ok(parsed)
    }

    /// Step 7: a pinned app's `api_app_id`.
    fn app_pin(&self, parsed: &Parsed<'a>) -> Result<Pinned, End<'a>> {
        let Some(pin) = self.route.app.api_app_id.as_deref() else {
            return Ok(Pinned(()));
        };
        let facts = &parsed.facts;
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
    fn scope(&self, parsed: &Parsed<'a>, _: Pinned) -> Result<InScope, End<'a>> {
        match scope::denied_by(self.route, &parsed.facts, &self.guard.members) {
            Some(rule) => Err(Box::new(Decision::scope_denied(rule, self.route.on_deny))),
            None => Ok(InScope(())),
        }
    }

    /// `dedupe: event_id`: a Slack retry of an event delivered with a 2xx is answered
    /// `deduplicated` and not forwarded again.
    async fn dedupe(&self, parsed: &mut Parsed<'a>, _: InScope) -> Result<Undelivered, End<'a>> {
        let event_id = match (self.route.dedupe, parsed.facts.event_id.as_deref()) {
            (Some(Dedupe::EventId), Some(id)) => id,
            _ => {
                return Ok(Undelivered {
                    mark_delivered: false,
                })
            }
        };
        let app = self.route.app.name.as_ref();
        let local = || self.guard.delivered.contains(app, event_id, self.now_unix);
        let shared = self.remote.map(|r| r.was_delivered(app, event_id));
        let answer = ask(
            shared,
            StateOp::Dedupe,
            self.route.state_failure,
            &mut parsed.degraded,
        )
        .await;
        let seen = match answer {
            Ok(Answer::Shared(seen)) => seen || local(),
            Ok(Answer::Local) => local(),
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

    /// Step 9: one token from every rate limit of the route, keyed on verified facts.
    async fn rate_limits(
        &self,
        parsed: &mut Parsed<'a>,
        undelivered: Undelivered,
    ) -> Result<Permit, End<'a>> {
        let route = self.route;
        let now = clock::unix_secs_f64(self.now);
        // Only a per-ip rule needs the address as text; build it once if so.
        let ip_text = route
            .rate_limits
            .iter()
            .any(|r| matches!(r.per, LimitKey::Ip))
            .then(|| IpText::new(self.req.client_ip));
        for (index, rule) in route.rate_limits.iter().enumerate() {
            let key = BucketKey {
                route: &route.name,
                rule: index,
                per: rule.per.as_str(),
                value: limit_value(rule.per, &parsed.facts, ip_text.as_ref()),
            };
            let (rate, burst) = (rule.rate.tokens_per_sec, rule.burst.get());
            let local = || self.guard.limiter.take(&key, rate, burst, now);
            let shared = self.remote.map(|r| r.take(&key, rate, burst));
            let answer = ask(
                shared,
                StateOp::RateLimit,
                route.state_failure,
                &mut parsed.degraded,
            )
            .await;
            let taken = match answer {
                Ok(Answer::Shared(taken)) => taken,
                Ok(Answer::Local) => local(),
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
