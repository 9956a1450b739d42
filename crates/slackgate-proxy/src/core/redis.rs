//! Shared state in Redis for several replicas: the inbound door's replay cache,
//! rate-limit buckets and delivered event ids ([`inbound`]: every question of one
//! decision in one script, one round trip), the egress door's and custody's.
//!
//! The client is redis-rs ([`link`]: one server, a cluster or a sentinels' master, TLS,
//! an ACL user) over one multiplexed connection that every caller shares. Every call is
//! bounded by `state.redis.timeout`; a circuit breaker opens after consecutive failures
//! so a dead Redis costs nothing at all while open, and a probe after the cool-down closes
//! it again when Redis is back — no restart needed. A broken connection is made again in
//! the background (for sentinels: to the master they name now), so a caller never waits
//! longer than its timeout for a slow handshake.
//!
//! - Inbound ([`inbound`]): per app, the replay check, the dedupe lookup and the route's
//!   buckets in one script per decision (`EVALSHA`, `EVAL` on NOSCRIPT), buckets on
//!   Redis' own clock; the delivered mark after a 2xx.
//! - Egress ([`egress`]): per bot, Slack's 429 deadlines, the bot's buckets and Slack's
//!   pacing in one script per call, and the scope ledger.
//! - Custody ([`custody`]): the capabilities of secret custody, their records and a
//!   response URL's uses (spent by the egress gate), and ended function executions.
//!
//! Where a script needs several keys, they share a hash tag (`prefix{e:<bot>}:...`,
//! `prefix<kind>:{i:<app>}:...`) so that they stay on one cluster slot: `key_prefix` may
//! hold no braces, so the tag is always the gateway's.

/// The Lua both bucket scripts start with (the inbound door's [`inbound::INBOUND`] and
/// the egress door's gate): Redis' own clock, and a bucket's tokens refilled to now, so the two
/// doors' buckets fill alike. A bucket never seen (or expired) is full.
macro_rules! bucket_lua {
    () => {
        r#"
local function now_secs()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function refill(key, rate, burst, now)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil or ts == nil then
    return burst
  end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  return math.min(burst, tokens + elapsed * rate)
end
"#
    };
}

mod custody;
mod egress;
mod inbound;
mod link;

pub use egress::{Gate, GateBucket, HeldKey, SharedScopes};

pub use link::Credentials;

use parking_lot::Mutex;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult};

use link::{breaks_connection, Conn, Link};
use slackgate_guard::StateError;
use slackgate_policy::RedisSettings;

/// Consecutive failures that open the circuit.
const BREAKER_THRESHOLD: u32 = 3;
/// How long the circuit stays open before a probe is let through.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);

/// The connection every caller shares, made again in the background when it broke.
struct Shared {
    link: Link,
    conn: Mutex<Option<Conn>>,
    connecting: AtomicBool,
    /// Bumped after every connection attempt, made or failed.
    attempts: tokio::sync::watch::Sender<u64>,
    /// The last connection error, logged once, cleared by the next connection.
    last_error: Mutex<Option<String>>,
    /// Whether that error is Redis refusing the credentials (or the TLS handshake):
    /// no retry mends it, so the replica is not ready until a connection succeeds.
    refused: AtomicBool,
}

impl Shared {
    /// Starts a connection attempt in the background unless one is under way.
    fn start_connect(this: &Arc<Self>) {
        if this.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(this);
        tokio::spawn(async move {
            let made = tokio::time::timeout(this.link.connect_timeout(), this.link.connect()).await;
            match made {
                Ok(Ok(conn)) => {
                    *this.conn.lock() = Some(conn);
                    this.refused.store(false, Ordering::Release);
                    if this.last_error.lock().take().is_some() {
                        log::info!("shared state: {} is reachable again", this.link.name());
                    }
                }
                Ok(Err(e)) => {
                    let refused = link::refused_credentials(&e) || link::tls_failure(&e).is_some();
                    this.refused.store(refused, Ordering::Release);
                    this.record(this.link.explain(&e));
                }
                Err(_) => this.record(format!(
                    "{}: no connection within {:?}",
                    this.link.name(),
                    this.link.connect_timeout()
                )),
            }
            this.connecting.store(false, Ordering::Release);
            this.attempts.send_modify(|n| *n = n.wrapping_add(1));
        });
    }

    /// Keeps `error` for `/status` and logs it when it is new (not at every request).
    fn record(&self, error: String) {
        let mut last = self.last_error.lock();
        if last.as_deref() != Some(error.as_str()) {
            log::error!("shared state: {error}");
            *last = Some(error);
        }
    }

