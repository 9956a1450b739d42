//! Assembling and running a gateway: listeners, admin service, background tasks.
//!
//! [`start`] builds a pingora [`Server`] from a config file and runs it on a thread of
//! its own, returning a [`RunningGateway`] handle; the binary calls [`run`], which
//! blocks and honours pingora's signals (SIGQUIT + `--upgrade` for zero-downtime
//! upgrades, SIGTERM for a graceful drain, SIGINT for a fast stop) plus SIGHUP (reload)
//! and SIGUSR1 (reopen the audit file).

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};

use crate::services::{CertWatcher, HealthChecker, ReadinessProbe, SignalHandler};
use crate::signals::OperatorSignals;

/// How often listener certificates are checked for a change.
const CERT_INTERVAL: Duration = Duration::from_secs(2);
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use slackgate_guard::{Clock, Guard, SystemClock};
use slackgate_policy::{AuditPath, Config, LoadErrors, SecretSource, StateBackend, SystemSecrets};

use crate::admin::{AdminDoor, Features};
use crate::core::audit::{AuditSink, AuditTarget, DEFAULT_QUEUE};
use crate::core::metrics::Metrics;
use crate::core::state::{load_snapshot, Shared, SharedClock};
use crate::egress::{CallToken, TokenVault};
use crate::groups::BotTokens;
use crate::inbound::gateway::{Gateway, InboundDoor};
use crate::net::front::{Front, Slots};
use crate::net::slack_client::SlackClient;
use crate::net::tls::{server_config, ReloadingCert, TlsListeners, TlsSetupError};

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Config or policy did not validate.
    #[error("{0}")]
    Load(LoadErrors),
    /// A TLS certificate could not be loaded.
    #[error(transparent)]
    Cert(#[from] crate::net::tls::CertError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The audit sink could not be opened.
    #[error("audit sink: {0}; check audit.path is writable")]
    Audit(std::io::Error),
    /// `state.redis.username_env` or `password_env` names a variable that is not set or empty.
    #[error("{config}: state.redis.{key} names {var}, which is not set or empty; export the Redis {what} in it")]
    RedisCredential {
        /// The config file.
        config: PathBuf,
        /// `username_env` or `password_env`.
        key: &'static str,
        /// The variable it names.
        var: String,
        /// `ACL user name` or `password`.
        what: &'static str,
    },
    /// Redis refused the credentials or the TLS handshake, or `ca_file` is unusable: the
    /// message names the Redis (host:port), never a credential.
    #[error("{config}: {message}")]
    Redis {
        /// The config file.
        config: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The server thread could not be started.
    #[error("cannot start the server thread: {0}")]
    Thread(#[source] std::io::Error),
    /// rustls refused the settings of a TLS listener.
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    /// pingora refused the TLS settings of a listener.
    #[error("TLS settings: {0}")]
    Tls(#[source] Box<pingora::Error>),
    /// The egress door's client to Slack could not be set up.
    #[error("egress: {0}")]
    Egress(#[from] crate::net::SlackClientError),
    /// A rotating bot's stored token pair cannot be read or opened.
    #[error("state: {0}")]
    TokenState(String),
}

/// How to start a gateway.
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// Where secrets come from.
    pub secrets: Arc<dyn SecretSource + Send + Sync>,
    /// The clock of the guard.
    pub clock: SharedClock,
    /// Overrides `audit.path` (tests capture records in memory).
    pub audit: Option<AuditTarget>,
    /// Take over the listeners of a running old process (`run --upgrade`).
    pub upgrade: bool,
    /// Worker threads per service; 0 means one per core.
    pub threads: usize,
    /// Install SIGHUP/SIGUSR1 handlers (the binary does; tests do not).
    pub signals: bool,
    /// pingora's upgrade socket (where the old process hands over its listeners).
    pub upgrade_sock: Option<PathBuf>,
    /// pingora's pid file.
    pub pid_file: Option<PathBuf>,
    /// How often config, policy and secret files are polled for changes; `None` disables.
    pub watch_interval: Option<Duration>,
    /// How many audit records may wait for the writer before new ones are dropped (and counted).
    pub audit_queue: usize,
    /// Serve simple requests on the fast path (the default). Off, every HTTP/1 request
    /// that passes the head checks goes to pingora's proxy: the differential tests use
    /// this to hold the two paths to the same answers.
    pub fast_path: bool,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("config", &self.config)
            .field("upgrade", &self.upgrade)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options for serving `config` with system secrets and the system clock.
    pub fn new(config: impl Into<PathBuf>) -> Self {
        Self {
            config: config.into(),
            secrets: Arc::new(SystemSecrets),
            clock: Arc::new(SystemClock),
            audit: None,
            upgrade: false,
            threads: 0,
            signals: false,
            upgrade_sock: None,
            pid_file: None,
            watch_interval: Some(crate::watch::DEFAULT_INTERVAL),
            audit_queue: DEFAULT_QUEUE,
            fast_path: true,
        }
    }
}

/// A gateway running on its own thread.
pub struct RunningGateway {
    /// The shared state (snapshot, metrics, reload).
    pub shared: Arc<Shared>,
    /// The features' state the server owns (token vault, scope ledger, user groups).
    pub features: Features,
    stop: Arc<StopSignal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway").finish_non_exhaustive()
    }
}

impl RunningGateway {
    /// Stops the gateway at once (pingora's fast shutdown) and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_now(ShutdownKind::Fast);
    }

    /// Stops the gateway like SIGTERM does: stop accepting, drain for
    /// `limits.shutdown_grace`, then exit; waits for its thread.
    pub fn shutdown_graceful(mut self) {
        self.stop_now(ShutdownKind::Graceful);
    }

    fn stop_now(&mut self, kind: ShutdownKind) {
        self.stop.fire(kind);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The last requests' records are still in the audit queue.
        if !self.shared.audit.drain(AUDIT_DRAIN) {
            log::error!("audit: records still queued at shutdown after {AUDIT_DRAIN:?}");
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop_now(ShutdownKind::Fast);
    }
}

#[derive(Debug, Clone, Copy)]
enum ShutdownKind {
    Graceful,
    Fast,
}

#[derive(Debug, Default)]
struct StopSignal {
    notify: tokio::sync::Notify,
    fired: Mutex<Option<ShutdownKind>>,
}

impl StopSignal {
    fn fire(&self, kind: ShutdownKind) {
        *self.fired.lock() = Some(kind);
        self.notify.notify_one();
    }
}

struct StopWatch(Arc<StopSignal>);

#[async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        loop {
            {
                let g = self.0.fired.lock();
                match *g {
                    Some(ShutdownKind::Graceful) => return ShutdownSignal::GracefulTerminate,
                    Some(ShutdownKind::Fast) => return ShutdownSignal::FastShutdown,
                    None => {}
                }
            }
            self.0.notify.notified().await;
        }
    }
}

