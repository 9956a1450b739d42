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
//! one audit record and the metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};

use slackgate_guard::{client_ip, Action, GuardSettings, Inbound, IpText, Reason};
use slackgate_policy::Route;
use slackgate_slack::{Lifecycle, RETRY_NUM_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::audit::{rfc3339, AuditView, TsText};
use crate::client::{self, Conn, ExchangeError};
use crate::front::{handed_head, is_bodyless, HandedHead, HeadLimits};
use crate::http1::{connection_tokens, is_hop_by_hop, is_not_forwarded};
use crate::metrics;
use crate::state::{Shared, Snapshot};
use crate::upstream::{Pool, Target};
use crate::wire::{push_decimal, push_header, span_in};

/// Largest upstream response the gateway relays; Slack bots answer with small bodies.
const MAX_UPSTREAM_RESPONSE: usize = 8 * 1024 * 1024;
/// How long an idle upstream connection stays pooled.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RequestCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCtx")
            .field("reason", &self.reason)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Facts kept for the upstream headers and the audit record. They outlive the guard's
/// borrow of the body, so each is kept as its place in the (reference-counted) body, or
/// as its own text when the body held it escaped or encoded: no copy per fact.
#[derive(Debug, Default)]
struct AuditFacts {
    body: Bytes,
    kind: Option<&'static str>,
    api_app_id: Option<Fact>,
    enterprise_id: Option<Fact>,
    team_id: Option<Fact>,
    user_id: Option<Fact>,
    channel_id: Option<Fact>,
    event_type: Option<Fact>,
    command: Option<Fact>,
    event_id: Option<Fact>,
}

#[derive(Debug)]
enum Fact {
    At(std::ops::Range<usize>),
    Own(Box<str>),
}

impl AuditFacts {
    fn new(body: &Bytes, f: &slackgate_slack::Facts<'_>) -> Self {
        let keep = |v: &Option<std::borrow::Cow<'_, str>>| {
            let v = v.as_deref()?;
            Some(match span_in(body, v.as_bytes()) {
                Some(at) => Fact::At(at),
                None => Fact::Own(v.into()),
            })
        };
        Self {
            body: body.clone(),
            kind: Some(f.kind.as_str()),
            api_app_id: keep(&f.api_app_id),
            enterprise_id: keep(&f.enterprise_id),
            team_id: keep(&f.team_id),
            user_id: keep(&f.user_id),
            channel_id: keep(&f.channel_id),
            event_type: keep(&f.event_type),
            command: keep(&f.command),
            event_id: keep(&f.event_id),
        }
    }

    fn text<'s>(&'s self, fact: &'s Option<Fact>) -> Option<&'s str> {
        match fact.as_ref()? {
            Fact::At(r) => self
                .body
                .get(r.clone())
                .and_then(|b| std::str::from_utf8(b).ok()),
            Fact::Own(s) => Some(s),
        }
    }
}

/// Per-request state.
pub struct RequestCtx {
    start: Instant,
    arrived: SystemTime,
    route: Option<Arc<Route>>,
    client_ip: Option<IpAddr>,
    reason: Option<Reason>,
    status: u16,
    shadow: bool,
    rule: Option<String>,
    secret_id: Option<Arc<str>>,
    facts: AuditFacts,
    retry_num: Option<u32>,
    lifecycle: Option<Lifecycle>,
    upstream_status: Option<u16>,
    upstream_time: Option<Duration>,
    mark_delivered: bool,
}

