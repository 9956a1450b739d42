//! Per-request state and its one audit record and metric updates.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use slackgate_guard::{IpText, Reason};
use slackgate_policy::Route;
use slackgate_slack::Lifecycle;

use crate::core::audit::{rfc3339, AuditView, TsText};
use crate::core::metrics;
use crate::core::state::{Shared, Snapshot};

impl std::fmt::Debug for RequestCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCtx")
            .field("reason", &self.reason)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Facts kept for the upstream headers and the audit record. They outlive the guard's
/// borrow of the body, so their texts are copied, one after the other, into one string
/// (one allocation of a few dozen bytes): reading a fact is then a slice of text already
/// known to be UTF-8, where a place in the body had to be checked again at every read
/// (13 UTF-8 checks per request, more than the copy costs).
#[derive(Debug, Default)]
pub(crate) struct AuditFacts {
    /// The texts of the facts below, each at its [`Fact`].
    texts: String,
    pub(crate) kind: Option<&'static str>,
    pub(crate) api_app_id: Option<Fact>,
    pub(crate) enterprise_id: Option<Fact>,
    pub(crate) team_id: Option<Fact>,
    pub(crate) user_id: Option<Fact>,
    pub(crate) channel_id: Option<Fact>,
    pub(crate) event_type: Option<Fact>,
    pub(crate) command: Option<Fact>,
    pub(crate) event_id: Option<Fact>,
    /// The first action id of an interactivity request, else its callback id (a view's, a
    /// shortcut's, a custom step's function): what `actions` scope rules match.
    pub(crate) action_id: Option<Fact>,
    /// The run of a custom workflow step (what a workflow token in custody is bound to).
    pub(crate) function_execution_id: Option<Fact>,
}

/// The room [`AuditFacts`] reserves for its texts at first.
const FACTS_ROOM: usize = 128;

/// Where a fact's text is in [`AuditFacts`]' string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact(std::ops::Range<usize>);

impl AuditFacts {
    pub(crate) fn new(f: &slackgate_slack::Facts<'_>) -> Self {
        // Room for the usual facts of a request (ids are ~10 bytes); more grows it.
        let mut texts = String::with_capacity(FACTS_ROOM);
        let mut keep = |v: Option<&str>| {
            let v = v?;
            let start = texts.len();
            texts.push_str(v);
            Some(Fact(start..texts.len()))
        };
        let action = f.action_ids.first().or(f.callback_id.as_ref());
        let mut kept = Self {
            texts: String::new(),
            kind: Some(f.kind.as_str()),
            api_app_id: keep(f.api_app_id.as_deref()),
            enterprise_id: keep(f.enterprise_id.as_deref()),
            team_id: keep(f.team_id.as_deref()),
            user_id: keep(f.user_id.as_deref()),
            channel_id: keep(f.channel_id.as_deref()),
            event_type: keep(f.event_type.as_deref()),
            command: keep(f.command.as_deref()),
            event_id: keep(f.event_id.as_deref()),
            action_id: keep(action.map(|a| &**a)),
            function_execution_id: keep(f.function_execution_id.as_deref()),
        };
        kept.texts = texts;
        kept
    }

    pub(crate) fn text<'s>(&'s self, fact: &Option<Fact>) -> Option<&'s str> {
        self.texts.get(fact.as_ref()?.0.clone())
    }
}

/// Per-request state.
pub struct RequestCtx {
    pub(crate) start: Instant,
    pub(crate) arrived: SystemTime,
    pub(crate) route: Option<Arc<Route>>,
    /// The snapshot the request was decided under (its route metric handles).
    pub(crate) snap: Option<Arc<Snapshot>>,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) reason: Option<Reason>,
    pub(crate) status: u16,
    pub(crate) shadow: bool,
    pub(crate) rule: Option<String>,
    pub(crate) secret_id: Option<Arc<str>>,
    pub(crate) facts: AuditFacts,
    pub(crate) retry_num: Option<u32>,
    pub(crate) lifecycle: Option<Lifecycle>,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) upstream_time: Option<Duration>,
    pub(crate) mark_delivered: bool,
    /// `Some("socket")` for a Socket Mode envelope (audited as `"source":"socket"`).
    pub(crate) source: Option<&'static str>,
}

impl RequestCtx {
    /// Records a request whose head the front refused (it has no route yet).
    pub(crate) fn record_refusal(shared: &Shared, peer: IpAddr, reason: Reason) {
        let mut ctx = RequestCtx::new();
        ctx.client_ip = Some(peer);
        ctx.reason = Some(reason);
        ctx.status = reason.status();
        ctx.record(shared);
    }

