//! Prometheus metrics of one gateway instance.
//!
//! Every instance owns its registry, so several gateways in one process (tests) do not
//! share counters. Label values are closed sets (reasons, results) or config names
//! (routes, apps, secret ids), never request data.

use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use slackgate_guard::Reason;
use slackgate_policy::{Policy, Route};

/// Buckets for gateway time: the work is sub-millisecond, so the low end is fine-grained.
const GATEWAY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets for upstream time: bots answer in milliseconds to seconds (Slack waits 3 s).
const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// The `listener` label values: the listeners' doors.
pub const LISTENERS: [&str; 3] = ["inbound", "egress", "admin"];

/// The metrics of one gateway.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `slackgate_requests_total{route,reason}`.
    pub requests: IntCounterVec,
    /// `slackgate_request_duration_seconds{route}`: time spent in the gateway itself.
    pub request_duration: HistogramVec,
    /// `slackgate_upstream_duration_seconds{route}`.
    pub upstream_duration: HistogramVec,
    /// `slackgate_policy_reloads_total{result}`.
    pub reloads: IntCounterVec,
    /// `slackgate_policy_generation`.
    pub generation: IntGauge,
    /// `slackgate_policy_last_reload_success_timestamp_seconds`.
    pub last_reload_success: Gauge,
    /// `slackgate_secret_matches_total{app,secret_id}`.
    pub secret_matches: IntCounterVec,
    /// `slackgate_secret_expiry_timestamp_seconds{app,secret_id}`.
    pub secret_expiry: GaugeVec,
    /// `slackgate_rate_limit_keys`.
    pub rate_limit_keys: IntGauge,
    /// `slackgate_rate_limit_evictions_total`.
    pub rate_limit_evictions: IntCounter,
    /// `slackgate_replay_cache_entries`.
    pub replay_entries: IntGauge,
    /// `slackgate_replay_cache_evictions_total`.
    pub replay_evictions: IntCounter,
    /// `slackgate_lifecycle_events_total{type}`.
    pub lifecycle: IntCounterVec,
    /// `slackgate_audit_dropped_total`.
    pub audit_dropped: IntCounter,
    /// `slackgate_connections_refused_total{listener}`: connections closed at accept
    /// because their listener held `limits.max_connections` already.
    pub connections_refused: IntCounterVec,
    /// `slackgate_upstream_healthy{upstream,target}`: 1 when the target passes health checks.
    pub upstream_healthy: GaugeVec,
    /// `slackgate_state_fallbacks_total{op}`: shared-state failures answered from this
    /// replica's own state (`state_failure: fail_open`).
    pub state_fallbacks: IntCounterVec,
    /// `slackgate_state_circuit_open`: 1 while the shared-state circuit breaker is open.
    pub state_circuit_open: IntGauge,
    /// `slackgate_egress_requests_total{bot,method,reason}`.
    pub egress_requests: IntCounterVec,
    /// `slackgate_egress_duration_seconds{bot}`.
    pub egress_duration: HistogramVec,
    /// `slackgate_egress_unused_scopes{bot}`.
    pub egress_unused_scopes: IntGaugeVec,
    /// `slackgate_egress_slack_rate_limits_total{bot}`: Slack's own 429s.
    pub egress_slack_429: IntCounterVec,
    /// `slackgate_egress_token_state{bot,state}`: 1 for the state the bot's token is in
    /// (`active`, `revoked`, and for a rotating token `pending` or `expired`), 0 for the
    /// others.
    pub egress_token_state: IntGaugeVec,
    /// `slackgate_token_refreshes_total{bot,result}`: token rotation's refresh attempts.
    pub token_refreshes: IntCounterVec,
    /// `slackgate_token_expiry_timestamp_seconds{bot}`: when a rotating bot's token expires.
    pub token_expiry: GaugeVec,
    /// `slackgate_token_refresh_stuck{bot}`: 1 when Slack refused a refresh and it is not
    /// retried (a new refresh token is needed).
    pub token_refresh_stuck: IntGaugeVec,
    /// `slackgate_group_members{group}`: members of a user group as last read (0 before).
    pub group_members: IntGaugeVec,
    /// `slackgate_group_refreshes_total{group,result}`: reads of a user group's members.
    pub group_refreshes: IntCounterVec,
    /// `slackgate_group_last_success_timestamp_seconds{group}`: when a user group's
    /// members were last read (0: never, so the group admits nobody).
    pub group_last_success: GaugeVec,
    /// Serializes [`Metrics::observe_guard`]: catching a counter up to an external total is
    /// a read-then-add, which concurrent callers would otherwise count twice.
    guard_sync: Arc<Mutex<()>>,
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
    pub(crate) fn requests(&self, m: &Metrics, route: &str, reason: Reason) -> Option<&IntCounter> {
        let slot = self.requests.get(reason as usize)?;
        Some(slot.get_or_init(|| m.requests.with_label_values(&[route, reason.as_str()])))
    }

    /// `slackgate_request_duration_seconds{route}` of this route.
    pub(crate) fn request_duration(&self, m: &Metrics, route: &str) -> &Histogram {
        self.request_duration
            .get_or_init(|| m.request_duration.with_label_values(&[route]))
    }

    /// `slackgate_upstream_duration_seconds{route}` of this route.
    pub(crate) fn upstream_duration(&self, m: &Metrics, route: &str) -> &Histogram {
        self.upstream_duration
            .get_or_init(|| m.upstream_duration.with_label_values(&[route]))
    }

    /// `slackgate_secret_matches_total{app,secret_id}` for one of the app's secrets.
    pub(crate) fn secret_matches(
        &self,
        m: &Metrics,
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

/// What the token metrics show of one bot.
#[derive(Debug, Clone, Copy)]
pub struct BotTokenView<'a> {
    /// The bot's name.
    pub name: &'a str,
    /// `active`, `revoked`, `pending` or `expired`.
    pub state: &'static str,
    /// Whether the bot rotates its token.
    pub rotating: bool,
    /// Unix expiry of the rotated token.
    pub expires_at: Option<i64>,
    /// Whether its refresh is stuck.
    pub stuck: bool,
}

