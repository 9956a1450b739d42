//! The egress door: bots call the Slack Web API here with a gateway key; allowed calls
//! go to Slack with the bot's real token.
//!
//! Per call: pingora's HTTP/1 server reads the head (its parser, its limits), the body is
//! read whole (within `limits.max_body_bytes` and `limits.body_read_timeout`), the guard
//! decides ([`slackgate_guard::Guard::decide_egress`]), and then either the gateway
//! answers itself the way Slack answers a failed call (`200 {"ok":false,"error":REASON}`
//! with `X-Slackgate-Reason`; 429 with `Retry-After` for rate limits), or the call goes
//! to `egress.slack_api` with a head the gateway writes itself: the method's path, the
//! bot's query, `Authorization: Bearer TOKEN`, the bot's `Content-Type` and
//! `User-Agent`, and the body byte for byte (minus a `token` argument). Nothing else of
//! the bot's head travels: no cookie, no proxy header, no second credential. Slack's
//! answer is relayed unchanged but for its framing and hop-by-hop headers.
//!
//! A bot posts to an incoming webhook the gateway holds with `POST /hooks/<name>` and
//! its key ([`slackgate_guard::Guard::decide_hook`]): an allowed post goes to the webhook's URL
//! (under `egress.hooks_base`, over its own pooled client) with the bot's `Content-Type`
//! and `User-Agent` and the body byte for byte, and the answer is relayed. The URL is
//! never written anywhere else: audit and metrics name the post `hooks.<name>`.
//!
//! Every call gets one audit record (`"direction":"egress"`) and one count in
//! `slackgate_egress_requests_total`; Slack's 429s are remembered per bot and method
//! (`slack_rate_limited`), and its scope headers feed the [`ScopeLedger`].

mod rotation;
mod scopes;
mod sharing;
mod slack;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use slackgate_guard::{
    EgressCall, EgressDecision, EgressReason, EgressSettings, HookPost, Unreadable,
};
use slackgate_policy::{Bot, Webhook};
use slackgate_slack::strip_body_token;

pub(crate) use rotation::{check_stored, CallToken, Refresher, Sealer, Store};
pub use rotation::{RefreshResult, RotationStatus, TokenState, TokenVault};
pub use scopes::{BotScopes, ScopeLedger};
pub(crate) use sharing::{publish_reply, publish_revocation, RevocationSync};
pub use slack::SlackClientError;

use crate::audit::{Direction, EgressRecord};
use crate::client::Response;
use crate::downstream::is_not_relayed;
use crate::front::KEEPALIVE_IDLE;
use crate::http1::{client_keeps_alive, connection_tokens};
use crate::state::Shared;

pub(crate) use slack::{CallFailure, OutHead, SlackClient};

/// The egress listener's application.
pub struct EgressApp {
    shared: Arc<Shared>,
    slack: SlackClient,
    /// The client for `egress.hooks_base` (webhook posts).
    hooks: SlackClient,
}

impl std::fmt::Debug for EgressApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressApp")
            .field("slack", &self.slack)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

/// What the call's head said, copied out of pingora's session.
struct CallHead {
    method: http::Method,
    path: String,
    query: Option<String>,
    authorization: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    /// A header the decision reads was sent twice.
    duplicated: bool,
}

impl CallHead {
    fn of(session: &ServerSession) -> Self {
        let req = session.req_header();
        let headers = &req.headers;
        let one = |name: &str| -> (Option<Vec<u8>>, bool) {
            let mut all = headers.get_all(name).iter();
            let first = all.next().map(|v| v.as_bytes().to_vec());
            (first, all.next().is_some())
        };
        let (authorization, dup_auth) = one("authorization");
        let (content_type, dup_ct) = one("content-type");
        let (user_agent, _) = one("user-agent");
        CallHead {
            method: req.method.clone(),
            path: req.uri.path().to_owned(),
            query: req.uri.query().map(str::to_owned),
            authorization,
            content_type,
            user_agent,
            duplicated: dup_auth || dup_ct,
        }
    }
}

