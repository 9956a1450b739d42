//! Posts to a capability the gateway holds in place of the bot (secret custody):
//! `POST /respond/<capability>` ([`decide_response_url`]) and `POST /upload/<capability>`
//! ([`decide_upload`]).
//!
//! Slack's response and upload URLs carry no credential, and the SDKs send none with them
//! (Bolt's `respond()`, slack_sdk's `WebhookClient`), so the capability itself names the
//! bot it is bound to. A post that does present a key must present that bot's: a key of
//! no bot is `unknown_bot`, another bot's key makes the capability unknown
//! (`response_url_invalid`), exactly as an unknown, expired or used-up one. Nothing is
//! spent here: the door spends a use only for a post it sends.
//!
//! A post to a response URL is then decided like a Web API call of method
//! [`RESPONSE_URL_METHOD`] by the same stages ([`judge`]): the bot's `methods` must
//! list `response_url` by that name; `team`, `channels` and `reply_scope` apply to the team
//! and channel the URL was handed out for (whatever the body names: Slack posts into the
//! URL's conversation), `deny_args` to the JSON body's members; Slack's remembered 429s and
//! the bot's rate limits as for any call.
//!
//! An upload is bound to its bot and capped by the door at the `length` the bot declared
//! to `files.getUploadURLExternal`, whose call already passed the bot's rules; it is
//! audited as [`FILE_UPLOAD_METHOD`].

use std::sync::Arc;

use slackgate_policy::{Bot, Policy};
use slackgate_slack::{read_call, CallLimits};

use crate::custody::{Custody, ResponseUrl, UploadUrl};

use super::decision::EgressDecision;
use super::judge::{audit_id, judge, unreadable_rule, EgressState, RESPONSE_URL_METHOD};
use super::key::bearer;
use super::reason::EgressReason;

/// The method an upload through an upload capability is audited and counted as.
pub const FILE_UPLOAD_METHOD: &str = "file_upload";

/// The audit rule of a capability that names nothing the gateway holds for the caller.
const UNKNOWN_CAPABILITY: &str = "capability";

/// One post to a capability URL, as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct CapabilityPost<'a> {
    /// The `<capability>` of the path (already checked to have a capability's shape).
    pub capability: &'a str,
    /// Whether the HTTP method is `POST` (the only one either URL takes).
    pub is_post: bool,
    /// The raw `Authorization` value, if any.
    pub authorization: Option<&'a [u8]>,
    /// The raw `Content-Type` value, if any.
    pub content_type: Option<&'a [u8]>,
    /// The whole body (a response URL's is read; an upload's is not).
    pub body: &'a [u8],
}

/// The bot a post to a held capability acts as: the capability's, when a key the post
/// presents (if any) is that bot's. `Err` is the refusal.
fn holder(
    policy: &Policy,
    post: &CapabilityPost<'_>,
    method: &str,
    held_by: Option<&str>,
) -> Result<Arc<Bot>, Box<EgressDecision>> {
    let refuse = |reason: EgressReason, bot: Option<&Arc<Bot>>, rule: &str| {
        Box::new(EgressDecision {
            bot: bot.cloned(),
            method: Some(Box::from(method)),
            ..EgressDecision::new(reason).rule(rule)
        })
    };
    let presented = post.authorization.and_then(bearer);
    let caller = match presented {
        Some(k) => match policy.bots.by_key(k) {
            Some(b) => Some(b),
            None => return Err(refuse(EgressReason::UnknownBot, None, "key")),
        },
        None => None,
    };
    let bot = held_by.and_then(|name| policy.bots.by_name(name));
    match (bot, caller) {
        (Some(bot), Some(caller)) if caller.name != bot.name => Err(refuse(
            EgressReason::ResponseUrlInvalid,
            Some(caller),
            UNKNOWN_CAPABILITY,
        )),
        (Some(bot), _) if post.is_post => Ok(Arc::clone(bot)),
        (Some(bot), _) => Err(refuse(
            EgressReason::MalformedCall,
            Some(bot),
            "a capability URL takes POST",
        )),
        // Unknown, expired, used up, or held for a bot the policy no longer has.
        (None, caller) => Err(refuse(
            EgressReason::ResponseUrlInvalid,
            caller,
            UNKNOWN_CAPABILITY,
        )),
    }
}

/// Decides a post to a response URL the gateway holds; when allowed, the held URL comes
/// with the decision (not yet spent).
pub(crate) fn decide_response_url(
    policy: &Policy,
    post: &CapabilityPost<'_>,
    limits: &CallLimits,
    custody: &Custody,
    state: &EgressState<'_>,
) -> (EgressDecision, Option<ResponseUrl>) {
    let held = custody.held_response_url(post.capability, state.now);
    let bot = match holder(
        policy,
        post,
        RESPONSE_URL_METHOD,
        held.as_ref().map(|h| &*h.bot),
    ) {
        Ok(bot) => bot,
        Err(d) => return (*d, None),
    };
    let Some(held) = held else {
        return (
            EgressDecision::refused(EgressReason::ResponseUrlInvalid, UNKNOWN_CAPABILITY),
            None,
        );
    };
    let mut d = EgressDecision {
        bot: Some(Arc::clone(&bot)),
        method: Some(Box::from(RESPONSE_URL_METHOD)),
        ..EgressDecision::new(EgressReason::Allowed)
    };
    let mut args = match read_call(None, post.content_type, post.body, limits) {
        Ok(a) => a,
        Err(e) => {
            d.reason = EgressReason::MalformedCall;
            return (d.rule(&unreadable_rule(&e, true)), None);
        }
    };
    if args.body_token.is_some() {
        // No credential travels to a response URL: a token in the body would reach Slack.
        d.reason = EgressReason::MalformedCall;
        return (d.rule("a response URL takes no token"), None);
    }
    // Slack posts into the conversation the URL was made for, whatever the body names:
    // that conversation and team are what the rules see.
    args.channels = held.channel.iter().map(|c| c.to_string()).collect();
    args.by_argument = held
        .channel
        .iter()
        .map(|c| ("channel", c.to_string()))
        .collect();
    args.team_id = held.team.as_deref().map(str::to_owned);
    d.encoding = Some(args.encoding);
    d.team_id = args.team_id.as_deref().map(audit_id);
    let d = judge(d, &bot, None, Some(RESPONSE_URL_METHOD), &args, state);
    let allowed = d.reason == EgressReason::Allowed;
    (d, allowed.then_some(held))
}

/// Decides an upload through an upload capability the gateway holds; when allowed, the
/// held URL comes with the decision (not yet spent; the door checks the length).
pub(crate) fn decide_upload(
    policy: &Policy,
    post: &CapabilityPost<'_>,
    custody: &Custody,
    now: f64,
) -> (EgressDecision, Option<UploadUrl>) {
    let held = custody.held_upload_url(post.capability, now);
    match holder(
        policy,
        post,
        FILE_UPLOAD_METHOD,
        held.as_ref().map(|h| &*h.bot),
    ) {
        Ok(bot) => {
            let d = EgressDecision {
                bot: Some(bot),
                method: Some(Box::from(FILE_UPLOAD_METHOD)),
                ..EgressDecision::new(EgressReason::Allowed)
            };
            (d, held)
        }
        Err(d) => (*d, None),
    }
}
