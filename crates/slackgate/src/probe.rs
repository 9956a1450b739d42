//! One request decided as `run` decides it, without a network: the loading and the
//! pipeline that `explain` and `test` share, so neither can drift from the gateway or from
//! the other.
//!
//! ```text
//! CONFIG (or a policy alone) -> slackgate_policy::load -> Loaded   the loader, checks and secrets of `run`
//! Probe (path, host, client IP, the headers the pipeline reads, body)
//!   -> route (exact path, optional host)                      404 no_route
//!   -> Guard::admit (source IP, before the body)
//!   -> body cap (limits.max_body_bytes)                       413 body_too_large
//!   -> Guard::decide_admitted (ssl_check .. rate limits)
//!   -> Verdict
//!
//! EgressProbe (path, query, Authorization, Content-Type, body)  a bot's Web API call
//!   -> Guard::decide_egress                                   the server's egress decision
//!   -> the listener's own refusals (body over limits.max_body_bytes, a decision header
//!      sent twice: malformed_call)
//!   -> EgressDecision
//! ```

use std::net::IpAddr;

use slackgate_guard::{
    Action, Clock, Decision, EgressCall, EgressDecision, EgressSettings, Guard, GuardSettings,
    Inbound, Reason, Unreadable,
};
use slackgate_policy::{Loaded, Route};
use slackgate_slack::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The replay cache and rate-limit buckets of an offline guard hold this many entries: a
/// run of `explain` or `test` sees a handful of requests, never a production volume.
const OFFLINE_STATE_ENTRIES: usize = 1024;

/// A guard for offline decisions: empty replay cache, full buckets, time from `clock`.
pub(crate) fn offline_guard<C: Clock>(clock: C) -> Guard<C> {
    Guard::new(clock, OFFLINE_STATE_ENTRIES, OFFLINE_STATE_ENTRIES)
}

