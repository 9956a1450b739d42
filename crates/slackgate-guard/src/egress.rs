//! The egress decision: one Web API call from a bot, checked against the bot's policy.
//!
//! The stages run in this order, each a function returning the next stage or the
//! decision, so that a call is refused by the first rule it breaks:
//! 1. read the call the way Slack reads it (query, form or JSON body), within
//!    `limits.max_call_channels` ([`EgressSettings`]), in time linear in its size: the
//!    caller is not known yet;
//! 2. a token in the query string is refused (`token_in_url`): URLs end up in logs;
//! 3. identify the bot by its key (`Authorization: Bearer`, or a `token` argument of the
//!    body), every key compared in constant time (`unknown_bot`);
//! 4. a bot whose token a verified lifecycle event revoked (`token_revoked`): nothing of
//!    its calls reaches Slack until its token reference changes;
//! 5. the method from the path, in Slack's spelling ([`canonical_method`]), then the bot's
//!    `methods` (`method_denied`), where a privileged method must be listed by its exact
//!    name, and a name Slack does not document must be listed exactly as it is spelled;
//! 6. `team` (`team_denied`), `channels` for every channel the call names
//!    (`channel_denied`), a write into a conversation the call does not name
//!    (`channel_denied` for a bot with `channels` or `reply_scope`; only a method that
//!    finds its conversation by other arguments, `chat.unfurl` by `unfurl_id`, passes,
//!    and only when its `methods` lists it by name), `reply_scope` for every method that
//!    writes into a conversation ([`conversation_use`]; `channel_denied`, rule
//!    `reply_scope`), `deny_args` (`argument_denied`);
//! 7. Slack's own 429s, remembered per bot and method (`slack_rate_limited`);
//! 8. the bot's `rate_limits` (`rate_limited`).
//!
//! A call that passes is [`EgressReason::Allowed`]: the proxy swaps the key for the
//! bot's token and sends it on, to the method in Slack's spelling
//! ([`EgressDecision::method`]).
//!
//! Every rule sees the method in Slack's spelling, and the channel a call is charged to
//! (`per: channel` limits) and audited as is the one the method acts on
//! ([`CallArgs::acted_on`]), not whichever the caller wrote first.
//!
//! What a decision carries ends up in the audit trail: ids only in Slack's id shape (else
//! `"invalid"`), and for a caller no key identifies, nothing it wrote but a method name
//! Slack documents.
//!
//! A post to a webhook the gateway holds (`POST /hooks/<name>`, [`decide_hook`]) is
//! decided by the bot's key (`unknown_bot`), the path and HTTP method (`malformed_call`)
//! and the webhook's `bots` (`method_denied`, rule `webhooks`); its method is
//! `hooks.<name>`. No token travels with it, so a revoked token does not stop it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use slackgate_policy::{Bot, EgressLimitKey, Limits, Policy, Webhook};
use slackgate_slack::{
    canonical_method, conversation_use, is_privileged_method, is_slack_id, method_from_path,
    read_call, CallArgs, CallEncoding, CallError, CallLimits, Writes,
};

use crate::ratelimit::{BucketKey, RateLimiter, Take};
use crate::reply::ReplyChannels;
use crate::revoked::RevokedTokens;

/// Why the gateway answered or forwarded a Web API call the way it did.
///
/// The single source of the egress reason codes (audit `reason`, metric label, the
/// `error` of the answer) and of the status each is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EgressReason {
    /// Every check passed and the call was sent to Slack.
    Allowed,
    /// No bot has the key presented (or none was presented).
    UnknownBot,
    /// The method is not in the bot's `methods` (or is privileged and not listed exactly).
    MethodDenied,
    /// The call names a channel outside the bot's `channels`.
    ChannelDenied,
    /// The call sends an argument in the bot's `deny_args`.
    ArgumentDenied,
    /// The call names a `team_id` other than the bot's `team`.
    TeamDenied,
    /// A token was sent in the query string.
    TokenInUrl,
    /// The call cannot be read: no method in the path, a body that is not a readable
    /// form or JSON object, an argument given twice with different values, two
    /// different keys.
    MalformedCall,
    /// A rate limit of the bot is exhausted.
    RateLimited,
    /// Slack answered this bot's calls to this method 429, and its `Retry-After` has not
    /// passed.
    SlackRateLimited,
    /// The bot's token was revoked.
    TokenRevoked,
    /// The bot rotates its token and has none to send: the first one is not minted yet
    /// (rule `rotation.pending`) or the current one expired before a refresh succeeded
    /// (`rotation.expired`).
    TokenUnavailable,
    /// Slack could not be reached, or its answer was broken.
    UpstreamError,
    /// Slack did not answer within `egress.timeout`.
    UpstreamTimeout,
}

impl EgressReason {
    /// Every egress reason, in contract order.
    pub const ALL: [EgressReason; 14] = [
        EgressReason::Allowed,
        EgressReason::UnknownBot,
        EgressReason::MethodDenied,
        EgressReason::ChannelDenied,
        EgressReason::ArgumentDenied,
        EgressReason::TeamDenied,
        EgressReason::TokenInUrl,
        EgressReason::MalformedCall,
        EgressReason::RateLimited,
        EgressReason::SlackRateLimited,
        EgressReason::TokenRevoked,
        EgressReason::TokenUnavailable,
        EgressReason::UpstreamError,
        EgressReason::UpstreamTimeout,
    ];