    /// The shared connection, waiting for an attempt when there is none.
    async fn conn(this: &Arc<Self>) -> RedisResult<Conn> {
        let mut attempts = this.attempts.subscribe();
        if let Some(c) = this.conn.lock().clone() {
            return Ok(c);
        }
        Self::start_connect(this);
        let _ = attempts.changed().await;
        let conn = this.conn.lock().clone();
        conn.ok_or_else(|| RedisError::from((ErrorKind::Io, "no connection to Redis")))
    }
}

/// Redis-backed shared state with one shared connection and a circuit breaker.
pub struct RedisState {
    settings: RedisSettings,
    creds: Credentials,
    shared: Arc<Shared>,
    inbound: redis::Script,
    egress_gate: redis::Script,
    scopes_note: redis::Script,
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    /// This client's random id, in hex, and a count of the values it wrote with it
    /// ([`RedisState::mark`]).
    instance: String,
    marks: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("redis", &self.shared.link.name())
            .field("circuit_open", &self.circuit_open())
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// A client for `settings` with `creds` (read from `username_env` / `password_env`);
    /// reads `ca_file`. No connection is made until the first call.
    pub fn new(settings: RedisSettings, creds: Credentials) -> Result<Self, String> {
        let link = Link::new(&settings, &creds)?;
        let (attempts, _) = tokio::sync::watch::channel(0);
        Ok(Self {
            settings,
            creds,
            shared: Arc::new(Shared {
                link,
                conn: Mutex::new(None),
                connecting: AtomicBool::new(false),
                attempts,
                last_error: Mutex::new(None),
                refused: AtomicBool::new(false),
            }),
            inbound: redis::Script::new(inbound::INBOUND),
            egress_gate: redis::Script::new(egress::EGRESS_GATE),
            scopes_note: redis::Script::new(egress::SCOPES_NOTE),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            instance: random_id()?,
            marks: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// A client of its own with the same settings (no connection shared), for a runtime
    /// that ends before the gateway's do.
    pub(crate) fn fresh(&self) -> Result<Self, String> {
        Self::new(self.settings.clone(), self.creds.clone())
    }

    /// The Redis this state lives in (`redis://host:port`, never a credential).
    pub fn name(&self) -> &str {
        self.shared.link.name()
    }

    /// The last error reaching Redis, until a connection succeeds again.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }

    /// Why Redis refuses this replica (wrong credentials, a user without the gateway's
    /// permissions, a certificate the CA does not vouch for), until a connection succeeds:
    /// readiness fails with it, since no retry mends it.
    pub fn refused(&self) -> Option<String> {
        if self.shared.refused.load(Ordering::Acquire) {
            self.last_error()
        } else {
            None
        }
    }

    /// Whether the circuit breaker is open now (calls fail at once).
    pub fn circuit_open(&self) -> bool {
        self.now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn key(&self, parts: &[&str]) -> Vec<u8> {
        let mut k = self.settings.key_prefix.clone().into_bytes();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(b':');
            }
            k.extend_from_slice(p.as_bytes());
        }
        k
    }

    /// Runs `attempt` on the shared connection under the timeout and the breaker. A
    /// connection that broke (a failover's sentinel closes the clients of the demoted
    /// master) or a server that refused to run it because it is no longer the one to
    /// write to (a demoted master, a slot in migration) is left for a new connection, on
    /// which `attempt` runs once more within the same timeout. Every operation is safe to
    /// send again: reads, plain sets, and `SET NX` with a value unique to the call
    /// ([`RedisState::set_nx`], and the inbound script's replay check); a token bucket
    /// sent twice may take one token more, which errs on the side of the limit.
    async fn bounded<T, F>(&self, attempt: impl Fn(Conn) -> F) -> Result<T, StateError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        if self.circuit_open() {
            return Err(StateError::CircuitOpen);
        }
        let run = async {
            let conn = Shared::conn(&self.shared).await?;
            match attempt(conn).await {
                Err(e)
                    if link::not_run_here(&e) || link::breaks_connection(&e) && !e.is_timeout() =>
                {
                    self.shared.conn.lock().take();
                    attempt(Shared::conn(&self.shared).await?).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.settings.timeout, run).await {
            Ok(Ok(v)) => {
                self.failures.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) => {
                if breaks_connection(&e) {
                    self.shared.conn.lock().take();
                    self.trip();
                } else if link::refused_credentials(&e) {
                    self.shared.refused.store(true, Ordering::Release);
                    self.shared.record(self.shared.link.explain(&e));
                    self.trip();
                }
                Err(StateError::Failed)
            }
            Err(_) => {
                self.trip();
                Err(StateError::Timeout)
            }
        }
    }

    /// One script on the shared connection (`EVALSHA`, `EVAL` when the server does not
    /// have it yet): `keys` share a hash tag where there are several.
    async fn run_script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&[u8]],
        args: &[&str],
    ) -> Result<T, StateError> {
        self.bounded(|mut conn| async move {
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(*k);
            }
            for a in args {
                inv.arg(*a);
            }
            inv.invoke_async(&mut conn).await
        })
        .await
    }

