//! [`EgressDecision`]: the outcome of one call, and [`Unreadable`]: why a call could not
//! be read whole.

use std::sync::Arc;

use slackgate_policy::Bot;

use crate::custody::WorkflowToken;
use slackgate_slack::CallEncoding;

use super::reason::EgressReason;

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
    /// For a call made with a workflow key (`sgw-…`): the workflow token held for it, which
    /// the call is sent with instead of the bot's token, and whose
    /// `function_execution_id` the audit record carries. Its `Debug` hides the token.
    pub workflow: Option<WorkflowToken>,
    /// A bot in `mode: shadow` broke a rule that shadow mode reports instead of enforcing:
    /// `reason` and `rule` are the would-be denial, and the call is forwarded anyway
    /// ([`EgressDecision::forwards`]). Audited as `"shadow": true`.
    pub shadow: bool,
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
        self.shadow = false;
        self.rule = Some(Arc::from(why.rule()));
    }

    /// Whether the call goes on to Slack: allowed, or a shadow bot's would-be denial.
    pub fn forwards(&self) -> bool {
        self.reason == EgressReason::Allowed || self.shadow
    }

    /// A decision made before the call could be read (the proxy's own refusals: a head
    /// pingora's parser refused, a body over the limits), with the rule that decided.
    pub fn refused(reason: EgressReason, rule: &str) -> Self {
        Self::new(reason).rule(rule)
    }

    /// A decision with `reason` and nothing else known yet.
    pub(super) fn new(reason: EgressReason) -> Self {
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
            workflow: None,
            shadow: false,
        }
    }

    /// The decision with the rule that decided.
    pub(super) fn rule(mut self, rule: &str) -> Self {
        self.rule = Some(Arc::from(rule));
        self
    }
}