/// A header value the gateway may copy into its own head: visible ASCII and spaces.
fn clean_value(v: &[u8]) -> bool {
    !v.is_empty()
        && v.iter()
            .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// Slack's `ok` and `error` of a JSON answer (for the audit record only).
#[derive(serde::Deserialize)]
struct SlackOutcome<'a> {
    ok: Option<bool>,
    #[serde(borrow)]
    error: Option<std::borrow::Cow<'a, str>>,
}

/// Slack's `Retry-After` (whole seconds), if it sent one.
pub(crate) fn retry_after_of(resp: &Response) -> Option<u32> {
    let (_, v) = resp
        .header_pairs()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"retry-after"))?;
    std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok()
}

/// An error code as Slack writes them (`channel_not_found`), else not recorded.
pub(crate) fn error_code(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(s)
}

/// What happened to one call, for its record and metrics.
struct Outcome {
    decision: EgressDecision,
    status: u16,
    upstream_status: Option<u16>,
    slack_ok: Option<bool>,
    slack_error: Option<String>,
    /// The metric method label when it is not one the bot's `methods` lists: a
    /// defined webhook's `hooks.<name>`.
    method_label: Option<Arc<str>>,
}

impl Outcome {
    /// Slack's answer was not had: `upstream_timeout` or `upstream_error`, answered by the
    /// gateway.
    fn failed(&mut self, failure: &CallFailure) -> Option<(ResponseHeader, Bytes)> {
        self.decision.reason = match failure {
            CallFailure::Timeout(_) => EgressReason::UpstreamTimeout,
            CallFailure::Failed(_) => EgressReason::UpstreamError,
        };
        self.status = self.decision.reason.status();
        EgressApp::local_answer(&self.decision)
    }
}

impl EgressApp {
    /// The app for `shared`'s egress config.
    pub fn new(shared: Arc<Shared>) -> Result<Self, SlackClientError> {
        let snap = shared.current();
        let egress = snap
            .config
            .egress
            .as_ref()
            .ok_or(SlackClientError::Tls("egress is not configured".to_owned()))?;
        let slack = SlackClient::new(&egress.slack_api, egress.ca_file.as_deref(), egress.timeout)?;
        let hooks = SlackClient::new(
            &egress.hooks_base,
            egress.ca_file.as_deref(),
            egress.timeout,
        )?;
        Ok(Self {
            shared,
            slack,
            hooks,
        })
    }

    /// Reads the whole body within the limits; `Err` is the rule that failed.
    async fn read_body(&self, session: &mut ServerSession) -> Result<Vec<u8>, Unreadable> {
        let limits = &self.shared.current().config.limits;
        let (max, timeout) = (limits.max_body_bytes, limits.body_read_timeout);
        let read = async {
            let mut body = Vec::new();
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > max {
                            return Err(Unreadable::BodyTooLarge);
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => return Ok(body),
                    Err(_) => return Err(Unreadable::BodyFraming),
                }
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(Unreadable::BodyTimeout),
        }
    }

    /// The gateway's own answer for a decision that is not `allowed` (`None` only if
    /// pingora refused one of the reason's fixed statuses).
    fn local_answer(decision: &EgressDecision) -> Option<(ResponseHeader, Bytes)> {
        let reason = decision.reason;
        let body = format!("{{\"ok\":false,\"error\":\"{}\"}}", reason.as_str());
        let mut h = ResponseHeader::build(reason.status(), Some(4)).ok()?;
        let _ = h.insert_header("content-type", "application/json; charset=utf-8");
        let _ = h.insert_header("content-length", body.len().to_string());
        let _ = h.insert_header("x-slackgate-reason", reason.as_str());
        if let Some(secs) = decision.retry_after_secs {
            let _ = h.insert_header("retry-after", secs.to_string());
        }
        Some((h, Bytes::from(body)))
    }