    /// One command on the shared connection.
    async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, StateError> {
        let cmd = &cmd;
        self.bounded(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    fn trip(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= BREAKER_THRESHOLD {
            let until =
                self.now_ms() + u64::try_from(BREAKER_COOL_DOWN.as_millis()).unwrap_or(1000);
            self.open_until_ms.store(until, Ordering::Relaxed);
            // The connection may be half-dead (or to a demoted master); start afresh
            // after the cool-down.
            self.shared.conn.lock().take();
        }
    }

    /// Whether Redis answers now (`PING`, under the timeout and the breaker): `/readyz`.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.query::<String>(redis::cmd("PING")).await.map(|_| ())
    }

    /// Connects once, on a runtime of its own, and reports a refusal: wrong credentials
    /// or a certificate the CA does not vouch for, which no retry mends. An unreachable
    /// Redis is not an error here (the routes' `state_failure` decides what it means).
    pub fn check_credentials(&self) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let link = &self.shared.link;
        let made = rt.block_on(async {
            let conn = tokio::time::timeout(link.connect_timeout(), link.connect()).await;
            match conn {
                Ok(Ok(mut c)) => redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .map(|_| ()),
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(()),
            }
        });
        match made {
            Err(e) if link::refused_credentials(&e) || link::tls_failure(&e).is_some() => {
                Err(link.explain(&e))
            }
            Err(e) => {
                log::warn!("shared state: {} (starting anyway)", link.explain(&e));
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

/// Deletes a lock only while it still holds the owner's value.
const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Plain values and locks for the token store (rotated token pairs, sealed by the caller).
impl RedisState {
    /// The value at `prefix + parts`, if any.
    pub(crate) async fn get(&self, parts: &[&str]) -> Result<Option<Vec<u8>>, StateError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(parts));
        self.query(cmd).await
    }

    /// Sets the value at `prefix + parts` (no expiry).
    pub(crate) async fn set(&self, parts: &[&str], value: &[u8]) -> Result<(), StateError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(parts)).arg(value);
        self.query::<()>(cmd).await
    }

    /// Sets the value at `prefix + parts`, expiring after `ttl`.
    pub(crate) async fn set_px(
        &self,
        parts: &[&str],
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(parts))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl));
        self.query::<()>(cmd).await
    }

    /// Takes the lock at `prefix + parts` for `owner` for `ttl`; false when another
    /// owner holds it.
    pub(crate) async fn lock(
        &self,
        parts: &[&str],
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        self.set_nx(parts, owner, ttl).await
    }

    /// `SET key value NX PX ttl GET`: true when this call set it. A call sent again on a
    /// new connection (see [`RedisState::bounded`]) finds its own `value` when the first
    /// sending did set it, and is still the one that set it: `value` is unique per call.
    async fn set_nx(&self, parts: &[&str], value: &str, ttl: Duration) -> Result<bool, StateError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(parts))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .arg("GET");
        let before = self.query::<Option<String>>(cmd).await?;
        Ok(before.is_none_or(|v| v == value))
    }

    /// A value no other call of any replica writes: this client's random id and a count.
    fn mark(&self) -> String {
        let n = self.marks.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n:x}", self.instance)
    }

    /// Releases the lock at `prefix + parts` if `owner` still holds it.
    pub(crate) async fn unlock(&self, parts: &[&str], owner: &str) -> Result<(), StateError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(UNLOCK).arg(1).arg(self.key(parts)).arg(owner);
        self.query::<i64>(cmd).await.map(|_| ())
    }
}

/// 64 random bits in hex, from the system source.
fn random_id() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| "the system random source failed".to_owned())?;
    Ok(hex::encode(id))
}