impl Gateway {
    /// A gateway over shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Runs the pipeline for one request and answers it through `session`.
    pub(crate) async fn handle<D: Downstream>(
        &self,
        session: &mut D,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let snap = self.shared.current();
        ctx.retry_num = session
            .header(RETRY_NUM_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok());

        let peer = session.peer_ip();
        let xff = session.header_all("x-forwarded-for");
        let ip = client_ip(peer, xff, &snap.config.trusted_proxies);
        ctx.client_ip = Some(ip);

        let limits = &snap.config.limits;
        let host = session.host().map(strip_port);
        let Some(route) = snap.policy.routes.find(host, session.path()).cloned() else {
            return self
                .answer_before_body(session, ctx, Reason::NoRoute, limits)
                .await;
        };
        ctx.route = Some(Arc::clone(&route));

        let admitted = match self.shared.guard.admit(&route, ip) {
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
        ctx.mark_delivered = decision.mark_delivered;
        ctx.secret_id = decision.secret_id.clone();
        ctx.lifecycle = decision.lifecycle();
        ctx.rule = decision.rule.as_ref().map(|r| r.as_str().to_owned());
        if let Some(f) = &decision.facts {
            ctx.facts = AuditFacts::new(&body, f);
        }
        ctx.shadow = decision.shadow;

        match decision.action {
            Action::Respond => {
                let mut extra: Vec<(&'static str, String)> = Vec::new();
                if decision.no_retry {
                    extra.push(("x-slack-no-retry", "1".into()));
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
                let reason = decision.reason;
                self.forward(session, ctx, &snap, &route, body, reason)
                    .await
            }
        }
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
        body: Bytes,
        reason: Reason,
    ) -> pingora::Result<()> {
        let Some(pool) = snap.pools.get(&route.upstream.name).cloned() else {
            return self.answer(session, ctx, Reason::UpstreamError, &[]).await;
        };
        let facts = &ctx.facts;
        let head = session.upstream_head(&Forwarded {
            body_len: body.len(),
            route: &route.name,
            team: facts
                .text(&facts.team_id)
                .or(facts.text(&facts.enterprise_id)),
            user: facts.text(&facts.user_id),
            secret_id: ctx.secret_id.as_deref(),
        });
        let is_head = session.is_head();

        let timeout = snap.config.limits.upstream_timeout;
        let started = Instant::now();
        let result = tokio::time::timeout_at(
            tokio::time::Instant::from_std(started) + timeout,
            round_trip(&pool, &head, &body, is_head, started),
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

/// What the gateway adds to the head it sends upstream.
pub(crate) struct Forwarded<'a> {
    /// Length of the (whole, verified) body.
    pub body_len: usize,
    /// Route name.
    pub route: &'a str,
    /// Verified team (or enterprise) id.
    pub team: Option<&'a str>,
    /// Verified user id.
    pub user: Option<&'a str>,
    /// Id of the secret that verified the signature.
    pub secret_id: Option<&'a str>,
}

/// The request head sent to the bot: the client's request line and headers (names in
/// their original case) minus what [`is_not_forwarded`] names (hop-by-hop headers,
/// headers the client's `Connection` lists, `Expect`, and any `x-slackgate-*` or
/// `x_slackgate_*` a client sent), with the body's `Content-Length` and the gateway's
/// own headers.
pub(crate) fn request_head<'h>(
    method: &[u8],
    target: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    add: &Forwarded<'_>,
) -> Vec<u8> {
    let named = connection_tokens(headers.clone());
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if !is_not_forwarded(name, &named) {
            push_header(&mut out, name, value);
        }
    }
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(&mut out, add.body_len as u64);
    out.extend_from_slice(b"\r\n");
    push_header(&mut out, b"x-slackgate-route", add.route.as_bytes());
    if let Some(team) = add.team.filter(|t| is_header_safe(t)) {
        push_header(&mut out, b"x-slackgate-team", team.as_bytes());
    }
    if let Some(user) = add.user.filter(|u| is_header_safe(u)) {
        push_header(&mut out, b"x-slackgate-user", user.as_bytes());
    }
    if let Some(id) = add.secret_id.filter(|i| is_header_safe(i)) {
        push_header(&mut out, b"x-slackgate-secret-id", id.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A header of the bot's answer that is not relayed: hop-by-hop headers,
/// `Content-Length` (the gateway frames the answer itself), and the headers the bot's
/// `Connection` lists.
fn is_not_relayed(name: &[u8], named: &[&[u8]]) -> bool {
    is_hop_by_hop(name) || named.iter().any(|t| name.eq_ignore_ascii_case(t))
}

/// The JSON body of a gateway answer: the reason and its fixed public message.
pub(crate) fn answer_body(reason: Reason) -> Bytes {
    let body = serde_json::json!({
        "ok": false,
        "reason": reason.as_str(),
        "message": reason.public_message(),
    });
    Bytes::from(body.to_string())
}

/// The client side of one request as the pipeline needs it: pingora's session
/// ([`PingoraDownstream`]), or the fast path's own parsed request (`front.rs`).
#[async_trait]
pub(crate) trait Downstream: Send {
    /// The first value of a header.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// Every value of a header, in order.
    fn header_all(&self, name: &str) -> Vec<&[u8]>;
    /// The one value of a header. A repeated signature or timestamp header is ambiguous
    /// (the gateway and the bot could read different ones), so it reads as malformed: an
    /// empty value, which fails verification as `bad_signature`.
    fn single_header(&self, name: &str) -> Option<&[u8]> {
        match self.header_all(name).as_slice() {
            [] => None,
            [one] => Some(one),
            _ => Some(b""),
        }
    }
    /// The `Host` header, else the authority of an absolute-form target.
    fn host(&self) -> Option<&str>;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// Whether the method is `HEAD` (the answer then has no body).
    fn is_head(&self) -> bool;
    /// The connected peer's address.
    fn peer_ip(&self) -> IpAddr;
    /// The body's declared length (`None` for a chunked body).
    fn declared_length(&self) -> Option<u64>;
    /// Whether the client waits for `100 Continue` before it sends the body.
    fn expects_continue(&self) -> bool;
    /// Sends `100 Continue`.
    async fn send_continue(&mut self) -> pingora::Result<()>;
    /// The head to send upstream (see [`request_head`]).
    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8>;
    /// The whole body within `max` bytes and `timeout`.
    async fn read_body(&mut self, max: usize, timeout: Duration) -> Result<Bytes, BodyError>;
    /// Do not keep the connection after this request.
    fn close_after(&mut self);
    /// Writes the answer; the implementation adds `Content-Length`. An
    /// `InvalidHTTPHeader` error means nothing was written.
    async fn respond(
        &mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&[u8], &[u8])],
        body: Bytes,
    ) -> pingora::Result<()>;
}

/// pingora's downstream session, and whether the connection closes after this request.
pub(crate) struct PingoraDownstream<'s>(pub &'s mut Session, pub bool);

impl PingoraDownstream<'_> {
    /// The head the front judged and handed over with this request (every HTTP/1
    /// request has one).
    fn handed(&self) -> Option<&HandedHead> {
        self.0.stream().and_then(handed_head)
    }
}

#[async_trait]
impl Downstream for PingoraDownstream<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.req_header().headers.get(name).map(|v| v.as_bytes())
    }

    fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .req_header()
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    }

    fn host(&self) -> Option<&str> {
        let req = self.0.req_header();
        req.headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host())
    }

    fn path(&self) -> &str {
        self.0.req_header().uri.path()
    }

    fn is_head(&self) -> bool {
        self.0.req_header().method == http::Method::HEAD
    }

    fn peer_ip(&self) -> IpAddr {
        self.0
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn declared_length(&self) -> Option<u64> {
        if let Some(h) = self.handed() {
            return h.declared_length();
        }
        if self.0.req_header().headers.contains_key(TRANSFER_ENCODING) {
            return None;
        }
        // The head checks allowed one plain decimal Content-Length at most.
        Some(
            self.0
                .req_header()
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| crate::wire::parse_decimal(v.as_bytes().trim_ascii()))
                .unwrap_or(0),
        )
    }

    fn expects_continue(&self) -> bool {
        if let Some(h) = self.handed() {
            return h.expects_continue();
        }
        let req = self.0.req_header();
        // The head checks allowed no other expectation; HTTP/1.0 ones are ignored.
        req.version == http::Version::HTTP_11 && req.headers.contains_key(http::header::EXPECT)
    }

    async fn send_continue(&mut self) -> pingora::Result<()> {
        self.0.write_continue_response().await
    }

    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8> {
        if let Some(h) = self.handed() {
            return h.upstream_head(add);
        }
        let req = self.0.req_header();
        let method = req.method.as_str().as_bytes();
        // Not the hot path: the pairs are collected so the head can be read twice.
        let headers: Vec<(&[u8], &[u8])> = if req.has_case() {
            req.case_header_iter()
                .map(|(n, v)| (n.as_slice(), v.as_bytes()))
                .collect()
        } else {
            req.headers
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
                .collect()
        };
        request_head(method, req.raw_path(), headers.iter().copied(), add)
    }

    async fn read_body(&mut self, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
        read_body(self.0, max, timeout).await
    }

    fn close_after(&mut self) {
        self.1 = true;
        self.0.set_keepalive(None);
    }

    async fn respond(
        &mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&[u8], &[u8])],
        body: Bytes,
    ) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
        for (name, value) in headers {
            resp.append_header(Bytes::copy_from_slice(name), *value)?;
        }
        // Persistence as the front judged it (every `Connection` header counts), said
        // to the client as the fast path says it.
        if self.handed().is_some_and(|h| !h.keep_alive()) {
            self.close_after();
        }
        let bodyless = is_bodyless(status);
        let body = if bodyless { Bytes::new() } else { body };
        if !bodyless {
            resp.insert_header(CONTENT_LENGTH, body.len().to_string())?;
        }
        if self.1 {
            resp.insert_header(http::header::CONNECTION, "close")?;
        }
        if let Some(reason) = reason {
            resp.set_reason_phrase(Some(reason))?;
        }
        let empty = body.is_empty();
        self.0.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            self.0.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}

