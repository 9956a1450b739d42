//! The running state: the snapshot behind an `ArcSwap`, and what outlives reloads.
//!
//! A [`Snapshot`] is the compiled config and policy plus the upstream pools built from
//! them. Each request loads it once. A reload builds a complete new snapshot first and
//! swaps it in only when everything validated; the replay cache and rate-limit buckets
//! live in the [`Guard`] beside it, so a reload resets neither.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use slackgate_guard::{Clock, Guard};
use slackgate_policy::{Config, LoadError, LoadErrors, Policy, SecretSource, StateKey};

use crate::core::audit::AuditSink;
pub use crate::core::labels::ReloadResult;
use crate::core::metrics::Metrics;
use crate::core::metrics::RouteMetricsTable;
use crate::inbound::upstream::Pool;

/// The clock type the gateway runs its guard with.
pub type SharedClock = Arc<dyn Clock>;

/// One complete, validated generation of config and policy.
#[derive(Debug)]
pub struct Snapshot {
    /// Bumped by every successful load, starting at 1.
    pub generation: u64,
    /// The server config this generation was loaded with.
    pub config: Arc<Config>,
    /// The compiled policy.
    pub policy: Arc<Policy>,
    /// The key `state.encryption_key` named when this generation loaded (checked then);
    /// token rotation seals with the first generation's, as `state` changes need a restart.
    pub state_key: Option<Arc<StateKey>>,
    /// Upstream pools by upstream name.
    pub pools: HashMap<Arc<str>, Arc<Pool>, slackgate_policy::LookupHasher>,
    /// When this generation was loaded.
    pub loaded_at: SystemTime,
    /// The per-request metric handles of this generation's routes.
    pub(crate) route_metrics: RouteMetricsTable,
}

/// The outcome of a reload, as `POST /reload` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    /// Whether the new files replaced the running ones.
    pub ok: bool,
    /// The generation now running.
    pub generation: u64,
    /// The hash of the policy now running.
    pub hash: String,
    /// Every error found, file:line:column first; empty on success.
    pub errors: Vec<String>,
}

/// What `/status` says about reloads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// The errors of the last failed reload, cleared by the next good one.
    pub last_error: Option<Vec<String>>,
    /// RFC 3339 time of the last reload attempt.
    pub last_attempt: Option<String>,
}

/// What the server calls after a reload.
pub(crate) type ReloadHook = Box<dyn Fn() + Send + Sync>;

/// Everything a gateway instance shares between requests, reloads and the admin API.
pub struct Shared {
    /// Path of the config file.
    pub config_path: PathBuf,
    /// The running snapshot.
    pub snapshot: ArcSwap<Snapshot>,
    /// Replay cache and rate limiter, outliving reloads.
    pub guard: Guard<SharedClock>,
    /// Metrics.
    pub metrics: Metrics,
    /// Audit queue.
    pub audit: AuditSink,
    /// Where secrets are read from.
    pub secrets: Arc<dyn SecretSource + Send + Sync>,
    /// Whether every listener accepted a connection.
    pub listeners_ready: AtomicBool,
    /// Shared state in Redis (`state.backend: redis`); `None` keeps state in this replica.
    pub remote: Option<Arc<crate::core::redis::RedisState>>,
    /// Called after every snapshot swap: the parts the server wired that follow reloads
    /// (the user groups' supervisor). The features' own state (token vault, scope ledger,
    /// user groups) is owned by the server and handed to the parts that need it.
    reload_hooks: Mutex<Vec<ReloadHook>>,
    reload_status: Mutex<ReloadStatus>,
    reload_lock: Mutex<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config_path", &self.config_path)
            .field("generation", &self.snapshot.load().generation)
            .finish_non_exhaustive()
    }
}

/// Loads config and policy with [`slackgate_policy::load`] (the loader `check`, `explain`
/// and `test` use too, so the gateway refuses exactly what they refuse) into a snapshot
/// of the given generation. The first start and every reload come here.
pub fn load_snapshot(
    config_path: &Path,
    secrets: &dyn SecretSource,
    now: SystemTime,
    generation: u64,
) -> Result<Snapshot, LoadErrors> {
    let loaded = slackgate_policy::load(config_path, secrets, now)?;
    for note in loaded.notes() {
        log::warn!("{note}");
    }
    let slackgate_policy::Loaded {
        config,
        policy,
        state_key,
    } = loaded;
    let Some(config) = config else {
        return Err(LoadError::whole_file(
            config_path,
            "this is a policy file; the gateway serves a server config",
            "give `run` a server config (`listen:` and `policy:` naming this file), as in policies/example.config.yaml",
        )
        .into());
    };
    Ok(build_snapshot(
        Arc::new(config),
        Arc::new(policy),
        state_key.map(Arc::new),
        generation,
        now,
    ))
}