    /// The reason code of audit records, metric labels and answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            EgressReason::Allowed => "allowed",
            EgressReason::UnknownBot => "unknown_bot",
            EgressReason::MethodDenied => "method_denied",
            EgressReason::ChannelDenied => "channel_denied",
            EgressReason::ArgumentDenied => "argument_denied",
            EgressReason::TeamDenied => "team_denied",
            EgressReason::TokenInUrl => "token_in_url",
            EgressReason::MalformedCall => "malformed_call",
            EgressReason::RateLimited => "rate_limited",
            EgressReason::SlackRateLimited => "slack_rate_limited",
            EgressReason::TokenRevoked => "token_revoked",
            EgressReason::TokenUnavailable => "token_unavailable",
            EgressReason::UpstreamError => "upstream_error",
            EgressReason::UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The HTTP status the gateway answers with itself. A denial is answered the way
    /// Slack answers a failed call (200 with `ok: false`), so SDKs raise their usual API
    /// error; rate limits are 429 as Slack's are; the gateway's own failures to reach
    /// Slack are 502 and 504, and 503 while a rotating token is unavailable. `Allowed` is
    /// Slack's own status (200 here).
    pub const fn status(self) -> u16 {
        match self {
            EgressReason::RateLimited | EgressReason::SlackRateLimited => 429,
            EgressReason::TokenUnavailable => 503,
            EgressReason::UpstreamError => 502,
            EgressReason::UpstreamTimeout => 504,
            _ => 200,
        }
    }
}

impl std::fmt::Display for EgressReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of the egress decision that come from the server config, not the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressSettings {
    /// `limits.max_call_channels`: the most distinct channels one call may name.
    pub max_call_channels: usize,
}

impl From<&Limits> for EgressSettings {
    fn from(limits: &Limits) -> Self {
        EgressSettings {
            max_call_channels: limits.max_call_channels,
        }
    }
}

/// One Web API call as it arrived: the raw parts the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct EgressCall<'a> {
    /// The request path, without the query.
    pub path: &'a str,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'a [u8]>,
    /// The raw `Authorization` value, if any.
    pub authorization: Option<&'a [u8]>,
    /// The raw `Content-Type` value, if any.
    pub content_type: Option<&'a [u8]>,
    /// The whole body.
    pub body: &'a [u8],
}

/// The outcome of one call: a value the proxy acts on, audits and counts.
#[derive(Debug, Clone)]
pub struct EgressDecision {
    /// Why.
    pub reason: EgressReason,
    /// The bot, once identified.
    pub bot: Option<Arc<Bot>>,
    /// The method in Slack's spelling, as it is forwarded; for an identified bot, a name
    /// Slack does not document as it was written (allowed only when listed exactly); for an
    /// unknown caller, only a name Slack documents.
    pub method: Option<Box<str>>,
    /// The call's `team_id` (`"invalid"` unless in Slack's id shape), for an identified bot.
    pub team_id: Option<Box<str>>,
    /// For an identified bot, the channel the method acts on (else the first channel the
    /// call names), or the channel that was denied; `"invalid"` unless in Slack's id shape.
    pub channel_id: Option<Box<str>>,
    /// Which rule decided (`methods`, `channels`, `deny_args: username`, a rate limit's
    /// label, ...), for audit `rule`.
    pub rule: Option<Arc<str>>,
    /// For 429s: seconds until a call may succeed.
    pub retry_after_secs: Option<u32>,
    /// The body's encoding, when it was read.
    pub encoding: Option<CallEncoding>,
    /// The body carries a `token` argument, which must not be forwarded.
    pub body_token: bool,
}

/// Why the egress listener could not read a call whole. Such a call is `malformed_call`,
/// whatever the decision on what was read said ([`EgressDecision::unreadable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The body is over `limits.max_body_bytes` (it is not read further).
    BodyTooLarge,
    /// The body's framing broke while it was read.
    BodyFraming,
    /// The body did not arrive within `limits.body_read_timeout`.
    BodyTimeout,
    /// `Authorization` or `Content-Type` was sent twice.
    HeaderTwice,
}

impl Unreadable {
    /// The audit `rule` of the refusal.
    pub const fn rule(self) -> &'static str {
        match self {
            Unreadable::BodyTooLarge => "body over limits.max_body_bytes",
            Unreadable::BodyFraming => "body framing",
            Unreadable::BodyTimeout => "body not read within limits.body_read_timeout",
            Unreadable::HeaderTwice => "a header sent twice",
        }
    }
}

impl EgressDecision {
    /// Turns the decision into the refusal of a call the listener could not read whole.
    pub fn unreadable(&mut self, why: Unreadable) {
        self.reason = EgressReason::MalformedCall;
        self.retry_after_secs = None;
        self.rule = Some(Arc::from(why.rule()));
    }

    /// A decision made before the call could be read (the proxy's own refusals: a head
    /// pingora's parser refused, a body over the limits), with the rule that decided.
    pub fn refused(reason: EgressReason, rule: &str) -> Self {
        Self::new(reason).rule(rule)
    }

    fn new(reason: EgressReason) -> Self {
        EgressDecision {
            reason,
            bot: None,
            method: None,
            team_id: None,
            channel_id: None,
            rule: None,
            retry_after_secs: None,
            encoding: None,
            body_token: false,
        }
    }

