//! The egress decision: one Web API call from a bot, checked against the bot's policy.
//!
//! The stages run in this order, each a function returning the next stage or the
//! decision, so that a call is refused by the first rule it breaks:
//! 1. read the call the way Slack reads it (query, form or JSON body), within
//!    `limits.max_call_channels` ([`EgressSettings`]), in time linear in its size: the
//!    caller is not known yet;
//! 2. a token in the query string is refused (`token_in_url`): URLs end up in logs;
//! 3. identify the bot by its key (`Authorization: Bearer`, or a `token` argument of the
//!    body), every key compared in constant time (`unknown_bot`); a workflow key
//!    (`sgw-…`, secret custody) names the bot the workflow token is held for, and is
//!    looked up whole among the held tokens only (unknown or spent: `unknown_bot`);
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
//! For a bot in `mode: shadow` a would-be denial of stages 5 to 8 other than Slack's
//! remembered 429s is marked [`EgressDecision::shadow`] and forwarded, unless it is an
//! unlisted privileged method or a method Slack does not document (`shadowed`).
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
//! A post to a response URL the gateway holds (`POST /respond/<capability>`,
//! `egress/custody.rs`) is decided by stages 4 to 8 as a call of method
//! [`RESPONSE_URL_METHOD`] on the URL's channel; an upload (`POST /upload/<capability>`) by
//! its capability and bot alone.
//!
//! | file | what |
//! |---|---|
//! | `egress.rs` | reading and identifying a call (`decide_call`), [`EgressCall`], [`EgressSettings`] |
//! | `egress/judge.rs` | stages 4 to 8 for an identified bot (`judge`), the state they read |
//! | `egress/custody.rs` | posts to held response and upload URLs ([`CapabilityPost`]) |
//! | `egress/reason.rs` | [`EgressReason`]: the reason codes and their statuses |
//! | `egress/decision.rs` | [`EgressDecision`], [`Unreadable`] |
//! | `egress/slack_limits.rs` | [`SlackLimits`]: Slack's 429s per bot and method |
//! | `egress/rate_limits.rs` | the bot's own `rate_limits` on a call |
//! | `egress/key.rs` | the key a call presents (`Authorization: Bearer`) |
//! | `egress/hooks.rs` | [`decide_hook`], [`HookPost`] and the limits on an allowed post |

mod custody;
mod decision;
mod hooks;
mod judge;
mod key;
mod rate_limits;
mod reason;
mod slack_limits;

use std::sync::Arc;

use slackgate_policy::{Bot, Limits, Mode, Policy};
use slackgate_slack::{
    canonical_method, is_privileged_method, method_from_path, read_call, CallArgs, CallLimits,
};

use crate::custody::{WorkflowToken, WORKFLOW_KEY_PREFIX};

pub(crate) use custody::{decide_response_url, decide_upload};
pub use custody::{CapabilityPost, FILE_UPLOAD_METHOD};
pub use decision::{EgressDecision, Unreadable};
pub(crate) use hooks::limit_hook;
pub use hooks::{decide_hook, is_hook_name, HookPost};
pub(crate) use judge::EgressState;
pub use judge::RESPONSE_URL_METHOD;
pub use reason::EgressReason;
pub use slack_limits::SlackLimits;

use judge::{audit_id, judge, unreadable_rule};
use key::bearer;

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

/// The bot a presented key names: a workflow key (`sgw-…`) by the token held for it, any
/// other by the policy's keys; with the workflow token held, for a workflow key.
fn identify(
    policy: &Policy,
    presented: &[u8],
    state: &EgressState<'_>,
) -> (Option<Arc<Bot>>, Option<WorkflowToken>) {
    if !presented.starts_with(WORKFLOW_KEY_PREFIX.as_bytes()) {
        return (policy.bots.by_key(presented).cloned(), None);
    }
    // A workflow key is looked up whole and never compared with the bots' keys: an
    // unknown or spent one names nobody.
    let held = std::str::from_utf8(presented)
        .ok()
        .zip(state.custody)
        .and_then(|(k, c)| c.workflow_token(k, state.now));
    let bot = held
        .as_ref()
        .and_then(|w| policy.bots.by_name(&w.bot))
        .cloned();
    match bot {
        Some(b) => (Some(b), held),
        None => (None, None),
    }
}

/// The workflow key (`sgw-…`) `call` presents, in its `Authorization` header or its body,
/// if it presents one: for the door to look a key this replica does not hold up in the
/// state the replicas share.
pub fn presented_workflow_key(call: &EgressCall<'_>, settings: &EgressSettings) -> Option<String> {
    let key = match call.authorization.and_then(bearer) {
        Some(k) => std::str::from_utf8(k).ok()?.to_owned(),
        None => {
            let limits = CallLimits {
                max_channels: settings.max_call_channels,
            };
            read_call(call.query, call.content_type, call.body, &limits)
                .ok()?
                .body_token?
        }
    };
    key.starts_with(WORKFLOW_KEY_PREFIX).then_some(key)
}

/// Runs the egress stages over one call. `settings` come from the server config; `state`
/// holds the bots' buckets (shared with the inbound limits, in their own key space),
/// Slack's 429s, the revoked tokens, the channels seen inbound, the held workflow tokens
/// and the time.
pub(crate) fn decide_call(
    policy: &Policy,
    call: &EgressCall<'_>,
    settings: &EgressSettings,
    state: &EgressState<'_>,
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
    let (bot, workflow) = presented.map_or((None, None), |k| identify(policy, k, state));
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
    d.workflow = workflow;
    let d = judge(d, &bot, known, method, &args, state);
    shadowed(d, &bot, known, method, &args)
}

/// For a bot in `mode: shadow`: marks a would-be denial the bot's own rules made
/// (`method_denied`, `team_denied`, `channel_denied` by `channels` or `reply_scope`,
/// `argument_denied`, `rate_limited`) as shadowed, so the call is forwarded. What stays
/// enforced: a privileged method not listed by its exact name
/// ([`is_privileged_method`]), a method Slack does not document (it could be a
/// privileged one the table does not know yet), and every refusal that is not the bot's
/// rules' (an unreadable call, an unknown key, a revoked token, Slack's own 429s).
///
/// A shadowed `method_denied` is decided before the channel is read: its record gets the
/// channel the call acts on (else the first it names) as an allowed call's would, so the
/// trail says where the call went.
fn shadowed(
    mut d: EgressDecision,
    bot: &Bot,
    known: Option<&str>,
    method: Option<&str>,
    args: &CallArgs,
) -> EgressDecision {
    if bot.mode != Mode::Shadow {
        return d;
    }
    d.shadow = match d.reason {
        EgressReason::MethodDenied => known.is_some_and(|m| !is_privileged_method(m)),
        EgressReason::TeamDenied
        | EgressReason::ChannelDenied
        | EgressReason::ArgumentDenied
        | EgressReason::RateLimited => true,
        _ => false,
    };
    if d.shadow {
        d.retry_after_secs = None;
        if d.channel_id.is_none() {
            let acted_on = method.and_then(|m| args.acted_on(m));
            let charged = acted_on.or(args.channels.first().map(String::as_str));
            d.channel_id = charged.map(audit_id);
        }
    }
    d
}

#[cfg(test)]
mod tests;