    /// The head of the call as the gateway sends it to Slack.
    fn slack_head(&self, head: &CallHead, method: &str, token: &str, body_len: usize) -> Vec<u8> {
        let path = self.slack.api().path.as_bytes();
        let mut target: Vec<&[u8]> = vec![path, method.as_bytes()];
        if let Some(q) = &head.query {
            target.extend([&b"?"[..], q.as_bytes()]);
        }
        self.slack.head(
            &OutHead {
                http_method: head.method.as_str().as_bytes(),
                target: &target,
                token: Some(token),
                content_type: head.content_type.as_deref().filter(|v| clean_value(v)),
                user_agent: head.user_agent.as_deref().filter(|v| clean_value(v)),
            },
            body_len,
        )
    }

    /// Slack's answer as the bot gets it (`None` for a status pingora cannot write).
    fn relayed(resp: &Response) -> Option<(ResponseHeader, Bytes)> {
        let mut h =
            ResponseHeader::build_no_case(resp.status, Some(resp.headers.len() + 1)).ok()?;
        let named = connection_tokens(resp.header_pairs());
        for (name, value) in resp.header_pairs() {
            if is_not_relayed(name, &named) {
                continue;
            }
            let _ = h.append_header(String::from_utf8_lossy(name).to_ascii_lowercase(), value);
        }
        let _ = h.insert_header("content-length", resp.body.len().to_string());
        Some((h, resp.body.clone()))
    }

    /// Forwards an allowed call; Slack's answer and that answer as the bot gets it.
    async fn forward(
        &self,
        head: &CallHead,
        body: &[u8],
        decision: &EgressDecision,
        token: &str,
        method: &str,
    ) -> Result<(Response, (ResponseHeader, Bytes)), CallFailure> {
        let out_body = match (decision.body_token, decision.encoding) {
            (true, Some(enc)) => strip_body_token(enc, body).map_err(|_| {
                CallFailure::Failed("the token argument could not be removed".to_owned())
            })?,
            _ => std::borrow::Cow::Borrowed(body),
        };
        let slack_head = self.slack_head(head, method, token, out_body.len());
        let is_head = head.method == http::Method::HEAD;
        let resp = self.slack.call(&slack_head, &out_body, is_head).await?;
        let answer = Self::relayed(&resp)
            .ok_or_else(|| CallFailure::Failed(format!("unusable status {}", resp.status)))?;
        Ok((resp, answer))
    }

