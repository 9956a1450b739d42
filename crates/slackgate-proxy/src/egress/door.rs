//! The egress door's pipeline ([`EgressApp`]): one call from its head to its answer and
//! record, on the fast path and under pingora's session, and the door the front serves
//! ([`EgressDoor`]).
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::HttpPeer;
use pingora::proxy::{HttpProxy, ProxyHttp, Session};
use slackgate_guard::{
    EgressCall, EgressDecision, EgressReason, EgressSettings, HookPost, Reason, Unreadable,
};
use slackgate_policy::{Bot, Webhook};
use slackgate_slack::strip_body_token;

use super::call::{clean_value, content_type_sent, Answer, CallHead, Outcome, SlackOutcome};
use super::custody::{CapabilityPath, Custodian};
use super::pacing::{Paced, Pacer};
use super::scopes::ScopeLedger;
use super::vault::{CallToken, TokenVault};
use crate::core::audit::{
    scope_header, Direction, EgressRecord, MAX_SCOPES_GRANTED, MAX_SCOPES_NEEDED,
};
use crate::core::state::Shared;
use crate::net::client::Response;
use crate::net::downstream::{BodyError, Downstream, PingoraDownstream};
use crate::net::front::{ConnLimits, Door, FastPath};
use crate::net::slack_client::{
    error_code, retry_after_of, CallFailure, OutHead, SlackClient, SlackClientError,
};

/// The egress door's pipeline: the fast path's, and pingora's for the rest (one
/// instance shared by both, with one pool of connections to Slack).
#[derive(Clone)]
pub struct EgressApp {
    shared: Arc<Shared>,
    /// The rotating bots' tokens (owned by the server, written by the refresher).
    vault: Arc<TokenVault>,
    /// The scopes the bots' calls needed (owned by the server, read by `/status`).
    ledger: Arc<ScopeLedger>,
    slack: Arc<SlackClient>,
    /// The client for `egress.hooks_base` (webhook posts).
    hooks: Arc<SlackClient>,
    /// The held response and upload URLs' posts (secret custody).
    custodian: Arc<Custodian>,
    /// Slack's pacing by this replica's own buckets (without Redis).
    pacer: Arc<Pacer>,
}

