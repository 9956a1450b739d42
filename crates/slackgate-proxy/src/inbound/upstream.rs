//! Upstream pools: round robin over healthy targets, with active TCP health checks.
//!
//! Targets are `host:port` strings from the policy. They are resolved when the pool is
//! built and again by every health check, so a Kubernetes Service that moves is
//! followed without a reload. A target that refuses a connection is marked down at
//! once (passive check) and comes back when an active check succeeds.

use parking_lot::Mutex;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slackgate_policy::Upstream;

use crate::net::client::{self, Conn, ExchangeError};
use crate::net::pool::IdlePool;

/// Most idle keep-alive connections kept per target.
const MAX_IDLE_PER_TARGET: usize = 256;

/// One target of an upstream.
#[derive(Debug)]
pub struct Target {
    /// The target as written in the policy.
    pub spec: Arc<str>,
    addr: Mutex<Option<SocketAddr>>,
    healthy: AtomicBool,
    idle: IdlePool,
}

impl Target {
    fn new(spec: Arc<str>) -> Self {
        let addr = resolve(&spec);
        Self {
            spec,
            addr: Mutex::new(addr),
            healthy: AtomicBool::new(true),
            idle: IdlePool::new(MAX_IDLE_PER_TARGET),
        }
    }

    /// The most recently used connection that is idle at most `max_idle` at `now` and
    /// clean (see [`Conn::is_clean`]); an expired connection, or one the bot closed or
    /// wrote to while it was idle, is dropped, never used.
    pub fn checkout(&self, max_idle: Duration, now: Instant) -> Option<Conn> {
        self.idle.checkout(max_idle, now)
    }

    /// Returns a connection that can carry another request to the pool, idle from `since`.
    pub fn checkin(&self, conn: Conn, since: Instant) {
        self.idle.checkin(conn, since);
    }

    /// The last resolved address.
    pub fn addr(&self) -> Option<SocketAddr> {
        *self.addr.lock()
    }

    /// Whether the last check passed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Marks the target down after a failed connection.
    pub fn mark_down(&self) {
        self.healthy.store(false, Ordering::Relaxed);
    }

    /// Resolves the target again and probes it with a TCP connect.
    pub async fn check(&self, timeout: Duration) -> bool {
        let spec = Arc::clone(&self.spec);
        let resolved = tokio::task::spawn_blocking(move || resolve(&spec))
            .await
            .ok()
            .flatten();
        if let Some(addr) = resolved {
            *self.addr.lock() = Some(addr);
        }
        let ok = match self.addr() {
            Some(addr) => matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
                Ok(Ok(_))
            ),
            None => false,
        };
        self.healthy.store(ok, Ordering::Relaxed);
        ok
    }
}

fn resolve(spec: &str) -> Option<SocketAddr> {
    spec.to_socket_addrs().ok()?.next()
}

/// The targets of one upstream with a round-robin cursor.
#[derive(Debug)]
pub struct Pool {
    /// Upstream name.
    pub name: Arc<str>,
    /// Its targets.
    pub targets: Box<[Arc<Target>]>,
    next: AtomicUsize,
}

impl Pool {
    /// Builds the pool, resolving each target once.
    pub fn new(upstream: &Upstream) -> Self {
        let targets = upstream
            .targets
            .iter()
            .map(|t| Arc::new(Target::new(Arc::clone(t))))
            .collect();
        Self {
            name: Arc::clone(&upstream.name),
            targets,
            next: AtomicUsize::new(0),
        }
    }

