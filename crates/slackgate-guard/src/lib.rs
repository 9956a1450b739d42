//! The decision pipeline of slackgate over one immutable policy snapshot.
//!
//! Given a route, the client address and the raw request (headers that matter and the
//! whole body), the guard runs the checks of the request pipeline in order — source IP,
//! `ssl_check`, signature with every live secret, replay, facts, app pin, scope, dedupe,
//! rate limits — and returns a [`Decision`]: a value, not a side effect.
//!
//! The pipeline has two entry points, because the body is read between them:
//! [`Guard::admit`] checks the client address before any body byte is read and yields an
//! [`Admitted`] request (or the answer), and [`Guard::decide_admitted_with`] runs the rest
//! on the whole body and merges a shadowed source-IP denial into the decision. The gateway
//! (`slackgate run`) and `slackgate explain` both call exactly these two, so they cannot
//! disagree.
//!
//! The guard owns the state that must outlive policy reloads: the replay cache, the
//! rate-limit buckets, the delivered events, the revoked bot tokens and the members of
//! user groups. Shared state (Redis, for several
//! replicas) is a [`RemoteState`] the guard awaits. Time comes from an injected [`Clock`].
//!
//! This crate must not depend on pingora, tokio or any I/O: `slackgate explain` runs it
//! with no network, and the proxy runs it inside pingora. It depends only on
//! `slackgate-slack` and `slackgate-policy`.
//!
//! # Where things are
//!
//! | module | what |
//! |---|---|
//! | `stages` | the pipeline as typed stages: [`Inbound`], [`Admitted`], steps 4 to 9 chained with `?` |
//! | `egress` | the egress decision: [`EgressCall`] and [`EgressSettings`] -> [`EgressDecision`] with an [`EgressReason`]; Slack's 429s ([`SlackLimits`]) |
//! | `decision` | [`Decision`] and its constructors, [`Rule`], [`Action`], [`apply_mode`] (shadow) |
//! | `reason` | [`Reason`]: every outcome with its status, label and public message |
//! | `scope` | the route's `allow` and `deny` on a request's facts |
//! | `client_ip` | [`client_ip`]: the socket peer or the `X-Forwarded-For` walk |
//! | `replay` | [`ReplayCache`]: signatures seen within their window |
//! | `reply` | [`ReplyChannels`]: channels that sent an app a verified request the gateway forwarded, for `reply_scope` |
//! | `custody` | [`Custody`]: response URLs, upload URLs and workflow tokens held in place of the bot |
//! | `revoked` | [`RevokedTokens`]: bot tokens a verified lifecycle event ended |
//! | `members` | [`GroupMembers`]: the members of the policy's user groups, as last read from Slack |
//! | `dedupe` | the delivered events of `dedupe: event_id` ([`DEDUPE_TTL`]) |
//! | `ratelimit` | [`RateLimiter`]: bounded token buckets |
//! | `remote` | [`RemoteState`] and [`StateOp`]: shared state, the questions of a decision asked at once ([`Ask`]), and the fail-open/closed fallback |
//! | `clock` | [`Clock`], [`SystemClock`], [`FakeClock`] |

#![warn(missing_docs)]

mod client_ip;
mod clock;
mod custody;
mod decision;
mod dedupe;
mod egress;
mod members;
mod ratelimit;
mod reason;
mod remote;
mod replay;
mod reply;
mod revoked;
mod scope;
mod stages;

use std::net::IpAddr;

use slackgate_policy::Route;

