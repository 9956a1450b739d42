//! The inbound door's metrics: requests by route and reason, their time in the gateway and
//! upstream, the signing secrets that matched, lifecycle requests, the upstream targets'
//! health; and the per-route handles the request path counts with.

use std::sync::{Arc, OnceLock};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

use slackgate_guard::Reason;
use slackgate_policy::{Policy, Route};

/// Buckets for gateway time: the work is sub-millisecond, so the low end is fine-grained.
const GATEWAY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The metrics of the inbound door (Slack -> bots).
#[derive(Debug, Clone)]
pub struct InboundMetrics {
    /// `slackgate_requests_total{route,reason}`.
    pub requests: IntCounterVec,
    /// `slackgate_request_duration_seconds{route}`: time spent in the gateway itself.
    pub request_duration: HistogramVec,
    /// `slackgate_upstream_duration_seconds{route}`.
    pub upstream_duration: HistogramVec,
    /// `slackgate_secret_matches_total{app,secret_id}`.
    pub secret_matches: IntCounterVec,
    /// `slackgate_secret_expiry_timestamp_seconds{app,secret_id}`.
    pub secret_expiry: GaugeVec,
    /// `slackgate_lifecycle_events_total{type}`.
    pub lifecycle: IntCounterVec,
    /// `slackgate_upstream_healthy{upstream,target}`: 1 when the target passes health checks.
    pub upstream_healthy: GaugeVec,
}

impl InboundMetrics {
    /// Registers the inbound door's metrics in `registry`; `upstream_buckets` for the
    /// time upstream.
    pub(super) fn new(
        registry: &Registry,
        upstream_buckets: &[f64],
    ) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "slackgate_requests_total",
                "Requests by route and reason code.",
            ),
            &["route", "reason"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "slackgate_request_duration_seconds",
                "Time spent in the gateway per request, upstream time excluded.",
            )
            .buckets(GATEWAY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "slackgate_upstream_duration_seconds",
                "Time from sending a request upstream to receiving the whole response.",
            )
            .buckets(upstream_buckets.to_vec()),
            &["route"],
        )?;
        let secret_matches = IntCounterVec::new(
            Opts::new(
                "slackgate_secret_matches_total",
                "Verified requests by the signing secret that matched.",
            ),
            &["app", "secret_id"],
        )?;
        let secret_expiry = GaugeVec::new(
            Opts::new(
                "slackgate_secret_expiry_timestamp_seconds",
                "Unix time at which a signing secret stops matching (secrets with an expiry only).",
            ),
            &["app", "secret_id"],
        )?;
        let lifecycle = IntCounterVec::new(
            Opts::new(
                "slackgate_lifecycle_events_total",
                "Verified lifecycle requests (app_uninstalled, tokens_revoked, app_rate_limited, ...), by type.",
            ),
            &["type"],
        )?;
        let upstream_healthy = GaugeVec::new(
            Opts::new(
                "slackgate_upstream_healthy",
                "1 when an upstream target passes health checks, else 0.",
            ),
            &["upstream", "target"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(secret_matches.clone()))?;
        registry.register(Box::new(secret_expiry.clone()))?;
        registry.register(Box::new(lifecycle.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        for t in slackgate_slack::Lifecycle::ALL {
            lifecycle.with_label_values(&[t.as_str()]);
        }
        Ok(Self {
            requests,
            request_duration,
            upstream_duration,
            secret_matches,
            secret_expiry,
            lifecycle,
            upstream_healthy,
        })
    }

    /// Pre-creates the request counters of a route so dashboards see zeros, not gaps.
    pub fn register_route(&self, route: &str) {
        for reason in Reason::ALL {
            self.requests.with_label_values(&[route, reason.as_str()]);
        }
        self.request_duration.with_label_values(&[route]);
    }
}

/// Increments `cached`, or the series of `vec` with `labels` when there is no cached handle.
pub(crate) fn inc(cached: Option<&IntCounter>, vec: &IntCounterVec, labels: &[&str]) {
    match cached {
        Some(c) => c.inc(),
        None => vec.with_label_values(labels).inc(),
    }
}

/// Observes `v` on `cached`, or on the series of `vec` with `labels` when there is none.
pub(crate) fn observe(cached: Option<&Histogram>, vec: &HistogramVec, labels: &[&str], v: f64) {
    match cached {
        Some(h) => h.observe(v),
        None => vec.with_label_values(labels).observe(v),
    }
}

/// The per-request metric handles of every route of one policy snapshot, looked up once
/// per route instead of per request; a reload builds a new table with its snapshot.
/// Kept by the running snapshot (`core::state::Snapshot`), not in the policy model.
#[derive(Debug, Default)]
pub(crate) struct RouteMetricsTable(Box<[(usize, RouteMetrics)]>);

impl RouteMetricsTable {
    /// A table for every route of `policy`.
    pub(crate) fn new(policy: &Policy) -> Self {
        let mut routes: Vec<(usize, RouteMetrics)> = policy
            .routes
            .iter()
            .map(|r| (Arc::as_ptr(r) as usize, RouteMetrics::new(r)))
            .collect();
        routes.sort_unstable_by_key(|(at, _)| *at);
        Self(routes.into())
    }

    /// The handles of `route`, when it is one of this snapshot's routes (a request that
    /// started under an older snapshot finds none; its record then uses label lookups).
    pub(crate) fn get(&self, route: &Arc<Route>) -> Option<&RouteMetrics> {
        let at = Arc::as_ptr(route) as usize;
        let i = self.0.binary_search_by_key(&at, |(a, _)| *a).ok()?;
        self.0.get(i).map(|(_, m)| m)
    }
}

/// One route's handles into the per-request metrics. Each handle is created on first use,
/// so the exported series are exactly those the label lookups would have created.
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    requests: [OnceLock<IntCounter>; Reason::ALL.len()],
    request_duration: OnceLock<Histogram>,
    upstream_duration: OnceLock<Histogram>,
    /// By the app's secret ids, in policy order.
    secret_matches: Box<[(Arc<str>, OnceLock<IntCounter>)]>,
}