    fn rule(mut self, rule: &str) -> Self {
        self.rule = Some(Arc::from(rule));
        self
    }
}

/// The most (bot, method) pairs remembered as limited by Slack; the oldest deadline is
/// dropped first beyond it. Bots x methods is small in practice.
const MAX_SLACK_LIMITS: usize = 10_000;

/// Per bot, per method: until when (seconds) Slack's 429 holds.
type Deadlines = HashMap<Arc<str>, HashMap<Box<str>, f64>>;

/// Slack's 429s, per bot and method: until when calls are answered locally.
///
/// Nested by bot, then method, so a lookup borrows the names and allocates nothing; until
/// Slack first answers 429, a call takes no lock at all.
#[derive(Debug, Default)]
pub struct SlackLimits {
    until: Mutex<Deadlines>,
    /// Set once any deadline was recorded.
    any: std::sync::atomic::AtomicBool,
}

impl SlackLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        match self.until.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records that Slack answered `bot`'s call to `method` 429 with `retry_after_secs`
    /// at `now` (seconds).
    pub fn note(&self, bot: &Arc<str>, method: &str, retry_after_secs: u32, now: f64) {
        let mut map = self.lock();
        let count: usize = map.values().map(HashMap::len).sum();
        if count >= MAX_SLACK_LIMITS {
            for methods in map.values_mut() {
                methods.retain(|_, until| *until > now);
            }
            map.retain(|_, methods| !methods.is_empty());
            let count: usize = map.values().map(HashMap::len).sum();
            if count >= MAX_SLACK_LIMITS {
                let oldest = map
                    .iter()
                    .flat_map(|(b, ms)| ms.iter().map(move |(m, u)| (b, m, *u)))
                    .min_by(|a, b| a.2.total_cmp(&b.2))
                    .map(|(b, m, _)| (Arc::clone(b), m.clone()));
                if let Some((b, m)) = oldest {
                    if let Some(ms) = map.get_mut(&b) {
                        ms.remove(&m);
                    }
                }
            }
        }
        let until = now + f64::from(retry_after_secs.max(1));
        let entry = map
            .entry(Arc::clone(bot))
            .or_default()
            .entry(Box::from(method))
            .or_insert(until);
        *entry = entry.max(until);
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Seconds left (rounded up, at least 1) while `bot`'s calls to `method` are limited.
    pub fn remaining(&self, bot: &Arc<str>, method: &str, now: f64) -> Option<u32> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let mut map = self.lock();
        let methods = map.get_mut(&**bot)?;
        let until = *methods.get(method)?;
        if until <= now {
            methods.remove(method);
            return None;
        }
        Some(((until - now).ceil() as u32).max(1))
    }
}

/// The key a call presents: `Authorization: Bearer KEY` (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
        .filter(|k| !k.is_empty())
}

/// An id as the audit trail may carry it: itself in Slack's id shape, else `"invalid"`.
fn audit_id(id: &str) -> Box<str> {
    Box::from(if is_slack_id(id) { id } else { "invalid" })
}

/// The audit rule of a call that could not be read. For a caller no key identified, no
/// argument name it wrote.
fn unreadable_rule(e: &CallError, identified: bool) -> String {
    if identified {
        e.to_string()
    } else {
        e.kind().to_owned()
    }
}

