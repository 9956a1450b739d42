//! The stages of the egress decision that follow the caller's identification
//! ([`judge`]), shared by Web API calls and posts to a held response URL, and what they
//! read ([`EgressState`]).

use std::sync::Arc;

use slackgate_policy::Bot;
pub use slackgate_policy::RESPONSE_URL_METHOD;
use slackgate_slack::{
    conversation_use, is_privileged_method, is_slack_id, CallArgs, CallError, ConversationUse,
    Writes,
};

use crate::custody::Custody;
use crate::ratelimit::RateLimiter;
use crate::reply::ReplyChannels;
use crate::revoked::RevokedTokens;

use super::decision::EgressDecision;
use super::rate_limits::take_limits;
use super::reason::EgressReason;
use super::slack_limits::SlackLimits;

/// The guard's state an egress decision reads, and its time.
#[derive(Clone, Copy)]
pub(crate) struct EgressState<'g> {
    pub(crate) limiter: &'g RateLimiter,
    pub(crate) slack: &'g SlackLimits,
    pub(crate) revoked: &'g RevokedTokens,
    pub(crate) reply: &'g ReplyChannels,
    /// The capabilities held for bots: a workflow key (`sgw-…`) names its bot here. `None`
    /// where nothing is held (a key of that shape is then `unknown_bot`).
    pub(crate) custody: Option<&'g Custody>,
    /// Seconds.
    pub(crate) now: f64,
}

/// An id as the audit trail may carry it: itself in Slack's id shape, else `"invalid"`.
pub(super) fn audit_id(id: &str) -> Box<str> {
    Box::from(if is_slack_id(id) { id } else { "invalid" })
}

/// The audit rule of a call that could not be read. For a caller no key identified, no
/// argument name it wrote.
pub(super) fn unreadable_rule(e: &CallError, identified: bool) -> String {
    if identified {
        e.to_string()
    } else {
        e.kind().to_owned()
    }
}

/// What a method does with a conversation: Slack's table, and a post to a response URL,
/// which writes into the conversation the URL belongs to.
fn conversation_of(method: &str) -> Option<ConversationUse> {
    conversation_use(method).or_else(|| {
        (method == RESPONSE_URL_METHOD).then_some(ConversationUse {
            targets: &["channel"],
            writes: Writes::Yes,
        })
    })
}

/// The stages from the revoked token on (4 to 8) for an identified `bot`: the one path
/// every call of a bot takes, a post to a response URL included. `known` is the method in
/// Slack's spelling when Slack documents it, `method` the name decided under.
pub(super) fn judge(
    mut d: EgressDecision,
    bot: &Arc<Bot>,
    known: Option<&'static str>,
    method: Option<&str>,
    args: &CallArgs,
    state: &EgressState<'_>,
) -> EgressDecision {
    let now = state.now;
    if let Some(by) = state.revoked.revoked_by(bot) {
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
    let conversation = conversation_of(method);
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
            .find(|c| !state.reply.seen_within(&app.name, c, window, now))
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
    if let Some(secs) = state.slack.remaining(&bot.name, method, now) {
        d.reason = EgressReason::SlackRateLimited;
        d.retry_after_secs = Some(secs);
        return d.rule("slack retry_after");
    }
    if let Some((retry_after_secs, label)) =
        take_limits(bot, method, charged.unwrap_or(""), state.limiter, now)
    {
        d.reason = EgressReason::RateLimited;
        d.retry_after_secs = Some(retry_after_secs);
        d.rule = Some(label);
    }
    d
}