/// A duration in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The egress door's shared state (see [`egress`]).
impl RedisState {
    /// Checks the capability `held` the call goes with (a response URL's uses, spent
    /// here when it goes; a workflow key's execution, not ended), reads `bot`'s 429
    /// deadline for `method` and takes from every bucket (all or nothing), in one script.
    pub async fn egress_gate(
        &self,
        bot: &str,
        method: &str,
        buckets: &[GateBucket],
        held: Option<HeldKey<'_>>,
    ) -> Result<Gate, StateError> {
        let tag = egress::egress_tag(bot);
        let mut keys = vec![self.key(&[&tag, "429", method])];
        let mut args = Vec::with_capacity(1 + buckets.len() * 3);
        match held {
            None => args.push("0".to_owned()),
            Some(HeldKey::Response(cap)) => {
                keys.push(self.key(&[&tag, "uses", cap]));
                args.push("1".to_owned());
            }
            Some(HeldKey::Execution(id)) => {
                keys.push(self.key(&[&tag, "ended", id]));
                args.push("2".to_owned());
            }
        }
        for b in buckets {
            let mut parts: Vec<&str> = vec![&tag];
            parts.extend(b.parts.iter().map(String::as_str));
            keys.push(self.key(&parts));
            args.push(format!("{}", b.rate));
            args.push(b.burst.max(1).to_string());
            args.push(
                u64::try_from(b.max_wait.as_millis())
                    .unwrap_or(u64::MAX)
                    .to_string(),
            );
        }
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply: Vec<i64> = self.run_script(&self.egress_gate, &keys, &args).await?;
        let secs = |v: i64| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
        match reply.as_slice() {
            [0, wait_ms, counted] => Ok(Gate::Go(
                Duration::from_millis(u64::try_from(*wait_ms).unwrap_or(0)),
                *counted == 1,
            )),
            [1, s] => Ok(Gate::SlackLimited(secs(*s))),
            [2, s, i] => Ok(Gate::Limited {
                index: usize::try_from(*i - 1).unwrap_or(0),
                retry_after_secs: secs(*s),
            }),
            [3] => Ok(Gate::Spent),
            _ => Err(StateError::Failed),
        }
    }

    /// Records that Slack answered `bot`'s call to `method` 429 for `retry_after`.
    pub async fn note_slack_429(
        &self,
        bot: &str,
        method: &str,
        retry_after: Duration,
    ) -> Result<(), StateError> {
        let tag = egress::egress_tag(bot);
        self.set_px(&[&tag, "429", method], b"1", retry_after).await
    }

    /// Notes one answer to `bot`'s call: the `granted` header and the granted scopes it
    /// accepted.
    pub async fn note_scopes(
        &self,
        bot: &str,
        granted: &[u8],
        needed: &[&str],
    ) -> Result<(), StateError> {
        let tag = egress::scopes_tag(bot);
        let keys = [
            self.key(&[&tag, "granted"]),
            self.key(&[&tag, "needed"]),
            self.key(&[&tag, "calls"]),
        ];
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let granted = String::from_utf8_lossy(granted);
        let mut args: Vec<&str> = vec![&granted];
        args.extend_from_slice(needed);
        self.run_script::<i64>(&self.scopes_note, &keys, &args)
            .await
            .map(|_| ())
    }

    /// What every replica's calls showed of `bot`'s scopes (one pipeline on one slot);
    /// `None` before any replica saw an answer with scopes.
    pub async fn shared_scopes(&self, bot: &str) -> Result<Option<SharedScopes>, StateError> {
        let tag = egress::scopes_tag(bot);
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(self.key(&[&tag, "granted"]))
            .cmd("SMEMBERS")
            .arg(self.key(&[&tag, "needed"]))
            .cmd("GET")
            .arg(self.key(&[&tag, "calls"]));
        let pipe = &pipe;
        let (granted, needed, calls): (Option<Vec<u8>>, Vec<String>, Option<u64>) = self
            .bounded(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(granted.map(|granted| SharedScopes {
            granted,
            needed,
            calls: calls.unwrap_or(0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that never connects, with `key_prefix` `prefix`.
    pub(super) fn state(prefix: &str) -> RedisState {
        RedisState::new(
            RedisSettings {
                addr: "127.0.0.1:1".into(),
                tls: false,
                ca_file: None,
                db: 0,
                key_prefix: prefix.into(),
                timeout: Duration::from_millis(10),
                username_env: None,
                password_env: None,
                mode: slackgate_policy::RedisMode::Standalone,
            },
            Credentials::default(),
        )
        .unwrap()
    }

    #[test]
    fn script_is_named_by_its_sha1_and_keys_by_the_prefix() {
        let state = state("p:");
        assert_eq!(state.inbound.get_hash().len(), 40);
        assert_eq!(
            state.key(&["rl", "route", "0", "team", "T1"]),
            b"p:rl:route:0:team:T1"
        );
        assert_eq!(state.name(), "redis://127.0.0.1:1");
    }
}