/// Runs the egress stages over one call. `settings` come from the server config,
/// `limiter` holds the bots' buckets (shared with the inbound limits, in their own key
/// space), `slack` Slack's 429s, `revoked` the revoked tokens, `reply` the channels seen
/// inbound, `now` is seconds.
#[allow(clippy::too_many_arguments)]
pub fn decide_egress(
    policy: &Policy,
    call: &EgressCall<'_>,
    settings: &EgressSettings,
    limiter: &RateLimiter,
    slack: &SlackLimits,
    revoked: &RevokedTokens,
    reply: &ReplyChannels,
    now: f64,
) -> EgressDecision {
    let header_key = call.authorization.and_then(bearer);
    let limits = CallLimits {
        max_channels: settings.max_call_channels,
    };
    let args = read_call(call.query, call.content_type, call.body, &limits);

    // Who is calling: needed for the audit record of every later refusal.
    let presented: Option<&[u8]> = match (&args, header_key) {
        (_, Some(k)) => Some(k),
        (Ok(a), None) => a.body_token.as_deref().map(str::as_bytes),
        (Err(_), None) => None,
    };
    let bot = presented.and_then(|k| policy.bots.by_key(k)).cloned();
    let had_key = presented.is_some();
    let written = method_from_path(call.path);
    let known = written.and_then(canonical_method);
    // An unknown caller's record names a method only when Slack documents it.
    let method = if bot.is_some() {
        known.or(written)
    } else {
        known
    };
    let early = |reason: EgressReason, rule: &str| EgressDecision {
        bot: bot.clone(),
        method: method.map(Box::from),
        ..EgressDecision::new(reason).rule(rule)
    };

    let args: CallArgs = match args {
        Ok(a) => a,
        Err(e) => {
            return early(
                EgressReason::MalformedCall,
                &unreadable_rule(&e, bot.is_some()),
            )
        }
    };
    if args.token_in_query {
        return early(EgressReason::TokenInUrl, "query");
    }
    if let (Some(h), Some(b)) = (header_key, args.body_token.as_deref()) {
        if h != b.as_bytes() {
            return early(
                EgressReason::MalformedCall,
                "Authorization and the token argument differ",
            );
        }
    }
    let Some(bot) = bot.clone() else {
        return early(
            EgressReason::UnknownBot,
            if had_key { "key" } else { "no key" },
        );
    };
    let mut d = EgressDecision {
        bot: Some(Arc::clone(&bot)),
        method: method.map(Box::from),
        ..EgressDecision::new(EgressReason::Allowed)
    };
    d.encoding = Some(args.encoding);
    d.body_token = args.body_token.is_some();
    d.team_id = args.team_id.as_deref().map(audit_id);

    if let Some(by) = revoked.revoked_by(&bot) {
        d.reason = EgressReason::TokenRevoked;
        return d.rule(by.as_str());
    }
    let Some(method) = method else {
        d.reason = EgressReason::MalformedCall;
        return d.rule("path");
    };
    let permitted = match known {
        Some(m) => bot.methods.permits(m, is_privileged_method(m)),
        // A name Slack does not document: only as the policy spells it, never by a glob.
        None => bot.methods.exact.contains(method),
    };
    if !permitted {
        d.reason = EgressReason::MethodDenied;
        return d.rule("methods");
    }
    let acted_on = args.acted_on(method);
    // A call that leaves out the method's own argument is still charged to a channel.
    let charged = acted_on.or(args.channels.first().map(String::as_str));
    d.channel_id = charged.map(audit_id);
    if let (Some(pin), Some(team)) = (&bot.team, &args.team_id) {
        if **pin != **team {
            d.reason = EgressReason::TeamDenied;
            return d.rule("team");
        }
    }
    if let Some(allowed) = &bot.channels {
        if let Some(c) = args.channels.iter().find(|c| !allowed.contains(c)) {
            d.channel_id = Some(audit_id(c));
            d.reason = EgressReason::ChannelDenied;
            return d.rule("channels");
        }
    }
    let conversation = conversation_use(method);
    let writes = conversation.is_some_and(|u| u.writes(acted_on.is_some()));
    let reply_window = match (bot.reply_scope, &bot.app) {
        (Some(window), Some(app)) => Some((window.as_secs_f64(), app)),
        _ => None,
    };
    // A write into a conversation the call does not name cannot be held to `channels` or
    // `reply_scope`. Only a method that finds its conversation by other arguments
    // (`chat.unfurl` by `unfurl_id`) passes, and only when the operator names it.
    let unnamed_ok = conversation.is_some_and(|u| u.writes == Writes::EvenUnnamed)
        && bot.methods.exact.contains(method);
    if writes
        && acted_on.is_none()
        && (bot.channels.is_some() || reply_window.is_some())
        && !unnamed_ok
    {
        d.reason = EgressReason::ChannelDenied;
        return d.rule(if bot.channels.is_some() {
            "channels"
        } else {
            "reply_scope"
        });
    }
    if let (true, Some((window, app))) = (writes, reply_window) {
        if let Some(c) = args
            .channels
            .iter()
            .find(|c| !reply.seen_within(&app.name, c, window, now))
        {
            d.channel_id = Some(audit_id(c));
            d.reason = EgressReason::ChannelDenied;
            return d.rule("reply_scope");
        }
    }
    if let Some(name) = args.names.iter().find(|n| bot.deny_args.contains(n)) {
        d.reason = EgressReason::ArgumentDenied;
        let rule = format!("deny_args: {name}");
        return d.rule(&rule);
    }
    if let Some(secs) = slack.remaining(&bot.name, method, now) {
        d.reason = EgressReason::SlackRateLimited;
        d.retry_after_secs = Some(secs);
        return d.rule("slack retry_after");
    }
    if let Some((retry_after_secs, label)) =
        take_limits(&bot, method, charged.unwrap_or(""), limiter, now)
    {
        d.reason = EgressReason::RateLimited;
        d.retry_after_secs = Some(retry_after_secs);
        d.rule = Some(label);
    }
    d
}

/// Takes one token from each of `bot`'s rate limits for a call to `method` naming
/// `channel` ("" for none); the first exhausted one's Retry-After and label.
fn take_limits(
    bot: &Bot,
    method: &str,
    channel: &str,
    limiter: &RateLimiter,
    now: f64,
) -> Option<(u32, Arc<str>)> {
    for (i, rule) in bot.rate_limits.iter().enumerate() {
        let value = match rule.per {
            EgressLimitKey::Bot => "",
            EgressLimitKey::Method => method,
            EgressLimitKey::Channel => channel,
        };
        let key = BucketKey {
            route: &bot.name,
            rule: i,
            per: match rule.per {
                EgressLimitKey::Bot => "egress.bot",
                EgressLimitKey::Method => "egress.method",
                EgressLimitKey::Channel => "egress.channel",
            },
            value,
        };
        if let Take::Limited { retry_after_secs } =
            limiter.take(&key, rule.rate.tokens_per_sec, rule.burst.get(), now)
        {
            return Some((retry_after_secs, Arc::clone(&rule.label)));
        }
    }
    None
}