pub use client_ip::{canonical, client_ip, parse_entry, IpText};
pub use clock::{unix_secs, unix_secs_f64, Clock, FakeClock, SystemClock};
pub use custody::{
    Custody, ResponseUrl, UploadUrl, WorkflowToken, MAX_HELD, RESPONSE_URL_TTL, RESPONSE_URL_USES,
    UPLOAD_URL_TTL, WORKFLOW_KEY_PREFIX,
};
pub use decision::{apply_mode, Action, Decision, Rule};
pub use dedupe::DEDUPE_TTL;
pub use egress::{
    decide_hook, is_hook_name, presented_workflow_key, CapabilityPost, EgressCall, EgressDecision,
    EgressReason, EgressSettings, HookPost, SlackLimits, Unreadable, FILE_UPLOAD_METHOD,
    RESPONSE_URL_METHOD,
};
pub use members::{GroupMembers, Loaded, Membership};
pub use ratelimit::{BucketKey, RateLimiter, Take};
pub use reason::Reason;
pub use remote::{Ask, Asked, LocalOnly, OneAtATime, RemoteState, StateError, StateOp, Told};
pub use replay::{ReplayCache, ReplayCheck};
pub use reply::ReplyChannels;
pub use revoked::RevokedTokens;
pub use stages::{Admitted, GuardSettings, Inbound, SOCKET_SECRET_ID};

use dedupe::Delivered;
use stages::Stages;

/// The decision pipeline with its long-lived state.
#[derive(Debug)]
pub struct Guard<C: Clock = SystemClock> {
    replay: ReplayCache,
    limiter: RateLimiter,
    delivered: Delivered,
    slack_limits: SlackLimits,
    revoked: RevokedTokens,
    reply: ReplyChannels,
    members: GroupMembers,
    custody: Custody,
    clock: C,
}

impl<C: Clock> Guard<C> {
    /// A guard whose replay cache and rate limiter hold at most the given number of entries.
    pub fn new(clock: C, max_replay_entries: usize, max_rate_limit_keys: usize) -> Self {
        Self {
            replay: ReplayCache::new(max_replay_entries),
            limiter: RateLimiter::new(max_rate_limit_keys),
            delivered: Delivered::new(max_replay_entries),
            slack_limits: SlackLimits::default(),
            revoked: RevokedTokens::default(),
            reply: ReplyChannels::default(),
            members: GroupMembers::default(),
            custody: Custody::default(),
            clock,
        }
    }

    /// The capabilities held in place of bots (secret custody).
    pub fn custody(&self) -> &Custody {
        &self.custody
    }

    /// The guard clock's now, in unix seconds (what [`Custody`] is kept in).
    pub fn now_secs(&self) -> f64 {
        clock::unix_secs_f64(self.clock.now())
    }