impl std::fmt::Debug for EgressApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressApp")
            .field("slack", &self.slack)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl EgressApp {
    /// The app for `shared`'s egress config.
    ///
    /// `vault`, `ledger` and `slack` are the server's: the token refresher writes the
    /// vault, `/status` reads the ledger, and the client for `egress.slack_api` is built at
    /// start as the refresher's and the group reads' are.
    pub(crate) fn new(
        shared: Arc<Shared>,
        vault: Arc<TokenVault>,
        ledger: Arc<ScopeLedger>,
        slack: Arc<SlackClient>,
    ) -> Result<Self, SlackClientError> {
        let snap = shared.current();
        let egress = snap
            .config
            .egress
            .as_ref()
            .ok_or(SlackClientError::Tls("egress is not configured".to_owned()))?;
        let hooks = SlackClient::new(
            &egress.hooks_base,
            egress.ca_file.as_deref(),
            egress.timeout,
            &snap.config.tls.key_exchange,
        )?;
        let hooks = Arc::new(hooks);
        let custodian = Custodian::new(
            egress,
            &snap.config.tls,
            Arc::clone(&slack),
            Arc::clone(&hooks),
        );
        Ok(Self {
            shared,
            vault,
            ledger,
            slack,
            hooks,
            custodian: Arc::new(custodian),
            pacer: Arc::new(Pacer::default()),
        })
    }

    /// Reads the whole body within the limits; `Err` is the rule that failed (the
    /// connection then closes: its next bytes cannot be trusted to start a call).
    /// `max` is `limits.max_body_bytes`, or less for an upload.
    async fn read_body<S: Downstream>(
        &self,
        down: &mut S,
        max: usize,
    ) -> Result<Bytes, Unreadable> {
        let timeout = self.shared.current().config.limits.body_read_timeout;
        let result = if down.declared_length().is_some_and(|n| n > max as u64) {
            // Refused before the client sends it (and before any `100 Continue`).
            Err(Unreadable::BodyTooLarge)
        } else {
            let continued = if down.expects_continue() {
                down.send_continue().await.is_ok()
            } else {
                true
            };
            match (continued, down.read_body(max, timeout).await) {
                (false, _) => Err(Unreadable::BodyFraming),
                (true, Ok(body)) => Ok(body),
                (true, Err(BodyError::TooLarge)) => Err(Unreadable::BodyTooLarge),
                (true, Err(BodyError::Timeout | BodyError::Closed)) => Err(Unreadable::BodyTimeout),
                (true, Err(BodyError::Framing)) => Err(Unreadable::BodyFraming),
            }
        };
        if result.is_err() {
            down.close_after();
        }
        result
    }

    /// The head of the call as the gateway sends it to Slack.
    fn slack_head(
        &self,
        head: &CallHead,
        decision: &EgressDecision,
        method: &str,
        token: &str,
        body_len: usize,
    ) -> Vec<u8> {
        let path = self.slack.api().path.as_bytes();
        let mut target: Vec<&[u8]> = vec![path, method.as_bytes()];
        if let Some(q) = &head.query {
            target.extend([&b"?"[..], q.as_slice()]);
        }
        self.slack.head(
            &OutHead {
                http_method: &head.method,
                target: &target,
                token: Some(token),
                content_type: content_type_sent(decision.encoding, head.content_type.as_deref()),
                user_agent: head.user_agent.as_deref().filter(|v| clean_value(v)),
            },
            body_len,
        )
    }

    /// Forwards an allowed call; Slack's answer and that answer as the bot gets it.
    async fn forward(
        &self,
        head: &CallHead,
        body: &[u8],
        decision: &EgressDecision,
        token: &str,
        method: &str,
    ) -> Result<Response, CallFailure> {
        let out_body = match (decision.body_token, decision.encoding) {
            (true, Some(enc)) => strip_body_token(enc, body)
                .map_err(|_| CallFailure::Withheld("the token argument could not be removed"))?,
            _ => std::borrow::Cow::Borrowed(body),
        };
        let slack_head = self.slack_head(head, decision, method, token, out_body.len());
        self.slack
            .call(&slack_head, &out_body, head.is(b"HEAD"))
            .await
    }

    /// What Slack's answer tells: its `ok`/`error` and its scopes (its 429:
    /// [`Self::note_slack_429`]).
    fn note_answer(&self, bot: &Arc<Bot>, resp: &Response, o: &mut Outcome) {
        o.upstream_status = Some(resp.status);
        if let Ok(outcome) = serde_json::from_slice::<SlackOutcome<'_>>(&resp.body) {
            o.slack_ok = outcome.ok;
            o.slack_error = outcome
                .error
                .as_deref()
                .and_then(error_code)
                .map(str::to_owned);
        }
        let granted = resp.header(b"x-oauth-scopes");
        let accepted = resp.header(b"x-accepted-oauth-scopes");
        o.scopes_needed = accepted.map(|a| scope_header(a, MAX_SCOPES_NEEDED));
        if let Some(redis) = &self.shared.remote {
            super::shared::publish_scopes(redis, &bot.name, granted, accepted);
        }
        let (unused, granted_changed) = self.ledger.note_grant(&bot.name, granted, accepted);
        if granted_changed {
            o.scopes_granted = granted.map(|g| scope_header(g, MAX_SCOPES_GRANTED));
        }
        self.shared
            .metrics
            .egress
            .show_unused_scopes(&bot.name, unused);
    }

    fn record(&self, ts: SystemTime, started: Instant, o: &Outcome) {
        let d = &o.decision;
        let bot = d.bot.as_ref().map(|b| &*b.name);
        let elapsed = started.elapsed();
        let ts = crate::core::audit::rfc3339(ts);
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
            function_execution_id: d.workflow.as_ref().map(|w| &*w.function_execution_id),
            shadow: d.shadow,
            scopes_needed: o.scopes_needed.as_deref(),
            scopes_granted: o.scopes_granted.as_deref(),
        });
        // The method label: a name the bot's policy lists, else `other`.
        let method = match (&d.bot, d.method.as_deref(), o.method_label.as_deref()) {
            (_, _, Some(label)) => label,
            (Some(b), Some(m), None) if b.methods.exact.contains(m) => m,
            _ => "other",
        };
        let bot_label = bot.unwrap_or("unknown");
        let m = &self.shared.metrics;
        m.egress
            .requests
            .with_label_values(&[bot_label, method, d.reason.as_str()])
            .inc();
        if d.shadow {
            m.egress
                .shadowed
                .with_label_values(&[bot_label, d.reason.as_str()])
                .inc();
        }
        m.egress
            .duration
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
    ) -> Result<Response, CallFailure> {
        // The snapshot check made every URL start with `egress.hooks_base`; the client's
        // base is the one the gateway started with (a changed base needs a restart).
        let path = self
            .hooks
            .api()
            .path_of(hook.url.expose())
            .ok_or(CallFailure::Withheld(
                "the webhook URL is not under the egress.hooks_base the gateway started with",
            ))?;
        let out_head = self.hook_head(head, path, body.len());
        self.hooks.call(&out_head, body, false).await
    }

    /// What a webhook's answer tells: Slack answers `200 ok`, or a status with an error
    /// code as plain text (`no_service`, `channel_is_archived`, ...).
    fn note_hook_answer(resp: &Response, o: &mut Outcome) {
        o.upstream_status = Some(resp.status);
        let text = std::str::from_utf8(&resp.body).map(str::trim).unwrap_or("");
        let ok = resp.status == 200 && text == "ok";
        o.slack_ok = Some(ok);
        o.slack_error = (!ok).then(|| error_code(text)).flatten().map(str::to_owned);
    }

    /// Slack answered `bot`'s call to `method` (a Web API method, or a webhook's
    /// `hooks.<name>`) 429: its later calls to it are answered by the gateway until Slack's
    /// Retry-After passes (whole seconds; without one, a minute), on this replica and, with
    /// Redis, on every replica (published before the bot has Slack's answer).
    async fn note_slack_429(&self, bot: &Bot, method: &str, resp: &Response) {
        if resp.status != 429 {
            return;
        }
        let secs = retry_after_of(resp);
        self.shared
            .guard
            .note_slack_rate_limit(&bot.name, method, secs);
        self.shared
            .metrics
            .egress
            .slack_429
            .with_label_values(&[&bot.name])
            .inc();
        if let Some(redis) = &self.shared.remote {
            super::shared::publish_429(redis, &bot.name, method, secs).await;
        }
    }

    /// One post to a webhook, decided and sent: its outcome and its answer.
    async fn handle_hook(
        &self,
        name: &str,
        head: &CallHead,
        body: &[u8],
        unreadable: Option<Unreadable>,
    ) -> (Outcome, Answer) {
        let snap = self.shared.current();
        let (mut decision, hook) = self.shared.guard.decide_hook(
            &snap.policy,
            &HookPost {
                name,
                is_post: head.is(b"POST"),
                authorization: head.authorization.as_deref(),
            },
        );
        if let Some(why) = unreadable {
            decision.unreadable(why);
        }
        // With Redis: the bot's buckets and Slack's 429s as every replica sees them.
        super::shared::gate(&self.shared, &mut decision, None, None).await;
        let mut outcome = Outcome::of(decision);
        outcome.method_label = snap
            .policy
            .webhooks
            .get(name)
            .map(|h| Arc::clone(&h.method));
        let answer = match (outcome.decision.reason, outcome.decision.bot.clone(), hook) {
            (EgressReason::Allowed, Some(bot), Some(hook)) => {
                match self.post_hook(head, body, &hook).await {
                    Ok(resp) => {
                        Self::note_hook_answer(&resp, &mut outcome);
                        self.note_slack_429(&bot, &hook.method, &resp).await;
                        outcome.status = resp.status;
                        Answer::relayed(&resp)
                    }
                    Err(failure) => {
                        // The failure's text names hooks_base's host at most, never the URL.
                        log::warn!("egress: bot {} webhook {}: {failure}", bot.name, hook.name);
                        outcome.failed(&failure)
                    }
                }
            }
            _ => Answer::local(&outcome.decision),
        };
        (outcome, answer)
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
        match crate::replicate::reply_seen(redis, &app.name, channel).await {
            Some(at) => {
                self.shared.guard.note_reply_seen(&app.name, channel, at);
                true
            }
            None => false,
        }
    }

    /// One call, from its head to its answer, over either path.
    async fn handle<S: Downstream>(
        &self,
        down: &mut S,
        ctx: &mut EgressCtx,
    ) -> pingora::Result<()> {
        let head = CallHead::of(down);
        let snap = self.shared.current();
        let public_url = snap
            .config
            .egress
            .as_ref()
            .and_then(|e| e.public_url.as_deref());
        let held = CapabilityPath::of(&head.path, public_url);
        let mut max = snap.config.limits.max_body_bytes;
        if let Some(CapabilityPath::Upload(cap)) = held {
            max = Custodian::upload_limit(&self.shared, cap, &head, max);
        }
        let body = self.read_body(down, max).await;
        // A body that could not be read whole, or a decision header sent twice, is a
        // call the gateway cannot read, whoever sent it.
        let unreadable = body
            .as_ref()
            .err()
            .copied()
            .or(head.duplicated.then_some(Unreadable::HeaderTwice));
        let body = body.unwrap_or_default();
        let (shared, c) = (&self.shared, &self.custodian);
        let (mut outcome, mut answer) = match (held, head.path.strip_prefix("/hooks/")) {
            (Some(path), _) => c.handle(shared, path, &head, &body, unreadable).await,
            (None, Some(name)) => self.handle_hook(name, &head, &body, unreadable).await,
            (None, None) => self.handle_call(&head, &body, unreadable).await,
        };
        if !answer.is_writable() {
            log::warn!("egress: Slack's answer has a status or header that cannot be relayed");
            answer = outcome.failed(&CallFailure::Withheld("unrelayable answer"));
        }
        // Recorded before the answer leaves: once a bot has its answer, its call's record
        // is written (a next call cannot be recorded before it).
        self.record(ctx.ts, ctx.started, &outcome);
        let headers: Vec<(&[u8], &[u8])> = answer
            .headers
            .iter()
            .map(|(n, v)| (&n[..], &v[..]))
            .collect();
        down.respond(
            answer.status,
            answer.reason.as_deref(),
            &headers,
            answer.body,
        )
        .await
    }

    /// One Web API call, decided and sent: its outcome and its answer.
    async fn handle_call(
        &self,
        head: &CallHead,
        body: &[u8],
        unreadable: Option<Unreadable>,
    ) -> (Outcome, Answer) {
        let snap = self.shared.current();
        let call = EgressCall {
            path: &head.path,
            query: head.query.as_deref(),
            authorization: head.authorization.as_deref(),
            content_type: head.content_type.as_deref(),
            body,
        };
        let settings = EgressSettings::from(&snap.config.limits);
        let mut decision = self
            .shared
            .guard
            .decide_egress(&snap.policy, &call, &settings);
        // Denied by reply_scope here: another replica may have seen the channel; a
        // workflow key unknown here: another replica may have minted it.
        if self.seen_elsewhere(&decision).await
            || Custodian::adopt_workflow_key(&self.shared, &decision, &call, &settings).await
        {
            decision = self
                .shared
                .guard
                .decide_egress(&snap.policy, &call, &settings);
        }
        if let Some(why) = unreadable {
            decision.unreadable(why);
        }
        // With Redis: Slack's 429s, the bot's buckets and Slack's pacing as every replica
        // sees them; without (or when Redis fails), pacing by this replica's own buckets.
        let pacing = snap.config.egress.as_ref().and_then(|e| e.pacing);
        let paced = match (decision.reason, pacing, decision.method.as_deref()) {
            (EgressReason::Allowed, Some(p), Some(method)) => {
                let channel = decision.channel_id.as_deref().unwrap_or("");
                Paced::of(method, channel).map(|paced| (paced, p.max_wait))
            }
            _ => None,
        };
        let paced = paced.as_ref().map(|(p, w)| (p, *w));
        let passed = super::shared::gate(&self.shared, &mut decision, paced, None).await;
        let mut wait = passed.map(|p| p.wait);
        if let (None, Some((p, max_wait)), Some(bot)) = (wait, paced, decision.bot.clone()) {
            match self.pacer.take(&bot.name, p, max_wait) {
                Ok(w) => wait = Some(w),
                Err(secs) => super::shared::refuse_slack(&mut decision, secs, &p.rule()),
            }
        }
        if let Some(w) = wait.filter(|w| !w.is_zero()) {
            tokio::time::sleep(w).await;
        }
        // A rotating bot's token comes from the vault; without one, nothing is sent.
        let bot = decision.bot.clone();
        // A workflow key's call goes with the workflow token held for it.
        let workflow = decision.workflow.as_ref().map(|w| Arc::clone(&w.token));
        // A shadow bot's would-be denial goes on like an allowed call.
        let token = match (decision.forwards(), bot.as_deref(), workflow.as_deref()) {
            (true, Some(_), Some(w)) => Some(CallToken::Static(w)),
            (true, Some(bot), None) => {
                match self.vault.token(bot, self.shared.guard.clock().now()) {
                    CallToken::Unavailable(rule) => {
                        decision.reason = EgressReason::TokenUnavailable;
                        decision.rule = Some(Arc::from(rule));
                        decision.retry_after_secs = None;
                        decision.shadow = false;
                        None
                    }
                    t => Some(t),
                }
            }
            _ => None,
        };

        let mut outcome = Outcome::of(decision);
        let token: Option<&str> = match &token {
            Some(CallToken::Static(t)) => Some(t),
            Some(CallToken::Rotated(p)) => Some(p.access_token()),
            _ => None,
        };
        let answer = match (
            outcome.decision.forwards(),
            outcome.decision.bot.clone(),
            outcome.decision.method.clone(),
            token,
        ) {
            (true, Some(bot), Some(method), Some(token)) => {
                match self
                    .forward(head, body, &outcome.decision, token, &method)
                    .await
                {
                    Ok(resp) => {
                        self.note_answer(&bot, &resp, &mut outcome);
                        self.note_slack_429(&bot, &method, &resp).await;
                        outcome.status = resp.status;
                        let mut answer = Answer::relayed(&resp);
                        let (shared, c) = (&self.shared, &self.custodian);
                        if let Err(why) = c
                            .after_call(shared, &outcome, head, body, &mut answer)
                            .await
                        {
                            log::warn!("egress: bot {} method {method}: {why}", bot.name);
                            answer = outcome.failed(&CallFailure::Withheld(why));
                        }
                        answer
                    }
                    Err(failure) => {
                        log::warn!("egress: bot {} method {method}: Slack: {failure}", bot.name);
                        outcome.failed(&failure)
                    }
                }
            }
            _ => Answer::local(&outcome.decision),
        };
        (outcome, answer)
    }
}

