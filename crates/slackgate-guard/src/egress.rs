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
//!
//! | file | what |
//! |---|---|
//! | `egress.rs` | the decision stages (`decide_egress`), [`EgressCall`], [`EgressSettings`] |
//! | `egress/reason.rs` | [`EgressReason`]: the reason codes and their statuses |
//! | `egress/decision.rs` | [`EgressDecision`], [`Unreadable`] |
//! | `egress/slack_limits.rs` | [`SlackLimits`]: Slack's 429s per bot and method |
//! | `egress/rate_limits.rs` | the bot's own `rate_limits` on a call |
//! | `egress/key.rs` | the key a call presents (`Authorization: Bearer`) |
//! | `egress/hooks.rs` | [`decide_hook`], [`HookPost`] and the limits on an allowed post |

mod decision;
mod hooks;
mod key;
mod rate_limits;
mod reason;
mod slack_limits;

use std::sync::Arc;

use slackgate_policy::{Limits, Policy};
use slackgate_slack::{
    canonical_method, conversation_use, is_privileged_method, is_slack_id, method_from_path,
    read_call, CallArgs, CallError, CallLimits, Writes,
};

use crate::ratelimit::RateLimiter;
use crate::reply::ReplyChannels;
use crate::revoked::RevokedTokens;

pub use decision::{EgressDecision, Unreadable};
pub(crate) use hooks::limit_hook;
pub use hooks::{decide_hook, is_hook_name, HookPost};
pub use reason::EgressReason;
pub use slack_limits::SlackLimits;

use key::bearer;
use rate_limits::take_limits;

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
pub(crate) fn decide_egress(
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

#[cfg(test)]
mod tests;