    /// The guard's state an egress decision reads, at the guard's clock.
    fn egress_state(&self) -> egress::EgressState<'_> {
        egress::EgressState {
            limiter: &self.limiter,
            slack: &self.slack_limits,
            revoked: &self.revoked,
            reply: &self.reply,
            custody: Some(&self.custody),
            now: clock::unix_secs_f64(self.clock.now()),
        }
    }

    /// The egress decision for one Web API call (see the `egress` module for the
    /// stages), over `policy` with the server config's `settings`, at the guard's clock.
    /// A workflow key (`sgw-…`) names the bot its token is held for in [`Guard::custody`].
    pub fn decide_egress(
        &self,
        policy: &slackgate_policy::Policy,
        call: &EgressCall<'_>,
        settings: &EgressSettings,
    ) -> EgressDecision {
        egress::decide_call(policy, call, settings, &self.egress_state())
    }

    /// A post to a response URL held in [`Guard::custody`] (`POST /respond/<capability>`):
    /// decided like a Web API call of method [`RESPONSE_URL_METHOD`] on the URL's channel.
    /// When allowed, the held URL comes with it, not yet spent
    /// ([`Custody::spend_response_url`]).
    pub fn decide_response_url(
        &self,
        policy: &slackgate_policy::Policy,
        post: &CapabilityPost<'_>,
        settings: &EgressSettings,
    ) -> (EgressDecision, Option<ResponseUrl>) {
        let limits = slackgate_slack::CallLimits {
            max_channels: settings.max_call_channels,
        };
        egress::decide_response_url(policy, post, &limits, &self.custody, &self.egress_state())
    }

    /// An upload through an upload URL held in [`Guard::custody`] (`POST
    /// /upload/<capability>`), bound to its bot. When allowed, the held URL comes with it,
    /// not yet spent ([`Custody::spend_upload_url`]).
    pub fn decide_upload(
        &self,
        policy: &slackgate_policy::Policy,
        post: &CapabilityPost<'_>,
    ) -> (EgressDecision, Option<UploadUrl>) {
        egress::decide_upload(policy, post, &self.custody, self.now_secs())
    }

    /// Records, for `reply_scope`, the channel of the inbound request decided by `d` on a
    /// route of app `app`, when the request was verified, is forwarded to the bot and names
    /// a channel, and some bot of `policy` with a `reply_scope` belongs to `app` (no state
    /// is kept otherwise).
    ///
    /// Only a forwarded request opens a reply window: one the gateway answered itself (a
    /// `scope_denied`, a rate limit, a dedupe) reached no bot, so nothing can be a reply to
    /// it. A shadow route's would-be denial is forwarded, so it does open one: the bot
    /// received the request, and shadow mode exists to learn what it does with it.
    ///
    /// Returns the channel and the time recorded (for sharing it with other replicas).
    pub fn note_reply_channel<'d>(
        &self,
        policy: &slackgate_policy::Policy,
        app: &std::sync::Arc<str>,
        d: &'d Decision<'_>,
    ) -> Option<(&'d str, f64)> {
        if !revoked::verified(d) || d.action != Action::Forward {
            return None;
        }
        let channel = d.facts.as_ref().and_then(|f| f.channel_id.as_deref())?;
        let read = policy
            .bots
            .iter()
            .any(|b| b.reply_scope.is_some() && b.app.as_ref().is_some_and(|a| a.name == *app));
        if !read {
            return None;
        }
        let now = clock::unix_secs_f64(self.clock.now());
        self.reply.note(app, channel, now);
        Some((channel, now))
    }

    /// Records that another replica saw `channel` send `app` a verified request at `at`
    /// (unix seconds), read from the shared state.
    pub fn note_reply_seen(&self, app: &std::sync::Arc<str>, channel: &str, at: f64) {
        self.reply.note(app, channel, at);
    }

    /// Revokes `bot`'s current token because another replica received the verified
    /// lifecycle request `by` (read from the shared state); true when it was not yet.
    pub fn revoke_shared(
        &self,
        bot: &slackgate_policy::Bot,
        by: slackgate_slack::Lifecycle,
    ) -> bool {
        let now = clock::unix_secs(self.clock.now());
        self.revoked.revoke(bot, by, now)
    }

    /// Revokes the tokens that the inbound request decided by `d`, on a route of app
    /// `app` with body `body`, ends: when it is a verified `app_uninstalled`, or a
    /// verified `tokens_revoked` listing bot tokens, the token of every bot of `policy`
    /// whose `app` is `app` and whose `team` pin (if any) is the request's team. Until
    /// such a bot's token reference changes, its calls are answered `token_revoked`.
    ///
    /// Returns the bots newly revoked and what revoked them (nothing for any other
    /// request, and nothing for an unverified or replayed one).
    pub fn revoke_tokens<'p>(
        &self,
        policy: &'p slackgate_policy::Policy,
        app: &str,
        d: &Decision<'_>,
        body: &[u8],
    ) -> Vec<(
        &'p std::sync::Arc<slackgate_policy::Bot>,
        slackgate_slack::Lifecycle,
    )> {
        let Some((kind, bots)) = revoked::revoked_bots(policy, app, d, body) else {
            return Vec::new();
        };
        let now = clock::unix_secs(self.clock.now());
        bots.into_iter()
            .filter(|b| self.revoked.revoke(b, kind, now))
            .map(|b| (b, kind))
            .collect()
    }

    /// What revoked `bot`'s current token, if it is revoked.
    pub fn token_revoked_by(
        &self,
        bot: &slackgate_policy::Bot,
    ) -> Option<slackgate_slack::Lifecycle> {
        self.revoked.revoked_by(bot)
    }

    /// A post to a webhook the gateway holds ([`decide_hook`]), with Slack's remembered
    /// 429s and the bot's rate limits applied to an allowed one.
    pub fn decide_hook(
        &self,
        policy: &slackgate_policy::Policy,
        post: &HookPost<'_>,
    ) -> (
        EgressDecision,
        Option<std::sync::Arc<slackgate_policy::Webhook>>,
    ) {
        let (mut d, hook) = decide_hook(policy, post);
        let now = clock::unix_secs_f64(self.clock.now());
        egress::limit_hook(&mut d, &self.limiter, &self.slack_limits, now);
        (d, hook)
    }

    /// Records that Slack answered `bot`'s call to `method` 429 with `Retry-After:
    /// retry_after_secs`: its further calls to that method are answered locally until then.
    pub fn note_slack_rate_limit(
        &self,
        bot: &std::sync::Arc<str>,
        method: &str,
        retry_after_secs: u32,
    ) {
        let now = clock::unix_secs_f64(self.clock.now());
        self.slack_limits.note(bot, method, retry_after_secs, now);
    }

    /// Records locally that `event_id` of `app` was delivered with a 2xx.
    pub fn mark_delivered_local(&self, app: &str, event_id: &str) {
        let now = clock::unix_secs(self.clock.now());
        self.delivered.insert(app, event_id, now);
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

    /// The members of the policy's user groups: the gateway's refresh writes them, a
    /// route's `users` reads them.
    pub fn group_members(&self) -> &GroupMembers {
        &self.members
    }

    /// The user group (`S…`) that the inbound request decided by `d`, with body `body`,
    /// says changed: a verified (not replayed) `subteam_members_changed` or
    /// `subteam_updated` event, whatever the route's scope decided. The gateway then reads
    /// that group's members again; nothing of the event itself is trusted beyond the id.
    pub fn changed_usergroup<'b>(&self, d: &Decision<'_>, body: &'b [u8]) -> Option<&'b str> {
        let facts = d.facts.as_ref()?;
        let is_change = facts.kind == slackgate_slack::RequestKind::EventCallback
            && facts
                .event_type
                .as_deref()
                .is_some_and(slackgate_slack::is_usergroup_change);
        if !is_change || !revoked::verified(d) {
            return None;
        }
        slackgate_slack::changed_usergroup(body)
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
        stages::admit(route, ip)
    }

    /// Step 2 for a Socket Mode envelope: admitted without `source_ips`, which names who
    /// may send HTTP requests; an envelope is read from the gateway's own connection to
    /// Slack, opened with the app's token, and has no sender address. That connection is
    /// also the proof of origin: the decision on this [`Admitted`] skips the signature and
    /// replay stages (and only them), and its `secret_id` is [`SOCKET_SECRET_ID`].
    pub fn admit_socket(&self, ip: IpAddr) -> Admitted {
        Admitted {
            client_ip: ip,
            shadowed: None,
            socket: true,
        }
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
        let stages = Stages::new(self, remote, route, &req, settings);
        let stages = if admitted.socket {
            stages.socket_sourced()
        } else {
            stages
        };
        let d = apply_mode(route, stages.run().await);
        match (admitted.shadowed, d.action) {
            (Some(first), Action::Forward) => d.reported_as(*first),
            _ => d,
        }
    }

    /// Checks the client address against the route's `source_ips`, ignoring the route's
    /// mode ([`Guard::admit`] is the pipeline step).
    pub fn check_source_ip(&self, route: &Route, ip: IpAddr) -> Option<Decision<'static>> {
        stages::source_ip(route, ip)
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
        let d = Stages::new(self, remote, route, req, settings).run().await;
        apply_mode(route, d)
    }
}
