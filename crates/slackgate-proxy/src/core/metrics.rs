//! Prometheus metrics of one gateway instance, by door: what both doors run on here (the
//! policy's reloads, the guard's replay cache and rate limiter, the audit queue, the
//! connection caps, the shared state, the user groups' reads), the inbound door's in
//! `metrics/inbound.rs` and the egress door's (with the bots' tokens) in `metrics/egress.rs`. Every metric
//! is registered in one registry and rendered together, sorted by name.
//!
//! Every instance owns its registry, so several gateways in one process (tests) do not
//! share counters. Label values are closed sets (reasons, results) or config names
//! (routes, apps, secret ids), never request data.

use parking_lot::Mutex;
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

mod egress;
mod inbound;

pub use egress::{BotTokenView, EgressMetrics};
pub use inbound::InboundMetrics;
pub(crate) use inbound::{inc, observe, RouteMetricsTable};

/// Buckets for time spent on the other side (a bot, Slack): milliseconds to seconds
/// (Slack waits 3 s for a bot).
const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// The `listener` label values: the listeners' doors.
pub const LISTENERS: [&str; 3] = ["inbound", "egress", "admin"];

/// The metrics of one gateway.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// The inbound door's.
    pub inbound: InboundMetrics,
    /// The egress door's, and the bots' tokens'.
    pub egress: EgressMetrics,
    /// `slackgate_policy_reloads_total{result}`.
    pub reloads: IntCounterVec,
    /// `slackgate_policy_generation`.
    pub generation: IntGauge,
    /// `slackgate_policy_last_reload_success_timestamp_seconds`.
    pub last_reload_success: Gauge,
    /// `slackgate_rate_limit_keys`.
    pub rate_limit_keys: IntGauge,
    /// `slackgate_rate_limit_evictions_total`.
    pub rate_limit_evictions: IntCounter,
    /// `slackgate_replay_cache_entries`.
    pub replay_entries: IntGauge,
    /// `slackgate_replay_cache_evictions_total`.
    pub replay_evictions: IntCounter,
    /// `slackgate_audit_dropped_total`.
    pub audit_dropped: IntCounter,
    /// `slackgate_connections_refused_total{listener}`: connections closed at accept
    /// because their listener held `limits.max_connections` already.
    pub connections_refused: IntCounterVec,
    /// `slackgate_tls_handshakes_total{listener,group}`: TLS handshakes on the gateway's
    /// listeners by the key-exchange group they settled on (`failed`: none completed).
    pub tls_handshakes: IntCounterVec,
    /// `slackgate_state_fallbacks_total{op}`: shared-state failures answered from this
    /// replica's own state (`state_failure: fail_open`).
    pub state_fallbacks: IntCounterVec,
    /// `slackgate_state_circuit_open`: 1 while the shared-state circuit breaker is open.
    pub state_circuit_open: IntGauge,
    /// `slackgate_group_members{group}`: members of a user group as last read (0 before).
    pub group_members: IntGaugeVec,
    /// `slackgate_group_refreshes_total{group,result}`: reads of a user group's members.
    pub group_refreshes: IntCounterVec,
    /// `slackgate_group_last_success_timestamp_seconds{group}`: when a user group's
    /// members were last read (0: never, so the group admits nobody).
    pub group_last_success: GaugeVec,
    /// Serializes [`Metrics::observe_guard`] (and [`Metrics::observe_token_states`]):
    /// catching a counter up to an external total is a read-then-add, which concurrent
    /// callers would otherwise count twice.
    guard_sync: Arc<Mutex<()>>,
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
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "slackgate_tls_handshakes_total",
                "TLS handshakes on the inbound and egress listeners, by listener and the key-exchange group agreed (X25519MLKEM768 is post-quantum; failed: the handshake failed or timed out).",
            ),
            &["listener", "group"],
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
        let inbound = InboundMetrics::new(&registry, UPSTREAM_BUCKETS)?;
        let egress = EgressMetrics::new(&registry, UPSTREAM_BUCKETS)?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        registry.register(Box::new(last_reload_success.clone()))?;
        registry.register(Box::new(rate_limit_keys.clone()))?;
        registry.register(Box::new(rate_limit_evictions.clone()))?;
        registry.register(Box::new(replay_entries.clone()))?;
        registry.register(Box::new(replay_evictions.clone()))?;
        registry.register(Box::new(audit_dropped.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(tls_handshakes.clone()))?;
        registry.register(Box::new(state_fallbacks.clone()))?;
        registry.register(Box::new(state_circuit_open.clone()))?;
        registry.register(Box::new(group_members.clone()))?;
        registry.register(Box::new(group_refreshes.clone()))?;
        registry.register(Box::new(group_last_success.clone()))?;
        for result in
            crate::core::labels::ReloadResult::ALL.map(crate::core::labels::ReloadResult::as_str)
        {
            reloads.with_label_values(&[result]);
        }
        for listener in LISTENERS {
            connections_refused.with_label_values(&[listener]);
        }
        for op in slackgate_guard::StateOp::ALL {
            state_fallbacks.with_label_values(&[op.as_str()]);
        }
        Ok(Self {
            registry,
            inbound,
            egress,
            reloads,
            generation,
            last_reload_success,
            rate_limit_keys,
            rate_limit_evictions,
            replay_entries,
            replay_evictions,
            audit_dropped,
            connections_refused,
            tls_handshakes,
            state_fallbacks,
            state_circuit_open,
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
        self.egress.observe_token_states(bots);
    }

    /// Pre-creates the request counters of a route so dashboards see zeros, not gaps.
    pub fn register_route(&self, route: &str) {
        self.inbound.register_route(route);
    }

    /// Counts a shared-state failure that fell back to this replica's own state.
    pub fn count_fallback(&self, op: slackgate_guard::StateOp) {
        self.state_fallbacks.with_label_values(&[op.as_str()]).inc();
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
    use slackgate_guard::Reason;

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
            ra.requests(&a.inbound, "events", Reason::Allowed)
                .unwrap()
                .inc();
        }
        ra.request_duration(&a.inbound, "events").observe(0.001);
        let previous = route.app.secrets[1].key.id_arc().clone();
        ra.secret_matches(&a.inbound, "helpdesk", &previous)
            .unwrap()
            .inc();
        // An id the route's app does not have finds no handle.
        assert!(ra
            .secret_matches(&a.inbound, "helpdesk", &Arc::from("other"))
            .is_none());
        assert_eq!(
            a.inbound
                .requests
                .with_label_values(&["events", "allowed"])
                .get(),
            3
        );
        assert_eq!(
            a.inbound
                .secret_matches
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
            b.inbound
                .requests
                .with_label_values(&["events", "allowed"])
                .get(),
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