/// What the guard's replay cache and rate limiter hold, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardLevels {
    /// Rate-limit buckets held.
    pub rate_limit_keys: usize,
    /// Rate-limit evictions since start (the limiter's own monotonic total).
    pub rate_limit_evictions: u64,
    /// Signatures held by the replay cache.
    pub replay_entries: usize,
    /// Replay-cache evictions since start (the cache's own monotonic total).
    pub replay_evictions: u64,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
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
            .buckets(UPSTREAM_BUCKETS.to_vec()),
            &["route"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "slackgate_policy_reloads_total",
                "Policy reloads by result.",
            ),
            &["result"],
        )?;
        let generation = IntGauge::new(
            "slackgate_policy_generation",
            "Generation of the running policy; bumped by every successful load.",
        )?;
        let last_reload_success = Gauge::new(
            "slackgate_policy_last_reload_success_timestamp_seconds",
            "Unix time of the last successful policy load.",
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
        let rate_limit_keys = IntGauge::new(
            "slackgate_rate_limit_keys",
            "Rate-limit buckets held in memory.",
        )?;
        let rate_limit_evictions = IntCounter::new(
            "slackgate_rate_limit_evictions_total",
            "Rate-limit buckets evicted to stay within max_rate_limit_keys.",
        )?;
        let replay_entries = IntGauge::new(
            "slackgate_replay_cache_entries",
            "Signatures held by the replay cache.",
        )?;
        let replay_evictions = IntCounter::new(
            "slackgate_replay_cache_evictions_total",
            "Live replay-cache entries evicted to stay within max_replay_entries.",
        )?;
        let lifecycle = IntCounterVec::new(
            Opts::new(
                "slackgate_lifecycle_events_total",
                "Verified lifecycle requests (app_uninstalled, tokens_revoked, app_rate_limited, ...), by type.",
            ),
            &["type"],
        )?;
        let audit_dropped = IntCounter::new(
            "slackgate_audit_dropped_total",
            "Audit records lost because the audit queue was full or the sink failed.",
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "slackgate_connections_refused_total",
                "Connections closed at accept because their listener was at limits.max_connections, by listener (inbound, egress, admin).",
            ),
            &["listener"],
        )?;
        let upstream_healthy = GaugeVec::new(
            Opts::new(
                "slackgate_upstream_healthy",
                "1 when an upstream target passes health checks, else 0.",
            ),
            &["upstream", "target"],
        )?;
        let state_fallbacks = IntCounterVec::new(
            Opts::new(
                "slackgate_state_fallbacks_total",
                "Shared-state (Redis) failures answered from this replica's own state, by operation.",
            ),
            &["op"],
        )?;
        let state_circuit_open = IntGauge::new(
            "slackgate_state_circuit_open",
            "1 while the shared-state circuit breaker is open (Redis calls skipped), else 0.",
        )?;
        let egress_requests = IntCounterVec::new(
            Opts::new(
                "slackgate_egress_requests_total",
                "Web API calls through the egress door by bot, method (named in the policy, else other) and reason code.",
            ),
            &["bot", "method", "reason"],
        )?;
        let egress_duration = HistogramVec::new(
            HistogramOpts::new(
                "slackgate_egress_duration_seconds",
                "Time from a bot's call arriving to its answer, Slack's time included.",
            )
            .buckets(UPSTREAM_BUCKETS.to_vec()),
            &["bot"],
        )?;
        let egress_unused_scopes = IntGaugeVec::new(
            Opts::new(
                "slackgate_egress_unused_scopes",
                "Scopes granted to a bot's token that none of its calls so far needed (x-oauth-scopes minus x-accepted-oauth-scopes seen).",
            ),
            &["bot"],
        )?;
        let egress_slack_429 = IntCounterVec::new(
            Opts::new(
                "slackgate_egress_slack_rate_limits_total",
                "429 answers from Slack to a bot's calls (its Retry-After is then honoured locally).",
            ),
            &["bot"],
        )?;
        registry.register(Box::new(egress_requests.clone()))?;
        registry.register(Box::new(egress_duration.clone()))?;
        registry.register(Box::new(egress_unused_scopes.clone()))?;
        let egress_token_state = IntGaugeVec::new(
            Opts::new(
                "slackgate_egress_token_state",
                "1 for the state of a bot's token: active, or revoked by a verified app_uninstalled or tokens_revoked (its calls are answered token_revoked until its token reference changes).",
            ),
            &["bot", "state"],
        )?;
        let group_members = IntGaugeVec::new(
            Opts::new(
                "slackgate_group_members",
                "Members of a user group (groups: {usergroup: ...}) as last read from Slack; 0 before the first read.",
            ),
            &["group"],
        )?;
        let group_refreshes = IntCounterVec::new(
            Opts::new(
                "slackgate_group_refreshes_total",
                "Reads of a user group's members with usergroups.users.list, by result (a failed read keeps the last members).",
            ),
            &["group", "result"],
        )?;
        let group_last_success = GaugeVec::new(
            Opts::new(
                "slackgate_group_last_success_timestamp_seconds",
                "Unix time of the last successful read of a user group's members; 0 until the first (the group then admits nobody in allow lists and denies every user in deny lists).",
            ),
            &["group"],
        )?;
        registry.register(Box::new(group_members.clone()))?;
        registry.register(Box::new(group_refreshes.clone()))?;
        registry.register(Box::new(group_last_success.clone()))?;
        registry.register(Box::new(egress_slack_429.clone()))?;
        registry.register(Box::new(egress_token_state.clone()))?;
        let token_refreshes = IntCounterVec::new(
            Opts::new(
                "slackgate_token_refreshes_total",
                "Token rotation refresh attempts per bot: ok, retry (Slack unreachable or busy; the current token serves), invalid_refresh_token and rejected (not retried: the refresh is stuck), state_error (the state store failed).",
            ),
            &["bot", "result"],
        )?;
        let token_expiry = GaugeVec::new(
            Opts::new(
                "slackgate_token_expiry_timestamp_seconds",
                "Unix time a rotating bot's current token expires (refreshed at half its life).",
            ),
            &["bot"],
        )?;
        let token_refresh_stuck = IntGaugeVec::new(
            Opts::new(
                "slackgate_token_refresh_stuck",
                "1 when Slack refused a rotating bot's refresh and it is not retried: reinstall the app, point rotation.refresh_token at the new refresh token and reload.",
            ),
            &["bot"],
        )?;
        registry.register(Box::new(token_refreshes.clone()))?;
        registry.register(Box::new(token_expiry.clone()))?;
        registry.register(Box::new(token_refresh_stuck.clone()))?;
        registry.register(Box::new(state_fallbacks.clone()))?;
        registry.register(Box::new(state_circuit_open.clone()))?;
        for op in slackgate_guard::StateOp::ALL {
            state_fallbacks.with_label_values(&[op.as_str()]);
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        registry.register(Box::new(last_reload_success.clone()))?;
        registry.register(Box::new(secret_matches.clone()))?;
        registry.register(Box::new(secret_expiry.clone()))?;
        registry.register(Box::new(rate_limit_keys.clone()))?;
        registry.register(Box::new(rate_limit_evictions.clone()))?;
        registry.register(Box::new(replay_entries.clone()))?;
        registry.register(Box::new(replay_evictions.clone()))?;
        registry.register(Box::new(lifecycle.clone()))?;
        registry.register(Box::new(audit_dropped.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        for listener in LISTENERS {
            connections_refused.with_label_values(&[listener]);
        }
        registry.register(Box::new(upstream_healthy.clone()))?;
        for result in
            crate::core::labels::ReloadResult::ALL.map(crate::core::labels::ReloadResult::as_str)
        {
            reloads.with_label_values(&[result]);
        }
        for t in slackgate_slack::Lifecycle::ALL {
            lifecycle.with_label_values(&[t.as_str()]);
        }
        Ok(Self {
            registry,
            requests,
            request_duration,
            upstream_duration,
            reloads,
            generation,
            last_reload_success,
            secret_matches,
            secret_expiry,
            rate_limit_keys,
            rate_limit_evictions,
            replay_entries,
            replay_evictions,
            lifecycle,
            audit_dropped,
            connections_refused,
            upstream_healthy,
            state_fallbacks,
            state_circuit_open,
            egress_requests,
            egress_duration,
            egress_unused_scopes,
            egress_slack_429,
            egress_token_state,
            token_refreshes,
            token_expiry,
            token_refresh_stuck,
            group_members,
            group_refreshes,
            group_last_success,
            guard_sync: Arc::new(Mutex::new(())),
        })
    }

    /// Mirrors the guard's sizes into the gauges and its eviction totals into the counters.
    ///
    /// The guard keeps its own monotonic eviction totals; the counters are caught up to
    /// them under a lock, so calls from many threads (requests, scrapes) never count an
    /// eviction twice.
    pub fn observe_guard(&self, levels: GuardLevels) {
        let _serial = self.guard_sync.lock();
        self.rate_limit_keys
            .set(i64::try_from(levels.rate_limit_keys).unwrap_or(i64::MAX));
        self.replay_entries
            .set(i64::try_from(levels.replay_entries).unwrap_or(i64::MAX));
        catch_up(&self.rate_limit_evictions, levels.rate_limit_evictions);
        catch_up(&self.replay_evictions, levels.replay_evictions);
    }

    /// Sets `slackgate_egress_token_state` and the rotation gauges for the bots of the
    /// running policy; the series of bots no longer in the policy are dropped.
    pub fn observe_token_states<'b>(&self, bots: impl Iterator<Item = BotTokenView<'b>>) {
        let _serial = self.guard_sync.lock();
        self.egress_token_state.reset();
        self.token_expiry.reset();
        self.token_refresh_stuck.reset();
        for b in bots {
            let states: &[&str] = if b.rotating {
                &["active", "revoked", "pending", "expired"]
            } else {
                &["active", "revoked"]
            };
            for s in states {
                self.egress_token_state
                    .with_label_values(&[b.name, s])
                    .set(i64::from(*s == b.state));
            }
            if b.rotating {
                if let Some(t) = b.expires_at {
                    self.token_expiry.with_label_values(&[b.name]).set(t as f64);
                }
                self.token_refresh_stuck
                    .with_label_values(&[b.name])
                    .set(i64::from(b.stuck));
                for r in crate::core::labels::TokenRefreshResult::ALL {
                    self.token_refreshes
                        .with_label_values(&[b.name, r.as_str()]);
                }
            }
        }
    }

    /// Counts a shared-state failure that fell back to this replica's own state.
    pub fn count_fallback(&self, op: slackgate_guard::StateOp) {
        self.state_fallbacks.with_label_values(&[op.as_str()]).inc();
    }

    /// Pre-creates the request counters of a route so dashboards see zeros, not gaps.
    pub fn register_route(&self, route: &str) {
        for reason in Reason::ALL {
            self.requests.with_label_values(&[route, reason.as_str()]);
        }
        self.request_duration.with_label_values(&[route]);
    }

    /// Pre-creates the series of a user group: every refresh result, and its members and
    /// last success (`loaded`: the count and time of members already held, e.g. kept
    /// across a reload; else 0).
    pub fn register_group(&self, group: &str, loaded: Option<(usize, f64)>) {
        for result in crate::core::labels::GroupReadResult::ALL {
            self.group_refreshes
                .with_label_values(&[group, result.as_str()]);
        }
        let (count, at) = loaded.unwrap_or_default();
        self.group_members
            .with_label_values(&[group])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        self.group_last_success.with_label_values(&[group]).set(at);
    }

    /// Drops the series of a user group the policy no longer has.
    pub fn forget_group(&self, group: &str) {
        for result in crate::core::labels::GroupReadResult::ALL {
            let _ = self
                .group_refreshes
                .remove_label_values(&[group, result.as_str()]);
        }
        let _ = self.group_members.remove_label_values(&[group]);
        let _ = self.group_last_success.remove_label_values(&[group]);
    }

    /// The registry, for metrics registered by a feature of their own (Socket Mode).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            out.clear();
        }
        out
    }
}