/// The bot's rate limits on an allowed webhook post (method `hooks.<name>`, no channel):
/// a post is a write like `chat.postMessage`, and counts against `per: bot` limits too.
pub(crate) fn limit_hook(
    d: &mut EgressDecision,
    limiter: &RateLimiter,
    slack: &SlackLimits,
    now: f64,
) {
    if d.reason != EgressReason::Allowed {
        return;
    }
    let (Some(bot), Some(method)) = (d.bot.clone(), d.method.clone()) else {
        return;
    };
    // Slack's own 429 to this bot's posts to this webhook, until its Retry-After passes.
    if let Some(secs) = slack.remaining(&bot.name, &method, now) {
        d.reason = EgressReason::SlackRateLimited;
        d.retry_after_secs = Some(secs);
        d.rule = Some(Arc::from("slack retry_after"));
        return;
    }
    if let Some((retry_after_secs, label)) = take_limits(&bot, &method, "", limiter, now) {
        d.reason = EgressReason::RateLimited;
        d.retry_after_secs = Some(retry_after_secs);
        d.rule = Some(label);
    }
}

/// One post to a webhook the gateway holds, as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct HookPost<'a> {
    /// The `<name>` of `/hooks/<name>`.
    pub name: &'a str,
    /// Whether the HTTP method is `POST` (the only one a webhook takes).
    pub is_post: bool,
    /// The raw `Authorization` value, if any.
    pub authorization: Option<&'a [u8]>,
}