/// Builds the pingora server for `opts`: the shared state, the server, a front on
/// every listener (the inbound door, the egress door, the admin listener) and the
/// background services.
pub fn build(opts: &Options) -> Result<(Server, Arc<Shared>, Features), StartError> {
    // aws-lc-rs as rustls' process default before anything (pingora, the Redis client)
    // would pick one: the configs of our own name it anyway (`net::tls::provider`).
    crate::net::tls::install_process_default();
    let shared = shared_state(opts)?;
    let config = Arc::clone(&shared.current().config);
    let mut server = pingora_server(opts, &config);
    let caps = crate::net::fds::plan(
        config.listen.len(),
        config.egress.is_some(),
        config.limits.max_connections,
    );
    // The features' own state, owned here and handed to the parts that need it (as
    // pingora's background services own theirs): the token vault (the refresher writes
    // it, the egress door and the group reads read it), the scope ledger and the user
    // groups. They outlive reloads; the snapshot does not hold them.
    let features = Features::default();
    let groups = Arc::clone(&features.groups);
    shared.on_reload(Box::new(move || groups.policy_loaded()));
    let mut probe_addrs =
        add_inbound(&mut server, opts, &shared, &features, &config, caps.inbound)?;
    // The client for `egress.slack_api`, built once at start (a change of `egress` needs a
    // restart) for the egress door, token rotation and the group reads alike, each with a
    // pool of its own (`SlackClient::fresh`).
    let slack = match &config.egress {
        Some(egress) => Some(SlackClient::new(
            &egress.slack_api,
            egress.ca_file.as_deref(),
            egress.timeout,
            &config.tls.key_exchange,
        )?),
        None => None,
    };
    if let (Some(egress), Some(slack)) = (&config.egress, &slack) {
        add_egress(&mut server, &shared, &features, slack, egress, caps.egress)?;
        probe_addrs.push(egress.listen.addr);
        add_rotation(&mut server, &shared, &features, slack, &config, egress)?;
        add_socket_mode(&mut server, &shared, &features)?;
        if let Some(redis) = &shared.remote {
            server.add_service(background_service(
                "shared revocations",
                crate::replicate::RevocationSync {
                    shared: Arc::clone(&shared),
                    redis: Arc::clone(redis),
                },
            ));
            server.add_service(background_service(
                "shared scopes",
                crate::egress::ScopeSync {
                    shared: Arc::clone(&shared),
                    redis: Arc::clone(redis),
                    ledger: Arc::clone(&features.ledger),
                },
            ));
        }
    }
    if let Some(admin) = &config.admin {
        let front = Front::new(
            AdminDoor::new(Arc::clone(&shared), features.clone()),
            TlsListeners::default(),
            slots(&shared, "admin", caps.admin),
        );
        let mut svc = Service::new("slackgate admin".to_owned(), front);
        svc.add_listener(ListenerConfig::tcp(admin.addr.to_string()).l4_buffer(small_buffers()));
        server.add_service(svc);
        probe_addrs.push(admin.addr);
    }
    add_background(&mut server, opts, &shared, &features, slack, probe_addrs);
    Ok((server, shared, features))
}

