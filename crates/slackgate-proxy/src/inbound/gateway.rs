//! The request pipeline, over any `Downstream`: the fast path in `front.rs` or
//! pingora's `ProxyHttp` session (this file's `request_filter`).
//!
//! `Gateway::handle` does everything: the route, the client address, the whole body
//! (capped and timed), the guard's decision, and then either the gateway's own answer or
//! the upstream round trip over `client.rs`. The upstream leg is never pingora's proxy
//! loop, for one reason: pingora 0.9 replays a body read in `request_filter` from a retry
//! buffer that holds only 64 KiB and silently sends nothing beyond it, and its
//! `request_body_filter` runs only after the upstream already got the headers. Driving
//! the leg ourselves keeps the rule "no byte reaches a bot before every check passed" and
//! forwards bodies up to `max_body_bytes` byte for byte. `Gateway::record` writes the
//! one audit record and the metrics (`record.rs`). The client side of a request is a
//! `Downstream` (`downstream.rs`); the upstream leg is
//! `upstream.rs` over `client.rs`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use pingora::prelude::HttpPeer;
use pingora::proxy::{HttpProxy, ProxyHttp, Session};

use slackgate_guard::{client_ip, Action, GuardSettings, Inbound, Reason};
use slackgate_policy::Route;
use slackgate_slack::{
    parse_retry_num, NO_RETRY_HEADER, RETRY_NUM_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

use crate::core::state::{Shared, Snapshot};
use crate::groups::UserGroups;
use crate::inbound::custody::{self, Prepared, Verified};
use crate::inbound::record::AuditFacts;
pub use crate::inbound::record::RequestCtx;
use crate::inbound::upstream::round_trip;
use crate::net::downstream::{answer_body, is_not_relayed, Downstream, PingoraDownstream};
use crate::net::front::{ConnLimits, Door, FastPath};
use crate::net::http1::connection_tokens;
use crate::net::upstream_head::{Forwarded, Resigned};

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
    /// The user groups (owned by the server): a verified `subteam_members_changed` wakes
    /// their reads.
    groups: Arc<UserGroups>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over shared state, waking `groups` on member changes.
    pub fn new(shared: Arc<Shared>, groups: Arc<UserGroups>) -> Self {
        Self { shared, groups }
    }

    /// Runs the pipeline for one request and answers it through `session`.
    pub(crate) async fn handle<D: Downstream>(
        &self,
        session: &mut D,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let snap = self.shared.current();
        ctx.retry_num = session.header(RETRY_NUM_HEADER).and_then(parse_retry_num);

        let peer = session.peer_ip();
        let xff = session.header_all("x-forwarded-for");
        let ip = client_ip(peer, xff, &snap.config.trusted_proxies);
        ctx.client_ip = Some(ip);

        let limits = &snap.config.limits;
        // As in `explain`, the Host goes to `find` as sent: it ignores the port itself
        // (`slackgate_policy::strip_port`, the one definition of that).
        let host = session.host();
        let Some(route) = snap.policy.routes.find(host, session.path()).cloned() else {
            return self
                .answer_before_body(session, ctx, Reason::NoRoute, limits)
                .await;
        };
        ctx.route = Some(Arc::clone(&route));
        ctx.snap = Some(Arc::clone(&snap));

        let socket = session.socket_sourced();
        if socket {
            ctx.source = Some("socket");
        }
        let admitted = match self.admit(&route, ip, socket) {
            Ok(a) => a,
            Err(d) => {
                ctx.rule = d.rule.as_ref().map(|r| r.as_str().to_owned());
                return self
                    .answer_before_body(session, ctx, d.reason, limits)
                    .await;
            }
        };

        if session
            .declared_length()
            .is_some_and(|n| n > limits.max_body_bytes as u64)
        {
            // Refused before the client sends it (and before any `100 Continue`).
            session.close_after();
            return self.answer(session, ctx, Reason::BodyTooLarge, &[]).await;
        }
        if session.expects_continue() {
            // Every check that needs no body passed: the client may send it now.
            session.send_continue().await?;
        }
        let body = match session
            .read_body(limits.max_body_bytes, limits.body_read_timeout)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                // The rest of the connection cannot be trusted to start a request.
                session.close_after();
                return self.answer(session, ctx, e.reason(), &[]).await;
            }
        };

        let inbound = Inbound {
            client_ip: ip,
            signature: session.single_header(SIGNATURE_HEADER),
            timestamp: session.single_header(TIMESTAMP_HEADER),
            content_type: session
                .header(CONTENT_TYPE.as_str())
                .and_then(|v| std::str::from_utf8(v).ok()),
            body: &body,
        };
        let settings = GuardSettings {
            max_clock_skew: limits.max_clock_skew,
        };
        let decision = self
            .shared
            .guard
            .decide_admitted_with(
                self.shared.remote.as_deref(),
                admitted,
                &route,
                &inbound,
                &settings,
            )
            .await;
        for op in &decision.degraded {
            self.shared.metrics.count_fallback(*op);
        }
        let seen = self
            .shared
            .guard
            .note_reply_channel(&snap.policy, &route.app.name, &decision);
        if let (Some((channel, at)), Some(redis)) = (seen, &self.shared.remote) {
            crate::replicate::publish_reply(redis, &route.app.name, channel, at);
        }
        for (bot, by) in
            self.shared
                .guard
                .revoke_tokens(&snap.policy, &route.app.name, &decision, &body)
        {
            if let Some(redis) = &self.shared.remote {
                crate::replicate::publish_revocation(redis, bot, by);
            }
            let team = decision.facts.as_ref().and_then(|f| f.team_id.as_deref());
            log::warn!(
                "bot {}: token revoked by a verified {by} (app {}, team {}): its calls are answered token_revoked until its token reference changes",
                bot.name,
                route.app.name,
                team.unwrap_or("none"),
            );
        }
        if let Some(usergroup) = self.shared.guard.changed_usergroup(&decision, &body) {
            self.groups.wake(usergroup);
        }
        ctx.mark_delivered = decision.mark_delivered;
        ctx.secret_id = decision.secret_id.clone();
        ctx.lifecycle = decision.lifecycle();
        ctx.rule = decision.rule.as_ref().map(|r| r.as_str().to_owned());
        if let Some(f) = &decision.facts {
            ctx.facts = AuditFacts::new(f);
        }
        ctx.shadow = decision.shadow;

        match decision.action {
            Action::Respond => {
                let mut extra: Vec<(&'static str, String)> = Vec::new();
                if decision.no_retry {
                    extra.push((NO_RETRY_HEADER, "1".into()));
                }
                if let Some(secs) = decision.retry_after {
                    extra.push(("retry-after", secs.to_string()));
                }
                if decision.reason == Reason::UrlVerification {
                    let challenge = decision.challenge().unwrap_or_default();
                    let body = serde_json::json!({ "challenge": challenge }).to_string();
                    return self
                        .write(
                            session,
                            ctx,
                            decision.reason,
                            200,
                            &extra,
                            Bytes::from(body),
                        )
                        .await;
                }
                if decision.status == 200 {
                    // ssl_check and `on_deny: ack`: Slack wants a plain 200.
                    return self
                        .write(session, ctx, decision.reason, 200, &extra, Bytes::new())
                        .await;
                }
                self.answer(session, ctx, decision.reason, &extra).await
            }
            Action::Forward => {
                // What the guard's reading of the body taught custody (the decoded
                // interactivity payload, where custody's fields are), for custody to reuse
                // (borrowing the body alone, not the request's headers as the decision does).
                let reason = decision.reason;
                let hint = decision
                    .facts
                    .and_then(|f| f.custody)
                    .and_then(|h| h.within(&body));
                let request = Verified {
                    body: &body,
                    hint: hint.as_ref(),
                    reason,
                };
                self.forward(session, ctx, &snap, &route, request).await
            }
        }
    }

    /// Step 2: the route's `source_ips`, except for a Socket Mode envelope (it has no
    /// sender address; see [`Downstream::socket_sourced`]).
    fn admit(
        &self,
        route: &Route,
        ip: std::net::IpAddr,
        socket: bool,
    ) -> Result<slackgate_guard::Admitted, Box<slackgate_guard::Decision<'static>>> {
        if socket {
            return Ok(self.shared.guard.admit_socket(ip));
        }
        self.shared.guard.admit(route, ip)
    }

    /// Answers with the reason's status and fixed public message.
    async fn answer<D: Downstream>(
        &self,
        session: &mut D,
        ctx: &mut RequestCtx,
        reason: Reason,
        extra: &[(&'static str, String)],
    ) -> pingora::Result<()> {
        self.write(
            session,
            ctx,
            reason,
            reason.status(),
            extra,
            answer_body(reason),
        )
        .await
    }

    /// Answers a request refused before its body was read. The body is drained first
    /// (within `max_body_bytes` and `body_read_timeout`) so that the connection can carry
    /// the next request and no byte of this one is ever read as a request; when that is
    /// not possible (too large, too slow, chunked framing broken, or a client waiting for
    /// `100 Continue` that will now never come) the connection is closed after the answer.
    async fn answer_before_body<D: Downstream>(
        &self,
        session: &mut D,
        ctx: &mut RequestCtx,
        reason: Reason,
        limits: &slackgate_policy::Limits,
    ) -> pingora::Result<()> {
        let drained = !session.expects_continue()
            && session
                .read_body(limits.max_body_bytes, limits.body_read_timeout)
                .await
                .is_ok();
        if !drained {
            session.close_after();
        }
        self.answer(session, ctx, reason, &[]).await
    }

    async fn write<D: Downstream>(
        &self,
        session: &mut D,
        ctx: &mut RequestCtx,
        reason: Reason,
        status: u16,
        extra: &[(&'static str, String)],
        body: Bytes,
    ) -> pingora::Result<()> {
        ctx.reason = Some(reason);
        ctx.status = status;
        let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(1 + extra.len());
        if !body.is_empty() {
            headers.push((b"Content-Type", b"application/json"));
        }
        for (name, value) in extra {
            headers.push((name.as_bytes(), value.as_bytes()));
        }
        session.respond(status, None, &headers, body).await
    }

    async fn forward<D: Downstream>(
        &self,
        session: &mut D,
        ctx: &mut RequestCtx,
        snap: &Snapshot,
        route: &Route,
        request: Verified<'_>,
    ) -> pingora::Result<()> {
        let (body, reason) = (request.body, request.reason);
        let Some(pool) = snap.pools.get(&route.upstream.name).cloned() else {
            return self.answer(session, ctx, Reason::UpstreamError, &[]).await;
        };
        // Read only where custody may rewrite the body: a plain route pays nothing.
        let content_type = route
            .resign
            .as_ref()
            .and_then(|_| session.header(CONTENT_TYPE.as_str()))
            .and_then(|v| std::str::from_utf8(v).ok());
        let prepared = custody::prepare(
            &self.shared,
            snap,
            route,
            &ctx.facts,
            content_type,
            &request,
            ctx.secret_id.is_some(),
        );
        let Prepared {
            body: rewritten,
            resign,
            minted,
        } = match prepared {
            Ok(p) => p,
            Err(reason) => return self.answer(session, ctx, reason, &[]).await,
        };
        let body = rewritten.as_ref().unwrap_or(body);
        if let Err(rule) = custody::share(&self.shared, route, &minted).await {
            ctx.rule = Some(rule.to_owned());
            return self
                .answer(session, ctx, Reason::StateUnavailable, &[])
                .await;
        }
        let facts = &ctx.facts;
        let head = session.upstream_head(&Forwarded {
            body_len: body.len(),
            route: &route.name,
            team: facts
                .text(&facts.team_id)
                .or(facts.text(&facts.enterprise_id)),
            user: facts.text(&facts.user_id),
            secret_id: ctx.secret_id.as_deref(),
            resign: resign.as_ref().map(|r| {
                r.as_ref().map(|s| Resigned {
                    timestamp: &s.timestamp,
                    signature: &s.signature,
                })
            }),
        });
        let is_head = session.is_head();

        let timeout = snap.config.limits.upstream_timeout;
        let started = Instant::now();
        let result = tokio::time::timeout_at(
            tokio::time::Instant::from_std(started) + timeout,
            round_trip(&pool, &head, body, is_head, started),
        )
        .await;
        ctx.upstream_time = Some(started.elapsed());
        match result {
            Err(_) => {
                self.answer(session, ctx, Reason::UpstreamTimeout, &[])
                    .await
            }
            Ok(Err(e)) => {
                log::warn!("route {}: upstream {} failed: {e}", route.name, pool.name);
                self.answer(session, ctx, Reason::UpstreamError, &[]).await
            }
            Ok(Ok(answer)) => {
                ctx.upstream_status = Some(answer.status);
                let success = (200..300).contains(&answer.status);
                if ctx.mark_delivered && success {
                    if let Some(event_id) = ctx.facts.text(&ctx.facts.event_id) {
                        let failed = self
                            .shared
                            .guard
                            .mark_delivered(
                                self.shared.remote.as_deref(),
                                &route.app.name,
                                event_id,
                            )
                            .await;
                        if let Some(op) = failed {
                            self.shared.metrics.count_fallback(op);
                        }
                    }
                }
                ctx.reason = Some(reason);
                ctx.status = answer.status;
                let named = connection_tokens(answer.header_pairs());
                let headers: Vec<(&[u8], &[u8])> = answer
                    .header_pairs()
                    .filter(|(name, _)| !is_not_relayed(name, &named))
                    .collect();
                if let Err(e) = session
                    .respond(
                        answer.status,
                        answer.reason.as_deref(),
                        &headers,
                        answer.body.clone(),
                    )
                    .await
                {
                    if e.etype() == &pingora::ErrorType::InvalidHTTPHeader {
                        // The bot's header cannot be relayed; nothing was written yet.
                        log::warn!(
                            "route {}: upstream {} sent an unusable header: {e}",
                            route.name,
                            pool.name
                        );
                        ctx.upstream_status = None;
                        return self.answer(session, ctx, Reason::UpstreamError, &[]).await;
                    }
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

impl Gateway {
    /// The running connection limits.
    pub(crate) fn conn_limits(&self) -> ConnLimits {
        ConnLimits::of(&self.shared.current().config.limits)
    }

    /// Records a request whose head the front refused (it has no route yet).
    pub(crate) fn record_refusal(&self, peer: std::net::IpAddr, reason: Reason) {
        RequestCtx::record_refusal(&self.shared, peer, reason);
    }

    /// A fresh per-request context.
    pub(crate) fn context(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// The request's metrics and its one audit record (nothing if no answer was decided).
    pub(crate) fn record(&self, ctx: &mut RequestCtx) {
        ctx.record(&self.shared);
    }
}

impl FastPath for Gateway {
    type Ctx = RequestCtx;

    fn context(&self) -> RequestCtx {
        Gateway::context(self)
    }

    async fn handle<S: Downstream>(
        &self,
        down: &mut S,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Gateway::handle(self, down, ctx).await
    }

    fn record(&self, ctx: &mut RequestCtx) {
        Gateway::record(self, ctx);
    }
}

/// The inbound door: the pipeline on the fast path, pingora's proxy (running the same
/// pipeline) for every other request.
pub(crate) struct InboundDoor {
    gateway: Gateway,
    proxy: Arc<HttpProxy<Gateway>>,
    fast_path: bool,
}

impl InboundDoor {
    /// The door over `gateway`, handing what the fast path does not take (all of it
    /// without `fast_path`) to `proxy`, built on the same shared state.
    pub(crate) fn new(gateway: Gateway, proxy: Arc<HttpProxy<Gateway>>, fast_path: bool) -> Self {
        InboundDoor {
            gateway,
            proxy,
            fast_path,
        }
    }
}

impl Door for InboundDoor {
    type Fast = Gateway;
    type Fallback = HttpProxy<Gateway>;

    fn fast(&self) -> Option<&Gateway> {
        self.fast_path.then_some(&self.gateway)
    }

    fn fallback(&self) -> &Arc<HttpProxy<Gateway>> {
        &self.proxy
    }

    fn limits(&self) -> ConnLimits {
        self.gateway.conn_limits()
    }

    fn refused(&self, peer: std::net::IpAddr, reason: Reason) {
        self.gateway.record_refusal(peer, reason);
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        self.context()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        ctx.start = Instant::now();
        ctx.arrived = SystemTime::now();
        self.handle(&mut PingoraDownstream(session, false), ctx)
            .await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Every request is answered or forwarded in request_filter.
        Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "slackgate forwards in request_filter",
        ))
    }

    async fn logging(
        &self,
        _session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut Self::CTX,
    ) {
        self.record(ctx);
    }
}