/// Why the upstream leg failed, for the log; `may_have_reached` says whether any byte
/// of the request may be at the bot.
#[derive(Debug)]
pub(crate) struct UpstreamFailure {
    target: Option<Arc<str>>,
    what: UpstreamFailureKind,
    may_have_reached: bool,
}

#[derive(Debug)]
enum UpstreamFailureKind {
    NotResolved,
    Connect(std::io::Error),
    Exchange(ExchangeError),
    NoTarget,
}

impl std::fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(t) = &self.target {
            write!(f, "{t}: ")?;
        }
        match &self.what {
            UpstreamFailureKind::NotResolved => f.write_str("not resolved"),
            UpstreamFailureKind::Connect(e) => write!(f, "connect: {e}"),
            UpstreamFailureKind::Exchange(e) => write!(f, "{e}"),
            UpstreamFailureKind::NoTarget => f.write_str("no upstream target could be resolved"),
        }?;
        if self.may_have_reached {
            f.write_str(" (the request may have reached the bot: not sent again)")?;
        }
        Ok(())
    }
}

/// Sends the request to a healthy target and reads the whole response.
///
/// A request is sent at most once. A target that refuses the connection is marked down
/// and one other target is tried: nothing was sent. A pooled connection is used only
/// when it is clean ([`Conn::is_clean`]); if its write still fails before one byte left,
/// the request goes once more on a fresh connection. Once any byte may have reached the
/// bot, a failure is final (502), as nginx does for non-idempotent requests.
async fn round_trip(
    pool: &Pool,
    head: &[u8],
    body: &[u8],
    is_head: bool,
    started: Instant,
) -> Result<client::Response, UpstreamFailure> {
    let fail = |target: &Target, what, may_have_reached| UpstreamFailure {
        target: Some(Arc::clone(&target.spec)),
        what,
        may_have_reached,
    };
    let mut tried: Option<Arc<Target>> = None;
    let mut last_err = None;
    for _attempt in 0..2 {
        let Some(target) = pool.pick(tried.as_ref()) else {
            break;
        };
        let Some(addr) = target.addr() else {
            target.mark_down();
            last_err = Some(fail(&target, UpstreamFailureKind::NotResolved, false));
            tried = Some(target);
            continue;
        };
        let (mut conn, reused) = match target.checkout(UPSTREAM_IDLE, started) {
            Some(c) => (c, true),
            None => match Conn::connect(addr).await {
                Ok(c) => (c, false),
                Err(e) => {
                    target.mark_down();
                    last_err = Some(fail(&target, UpstreamFailureKind::Connect(e), false));
                    tried = Some(target);
                    continue;
                }
            },
        };
        let result = match conn
            .exchange(head, body, is_head, MAX_UPSTREAM_RESPONSE)
            .await
        {
            Err(e) if reused && !e.may_have_reached() => {
                // Not one byte left on the pooled connection: send it on a fresh one.
                conn = Conn::connect(addr)
                    .await
                    .map_err(|e| fail(&target, UpstreamFailureKind::Connect(e), false))?;
                conn.exchange(head, body, is_head, MAX_UPSTREAM_RESPONSE)
                    .await
            }
            other => other,
        };
        return match result {
            Ok((answer, reusable)) => {
                if reusable {
                    target.checkin(conn, started);
                }
                Ok(answer)
            }
            Err(e) => {
                let reached = e.may_have_reached();
                Err(fail(&target, UpstreamFailureKind::Exchange(e), reached))
            }
        };
    }
    Err(last_err.unwrap_or(UpstreamFailure {
        target: None,
        what: UpstreamFailureKind::NoTarget,
        may_have_reached: false,
    }))
}

