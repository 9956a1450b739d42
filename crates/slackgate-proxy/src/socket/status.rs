//! What the bridge reports: `/status` `socket_mode.<app>` and its metrics
//! (`slackgate_socket_connections{app}`, `slackgate_socket_envelopes_total{app,type,result}`,
//! `slackgate_socket_reconnects_total{app,reason}`). Label values are app names from the
//! policy and closed sets; the app token is never in either.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The state of one app's bridge, as `/status` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AppSocketStatus {
    /// `connecting`, `connected`, `backing_off`, `stopped`.
    pub state: &'static str,
    /// Connections that said `hello` and are served now.
    pub connections: usize,
    /// Connections the policy asks for.
    pub configured: u8,
    /// Why the bridge stopped or last failed (an error code or a short text, never a
    /// token).
    pub last_error: Option<String>,
    /// Which start of the app's bridge wrote this: an older one (replaced after a reload)
    /// no longer writes.
    #[serde(skip)]
    generation: u64,
}

/// The bridges' states, by app (owned by the server, read by the admin listener).
#[derive(Debug, Default)]
pub struct SocketStatus {
    apps: Mutex<BTreeMap<String, AppSocketStatus>>,
}

impl SocketStatus {
    /// Changes app `app`'s state, as written by the bridge started as `generation`; a
    /// later start owns the entry, an earlier one's writes are dropped.
    pub(crate) fn update(&self, app: &str, generation: u64, f: impl FnOnce(&mut AppSocketStatus)) {
        let mut apps = self.apps.lock();
        let entry = apps.entry(app.to_owned()).or_default();
        if generation < entry.generation {
            return;
        }
        entry.generation = generation;
        f(entry);
    }

    /// Forgets an app that no longer has `socket_mode`.
    pub(crate) fn remove(&self, app: &str) {
        self.apps.lock().remove(app);
    }

    /// One app's state.
    pub fn app(&self, app: &str) -> Option<AppSocketStatus> {
        self.apps.lock().get(app).cloned()
    }

    /// `/status` `socket_mode`: each app's state.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.apps.lock()).unwrap_or_default()
    }
}

/// The bridge's metrics, registered in the gateway's registry.
#[derive(Debug, Clone)]
pub(crate) struct SocketMetrics {
    pub(crate) connections: IntGaugeVec,
    pub(crate) envelopes: IntCounterVec,
    pub(crate) reconnects: IntCounterVec,
}

/// The `type` label values of `slackgate_socket_envelopes_total`.
const TYPES: [&str; 4] = ["events_api", "slash_commands", "interactive", "other"];
/// The `result` label values of `slackgate_socket_envelopes_total`.
const RESULTS: [&str; 6] = [
    "delivered",
    "denied",
    "failed",
    "duplicate",
    "unrouted",
    "unsupported",
];
/// The `reason` label values of `slackgate_socket_reconnects_total` (besides `other`, for
/// a `disconnect` reason Slack adds later).
const REASONS: [&str; 9] = [
    "warning",
    "refresh_requested",
    "too_many_websockets",
    "link_disabled",
    "closed",
    "ping_timeout",
    "open_failed",
    "rate_limited",
    "fatal",
];

impl SocketMetrics {
    /// Creates every series of `app` at 0, so dashboards and alerts see zeros, not gaps.
    pub(crate) fn preregister(&self, app: &str) {
        self.connections.with_label_values(&[app]);
        for kind in TYPES {
            for result in RESULTS {
                self.envelopes.with_label_values(&[app, kind, result]);
            }
        }
        for reason in REASONS {
            self.reconnects.with_label_values(&[app, reason]);
        }
    }

    /// The `reason` label of a `disconnect` reason: Slack's word when it is one of
    /// [`REASONS`], else `other`.
    pub(crate) fn reason_label(reason: &str) -> &str {
        if REASONS.contains(&reason) {
            reason
        } else {
            "other"
        }
    }

    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let connections = IntGaugeVec::new(
            Opts::new(
                "slackgate_socket_connections",
                "Socket Mode connections open (said hello) per app.",
            ),
            &["app"],
        )?;
        let envelopes = IntCounterVec::new(
            Opts::new(
                "slackgate_socket_envelopes_total",
                "Socket Mode envelopes by app, type and result (delivered, denied, failed, duplicate, unrouted, unsupported).",
            ),
            &["app", "type", "result"],
        )?;
        let reconnects = IntCounterVec::new(
            Opts::new(
                "slackgate_socket_reconnects_total",
                "Socket Mode connections replaced or lost, by app and reason (warning, refresh_requested, too_many_websockets, link_disabled, closed, ping_timeout, open_failed, rate_limited, fatal).",
            ),
            &["app", "reason"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(envelopes.clone()))?;
        registry.register(Box::new(reconnects.clone()))?;
        Ok(SocketMetrics {
            connections,
            envelopes,
            reconnects,
        })
    }
}