/// The group reads take a bot's token from the vault, as the egress door's calls do.
impl BotTokens for TokenVault {
    fn token_at(&self, bot: &slackgate_policy::Bot, now: std::time::SystemTime) -> Option<String> {
        match self.token(bot, now) {
            CallToken::Static(t) => Some(t.to_owned()),
            CallToken::Rotated(p) => Some(p.access_token().to_owned()),
            CallToken::Unavailable(_) => None,
        }
    }
}

/// The Socket Mode bridge (it needs `egress.slack_api`): the apps' WebSockets, their
/// envelopes run by the inbound pipeline.
fn add_socket_mode(
    server: &mut Server,
    shared: &Arc<Shared>,
    features: &Features,
) -> Result<(), StartError> {
    let metrics = crate::socket::status::SocketMetrics::register(shared.metrics.registry())?;
    server.add_service(background_service(
        "socket mode",
        crate::socket::SocketBridge {
            shared: Arc::clone(shared),
            gateway: Arc::new(Gateway::new(
                Arc::clone(shared),
                Arc::clone(&features.groups),
            )),
            status: Arc::clone(&features.sockets),
            metrics,
        },
    ));
    Ok(())
}

/// The connection slots of one listener, its refusals counted under `listener`.
fn slots(shared: &Shared, listener: &str, cap: usize) -> Arc<Slots> {
    let refused = shared
        .metrics
        .connections_refused
        .with_label_values(&[listener]);
    Arc::new(Slots::new(cap, refused))
}