/// One call's state: when it began (its record is written before its answer leaves).
pub struct EgressCtx {
    started: Instant,
    ts: SystemTime,
}

impl std::fmt::Debug for EgressCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressCtx").finish_non_exhaustive()
    }
}

impl EgressCtx {
    fn new() -> Self {
        EgressCtx {
            started: Instant::now(),
            ts: SystemTime::now(),
        }
    }
}

impl FastPath for EgressApp {
    type Ctx = EgressCtx;

    fn context(&self) -> EgressCtx {
        EgressCtx::new()
    }

    async fn handle<S: Downstream>(
        &self,
        down: &mut S,
        ctx: &mut EgressCtx,
    ) -> pingora::Result<()> {
        EgressApp::handle(self, down, ctx).await
    }

    /// The record was written before the answer ([`EgressApp::handle`]).
    fn record(&self, _ctx: &mut EgressCtx) {}
}

/// pingora's path of the egress door: every call the fast path does not take (other
/// methods, chunked bodies, `Expect: 100-continue`, HTTP/1.0) runs the same pipeline
/// in `request_filter`; nothing goes through pingora's proxy loop.
#[async_trait]
impl ProxyHttp for EgressApp {
    type CTX = EgressCtx;

    fn new_ctx(&self) -> EgressCtx {
        EgressCtx::new()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut EgressCtx,
    ) -> pingora::Result<bool> {
        *ctx = EgressCtx::new();
        EgressApp::handle(self, &mut PingoraDownstream(session, false), ctx).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut EgressCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "the egress door answers in request_filter",
        ))
    }
}