/// The request headers the pipeline reads; every other header is ignored by it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PipelineHeaders {
    /// `X-Slack-Signature`.
    pub signature: Option<String>,
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Host`.
    pub host: Option<String>,
}

impl PipelineHeaders {
    /// The pipeline's headers among `pairs` (name, value), later values winning.
    pub(crate) fn from_pairs<'h>(pairs: impl IntoIterator<Item = &'h (String, String)>) -> Self {
        let mut headers = Self::default();
        headers.extend(pairs);
        headers
    }

    /// Sets every pair (name, value) with [`PipelineHeaders::set`], in order.
    pub(crate) fn extend<'h>(&mut self, pairs: impl IntoIterator<Item = &'h (String, String)>) {
        for (name, value) in pairs {
            self.set(name, value);
        }
    }

    /// Sets the header `name` (any case) when the pipeline reads it; a later value of the
    /// same header replaces an earlier one.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            n if n == SIGNATURE_HEADER => &mut self.signature,
            n if n == TIMESTAMP_HEADER => &mut self.timestamp,
            "content-type" => &mut self.content_type,
            "host" => &mut self.host,
            _ => return,
        };
        *slot = Some(value.trim().to_owned());
    }
}

/// One request as the gateway would receive it, after its head was read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    /// The Host the route table is asked with (the `Host` header when not given apart).
    pub host: Option<&'a str>,
    /// The request path.
    pub path: &'a str,
    /// The client address, as step 2 resolves it.
    pub client_ip: IpAddr,
    /// The headers the pipeline reads.
    pub headers: &'a PipelineHeaders,
    /// The whole body.
    pub body: &'a [u8],
}

/// The route a request matches: by exact path and the Host (`host` when given apart, else
/// the `Host` header).
pub(crate) fn route<'p>(
    loaded: &'p Loaded,
    host: Option<&str>,
    path: &str,
    headers: &PipelineHeaders,
) -> Option<&'p Route> {
    let host = host.or(headers.host.as_deref());
    loaded.policy.routes.find(host, path).map(|r| &**r)
}

/// What the pipeline decided for a [`Probe`].
// One is made per offline request and matched at once; boxing the decision buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Verdict<'p, 'a> {
    /// No route matches the path (and host).
    NoRoute,
    /// The route the request matched and the decision on it.
    Routed {
        /// The matched route.
        route: &'p Route,
        /// The decision, as the gateway would act on it and record it.
        decision: Decision<'a>,
    },
}

/// Runs `req` through the pipeline `run` runs, in its order.
pub(crate) fn decide<'p, 'a, C: Clock>(
    loaded: &'p Loaded,
    guard: &Guard<C>,
    req: &Probe<'a>,
) -> Verdict<'p, 'a> {
    let Some(route) = route(loaded, req.host, req.path, req.headers) else {
        return Verdict::NoRoute;
    };
    // The gateway reads the body between the two guard stages; here its size is checked
    // against the same cap.
    let decision = match guard.admit(route, req.client_ip) {
        Err(d) => *d,
        Ok(_) if req.body.len() > loaded.limits().max_body_bytes => {
            Decision::respond(Reason::BodyTooLarge)
        }
        Ok(admitted) => {
            let inbound = Inbound {
                client_ip: req.client_ip,
                signature: req.headers.signature.as_deref().map(str::as_bytes),
                timestamp: req.headers.timestamp.as_deref().map(str::as_bytes),
                content_type: req.headers.content_type.as_deref(),
                body: req.body,
            };
            let settings = GuardSettings {
                max_clock_skew: loaded.limits().max_clock_skew,
            };
            guard.decide_admitted(admitted, route, &inbound, &settings)
        }
    };
    Verdict::Routed { route, decision }
}

impl Verdict<'_, '_> {
    /// The matched route, if any.
    pub(crate) fn route(&self) -> Option<&Route> {
        match self {
            Verdict::NoRoute => None,
            Verdict::Routed { route, .. } => Some(route),
        }
    }

    /// The decision, when a route matched.
    pub(crate) fn decision(&self) -> Option<&Decision<'_>> {
        match self {
            Verdict::NoRoute => None,
            Verdict::Routed { decision, .. } => Some(decision),
        }
    }

    /// The reason code of the audit record.
    pub(crate) fn reason(&self) -> Reason {
        self.decision().map_or(Reason::NoRoute, |d| d.reason)
    }

    /// The rule that decided, if one did.
    pub(crate) fn rule(&self) -> Option<&str> {
        self.decision()?.rule.as_ref().map(|r| r.as_str())
    }

    /// Whether the decision is a shadowed denial.
    pub(crate) fn shadow(&self) -> bool {
        self.decision().is_some_and(|d| d.shadow)
    }

    /// Whether the request would be forwarded to the route's upstream.
    pub(crate) fn forwards(&self) -> bool {
        self.decision().is_some_and(|d| d.action == Action::Forward)
    }

    /// The status the client gets: the gateway's own answer, or 200 for a forwarded
    /// request (standing for the bot's answer, which is not known offline).
    pub(crate) fn status(&self) -> u16 {
        match self.decision() {
            None => Reason::NoRoute.status(),
            Some(d) if d.action == Action::Forward => 200,
            Some(d) => d.status,
        }
    }

    /// The id of the secret whose signature matched.
    pub(crate) fn secret_id(&self) -> Option<&str> {
        self.decision()?.secret_id.as_deref()
    }
}

// === egress ===

/// The headers of a Web API call the egress decision reads, as the listener copies them.
#[derive(Debug, Clone, Default)]
pub(crate) struct EgressHeaders {
    /// The first `Authorization`.
    pub authorization: Option<String>,
    /// The first `Content-Type`.
    pub content_type: Option<String>,
    /// One of them was sent twice (the listener refuses such a call: `malformed_call`).
    pub duplicated: bool,
}

impl EgressHeaders {
    /// Adds the header `name` (any case) when the decision reads it. Unlike the listener's
    /// HTTP parser nothing here merges or drops a repeat: a second value marks the call
    /// as [`EgressHeaders::duplicated`], as it does on the listener.
    pub(crate) fn add(&mut self, name: &str, value: &str) {
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => &mut self.authorization,
            "content-type" => &mut self.content_type,
            _ => return,
        };
        if slot.is_some() {
            self.duplicated = true;
        } else {
            *slot = Some(value.trim().to_owned());
        }
    }
}

/// One Web API call as the egress listener would receive it, after its head was read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EgressProbe<'a> {
    /// The request path, without the query (e.g. `/api/chat.postMessage`).
    pub path: &'a str,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'a str>,
    /// The headers the decision reads.
    pub headers: &'a EgressHeaders,
    /// The whole body.
    pub body: &'a [u8],
}

/// Splits a request target into its path and query, as the listener's URI parser does.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// Decides `req` as the egress listener does: [`Guard::decide_egress`] on the policy, then
/// the listener's own refusals of a call it cannot read (a body over
/// `limits.max_body_bytes`, which it does not read, or a decision header sent twice).
pub(crate) fn decide_egress<C: Clock>(
    loaded: &Loaded,
    guard: &Guard<C>,
    req: &EgressProbe<'_>,
) -> EgressDecision {
    let too_large = req.body.len() > loaded.limits().max_body_bytes;
    let call = EgressCall {
        path: req.path,
        query: req.query.map(str::as_bytes),
        authorization: req.headers.authorization.as_deref().map(str::as_bytes),
        content_type: req.headers.content_type.as_deref().map(str::as_bytes),
        // The listener stops reading at the cap and decides on an empty body.
        body: if too_large { &[] } else { req.body },
    };
    let settings = EgressSettings::from(&loaded.limits());
    let mut decision = guard.decide_egress(&loaded.policy, &call, &settings);
    let unreadable = if too_large {
        Some(Unreadable::BodyTooLarge)
    } else if req.headers.duplicated {
        Some(Unreadable::HeaderTwice)
    } else {
        None
    };
    if let Some(why) = unreadable {
        decision.unreadable(why);
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_headers_are_matched_in_any_case_and_later_values_win() {
        let mut h = PipelineHeaders::default();
        h.set("X-Slack-Signature", " v0=aa ");
        h.set("x-slack-request-timestamp", "1");
        h.set("CONTENT-TYPE", "application/json");
        h.set("X-Other", "ignored");
        h.set("x-slack-signature", "v0=bb");
        assert_eq!(h.signature.as_deref(), Some("v0=bb"));
        assert_eq!(h.timestamp.as_deref(), Some("1"));
        assert_eq!(h.content_type.as_deref(), Some("application/json"));
        assert_eq!(h.host, None);
    }

    #[test]
    fn egress_headers_mark_a_repeat_and_keep_the_first_value() {
        let mut h = EgressHeaders::default();
        h.add("authorization", " Bearer one ");
        h.add("X-Other", "ignored");
        assert!(!h.duplicated);
        h.add("Authorization", "Bearer two");
        assert!(h.duplicated);
        assert_eq!(h.authorization.as_deref(), Some("Bearer one"));
        assert_eq!(h.content_type, None);
    }

    #[test]
    fn a_target_splits_at_the_first_question_mark() {
        assert_eq!(split_target("/api/a.b"), ("/api/a.b", None));
        assert_eq!(split_target("/api/a.b?x=1?y"), ("/api/a.b", Some("x=1?y")));
        assert_eq!(split_target("/api/a.b?"), ("/api/a.b", Some("")));
    }
}