    /// What Slack's answer tells: its `ok`/`error`, its scopes, its 429.
    fn note_answer(&self, bot: &Arc<Bot>, method: &str, resp: &Response, o: &mut Outcome) {
        o.upstream_status = Some(resp.status);
        let header = |name: &str| {
            resp.header_pairs()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v)
        };
        if let Ok(outcome) = serde_json::from_slice::<SlackOutcome<'_>>(&resp.body) {
            o.slack_ok = outcome.ok;
            o.slack_error = outcome
                .error
                .as_deref()
                .and_then(error_code)
                .map(str::to_owned);
        }
        let unused = self.shared.scopes.note(
            &bot.name,
            header("x-oauth-scopes"),
            header("x-accepted-oauth-scopes"),
        );
        if resp.status == 429 {
            // Slack's Retry-After is whole seconds; without one, a minute (Slack's own
            // advice for the Web API's per-minute tiers).
            let secs = retry_after_of(resp).unwrap_or(60);
            self.shared
                .guard
                .note_slack_rate_limit(&bot.name, method, secs);
            self.shared
                .metrics
                .egress_slack_429
                .with_label_values(&[&bot.name])
                .inc();
        }
        self.shared
            .metrics
            .egress_unused_scopes
            .with_label_values(&[&bot.name])
            .set(i64::try_from(unused).unwrap_or(i64::MAX));
    }

    fn record(&self, ts: SystemTime, started: Instant, o: &Outcome) {
        let d = &o.decision;
        let bot = d.bot.as_ref().map(|b| &*b.name);
        let elapsed = started.elapsed();
        let ts = crate::audit::rfc3339(ts);
        self.shared.audit.record_egress(&EgressRecord {
            ts: &ts,
            direction: Direction::Egress,
            bot,
            method: d.method.as_deref(),
            team_id: d.team_id.as_deref(),
            channel_id: d.channel_id.as_deref(),
            reason: d.reason.as_str(),
            status: o.status,
            rule: d.rule.as_deref(),
            slack_ok: o.slack_ok,
            slack_error: o.slack_error.as_deref(),
            upstream_status: o.upstream_status,
            duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        });
        // The method label: a name the bot's policy lists, else `other`.
        let method = match (&d.bot, d.method.as_deref(), o.method_label.as_deref()) {
            (_, _, Some(label)) => label,
            (Some(b), Some(m), None) if b.methods.exact.contains(m) => m,
            _ => "other",
        };
        let bot_label = bot.unwrap_or("unknown");
        let m = &self.shared.metrics;
        m.egress_requests
            .with_label_values(&[bot_label, method, d.reason.as_str()])
            .inc();
        m.egress_duration
            .with_label_values(&[bot_label])
            .observe(elapsed.as_secs_f64());
    }

    /// The head of a webhook post: the URL's path, and nothing of the bot's head but its
    /// `Content-Type` and `User-Agent` (no credential: the URL is the credential).
    fn hook_head(&self, head: &CallHead, path: &str, body_len: usize) -> Vec<u8> {
        self.hooks.head(
            &OutHead {
                http_method: b"POST",
                target: &[path.as_bytes()],
                token: None,
                content_type: head.content_type.as_deref().filter(|v| clean_value(v)),
                user_agent: head.user_agent.as_deref().filter(|v| clean_value(v)),
            },
            body_len,
        )
    }

    /// Posts `body` to `hook`; the answer and that answer as the bot gets it.
    async fn post_hook(
        &self,
        head: &CallHead,
        body: &[u8],
        hook: &Webhook,
    ) -> Result<(Response, (ResponseHeader, Bytes)), CallFailure> {
        // The snapshot check made every URL start with `egress.hooks_base`; the client's
        // base is the one the gateway started with (a changed base needs a restart).
        let path = self.hooks.api().path_of(hook.url.expose()).ok_or_else(|| {
            CallFailure::Failed(
                "the webhook URL is not under the egress.hooks_base the gateway started with"
                    .to_owned(),
            )
        })?;
        let out_head = self.hook_head(head, path, body.len());
        let resp = self.hooks.call(&out_head, body, false).await?;
        let answer = Self::relayed(&resp)
            .ok_or_else(|| CallFailure::Failed(format!("unusable status {}", resp.status)))?;
        Ok((resp, answer))
    }

    /// What a webhook's answer tells: Slack answers `200 ok`, or a status with an error
    /// code as plain text (`no_service`, `channel_is_archived`, ...).
    fn note_hook_answer(&self, bot: &Bot, hook: &Webhook, resp: &Response, o: &mut Outcome) {
        o.upstream_status = Some(resp.status);
        let text = std::str::from_utf8(&resp.body).map(str::trim).unwrap_or("");
        let ok = resp.status == 200 && text == "ok";
        o.slack_ok = Some(ok);
        o.slack_error = (!ok).then(|| error_code(text)).flatten().map(str::to_owned);
        if resp.status == 429 {
            // Remembered as for calls: later posts wait out Slack's Retry-After locally.
            let secs = retry_after_of(resp).unwrap_or(60);
            self.shared
                .guard
                .note_slack_rate_limit(&bot.name, &hook.method, secs);
            self.shared
                .metrics
                .egress_slack_429
                .with_label_values(&[&bot.name])
                .inc();
        }
    }

    /// One post to a webhook, from its head to its answer.
    #[allow(clippy::too_many_arguments)]
    async fn handle_hook(
        &self,
        name: &str,
        head: &CallHead,
        body: &[u8],
        unreadable: Option<Unreadable>,
        ts: SystemTime,
        started: Instant,
    ) -> Option<(ResponseHeader, Bytes)> {
        let snap = self.shared.current();
        let (mut decision, hook) = self.shared.guard.decide_hook(
            &snap.policy,
            &HookPost {
                name,
                is_post: head.method == http::Method::POST,
                authorization: head.authorization.as_deref(),
            },
        );
        if let Some(why) = unreadable {
            decision.unreadable(why);
        }
        let mut outcome = Outcome {
            status: decision.reason.status(),
            decision,
            upstream_status: None,
            slack_ok: None,
            slack_error: None,
            method_label: snap
                .policy
                .webhooks
                .get(name)
                .map(|h| Arc::clone(&h.method)),
        };
        let answer = match (outcome.decision.reason, outcome.decision.bot.clone(), hook) {
            (EgressReason::Allowed, Some(bot), Some(hook)) => {
                match self.post_hook(head, body, &hook).await {
                    Ok((resp, answer)) => {
                        self.note_hook_answer(&bot, &hook, &resp, &mut outcome);
                        outcome.status = resp.status;
                        Some(answer)
                    }
                    Err(failure) => {
                        // The failure's text names hooks_base's host at most, never the URL.
                        log::warn!("egress: bot {} webhook {}: {failure}", bot.name, hook.name);
                        outcome.failed(&failure)
                    }
                }
            }
            _ => Self::local_answer(&outcome.decision),
        };
        self.record(ts, started, &outcome);
        answer
    }

    /// For a call denied by `reply_scope`, with the Redis backend: whether another
    /// replica saw the channel send the bot's app a verified request (then adopted, so
    /// deciding again reads it). A Redis failure keeps the denial.
    async fn seen_elsewhere(&self, d: &EgressDecision) -> bool {
        let (Some(redis), Some(bot), Some(channel)) =
            (&self.shared.remote, d.bot.as_ref(), d.channel_id.as_deref())
        else {
            return false;
        };
        let (Some(app), true) = (
            bot.app.as_ref(),
            d.reason == EgressReason::ChannelDenied && d.rule.as_deref() == Some("reply_scope"),
        ) else {
            return false;
        };
        match sharing::reply_seen(redis, &app.name, channel).await {
            Some(at) => {
                self.shared.guard.note_reply_seen(&app.name, channel, at);
                true
            }
            None => false,
        }
    }

    /// One call, from its head to its answer. Returns the answer and whether the
    /// connection may carry another call.
    async fn handle(&self, session: &mut ServerSession) -> (Option<(ResponseHeader, Bytes)>, bool) {
        let started = Instant::now();
        let ts = SystemTime::now();
        let head = CallHead::of(session);
        let body = self.read_body(session).await;
        let body_ok = body.is_ok();
        // A body that could not be read whole, or a decision header sent twice, is a
        // call the gateway cannot read, whoever sent it.
        let unreadable = body
            .as_ref()
            .err()
            .copied()
            .or(head.duplicated.then_some(Unreadable::HeaderTwice));
        let body = body.unwrap_or_default();
        if let Some(name) = head.path.strip_prefix("/hooks/") {
            let answer = self
                .handle_hook(name, &head, &body, unreadable, ts, started)
                .await;
            return (answer, body_ok);
        }

        let snap = self.shared.current();
        let call = EgressCall {
            path: &head.path,
            query: head.query.as_deref().map(str::as_bytes),
            authorization: head.authorization.as_deref(),
            content_type: head.content_type.as_deref(),
            body: &body,
        };
        let settings = EgressSettings::from(&snap.config.limits);
        let mut decision = self
            .shared
            .guard
            .decide_egress(&snap.policy, &call, &settings);
        // Denied by reply_scope here: another replica may have seen the channel.
        if self.seen_elsewhere(&decision).await {
            decision = self
                .shared
                .guard
                .decide_egress(&snap.policy, &call, &settings);
        }
        if let Some(why) = unreadable {
            decision.unreadable(why);
        }
        // A rotating bot's token comes from the vault; without one, nothing is sent.
        let bot = decision.bot.clone();
        let token = match (decision.reason, bot.as_deref()) {
            (EgressReason::Allowed, Some(bot)) => {
                match self
                    .shared
                    .tokens
                    .token(bot, self.shared.guard.clock().now())
                {
                    CallToken::Unavailable(rule) => {
                        decision.reason = EgressReason::TokenUnavailable;
                        decision.rule = Some(Arc::from(rule));
                        decision.retry_after_secs = None;
                        None
                    }
                    t => Some(t),
                }
            }
            _ => None,
        };

        let mut outcome = Outcome {
            status: decision.reason.status(),
            decision,
            upstream_status: None,
            slack_ok: None,
            slack_error: None,
            method_label: None,
        };
        let token: Option<&str> = match &token {
            Some(CallToken::Static(t)) => Some(t),
            Some(CallToken::Rotated(p)) => Some(p.access_token()),
            _ => None,
        };
        let answer = match (
            outcome.decision.reason,
            outcome.decision.bot.clone(),
            outcome.decision.method.clone(),
            token,
        ) {
            (EgressReason::Allowed, Some(bot), Some(method), Some(token)) => {
                match self
                    .forward(&head, &body, &outcome.decision, token, &method)
                    .await
                {
                    Ok((resp, answer)) => {
                        self.note_answer(&bot, &method, &resp, &mut outcome);
                        outcome.status = resp.status;
                        Some(answer)
                    }
                    Err(failure) => {
                        log::warn!("egress: bot {} method {method}: Slack: {failure}", bot.name);
                        outcome.failed(&failure)
                    }
                }
            }
            _ => Self::local_answer(&outcome.decision),
        };
        self.record(ts, started, &outcome);
        (answer, body_ok)
    }
}