/// Builds the upstream pools and metric handles for a config and policy that passed
/// [`slackgate_policy::load`].
fn build_snapshot(
    config: Arc<Config>,
    policy: Arc<Policy>,
    state_key: Option<Arc<StateKey>>,
    generation: u64,
    now: SystemTime,
) -> Snapshot {
    let pools = policy
        .upstreams
        .iter()
        .map(|(name, up)| (Arc::clone(name), Arc::new(Pool::new(up))))
        .collect();
    Snapshot {
        generation,
        route_metrics: RouteMetricsTable::new(&policy),
        config,
        policy,
        state_key,
        pools,
        loaded_at: now,
    }
}

impl Shared {
    /// Wraps a first snapshot.
    pub fn new(
        config_path: PathBuf,
        first: Snapshot,
        guard: Guard<SharedClock>,
        metrics: Metrics,
        audit: AuditSink,
        secrets: Arc<dyn SecretSource + Send + Sync>,
    ) -> Self {
        let shared = Self {
            config_path,
            snapshot: ArcSwap::from_pointee(first),
            guard,
            metrics,
            audit,
            secrets,
            listeners_ready: AtomicBool::new(false),
            remote: None,
            reload_hooks: Mutex::new(Vec::new()),
            reload_status: Mutex::new(ReloadStatus::default()),
            reload_lock: Mutex::new(()),
        };
        shared.on_loaded();
        shared
    }

    /// The running snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Re-reads config, policy and secrets; swaps them in only if all of it is valid.
    ///
    /// Listener, admin and audit settings need a restart; a change to them is loaded
    /// but takes effect only then, and is logged.
    pub fn reload(&self) -> ReloadOutcome {
        let _serial = self.reload_lock.lock();
        let now = self.guard.clock().now();
        let running = self.current();
        let result = load_snapshot(
            &self.config_path,
            self.secrets.as_ref(),
            now,
            running.generation + 1,
        );
        self.set_status(|s| s.last_attempt = Some(crate::core::audit::rfc3339(now)));
        match result {
            Ok(next) => {
                if next.config.listen != running.config.listen
                    || next.config.admin != running.config.admin
                    || next.config.state != running.config.state
                {
                    log::warn!(
                        "{}: listener, admin or state settings changed; they take effect after a restart or upgrade",
                        self.config_path.display()
                    );
                }
                let generation = next.generation;
                let hash = next.policy.hash.clone();
                self.snapshot.store(Arc::new(next));
                self.metrics
                    .reloads
                    .with_label_values(&[ReloadResult::Success.as_str()])
                    .inc();
                self.on_loaded();
                self.set_status(|s| s.last_error = None);
                log::info!("policy reloaded: generation {generation}, hash {hash}");
                ReloadOutcome {
                    ok: true,
                    generation,
                    hash,
                    errors: Vec::new(),
                }
            }
            Err(errors) => {
                let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                for line in &lines {
                    log::error!("policy reload rejected, previous policy keeps serving: {line}");
                }
                self.metrics
                    .reloads
                    .with_label_values(&[ReloadResult::Error.as_str()])
                    .inc();
                self.set_status(|s| s.last_error = Some(lines.clone()));
                ReloadOutcome {
                    ok: false,
                    generation: running.generation,
                    hash: running.policy.hash.clone(),
                    errors: lines,
                }
            }
        }
    }

    /// The reload status for `/status`.
    pub fn reload_status(&self) -> ReloadStatus {
        self.reload_status.lock().clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut ReloadStatus)) {
        f(&mut self.reload_status.lock());
    }

    /// Whether a policy is loaded and every listener accepts connections.
    pub fn is_ready(&self) -> bool {
        self.listeners_ready.load(Ordering::SeqCst)
    }

    fn on_loaded(&self) {
        let snap = self.current();
        let m = &self.metrics;
        m.generation
            .set(i64::try_from(snap.generation).unwrap_or(i64::MAX));
        m.last_reload_success
            .set(slackgate_guard::unix_secs_f64(snap.loaded_at));
        m.inbound.secret_expiry.reset();
        for app in snap.policy.apps.values() {
            for secret in app.secrets.iter() {
                m.inbound
                    .secret_matches
                    .with_label_values(&[&app.name, secret.key.id()]);
                if let Some(exp) = secret.expires {
                    m.inbound
                        .secret_expiry
                        .with_label_values(&[&app.name, secret.key.id()])
                        .set(slackgate_guard::unix_secs_f64(exp));
                }
            }
        }
        for route in snap.policy.routes.iter() {
            m.register_route(&route.name);
        }
        let hooks = self.reload_hooks.lock();
        for hook in hooks.iter() {
            hook();
        }
    }

    /// Calls `hook` now and after every successful reload.
    pub(crate) fn on_reload(&self, hook: ReloadHook) {
        hook();
        self.reload_hooks.lock().push(hook)
    }
}