/// The egress door: its front (TLS terminated there, as on the inbound listeners) over
/// the egress pipeline, with pingora's session for what the fast path does not take.
fn add_egress(
    server: &mut Server,
    shared: &Arc<Shared>,
    features: &Features,
    slack: &SlackClient,
    egress: &slackgate_policy::Egress,
    cap: usize,
) -> Result<(), StartError> {
    let app = crate::egress::EgressApp::new(
        Arc::clone(shared),
        Arc::clone(&features.vault),
        Arc::clone(&features.ledger),
        Arc::new(slack.fresh()),
    )?;
    let proxy = Arc::new(pingora::proxy::http_proxy(
        &server.configuration,
        app.clone(),
    ));
    let mut tls = TlsListeners::default();
    if let Some(cert) = watched_cert(server, &egress.listen)? {
        let groups = &shared.current().config.tls.key_exchange;
        let counts = &shared.metrics.tls_handshakes;
        let settings = server_config(cert, groups, counts, "egress")?;
        tls.add(egress.listen.addr, settings);
    }
    let front = Front::new(
        crate::egress::EgressDoor::new(app, proxy),
        tls,
        slots(shared, "egress", cap),
    );
    let mut svc = Service::new("slackgate egress".to_owned(), front);
    svc.add_listener(tcp_listener(&egress.listen));
    server.add_service(svc);
    Ok(())
}

/// Token rotation: with `state.encryption_key` and a store (`state.path` or Redis), checks
/// that every rotating bot's stored pair opens with the key, then starts the refresher.
/// Without them no bot can rotate (the policy check refuses such a bot).
fn add_rotation(
    server: &mut Server,
    shared: &Arc<Shared>,
    features: &Features,
    slack: &SlackClient,
    config: &Config,
    egress: &slackgate_policy::Egress,
) -> Result<(), StartError> {
    // The key the first load read and checked: reading it again here could see another.
    let Some(key) = shared.current().state_key.clone() else {
        return Ok(());
    };
    let store = match (&shared.remote, &config.state.path) {
        (Some(redis), _) => crate::egress::Store::Redis(Arc::clone(redis)),
        (None, Some(path)) => crate::egress::Store::Local(path.clone()),
        (None, None) => return Ok(()),
    };
    let sealer = crate::egress::Sealer::new(&key);
    let snap = shared.current();
    let rotating: Vec<_> = snap
        .policy
        .bots
        .iter()
        .filter(|b| b.token.rotation().is_some())
        .collect();
    crate::egress::check_stored(&store, &sealer, &rotating)
        .map_err(|e| StartError::TokenState(e.to_string()))?;
    server.add_service(background_service(
        "token rotation",
        crate::egress::Refresher::new(
            Arc::clone(shared),
            Arc::clone(&features.vault),
            Arc::new(slack.fresh()),
            store,
            sealer,
            egress.timeout,
        ),
    ));
    Ok(())
}

/// The first snapshot, metrics, audit sink, guard and shared-state backend.
fn shared_state(opts: &Options) -> Result<Arc<Shared>, StartError> {
    let now = opts.clock.now();
    let first =
        load_snapshot(&opts.config, opts.secrets.as_ref(), now, 1).map_err(StartError::Load)?;
    let config = Arc::clone(&first.config);

    let metrics = Metrics::new()?;
    metrics
        .reloads
        .with_label_values(&[crate::core::state::ReloadResult::Success.as_str()])
        .inc();
    let target = match &opts.audit {
        Some(t) => t.clone(),
        None => match &config.audit.path {
            AuditPath::Stdout => AuditTarget::Stdout,
            AuditPath::File(p) => AuditTarget::File(p.clone()),
        },
    };
    let audit = AuditSink::start_bounded(
        target,
        opts.audit_queue,
        config.audit.max_queue_bytes,
        metrics.audit_dropped.clone(),
    )
    .map_err(StartError::Audit)?;
    let guard = Guard::new(
        Arc::clone(&opts.clock),
        config.limits.max_replay_entries,
        config.limits.max_rate_limit_keys,
    );
    let remote = match &config.state.backend {
        StateBackend::Local => None,
        StateBackend::Redis(settings) => Some(Arc::new(redis_state(opts, settings)?)),
    };
    let mut shared = Shared::new(
        opts.config.clone(),
        first,
        guard,
        metrics,
        audit,
        Arc::clone(&opts.secrets),
    );
    shared.remote = remote;
    Ok(Arc::new(shared))
}