/// Raises `counter` to `total`; a lower total (a guard that was replaced) changes nothing.
fn catch_up(counter: &IntCounter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one_route() -> slackgate_policy::Policy {
        let text = "version: 1
apps:
  helpdesk:
    signing_secrets:
      - { id: current, env: S1 }
      - { id: previous, env: S2 }
upstreams:
  bot: { targets: [127.0.0.1:9] }
routes:
  - { name: events, path: /slack/events, app: helpdesk, upstream: bot }
";
        let secrets = slackgate_testkit::MapSecrets::new(&[("S1", "one"), ("S2", "two")]);
        slackgate_policy::compile_policy(
            std::path::Path::new("policy.yaml"),
            text,
            &secrets,
            std::time::SystemTime::now(),
        )
        .unwrap()
    }

    #[test]
    fn cached_route_handles_count_like_label_lookups_and_stay_with_their_registry() {
        let policy = one_route();
        let route = policy.routes.iter().next().unwrap();
        let (a, b) = (Metrics::new().unwrap(), Metrics::new().unwrap());
        let table = RouteMetricsTable::new(&policy);
        let ra = table.get(route).unwrap();
        // A route of another policy (an older snapshot) has no handles here.
        let other = one_route();
        assert!(table.get(other.routes.iter().next().unwrap()).is_none());
        for _ in 0..3 {
            ra.requests(&a, "events", Reason::Allowed).unwrap().inc();
        }
        ra.request_duration(&a, "events").observe(0.001);
        let previous = route.app.secrets[1].key.id_arc().clone();
        ra.secret_matches(&a, "helpdesk", &previous).unwrap().inc();
        // An id the route's app does not have finds no handle.
        assert!(ra
            .secret_matches(&a, "helpdesk", &Arc::from("other"))
            .is_none());
        assert_eq!(
            a.requests.with_label_values(&["events", "allowed"]).get(),
            3
        );
        assert_eq!(
            a.secret_matches
                .with_label_values(&["helpdesk", "previous"])
                .get(),
            1
        );
        let text = String::from_utf8(a.render()).unwrap();
        // Series appear only once used, exactly as with label lookups.
        assert!(text.contains("slackgate_request_duration_seconds_count{route=\"events\"} 1"));
        assert!(!text.contains("slackgate_upstream_duration_seconds_count{route=\"events\"}"));
        assert!(!text.contains("secret_id=\"current\""));
        assert_eq!(
            b.requests.with_label_values(&["events", "allowed"]).get(),
            0
        );
    }

    #[test]
    fn concurrent_guard_observations_count_each_eviction_once() {
        let m = Metrics::new().unwrap();
        let levels = GuardLevels {
            rate_limit_keys: 3,
            rate_limit_evictions: 7,
            replay_entries: 2,
            replay_evictions: 5,
        };
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..100 {
                        m.observe_guard(levels);
                    }
                });
            }
        });
        assert_eq!(m.rate_limit_evictions.get(), 7);
        assert_eq!(m.replay_evictions.get(), 5);
        assert_eq!(m.rate_limit_keys.get(), 3);
        assert_eq!(m.replay_entries.get(), 2);
        // A lower total (a fresh guard) never makes a counter go backwards.
        m.observe_guard(GuardLevels::default());
        assert_eq!(m.rate_limit_evictions.get(), 7);
    }

    #[test]
    fn exposition_names_every_counter_with_total_and_has_help() {
        let m = Metrics::new().unwrap();
        m.register_route("r");
        let text = String::from_utf8(m.render()).unwrap();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(name.starts_with("slackgate_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
        }
    }
}