impl RouteMetrics {
    fn new(route: &Route) -> Self {
        Self {
            requests: std::array::from_fn(|_| OnceLock::new()),
            request_duration: OnceLock::new(),
            upstream_duration: OnceLock::new(),
            secret_matches: route
                .app
                .secrets
                .iter()
                .map(|s| (s.key.id_arc().clone(), OnceLock::new()))
                .collect(),
        }
    }

    /// `slackgate_requests_total{route,reason}` of this route.
    pub(crate) fn requests(
        &self,
        m: &InboundMetrics,
        route: &str,
        reason: Reason,
    ) -> Option<&IntCounter> {
        let slot = self.requests.get(reason as usize)?;
        Some(slot.get_or_init(|| m.requests.with_label_values(&[route, reason.as_str()])))
    }

    /// `slackgate_request_duration_seconds{route}` of this route.
    pub(crate) fn request_duration(&self, m: &InboundMetrics, route: &str) -> &Histogram {
        self.request_duration
            .get_or_init(|| m.request_duration.with_label_values(&[route]))
    }

    /// `slackgate_upstream_duration_seconds{route}` of this route.
    pub(crate) fn upstream_duration(&self, m: &InboundMetrics, route: &str) -> &Histogram {
        self.upstream_duration
            .get_or_init(|| m.upstream_duration.with_label_values(&[route]))
    }

    /// `slackgate_secret_matches_total{app,secret_id}` for one of the app's secrets.
    pub(crate) fn secret_matches(
        &self,
        m: &InboundMetrics,
        app: &str,
        id: &Arc<str>,
    ) -> Option<&IntCounter> {
        let (_, slot) = self
            .secret_matches
            .iter()
            .find(|(known, _)| Arc::ptr_eq(known, id) || known == id)?;
        Some(slot.get_or_init(|| m.secret_matches.with_label_values(&[app, id.as_ref()])))
    }
}
