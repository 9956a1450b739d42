//! What the egress door's handlers share: a call's head as it arrived ([`CallHead`]), an
//! answer as the bot gets it ([`Answer`]), and what happened to a call, for its record and
//! metrics ([`Outcome`]).

use std::sync::Arc;

use bytes::Bytes;
use slackgate_guard::{EgressDecision, EgressReason};
use slackgate_slack::CallEncoding;

use crate::net::client::Response;
use crate::net::conn::{is_writable_header, is_writable_status};
use crate::net::downstream::{is_not_relayed, Downstream};
use crate::net::http1::connection_tokens;
use crate::net::slack_client::CallFailure;

/// What the call's head said, copied out of the request.
pub(super) struct CallHead {
    pub(super) method: Vec<u8>,
    pub(super) path: String,
    pub(super) query: Option<Vec<u8>>,
    pub(super) authorization: Option<Vec<u8>>,
    pub(super) content_type: Option<Vec<u8>>,
    pub(super) user_agent: Option<Vec<u8>>,
    /// A header the decision reads was sent twice.
    pub(super) duplicated: bool,
}

impl CallHead {
    pub(super) fn of<S: Downstream>(down: &S) -> Self {
        let one = |name: &str| -> (Option<Vec<u8>>, bool) {
            let all = down.header_all(name);
            (all.first().map(|v| v.to_vec()), all.len() > 1)
        };
        let (authorization, dup_auth) = one("authorization");
        let (content_type, dup_ct) = one("content-type");
        let user_agent = down.header("user-agent").map(<[u8]>::to_vec);
        CallHead {
            method: down.method().to_vec(),
            path: down.path().to_owned(),
            query: down.query().map(<[u8]>::to_vec),
            authorization,
            content_type,
            user_agent,
            duplicated: dup_auth || dup_ct,
        }
    }

    pub(super) fn is(&self, method: &[u8]) -> bool {
        self.method == method
    }
}

/// An answer as the bot gets it: the gateway's own, or Slack's relayed.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) reason: Option<String>,
    /// Names and values; Slack's are slices of its answer's head (no copy).
    pub(super) headers: Vec<(Bytes, Bytes)>,
    pub(super) body: Bytes,
}

impl Answer {
    /// Whether the fast path and pingora can write this answer as it is: a status of
    /// three digits, a reason without line ends, and every header a valid name and value
    /// (a bot cannot be handed a split answer).
    pub(super) fn is_writable(&self) -> bool {
        is_writable_status(self.status, self.reason.as_deref().unwrap_or(""))
            && self.headers.iter().all(|(n, v)| is_writable_header(n, v))
    }

    /// The gateway's own answer for a decision that is not `allowed`.
    pub(super) fn local(decision: &EgressDecision) -> Answer {
        let reason = decision.reason;
        let body = format!("{{\"ok\":false,\"error\":\"{}\"}}", reason.as_str());
        let mut headers = vec![
            (
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"application/json; charset=utf-8"),
            ),
            (
                Bytes::from_static(b"X-Slackgate-Reason"),
                Bytes::from_static(reason.as_str().as_bytes()),
            ),
        ];
        if let Some(secs) = decision.retry_after_secs {
            headers.push((
                Bytes::from_static(b"Retry-After"),
                Bytes::from(secs.to_string()),
            ));
        }
        Answer {
            status: reason.status(),
            reason: None,
            headers,
            body: Bytes::from(body),
        }
    }

    /// Slack's answer as the bot gets it: its status, reason and headers but the
    /// hop-by-hop ones (the answer is framed again), and its body.
    pub(super) fn relayed(resp: &Response) -> Answer {
        let named = connection_tokens(resp.header_pairs());
        // The ranges are the parser's, within the head; one that is not reads as empty,
        // as `header_pairs` reads it.
        let at = |r: &std::ops::Range<usize>| match resp.head.get(r.clone()) {
            Some(_) => resp.head.slice(r.clone()),
            None => Bytes::new(),
        };
        let headers = resp
            .headers
            .iter()
            .map(|(n, v)| (at(n), at(v)))
            .filter(|(name, _)| !is_not_relayed(name, &named))
            .collect();
        Answer {
            status: resp.status,
            reason: resp.reason.clone(),
            headers,
            body: resp.body.clone(),
        }
    }
}

/// The Content-Type Slack receives: the one the gateway read the body as, so Slack
/// cannot read the arguments another way than the checks did (a JSON body whose
/// header a strict reader would refuse is not sent as something Slack reads as a form).
pub(super) fn content_type_sent(
    encoding: Option<CallEncoding>,
    sent: Option<&[u8]>,
) -> Option<&[u8]> {
    match encoding {
        Some(CallEncoding::Json) => Some(b"application/json; charset=utf-8"),
        Some(CallEncoding::Form) => Some(b"application/x-www-form-urlencoded"),
        // No body: nothing to describe.
        Some(CallEncoding::None) => None,
        None => sent.filter(|v| clean_value(v)),
    }
}

/// A header value the gateway may copy into its own head: visible ASCII and spaces.
pub(super) fn clean_value(v: &[u8]) -> bool {
    !v.is_empty()
        && v.iter()
            .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// Slack's `ok` and `error` of a JSON answer (for the audit record only).
#[derive(serde::Deserialize)]
pub(super) struct SlackOutcome<'a> {
    pub(super) ok: Option<bool>,
    #[serde(borrow)]
    pub(super) error: Option<std::borrow::Cow<'a, str>>,
}

/// What happened to one call, for its record and metrics.
pub(super) struct Outcome {
    pub(super) decision: EgressDecision,
    pub(super) status: u16,
    pub(super) upstream_status: Option<u16>,
    pub(super) slack_ok: Option<bool>,
    pub(super) slack_error: Option<String>,
    /// The metric method label when it is not one the bot's `methods` lists: a
    /// defined webhook's `hooks.<name>`.
    pub(super) method_label: Option<Arc<str>>,
    /// Slack's `x-accepted-oauth-scopes`, as the audit writes it.
    pub(super) scopes_needed: Option<String>,
    /// Slack's `x-oauth-scopes` when it changed for the bot (or is its first).
    pub(super) scopes_granted: Option<String>,
}

impl Outcome {
    pub(super) fn of(decision: EgressDecision) -> Self {
        Outcome {
            status: decision.reason.status(),
            decision,
            upstream_status: None,
            slack_ok: None,
            slack_error: None,
            method_label: None,
            scopes_needed: None,
            scopes_granted: None,
        }
    }

    /// Slack's answer was not had: `upstream_timeout` or `upstream_error`, answered by the
    /// gateway.
    pub(super) fn failed(&mut self, failure: &CallFailure) -> Answer {
        self.decision.reason = match failure {
            CallFailure::Timeout(_) => EgressReason::UpstreamTimeout,
            _ => EgressReason::UpstreamError,
        };
        self.decision.shadow = false;
        self.status = self.decision.reason.status();
        Answer::local(&self.decision)
    }
}