/// The egress door behind the front: [`EgressApp`] on the fast path and under
/// pingora's session.
pub(crate) struct EgressDoor {
    app: EgressApp,
    proxy: Arc<HttpProxy<EgressApp>>,
}

impl EgressDoor {
    /// The door over `app`; `proxy` runs a clone of it for pingora's path.
    pub(crate) fn new(app: EgressApp, proxy: Arc<HttpProxy<EgressApp>>) -> Self {
        EgressDoor { app, proxy }
    }
}

impl Door for EgressDoor {
    type Fast = EgressApp;
    type Fallback = HttpProxy<EgressApp>;

    fn fast(&self) -> Option<&EgressApp> {
        Some(&self.app)
    }

    fn fallback(&self) -> &Arc<HttpProxy<EgressApp>> {
        &self.proxy
    }

    fn limits(&self) -> ConnLimits {
        ConnLimits::of(&self.app.shared.current().config.limits)
    }

    /// A head the front refused is a call nobody can be named for: `malformed_call`,
    /// with the front's reason as its rule and the front's status.
    fn refused(&self, _peer: IpAddr, reason: Reason) {
        let d = EgressDecision::refused(EgressReason::MalformedCall, reason.as_str());
        let mut outcome = Outcome::of(d);
        outcome.status = reason.status();
        self.app.record(SystemTime::now(), Instant::now(), &outcome);
    }
}

#[cfg(test)]
mod tests {
    use crate::net::downstream::is_not_relayed;

    #[test]
    fn hop_by_hop_is_not_relayed() {
        assert!(is_not_relayed(b"transfer-encoding", &[]));
        assert!(is_not_relayed(b"content-length", &[]));
        assert!(is_not_relayed(b"x-hop", &[b"x-hop"]));
        assert!(!is_not_relayed(b"x-oauth-scopes", &[]));
        assert!(!is_not_relayed(b"retry-after", &[]));
    }
}