#[async_trait]
impl HttpServerApp for EgressApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // A client that writes its next call before reading this answer gets both
        // answered in order, instead of this one and a close.
        session.set_pipelining_enabled(true);
        match session.read_request().await {
            Ok(true) => {}
            // The client closed, or sent no request.
            Ok(false) => return None,
            Err(e) => {
                // pingora's parser refused the head: answer once and close.
                log::debug!("egress: unreadable request head: {e}");
                let d = EgressDecision::refused(EgressReason::MalformedCall, "request head");
                if let Some((h, b)) = Self::local_answer(&d) {
                    let _ = session.write_response_header(Box::new(h)).await;
                    let _ = session.write_response_body(b, true).await;
                }
                self.record(
                    SystemTime::now(),
                    Instant::now(),
                    &Outcome {
                        status: d.reason.status(),
                        decision: d,
                        upstream_status: None,
                        slack_ok: None,
                        slack_error: None,
                        method_label: None,
                    },
                );
                return None;
            }
        }
        let (answer, reusable) = self.handle(&mut session).await;
        let (header, body) = answer?;
        let req = session.req_header();
        let client_keeps = client_keeps_alive(
            req.version == http::Version::HTTP_11,
            req.headers
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        );
        if *shutdown.borrow() || !reusable || !client_keeps {
            session.set_keepalive(None);
        } else {
            session.set_keepalive(Some(KEEPALIVE_IDLE.as_secs()));
        }
        if session
            .write_response_header(Box::new(header))
            .await
            .is_err()
        {
            return None;
        }
        if !body.is_empty() && session.write_response_body(body, true).await.is_err() {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, settings)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_only() {
        assert_eq!(error_code("channel_not_found"), Some("channel_not_found"));
        assert_eq!(error_code("Some message text"), None);
        assert_eq!(error_code(""), None);
    }

    #[test]
    fn hop_by_hop_is_not_relayed() {
        assert!(is_not_relayed(b"transfer-encoding", &[]));
        assert!(is_not_relayed(b"content-length", &[]));
        assert!(is_not_relayed(b"x-hop", &[b"x-hop"]));
        assert!(!is_not_relayed(b"x-oauth-scopes", &[]));
        assert!(!is_not_relayed(b"retry-after", &[]));
    }
}