    /// The next healthy target in round-robin order, skipping `exclude`; when none is
    /// healthy, the next target at all (a dead pool still gets a try, then a 502).
    pub fn pick(&self, exclude: Option<&Arc<Target>>) -> Option<Arc<Target>> {
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let excluded = |t: &Arc<Target>| exclude.is_some_and(|e| Arc::ptr_eq(e, t));
        let candidates = (0..n).filter_map(|i| self.targets.get((start + i) % n));
        let mut fallback = None;
        for t in candidates {
            if excluded(t) {
                continue;
            }
            if t.is_healthy() {
                return Some(Arc::clone(t));
            }
            if fallback.is_none() {
                fallback = Some(Arc::clone(t));
            }
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(specs: &[&str]) -> Pool {
        let targets = specs
            .iter()
            .map(|s| Arc::new(Target::new(Arc::from(*s))))
            .collect();
        Pool {
            name: Arc::from("p"),
            targets,
            next: AtomicUsize::new(0),
        }
    }

    #[test]
    fn round_robin_skips_unhealthy() {
        let p = pool(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        p.targets[1].mark_down();
        let picks: Vec<_> = (0..4)
            .map(|_| p.pick(None).map(|t| t.spec.to_string()))
            .collect();
        assert!(picks.iter().all(|s| s.as_deref() != Some("127.0.0.1:2")));
        assert!(picks.contains(&Some("127.0.0.1:1".into())));
        assert!(picks.contains(&Some("127.0.0.1:3".into())));
    }

    #[test]
    fn all_down_still_yields_a_target_but_not_the_excluded_one() {
        let p = pool(&["127.0.0.1:1", "127.0.0.1:2"]);
        for t in p.targets.iter() {
            t.mark_down();
        }
        let first = p.pick(None);
        assert!(first.is_some());
        let second = p.pick(first.as_ref());
        assert!(second.is_some());
        assert!(!Arc::ptr_eq(
            first.as_ref().unwrap(),
            second.as_ref().unwrap()
        ));
    }
}

/// Largest upstream response the gateway relays; Slack bots answer with small bodies.
const MAX_UPSTREAM_RESPONSE: usize = 8 * 1024 * 1024;
/// How long an idle upstream connection stays pooled.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// Why the upstream leg failed, for the log; `may_have_reached` says whether any byte
/// of the request may be at the bot.
#[derive(Debug)]
pub(crate) struct UpstreamFailure {
    target: Option<Arc<str>>,
    what: UpstreamFailureKind,
    may_have_reached: bool,
}

#[derive(Debug)]
enum UpstreamFailureKind {
    NotResolved,
    Connect(std::io::Error),
    Exchange(ExchangeError),
    NoTarget,
}

impl std::fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(t) = &self.target {
            write!(f, "{t}: ")?;
        }
        match &self.what {
            UpstreamFailureKind::NotResolved => f.write_str("not resolved"),
            UpstreamFailureKind::Connect(e) => write!(f, "connect: {e}"),
            UpstreamFailureKind::Exchange(e) => write!(f, "{e}"),
            UpstreamFailureKind::NoTarget => f.write_str("no upstream target could be resolved"),
        }?;
        if self.may_have_reached {
            f.write_str(" (the request may have reached the bot: not sent again)")?;
        }
        Ok(())
    }
}

/// Sends the request to a healthy target and reads the whole response.
///
/// A request is sent at most once. A target that refuses the connection is marked down
/// and one other target is tried: nothing was sent. A pooled connection is used only
/// when it is clean ([`Conn::is_clean`]); if its write still fails before one byte left,
/// the request goes once more on a fresh connection. Once any byte may have reached the
/// bot, a failure is final (502), as nginx does for non-idempotent requests.
pub(crate) async fn round_trip(
    pool: &Pool,
    head: &[u8],
    body: &[u8],
    is_head: bool,
    started: Instant,
) -> Result<client::Response, UpstreamFailure> {
    let fail = |target: &Target, what, may_have_reached| UpstreamFailure {
        target: Some(Arc::clone(&target.spec)),
        what,
        may_have_reached,
    };
    let mut tried: Option<Arc<Target>> = None;
    let mut last_err = None;
    for _attempt in 0..2 {
        let Some(target) = pool.pick(tried.as_ref()) else {
            break;
        };
        let Some(addr) = target.addr() else {
            target.mark_down();
            last_err = Some(fail(&target, UpstreamFailureKind::NotResolved, false));
            tried = Some(target);
            continue;
        };
        let (mut conn, reused) = match target.checkout(UPSTREAM_IDLE, started) {
            Some(c) => (c, true),
            None => match Conn::connect(addr).await {
                Ok(c) => (c, false),
                Err(e) => {
                    target.mark_down();
                    last_err = Some(fail(&target, UpstreamFailureKind::Connect(e), false));
                    tried = Some(target);
                    continue;
                }
            },
        };
        let result = match conn
            .exchange(head, body, is_head, MAX_UPSTREAM_RESPONSE)
            .await
        {
            Err(e) if reused && !e.may_have_reached() => {
                // Not one byte left on the pooled connection: send it on a fresh one.
                conn = Conn::connect(addr)
                    .await
                    .map_err(|e| fail(&target, UpstreamFailureKind::Connect(e), false))?;
                conn.exchange(head, body, is_head, MAX_UPSTREAM_RESPONSE)
                    .await
            }
            other => other,
        };
        return match result {
            Ok((answer, reusable)) => {
                if reusable {
                    target.checkin(conn, started);
                }
                Ok(answer)
            }
            Err(e) => {
                let reached = e.may_have_reached();
                Err(fail(&target, UpstreamFailureKind::Exchange(e), reached))
            }
        };
    }
    Err(last_err.unwrap_or(UpstreamFailure {
        target: None,
        what: UpstreamFailureKind::NoTarget,
        may_have_reached: false,
    }))
}