/// A webhook name as the policy may write it (so it is safe in audit and metrics).
fn is_hook_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Decides a post to a webhook; when allowed, the webhook comes with the decision.
pub fn decide_hook(policy: &Policy, post: &HookPost<'_>) -> (EgressDecision, Option<Arc<Webhook>>) {
    let presented = post.authorization.and_then(bearer);
    let bot = presented.and_then(|k| policy.bots.by_key(k)).cloned();
    let mut d = EgressDecision::new(EgressReason::Allowed);
    let hook = is_hook_name(post.name)
        .then(|| policy.webhooks.get(post.name))
        .flatten();
    // A caller no key identifies gets a method only for a webhook that exists.
    d.method = match hook {
        Some(h) => Some(Box::from(&*h.method)),
        None if is_hook_name(post.name) && bot.is_some() => {
            Some(Box::from(format!("hooks.{}", post.name)))
        }
        None => None,
    };
    let Some(bot) = bot else {
        d.reason = EgressReason::UnknownBot;
        return (
            d.rule(if presented.is_some() { "key" } else { "no key" }),
            None,
        );
    };
    d.bot = Some(Arc::clone(&bot));
    if !is_hook_name(post.name) {
        d.reason = EgressReason::MalformedCall;
        return (d.rule("path"), None);
    }
    if !post.is_post {
        d.reason = EgressReason::MalformedCall;
        return (d.rule("a webhook takes POST"), None);
    }
    let Some(hook) = hook else {
        d.reason = EgressReason::MethodDenied;
        return (d.rule("webhooks: not defined"), None);
    };
    if !hook.permits(&bot.name) {
        d.reason = EgressReason::MethodDenied;
        return (d.rule("webhooks"), None);
    }
    (d, Some(Arc::clone(hook)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_keys() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    #[test]
    fn statuses() {
        for r in EgressReason::ALL {
            let s = r.status();
            assert!([200, 429, 502, 503, 504].contains(&s), "{r}");
        }
        assert_eq!(EgressReason::SlackRateLimited.status(), 429);
        assert_eq!(EgressReason::TokenUnavailable.status(), 503);
    }

    #[test]
    fn slack_limits_stay_bounded() {
        let s = SlackLimits::default();
        let bot: Arc<str> = Arc::from("b");
        for i in 0..=MAX_SLACK_LIMITS {
            s.note(&bot, &format!("m{i}"), 30, 100.0 + i as f64);
        }
        let count: usize = s.lock().values().map(HashMap::len).sum();
        assert!(count <= MAX_SLACK_LIMITS, "{count}");
        // The oldest went first; the newest is remembered.
        assert_eq!(s.remaining(&bot, "m0", 101.0), None);
        let last = format!("m{MAX_SLACK_LIMITS}");
        assert!(s
            .remaining(&bot, &last, 100.0 + MAX_SLACK_LIMITS as f64)
            .is_some());
    }

    #[test]
    fn slack_limits_expire() {
        let s = SlackLimits::default();
        let bot: Arc<str> = Arc::from("b");
        s.note(&bot, "chat.postMessage", 30, 100.0);
        assert_eq!(s.remaining(&bot, "chat.postMessage", 100.5), Some(30));
        assert_eq!(s.remaining(&bot, "chat.update", 100.5), None);
        assert_eq!(s.remaining(&bot, "chat.postMessage", 130.0), None);
    }

    // === decide_egress ===

    const SCOPED: &str = "gk_scoped_1111aaaa2222bbbb";
    const UNFURLER: &str = "gk_unfurler_3333cccc4444dddd";
    const REPLIER: &str = "gk_replier_5555eeee6666ffff";
    const COUNTER: &str = "gk_counter_7777gggg8888hhhh";

    fn egress_policy() -> Policy {
        let secrets = slackgate_fixtures::MapSecrets::in_memory(&[
            ("SIGNING", "8f742231b10e8888abcd99yyyzzz85a5"),
            ("SCOPED_KEY", SCOPED),
            ("UNFURLER_KEY", UNFURLER),
            ("REPLIER_KEY", REPLIER),
            ("COUNTER_KEY", COUNTER),
            ("TOKEN", "xoxb-1-t"),
        ]);
        let text = r#"version: 1
apps:
  helpdesk: { signing_secrets: [{ id: current, env: SIGNING }] }
routes: []
bots:
  scoped:
    key: { env: SCOPED_KEY }
    token: { env: TOKEN }
    team: T0ACME
    methods: ["chat.*", "canvases.*", conversations.info, x.custom]
    channels: [C0HELP, C0OPS]
    rate_limits: [{ per: channel, rate: 1/min, burst: 1 }]
  unfurler:
    key: { env: UNFURLER_KEY }
    token: { env: TOKEN }
    methods: [chat.unfurl, chat.update]
    channels: [C0HELP]
  replier:
    app: helpdesk
    key: { env: REPLIER_KEY }
    token: { env: TOKEN }
    methods: ["chat.*", files.completeUploadExternal, "reactions.*", conversations.info]
    reply_scope: 10m
  counter:
    key: { env: COUNTER_KEY }
    token: { env: TOKEN }
    methods: [chat.postMessage, "x.*"]
    rate_limits: [{ per: method, rate: 1/min, burst: 1 }]
"#;
        slackgate_policy::compile_policy(
            std::path::Path::new("policy.yaml"),
            text,
            &secrets,
            std::time::SystemTime::UNIX_EPOCH,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The egress door's state around one policy.
    struct Door {
        policy: Policy,
        settings: EgressSettings,
        limiter: RateLimiter,
        slack: SlackLimits,
        revoked: RevokedTokens,
        reply: ReplyChannels,
    }

    const NOW: f64 = 1_900_000_000.0;

    impl Door {
        fn new() -> Self {
            Door {
                policy: egress_policy(),
                settings: EgressSettings {
                    max_call_channels: 100,
                },
                limiter: RateLimiter::new(1000),
                slack: SlackLimits::default(),
                revoked: RevokedTokens::default(),
                reply: ReplyChannels::default(),
            }
        }

        fn decide(&self, key: &str, path: &str, form: &str) -> EgressDecision {
            let auth = format!("Bearer {key}");
            decide_egress(
                &self.policy,
                &EgressCall {
                    path,
                    query: None,
                    authorization: Some(auth.as_bytes()),
                    content_type: Some(b"application/x-www-form-urlencoded"),
                    body: form.as_bytes(),
                },
                &self.settings,
                &self.limiter,
                &self.slack,
                &self.revoked,
                &self.reply,
                NOW,
            )
        }
    }

    fn outcome(d: &EgressDecision) -> (EgressReason, Option<&str>, Option<&str>) {
        (d.reason, d.rule.as_deref(), d.channel_id.as_deref())
    }

    #[test]
    fn a_channel_list_past_the_cap_is_malformed() {
        let mut door = Door::new();
        door.settings.max_call_channels = 3;
        let d = door.decide(SCOPED, "/api/chat.postMessage", "channels=C1,C2,C3,C4");
        assert_eq!(d.reason, EgressReason::MalformedCall);
        let rule = d.rule.as_deref().unwrap_or_default();
        assert!(rule.contains("limits.max_call_channels"), "{rule}");
        assert_eq!(
            d.bot.map(|b| Arc::clone(&b.name)).as_deref(),
            Some("scoped")
        );
        // At the cap, the call is read (and then held to `channels`).
        let d = door.decide(
            SCOPED,
            "/api/chat.postMessage",
            "channel=C0HELP&channels=C0HELP,C0OPS,C0HELP",
        );
        assert_eq!(d.reason, EgressReason::Allowed);
    }

    #[test]
    fn methods_are_decided_in_slacks_spelling() {
        let door = Door::new();
        for path in [
            "/api/chat.PostMessage",
            "/api/CHAT.POSTMESSAGE",
            "/api/chat.postMessage",
        ] {
            let d = door.decide(COUNTER, path, "channel=C0HELP&text=hi");
            assert_eq!(d.method.as_deref(), Some("chat.postMessage"), "{path}");
        }
        // One per-method bucket for every spelling: the first took it.
        let d = door.decide(COUNTER, "/api/Chat.postmessage", "channel=C0HELP");
        assert_eq!(d.reason, EgressReason::RateLimited);
        // Slack's 429 holds for every spelling too.
        door.slack
            .note(&Arc::from("scoped"), "chat.postMessage", 30, NOW);
        let d = door.decide(SCOPED, "/api/CHAT.postMESSAGE", "channel=C0HELP");
        assert_eq!(
            (d.reason, d.method.as_deref()),
            (EgressReason::SlackRateLimited, Some("chat.postMessage"))
        );
        // A privileged family in any case is decided as Slack's name: listed exactly or not at all.
        let d = door.decide(SCOPED, "/api/ADMIN.users.LIST", "");
        assert_eq!(
            (d.reason, d.method.as_deref()),
            (EgressReason::MethodDenied, Some("admin.users.list"))
        );
    }

    #[test]
    fn a_name_slack_does_not_document_passes_only_as_listed() {
        let door = Door::new();
        let d = door.decide(SCOPED, "/api/x.custom", "");
        assert_eq!(
            (d.reason, d.method.as_deref()),
            (EgressReason::Allowed, Some("x.custom"))
        );
        for path in ["/api/X.custom", "/api/x.Custom"] {
            let d = door.decide(SCOPED, path, "");
            assert_eq!(
                outcome(&d),
                (EgressReason::MethodDenied, Some("methods"), None),
                "{path}"
            );
        }
        // A glob never admits one.
        let d = door.decide(COUNTER, "/api/x.custom", "");
        assert_eq!(d.reason, EgressReason::MethodDenied);
    }

    #[test]
    fn every_channel_naming_argument_is_held_to_channels() {
        let door = Door::new();
        let d = door.decide(
            SCOPED,
            "/api/canvases.access.set",
            "canvas_id=F1&access_level=write&channel_ids=C0OTHER",
        );
        assert_eq!(
            outcome(&d),
            (
                EgressReason::ChannelDenied,
                Some("channels"),
                Some("C0OTHER")
            )
        );
        let d = door.decide(
            SCOPED,
            "/api/conversations.info",
            "channel=C0HELP&context_channel_id=C0OTHER",
        );
        assert_eq!(
            outcome(&d),
            (
                EgressReason::ChannelDenied,
                Some("channels"),
                Some("C0OTHER")
            )
        );
        let d = door.decide(
            SCOPED,
            "/api/canvases.access.set",
            "canvas_id=F1&channel_ids=C0OPS,C0HELP",
        );
        assert_eq!(outcome(&d), (EgressReason::Allowed, None, Some("C0OPS")));
    }

    #[test]
    fn the_channel_acted_on_is_charged_and_audited() {
        let door = Door::new();
        // chat.postMessage acts on `channel`, whatever came first.
        let d = door.decide(
            SCOPED,
            "/api/chat.postMessage",
            "channel_id=C0HELP&channel=C0OPS&text=x",
        );
        assert_eq!(outcome(&d), (EgressReason::Allowed, None, Some("C0OPS")));
        // C0OPS's bucket (burst 1) is spent; C0HELP's is not.
        let d = door.decide(SCOPED, "/api/chat.postMessage", "channel=C0OPS");
        assert_eq!(d.reason, EgressReason::RateLimited);
        let d = door.decide(SCOPED, "/api/chat.postMessage", "channel=C0HELP");
        assert_eq!(outcome(&d), (EgressReason::Allowed, None, Some("C0HELP")));
    }

    #[test]
    fn writes_that_name_no_conversation() {
        let door = Door::new();
        let unfurl = "unfurl_id=Uf1&source=composer&unfurls=%7B%7D";
        // Held to `channels` through a glob: denied.
        let d = door.decide(SCOPED, "/api/chat.unfurl", unfurl);
        assert_eq!(
            outcome(&d),
            (EgressReason::ChannelDenied, Some("channels"), None)
        );
        // Held to reply_scope: denied.
        let d = door.decide(REPLIER, "/api/chat.unfurl", unfurl);
        assert_eq!(
            outcome(&d),
            (EgressReason::ChannelDenied, Some("reply_scope"), None)
        );
        // Listed by name: the operator chose it.
        let d = door.decide(UNFURLER, "/api/chat.unfurl", unfurl);
        assert_eq!(d.reason, EgressReason::Allowed);
        // A method that needs its channel gets no such pass, listed or not.
        let d = door.decide(
            UNFURLER,
            "/api/chat.update",
            "ts=1.2&text=x&channel_id=C0HELP",
        );
        assert_eq!(
            outcome(&d),
            (
                EgressReason::ChannelDenied,
                Some("channels"),
                Some("C0HELP")
            )
        );
        // An upload shared nowhere writes nowhere.
        let d = door.decide(REPLIER, "/api/files.completeUploadExternal", "files=%5B%5D");
        assert_eq!(d.reason, EgressReason::Allowed);
    }

    #[test]
    fn reply_scope_covers_every_conversation_write() {
        let door = Door::new();
        let app: Arc<str> = Arc::from("helpdesk");
        door.reply.note(&app, "C0HELP", NOW - 60.0);
        for (method, args) in [
            ("chat.startStream", "channel=C0SECRET&thread_ts=1.2"),
            ("chat.appendStream", "channel=C0SECRET&ts=1.2"),
            ("chat.stopStream", "channel=C0SECRET&ts=1.2"),
            ("chat.unfurl", "channel=C0SECRET&ts=1.2&unfurls=%7B%7D"),
            ("chat.scheduleMessage", "channel=C0SECRET&post_at=1&text=x"),
            (
                "chat.deleteScheduledMessage",
                "channel=C0SECRET&scheduled_message_id=Q1",
            ),
            ("reactions.add", "channel=C0SECRET&timestamp=1.2&name=eyes"),
            (
                "files.completeUploadExternal",
                "files=%5B%5D&channel_id=C0SECRET",
            ),
            ("chat.postMessage", "channel=C0HELP&channel_id=C0SECRET"),
        ] {
            let d = door.decide(REPLIER, &format!("/api/{method}"), args);
            assert_eq!(
                outcome(&d),
                (
                    EgressReason::ChannelDenied,
                    Some("reply_scope"),
                    Some("C0SECRET")
                ),
                "{method}"
            );
            let allowed = args.replace("C0SECRET", "C0HELP");
            let d = door.decide(REPLIER, &format!("/api/{method}"), &allowed);
            assert_eq!(d.reason, EgressReason::Allowed, "{method}");
        }
        // Reads are not scoped.
        let d = door.decide(REPLIER, "/api/conversations.info", "channel=C0SECRET");
        assert_eq!(d.reason, EgressReason::Allowed);
    }

    #[test]
    fn an_unknown_caller_leaves_only_a_documented_method_and_the_reason() {
        let door = Door::new();
        let d = door.decide(
            "gk_nobody",
            "/api/chat.PostMessage",
            "channel=C0HELP&team_id=T0ACME",
        );
        assert_eq!(
            (d.reason, d.rule.as_deref()),
            (EgressReason::UnknownBot, Some("key"))
        );
        assert_eq!(d.method.as_deref(), Some("chat.postMessage"));
        assert_eq!(
            (d.team_id, d.channel_id, d.encoding, d.body_token),
            (None, None, None, false)
        );
        let d = door.decide("gk_nobody", "/api/secret.exfil", "channel=C0HELP");
        assert_eq!(d.method, None);
        // Unreadable: the rule is a fixed phrase, not the argument's name.
        let d = door.decide(
            "gk_nobody",
            "/api/chat.postMessage",
            "mysecretname=1&mysecretname=2",
        );
        assert_eq!(d.reason, EgressReason::MalformedCall);
        assert!(!d
            .rule
            .as_deref()
            .unwrap_or_default()
            .contains("mysecretname"));
        let d = door.decide(
            SCOPED,
            "/api/chat.postMessage",
            "mysecretname=1&mysecretname=2",
        );
        assert!(d
            .rule
            .as_deref()
            .unwrap_or_default()
            .contains("mysecretname"));
    }

    #[test]
    fn audited_ids_have_slacks_shape() {
        let door = Door::new();
        let d = door.decide(
            COUNTER,
            "/api/chat.postMessage",
            "channel=c0help&team_id=t%0Aacme",
        );
        assert_eq!(
            (d.team_id.as_deref(), d.channel_id.as_deref()),
            (Some("invalid"), Some("invalid"))
        );
        // The channel check still reads the channel as written.
        let d = door.decide(
            SCOPED,
            "/api/chat.postMessage",
            "channel=c0help&team_id=T0ACME",
        );
        assert_eq!(
            outcome(&d),
            (
                EgressReason::ChannelDenied,
                Some("channels"),
                Some("invalid")
            )
        );
        let d = door.decide(
            SCOPED,
            "/api/chat.postMessage",
            "channel=C0HELP&team_id=T0%20ACME",
        );
        assert_eq!(
            (d.reason, d.team_id.as_deref()),
            (EgressReason::TeamDenied, Some("invalid"))
        );
    }

    fn hook_policy() -> Policy {
        let secrets = slackgate_fixtures::MapSecrets::in_memory(&[
            ("A_KEY", "gk_aaaa1111bbbb2222cccc3333"),
            ("B_KEY", "gk_dddd4444eeee5555ffff6666"),
            ("A_TOKEN", "xoxb-1-a"),
            ("B_TOKEN", "xoxb-1-b"),
            ("HOOK", "https://hooks.slack.com/services/T0/B0/x"),
        ]);
        let text = "version: 1\nroutes: []\nbots:\n  a: { key: { env: A_KEY }, token: { env: A_TOKEN }, methods: [chat.postMessage] }\n  b: { key: { env: B_KEY }, token: { env: B_TOKEN }, methods: [chat.postMessage] }\nwebhooks:\n  alerts: { url: { env: HOOK }, bots: [a] }\n";
        slackgate_policy::compile_policy(
            std::path::Path::new("policy.yaml"),
            text,
            &secrets,
            std::time::SystemTime::UNIX_EPOCH,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hook_posts() {
        let p = hook_policy();
        let decide = |name: &str, is_post: bool, auth: Option<&str>| {
            decide_hook(
                &p,
                &HookPost {
                    name,
                    is_post,
                    authorization: auth.map(str::as_bytes),
                },
            )
        };
        let a = Some("Bearer gk_aaaa1111bbbb2222cccc3333");
        let b = Some("Bearer gk_dddd4444eeee5555ffff6666");
        let (d, hook) = decide("alerts", true, a);
        assert_eq!(d.reason, EgressReason::Allowed);
        assert_eq!(d.method.as_deref(), Some("hooks.alerts"));
        assert_eq!(hook.map(|h| Arc::clone(&h.name)).as_deref(), Some("alerts"));
        let cases = [
            (
                decide("alerts", true, b),
                EgressReason::MethodDenied,
                "webhooks",
            ),
            (
                decide("nosuch", true, a),
                EgressReason::MethodDenied,
                "webhooks: not defined",
            ),
            (
                decide("alerts", false, a),
                EgressReason::MalformedCall,
                "a webhook takes POST",
            ),
            (decide("a/b", true, a), EgressReason::MalformedCall, "path"),
            (
                decide("alerts", true, Some("Bearer nope")),
                EgressReason::UnknownBot,
                "key",
            ),
            (
                decide("alerts", true, None),
                EgressReason::UnknownBot,
                "no key",
            ),
        ];
        for ((d, hook), reason, rule) in cases {
            assert_eq!((d.reason, d.rule.as_deref()), (reason, Some(rule)));
            assert!(hook.is_none());
        }
        assert!(!is_hook_name(""));
        assert!(!is_hook_name(&"x".repeat(65)));
    }
}