/// The Redis client `settings` describe, with the credentials of `username_env` and
/// `password_env`; refuses to start when Redis refuses them (or its certificate).
fn redis_state(
    opts: &Options,
    settings: &slackgate_policy::RedisSettings,
) -> Result<crate::core::redis::RedisState, StartError> {
    let read = |var: &Option<String>, key: &'static str, what: &'static str| match var {
        None => Ok(None),
        Some(var) => match opts.secrets.env(var).filter(|v| !v.is_empty()) {
            Some(v) => Ok(Some(v)),
            None => Err(StartError::RedisCredential {
                config: opts.config.clone(),
                key,
                var: var.clone(),
                what,
            }),
        },
    };
    let creds = crate::core::redis::Credentials {
        username: read(&settings.username_env, "username_env", "ACL user name")?,
        password: read(&settings.password_env, "password_env", "password")?,
    };
    let redis_error = |message| StartError::Redis {
        config: opts.config.clone(),
        message,
    };
    let state =
        crate::core::redis::RedisState::new(settings.clone(), creds).map_err(redis_error)?;
    state.check_credentials().map_err(redis_error)?;
    Ok(state)
}

/// pingora's server with our settings, bootstrapped (for `--upgrade`: with the old
/// process's listening sockets).
fn pingora_server(opts: &Options, config: &Config) -> Server {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let mut conf = ServerConf {
        threads,
        // One worker has nobody to steal from: a current-thread runtime skips the
        // multi-thread scheduler's cross-thread bookkeeping.
        work_stealing: threads > 1,
        grace_period_seconds: Some(config.limits.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    if let Some(sock) = &opts.upgrade_sock {
        conf.upgrade_sock = sock.display().to_string();
    }
    // Two gateways on one host must not share pingora's default /tmp/pingora.pid.
    let pid_file = opts
        .pid_file
        .clone()
        .or_else(|| opts.upgrade_sock.as_ref().map(|s| s.with_extension("pid")));
    if let Some(pid) = pid_file {
        conf.pid_file = pid.display().to_string();
    }
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    if opts.upgrade {
        log::info!(
            "upgrade: waiting for the running process's listening sockets on {}: send it \
             SIGQUIT now (this process gives up after about 6 s)",
            server.configuration.upgrade_sock
        );
    }
    server.bootstrap();
    if opts.upgrade {
        log::info!("upgrade: took over the listening sockets; the old process now drains");
    }
    server
}

/// The inbound door (the front, with pingora's proxy behind it) on every `listen`
/// address, `cap` connections among them; returns the addresses the readiness probe
/// waits for.
fn add_inbound(
    server: &mut Server,
    opts: &Options,
    shared: &Arc<Shared>,
    features: &Features,
    config: &Config,
    cap: usize,
) -> Result<Vec<SocketAddr>, StartError> {
    // The fast path and pingora's proxy (for every other request) share one state.
    let fallback = Arc::new(pingora::proxy::http_proxy(
        &server.configuration,
        Gateway::new(Arc::clone(shared), Arc::clone(&features.groups)),
    ));
    // The front terminates TLS itself: the listeners it is given are plain TCP.
    let mut tls = TlsListeners::default();
    let mut probe_addrs: Vec<SocketAddr> = Vec::new();
    for listener in &config.listen {
        probe_addrs.push(listener.addr);
        if let Some(cert) = watched_cert(server, listener)? {
            let counts = &shared.metrics.tls_handshakes;
            let settings = server_config(cert, &config.tls.key_exchange, counts, "inbound")?;
            tls.add(listener.addr, settings);
        }
    }
    let gateway = Gateway::new(Arc::clone(shared), Arc::clone(&features.groups));
    let door = InboundDoor::new(gateway, fallback, opts.fast_path);
    let mut proxy = Service::new(
        "slackgate".to_owned(),
        Front::new(door, tls, slots(shared, "inbound", cap)),
    );
    for listener in &config.listen {
        proxy.add_listener(tcp_listener(listener));
    }
    server.add_service(proxy);
    Ok(probe_addrs)
}

/// A TCP listener with small buffers: pingora's default 64 KiB read buffer per
/// connection costs ~64 MiB per 1,000 idle keep-alive clients; Slack requests are small
/// and bodies are read in a loop anyway (measured: 99 -> 39 MiB for 1,000 idle
/// connections).
fn tcp_listener(listener: &slackgate_policy::Listener) -> ListenerConfig {
    ListenerConfig::tcp(listener.addr.to_string()).l4_buffer(small_buffers())
}

/// A TLS listener's certificate, loaded and watched for a change of its files.
fn watched_cert(
    server: &mut Server,
    listener: &slackgate_policy::Listener,
) -> Result<Option<Arc<ReloadingCert>>, StartError> {
    let Some(tls) = &listener.tls else {
        return Ok(None);
    };
    let cert = Arc::new(ReloadingCert::load(&tls.cert, &tls.key)?);
    server.add_service(background_service(
        "cert reload",
        CertWatcher {
            cert: Arc::clone(&cert),
            interval: CERT_INTERVAL,
        },
    ));
    Ok(Some(cert))
}

/// Health checks, readiness, user group refreshes, the file watcher and (for `run`)
/// SIGHUP/SIGUSR1.
fn add_background(
    server: &mut Server,
    opts: &Options,
    shared: &Arc<Shared>,
    features: &Features,
    slack: Option<SlackClient>,
    probe_addrs: Vec<SocketAddr>,
) {
    server.add_service(background_service(
        "health checks",
        HealthChecker {
            shared: Arc::clone(shared),
        },
    ));
    server.add_service(background_service(
        "readiness",
        ReadinessProbe {
            shared: Arc::clone(shared),
            addrs: probe_addrs,
        },
    ));
    server.add_service(background_service(
        "usergroup refresh",
        crate::groups::GroupRefresher {
            shared: Arc::clone(shared),
            groups: Arc::clone(&features.groups),
            tokens: Arc::clone(&features.vault) as Arc<dyn BotTokens>,
            slack: slack.map(Arc::new),
        },
    ));
    if let Some(interval) = opts.watch_interval {
        server.add_service(background_service(
            "file watcher",
            crate::watch::FileWatcher::new(Arc::clone(shared), interval),
        ));
    }
    if opts.signals {
        server.add_service(background_service(
            "signals",
            SignalHandler {
                shared: Arc::clone(shared),
            },
        ));
    }
}

/// The most a stopping gateway waits for its audit queue to be written out.
const AUDIT_DRAIN: Duration = Duration::from_secs(5);

/// Per-connection read and write buffers of the public listeners.
fn small_buffers() -> L4BufferSettings {
    L4BufferSettings::new(4096, 1460)
}

/// Starts a gateway on a thread of its own.
pub fn start(opts: Options) -> Result<RunningGateway, StartError> {
    let (server, shared, features) = build(&opts)?;
    let stop = Arc::new(StopSignal::default());
    let watch = StopWatch(Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("slackgate-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(watch),
            })
        })
        .map_err(StartError::Thread)?;
    Ok(RunningGateway {
        shared,
        features,
        stop,
        thread: Some(thread),
    })
}

/// Runs a gateway in the foreground until a signal stops it (see [`OperatorSignals`]).
///
/// The pid file (pingora's `pid_file`: `--upgrade-sock` with `.pid`) is written once this
/// process serves, which for `--upgrade` is after it took over the listeners: until then
/// the file still names the old process, the one to send SIGQUIT.
pub fn run(opts: Options) -> Result<(), StartError> {
    let (server, shared, _features) = build(&opts)?;
    let pid_file = PathBuf::from(&server.configuration.pid_file);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        log::warn!("cannot write the pid file {}: {e}", pid_file.display());
    }
    let signals = OperatorSignals {
        upgrade_sock: PathBuf::from(&server.configuration.upgrade_sock),
        grace: shared.current().config.limits.shutdown_grace,
    };
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    if !shared.audit.drain(AUDIT_DRAIN) {
        log::error!("audit: records still queued at shutdown after {AUDIT_DRAIN:?}");
    }
    // Remove the pid file only while it still names this process (after an upgrade it
    // names the new one).
    let ours = format!("{}\n", std::process::id());
    if std::fs::read_to_string(&pid_file).is_ok_and(|p| p == ours) {
        let _ = std::fs::remove_file(&pid_file);
    }
    Ok(())
}