    /// A fresh per-request context.
    pub(crate) fn new() -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            arrived: SystemTime::now(),
            route: None,
            snap: None,
            client_ip: None,
            reason: None,
            status: 0,
            shadow: false,
            rule: None,
            secret_id: None,
            facts: AuditFacts::default(),
            retry_num: None,
            lifecycle: None,
            upstream_status: None,
            upstream_time: None,
            mark_delivered: false,
            source: None,
        }
    }

    /// The request's metrics and its one audit record (nothing if no answer was decided).
    pub(crate) fn record(&mut self, shared: &Shared) {
        let Some(reason) = self.reason else {
            return;
        };
        let total = self.start.elapsed();
        let m = &shared.metrics.inbound;
        let route_label = self.route.as_ref().map_or("", |r| r.name.as_ref());
        let gateway_time = total.saturating_sub(self.upstream_time.unwrap_or_default());
        // The route's cached handles in the request's snapshot, the label lookup otherwise
        // (no route).
        let cached = self
            .snap
            .as_ref()
            .zip(self.route.as_ref())
            .and_then(|(snap, r)| snap.route_metrics.get(r));
        metrics::inc(
            cached.and_then(|c| c.requests(m, route_label, reason)),
            &m.requests,
            &[route_label, reason.as_str()],
        );
        metrics::observe(
            cached.map(|c| c.request_duration(m, route_label)),
            &m.request_duration,
            &[route_label],
            gateway_time.as_secs_f64(),
        );
        if let Some(t) = self.upstream_time {
            metrics::observe(
                cached.map(|c| c.upstream_duration(m, route_label)),
                &m.upstream_duration,
                &[route_label],
                t.as_secs_f64(),
            );
        }
        if let (Some(route), Some(id)) = (&self.route, &self.secret_id) {
            metrics::inc(
                cached.and_then(|c| c.secret_matches(m, &route.app.name, id)),
                &m.secret_matches,
                &[route.app.name.as_ref(), id.as_ref()],
            );
        }
        if let Some(l) = self.lifecycle {
            m.lifecycle.with_label_values(&[l.as_str()]).inc();
        }
        // Guard levels (bucket and replay counts, evictions) are read at scrape time by
        // the admin service, not per request: counting them locks every shard.

        let ts_text = TsText::new(self.arrived);
        let ts_slow;
        let ts = match &ts_text {
            Some(t) => t.as_str(),
            None => {
                ts_slow = rfc3339(self.arrived);
                ts_slow.as_str()
            }
        };
        let ip_text = self.client_ip.map(IpText::new);
        let f = &self.facts;
        let route = self.route.as_deref();
        shared.audit.record_view(&AuditView {
            ts,
            direction: crate::core::audit::Direction::Inbound,
            route: route.map(|r| r.name.as_ref()),
            reason: reason.as_str(),
            status: self.status,
            shadow: self.shadow,
            client_ip: ip_text.as_ref().map(IpText::as_str),
            app: route.map(|r| r.app.name.as_ref()),
            secret_id: self.secret_id.as_deref(),
            kind: f.kind,
            api_app_id: f.text(&f.api_app_id),
            enterprise_id: f.text(&f.enterprise_id),
            team_id: f.text(&f.team_id),
            user_id: f.text(&f.user_id),
            channel_id: f.text(&f.channel_id),
            event_type: f.text(&f.event_type),
            command: f.text(&f.command),
            event_id: f.text(&f.event_id),
            action_id: f.text(&f.action_id),
            retry_num: self.retry_num,
            rule: self.rule.as_deref(),
            upstream: route.map(|r| r.upstream.name.as_ref()),
            upstream_status: self.upstream_status,
            duration_us: u64::try_from(total.as_micros()).unwrap_or(u64::MAX),
            lifecycle: self.lifecycle.is_some(),
            source: self.source,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn facts_are_kept_as_read_escaped_decoded_or_not() {
        let body = Bytes::from_static(
            br#"{"type":"event_callback","team_id":"T0\u0041CME","api_app_id":"A0HELPDESK","event_id":"Ev1","event":{"type":"app_mention","user":"U0333","channel":"C0HELP"}}"#,
        );
        let f = slackgate_slack::parse_facts(Some("application/json"), &body).unwrap();
        let kept = AuditFacts::new(&f);
        assert_eq!(
            kept.text(&kept.team_id),
            Some("T0ACME"),
            "escaped in the body"
        );
        assert_eq!(kept.text(&kept.user_id), Some("U0333"));
        assert_eq!(kept.text(&kept.event_id), Some("Ev1"));
        assert_eq!(kept.text(&kept.command), None);
        drop(f);
        drop(body);
        // The kept facts hold their own copy.
        assert_eq!(kept.text(&kept.channel_id), Some("C0HELP"));

        let form = Bytes::from_static(b"command=%2Fticket&team_id=T0ACME&user_id=U0333&api_app_id=A0HELPDESK&channel_id=C0HELP");
        let f =
            slackgate_slack::parse_facts(Some("application/x-www-form-urlencoded"), &form).unwrap();
        let kept = AuditFacts::new(&f);
        assert_eq!(kept.text(&kept.command), Some("/ticket"));
        assert_eq!(kept.text(&kept.user_id), Some("U0333"));
    }
}