/// Why a request body could not be read.
pub(crate) enum BodyError {
    /// Over `max_body_bytes`.
    TooLarge,
    /// Not complete within `body_read_timeout`.
    Timeout,
    /// The client closed (or reset) the connection inside the body.
    Closed,
    /// The chunked framing is broken.
    Framing,
}

impl BodyError {
    /// The answer: 413; 408 for a body that did not arrive whole, in time or at all
    /// (nobody may read the answer to a closed one, but its record says why); 400 for
    /// broken chunked framing.
    fn reason(&self) -> Reason {
        match self {
            BodyError::TooLarge => Reason::BodyTooLarge,
            BodyError::Timeout | BodyError::Closed => Reason::BodyTimeout,
            BodyError::Framing => Reason::BadRequest,
        }
    }
}

/// Reads the whole request body within `max` bytes and `timeout`.
async fn read_body(
    session: &mut Session,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = session
        .req_header()
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    let mut buf = BytesMut::with_capacity(capacity);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(Err(e)) => {
                return Err(match e.etype() {
                    pingora::ErrorType::ConnectionClosed | pingora::ErrorType::ReadError => {
                        BodyError::Closed
                    }
                    pingora::ErrorType::ReadTimedout => BodyError::Timeout,
                    _ => BodyError::Framing,
                })
            }
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Slack ids are short ASCII; anything else is not put into a header.
fn is_header_safe(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
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

impl Gateway {
    /// The running head limits.
    pub(crate) fn head_limits(&self) -> HeadLimits {
        let limits = &self.shared.current().config.limits;
        HeadLimits {
            max_bytes: limits.max_head_bytes,
            timeout: limits.head_read_timeout,
            drain_idle: HeadLimits::drain_idle_for(limits.shutdown_grace),
        }
    }

    /// Records a request whose head the front refused (it has no route yet).
    pub(crate) fn record_refusal(&self, peer: IpAddr, reason: Reason) {
        let mut ctx = self.context();
        ctx.client_ip = Some(peer);
        ctx.reason = Some(reason);
        ctx.status = reason.status();
        self.record(&mut ctx);
    }

    /// A fresh per-request context.
    pub(crate) fn context(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            arrived: SystemTime::now(),
            route: None,
            client_ip: None,
            reason: None,
            status: 0,
            shadow: false,
            rule: None,
            secret_id: None,
            facts: AuditFacts::default(),
            retry_num: None,
            lifecycle: None,
            upstream_status: None,
            upstream_time: None,
            mark_delivered: false,
        }
    }

    /// The request's metrics and its one audit record (nothing if no answer was decided).
    pub(crate) fn record(&self, ctx: &mut RequestCtx) {
        let Some(reason) = ctx.reason else {
            return;
        };
        let total = ctx.start.elapsed();
        let m = &self.shared.metrics;
        let route_label = ctx.route.as_ref().map_or("", |r| r.name.as_ref());
        let gateway_time = total.saturating_sub(ctx.upstream_time.unwrap_or_default());
        // The route's cached handles when it has them, the label lookup otherwise (no route,
        // or handles of another gateway instance).
        let cached = ctx.route.as_deref().and_then(|r| m.route(r));
        metrics::inc(
            cached.and_then(|c| c.requests(m, route_label, reason)),
            &m.requests,
            &[route_label, reason.as_str()],
        );
        metrics::observe(
            cached.map(|c| c.request_duration(m, route_label)),
            &m.request_duration,
            &[route_label],
            gateway_time.as_secs_f64(),
        );
        if let Some(t) = ctx.upstream_time {
            metrics::observe(
                cached.map(|c| c.upstream_duration(m, route_label)),
                &m.upstream_duration,
                &[route_label],
                t.as_secs_f64(),
            );
        }
        if let (Some(route), Some(id)) = (&ctx.route, &ctx.secret_id) {
            metrics::inc(
                cached.and_then(|c| c.secret_matches(m, &route.app.name, id)),
                &m.secret_matches,
                &[route.app.name.as_ref(), id.as_ref()],
            );
        }
        if let Some(l) = ctx.lifecycle {
            m.lifecycle.with_label_values(&[l.as_str()]).inc();
        }
        // Guard levels (bucket and replay counts, evictions) are read at scrape time by
        // the admin service, not per request: counting them locks every shard.

        let ts_text = TsText::new(ctx.arrived);
        let ts_slow;
        let ts = match &ts_text {
            Some(t) => t.as_str(),
            None => {
                ts_slow = rfc3339(ctx.arrived);
                ts_slow.as_str()
            }
        };
        let ip_text = ctx.client_ip.map(IpText::new);
        let f = &ctx.facts;
        let route = ctx.route.as_deref();
        self.shared.audit.record_view(&AuditView {
            ts,
            route: route.map(|r| r.name.as_ref()),
            reason: reason.as_str(),
            status: ctx.status,
            shadow: ctx.shadow,
            client_ip: ip_text.as_ref().map(IpText::as_str),
            app: route.map(|r| r.app.name.as_ref()),
            secret_id: ctx.secret_id.as_deref(),
            kind: f.kind,
            api_app_id: f.text(&f.api_app_id),
            enterprise_id: f.text(&f.enterprise_id),
            team_id: f.text(&f.team_id),
            user_id: f.text(&f.user_id),
            channel_id: f.text(&f.channel_id),
            event_type: f.text(&f.event_type),
            command: f.text(&f.command),
            event_id: f.text(&f.event_id),
            retry_num: ctx.retry_num,
            rule: ctx.rule.as_deref(),
            upstream: route.map(|r| r.upstream.name.as_ref()),
            upstream_status: ctx.upstream_status,
            duration_us: u64::try_from(total.as_micros()).unwrap_or(u64::MAX),
            lifecycle: ctx.lifecycle.is_some(),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_kept_in_place_or_owned_when_escaped_or_decoded() {
        let body = Bytes::from_static(
            br#"{"type":"event_callback","team_id":"T0\u0041CME","api_app_id":"A0HELPDESK","event_id":"Ev1","event":{"type":"app_mention","user":"U0333","channel":"C0HELP"}}"#,
        );
        let f = slackgate_slack::parse_facts(Some("application/json"), &body).unwrap();
        let kept = AuditFacts::new(&body, &f);
        assert!(matches!(kept.user_id, Some(Fact::At(_))));
        assert!(
            matches!(kept.team_id, Some(Fact::Own(_))),
            "escaped in the body"
        );
        assert_eq!(kept.text(&kept.team_id), Some("T0ACME"));
        assert_eq!(kept.text(&kept.user_id), Some("U0333"));
        assert_eq!(kept.text(&kept.event_id), Some("Ev1"));
        assert_eq!(kept.text(&kept.command), None);
        drop(f);
        drop(body);
        // The kept facts hold their own reference to the body.
        assert_eq!(kept.text(&kept.channel_id), Some("C0HELP"));

        let form = Bytes::from_static(b"command=%2Fticket&team_id=T0ACME&user_id=U0333&api_app_id=A0HELPDESK&channel_id=C0HELP");
        let f =
            slackgate_slack::parse_facts(Some("application/x-www-form-urlencoded"), &form).unwrap();
        let kept = AuditFacts::new(&form, &f);
        assert_eq!(kept.text(&kept.command), Some("/ticket"));
        assert_eq!(kept.text(&kept.user_id), Some("U0333"));
    }
}
