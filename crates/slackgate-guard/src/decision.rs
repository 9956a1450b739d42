//! The outcome of the pipeline for one request, and how a route's mode changes it.
//!
//! A [`Decision`] is made by a constructor from its [`Reason`], which gives the status;
//! only `on_deny: ack` answers with another one ([`Decision::scope_denied`]). Shadow mode
//! is applied to a finished decision by [`apply_mode`].

use std::sync::Arc;

use slackgate_policy::{Mode, OnDeny, Route};
use slackgate_slack::{Facts, Lifecycle};

use crate::reason::Reason;
use crate::remote::StateOp;

/// The rule that decided a request, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A fixed part of the pipeline or policy, e.g. `source_ips.deny` or `allow.teams`.
    Static(&'static str),
    /// A rate-limit rule, by its label from the policy.
    RateLimit(Arc<str>),
}

impl Rule {
    /// The rule as text.
    pub fn as_str(&self) -> &str {
        match self {
            Rule::Static(s) => s,
            Rule::RateLimit(s) => s,
        }
    }
}

/// What the gateway does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send it to the route's upstream.
    Forward,
    /// Answer it at the gateway with [`Decision::status`].
    Respond,
}

/// The outcome of the pipeline for one request.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// Why.
    pub reason: Reason,
    /// Forward or answer.
    pub action: Action,
    /// The status the gateway answers with when `action` is `Respond`.
    pub status: u16,
    /// True when the route is in shadow mode and the request would have been denied.
    pub shadow: bool,
    /// Which rule decided, when one did.
    pub rule: Option<Rule>,
    /// The id of the secret whose signature matched.
    pub secret_id: Option<Arc<str>>,
    /// Facts of the verified body, when it got that far.
    pub facts: Option<Facts<'a>>,
    /// Seconds for `Retry-After`, set on `rate_limited`.
    pub retry_after: Option<u32>,
    /// Whether the answer carries `X-Slack-No-Retry: 1`.
    pub no_retry: bool,
    /// Shared-state operations that failed and fell back to this replica's state.
    pub degraded: Vec<StateOp>,
    /// Whether a 2xx from the upstream should be recorded for `dedupe: event_id`.
    pub mark_delivered: bool,
}

// === impl Decision ===

impl<'a> Decision<'a> {
    /// The gateway's own answer for `reason`, with the reason's status and nothing else set
    /// (also for answers decided outside the guard, such as `body_too_large`).
    pub fn respond(reason: Reason) -> Self {
        Decision {
            reason,
            action: Action::Respond,
            status: reason.status(),
            shadow: false,
            rule: None,
            secret_id: None,
            facts: None,
            retry_after: None,
            no_retry: false,
            degraded: Vec::new(),
            mark_delivered: false,
        }
    }

    /// A request every check let through: `allowed`, forwarded.
    pub(crate) fn forward() -> Self {
        Decision {
            action: Action::Forward,
            ..Decision::respond(Reason::Allowed)
        }
    }

    /// The gateway's answer for `reason`, decided by `rule`.
    pub(crate) fn respond_by(reason: Reason, rule: Rule) -> Self {
        Decision {
            rule: Some(rule),
            ..Decision::respond(reason)
        }
    }

    /// `scope_denied` by `rule`, answered as the route's `on_deny` says: 403, or 200 with
    /// `X-Slack-No-Retry: 1` (the one answer whose status is not its reason's).
    pub(crate) fn scope_denied(rule: &'static str, on_deny: OnDeny) -> Self {
        let denied = Decision::respond_by(Reason::ScopeDenied, Rule::Static(rule));
        match on_deny {
            OnDeny::Reject => denied,
            OnDeny::Ack => Decision {
                status: 200,
                no_retry: true,
                ..denied
            },
        }
    }

    /// `rate_limited` by the rate-limit rule labelled `label`: retry after
    /// `retry_after_secs`, and not as a Slack retry.
    pub(crate) fn rate_limited(label: Arc<str>, retry_after_secs: u32) -> Self {
        Decision {
            retry_after: Some(retry_after_secs),
            no_retry: true,
            ..Decision::respond_by(Reason::RateLimited, Rule::RateLimit(label))
        }
    }

    /// The answer of a `fail_closed` route whose shared state failed for `op`.
    pub(crate) fn state_unavailable(op: StateOp) -> Self {
        Decision::respond_by(Reason::StateUnavailable, Rule::Static(op.rule()))
    }

    /// This decision, reported as the earlier, shadowed denial `first` (its reason, status
    /// and rule, with `shadow: true`): on a forwarded request the first denial wins.
    pub(crate) fn reported_as(self, first: Decision<'_>) -> Self {
        Decision {
            reason: first.reason,
            status: first.status,
            rule: first.rule,
            shadow: true,
            ..self
        }
    }

    /// Whether the body of a gateway answer should be the `url_verification` challenge.
    pub fn challenge(&self) -> Option<&str> {
        if self.reason == Reason::UrlVerification {
            self.facts.as_ref().and_then(|f| f.challenge.as_deref())
        } else {
            None
        }
    }

    /// The lifecycle event this request carries, if any.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        self.facts.as_ref().and_then(|f| f.lifecycle)
    }
}

/// Turns a would-be denial on a shadow route into a logged, forwarded request.
pub fn apply_mode<'a>(route: &Route, d: Decision<'a>) -> Decision<'a> {
    if route.mode != Mode::Shadow || d.action == Action::Forward {
        return d;
    }
    let shadowable = match d.reason {
        Reason::SslCheck | Reason::UrlVerification => false,
        r if r.is_verification_failure() => route.allow_unverified_shadow,
        Reason::IpDenied
        | Reason::MalformedPayload
        | Reason::AppMismatch
        | Reason::ScopeDenied
        | Reason::RateLimited => true,
        _ => false,
    };
    if !shadowable {
        return d;
    }
    Decision {
        shadow: true,
        action: Action::Forward,
        no_retry: false,
        retry_after: None,
        ..d
    }
}
