//! The background services of a running gateway: upstream health checks, the
//! readiness probe, certificate reloads and the SIGHUP/SIGUSR1 handler. (Policy,
//! config and secret files are watched by `watch.rs`; both watch content
//! fingerprints.)

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::core::state::Shared;
use crate::net::tls::ReloadingCert;
use crate::watch::fingerprint;

/// How often upstream targets are probed.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Probes every upstream target and exports `slackgate_upstream_healthy`.
pub(crate) struct HealthChecker {
    pub(crate) shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let snap = self.shared.current();
            for pool in snap.pools.values() {
                for target in pool.targets.iter() {
                    let ok = target.check(Duration::from_secs(1)).await;
                    self.shared
                        .metrics
                        .inbound
                        .upstream_healthy
                        .with_label_values(&[pool.name.as_ref(), target.spec.as_ref()])
                        .set(if ok { 1.0 } else { 0.0 });
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            }
        }
    }
}

/// Turns `/readyz` on once this process listens on every address (and off at shutdown).
pub(crate) struct ReadinessProbe {
    pub(crate) shared: Arc<Shared>,
    pub(crate) addrs: Vec<SocketAddr>,
}

#[async_trait]
impl BackgroundService for ReadinessProbe {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut pending = self.addrs.clone();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for addr in pending {
                if !listening_here(addr).await {
                    still.push(addr);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        self.shared.listeners_ready.store(true, Ordering::SeqCst);
        let _ = shutdown.changed().await;
        self.shared.listeners_ready.store(false, Ordering::SeqCst);
    }
}

/// Whether this process listens on `addr`.
///
/// A successful connect alone is not proof: another process may hold the port while
/// pingora keeps retrying its bind. On Linux the listening socket's inode is looked up
/// in /proc/net/tcp{,6} and must be one of this process's file descriptors; elsewhere
/// a connect is the best evidence available.
async fn listening_here(addr: SocketAddr) -> bool {
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    if tokio::net::TcpStream::connect(probe).await.is_err() {
        return false;
    }
    tokio::task::spawn_blocking(move || owns_listener(addr.port()).unwrap_or(true))
        .await
        .unwrap_or(false)
}

/// `Some(true)` when a LISTEN socket on `port` belongs to this process, `None` when
/// /proc is not there to tell.
fn owns_listener(port: u16) -> Option<bool> {
    let mut ours = std::collections::HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                ours.insert(inode.to_owned());
            }
        }
    }
    let port_hex = format!("{port:04X}");
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let listening = *state == "0A";
            let same_port = local.rsplit(':').next() == Some(port_hex.as_str());
            if listening && same_port && ours.contains(*inode) {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// Re-reads a listener's certificate and key when their contents change, with the same
/// content fingerprints as the policy watcher (`watch.rs`): a cert-manager rotation
/// through a Secret volume swaps a `..data` symlink and may keep every mtime.
pub(crate) struct CertWatcher {
    pub(crate) cert: Arc<ReloadingCert>,
    pub(crate) interval: Duration,
}

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (cert_path, key_path) = self.cert.paths();
        let paths = [cert_path.to_path_buf(), key_path.to_path_buf()];
        let mut last = fingerprint(&paths);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let now = fingerprint(&paths);
            if now != last {
                match self.cert.reload() {
                    Ok(()) => {
                        log::info!("TLS certificate reloaded from {}", cert_path.display());
                        last = now;
                    }
                    Err(e) => {
                        log::error!("TLS certificate reload failed, old one keeps serving: {e}")
                    }
                }
            }
        }
    }
}

/// SIGHUP reloads the policy, SIGUSR1 reopens the audit file.
pub(crate) struct SignalHandler {
    pub(crate) shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for SignalHandler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut usr1)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
        ) else {
            log::error!("cannot install SIGHUP/SIGUSR1 handlers; use POST /reload");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hup.recv() => {
                    let shared = Arc::clone(&self.shared);
                    let _ = tokio::task::spawn_blocking(move || shared.reload()).await;
                }
                _ = usr1.recv() => self.shared.audit.reopen(),
            }
        }
    }
}
