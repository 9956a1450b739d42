//! Shared state in Redis for several replicas: replay cache, rate-limit buckets and
//! delivered event ids, each in one round trip.
//!
//! - Replay: `SET key 1 NX PX ttl` — only the first replica to see a signature wins.
//! - Rate limits: a token bucket in a Lua script that reads Redis' own clock, so every
//!   replica shares one bucket and one notion of time (`EVALSHA`, `EVAL` on NOSCRIPT).
//! - Dedupe: `EXISTS` / `SET key 1 PX ttl` on `delivered:{app}:{event_id}`.
//!
//! The client speaks RESP over a small pool of TCP connections. Every call is bounded
//! by `state.redis.timeout`; a circuit breaker opens after consecutive failures so a
//! dead Redis costs nothing at all while open, and a probe after the cool-down closes
//! it again when Redis is back — no restart needed.

use parking_lot::Mutex;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use slackgate_guard::{BucketKey, RemoteState, ReplayCheck, StateError, Take};
use slackgate_policy::RedisSettings;

/// Consecutive failures that open the circuit.
const BREAKER_THRESHOLD: u32 = 3;
/// How long the circuit stays open before a probe is let through.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 32;

const TOKEN_BUCKET: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait}
"#;

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    async fn command(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out).await?;
        read_reply(&mut self.reader, 0).await
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn read_reply<'a>(
    r: &'a mut BufReader<TcpStream>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Reply>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 4 {
            return Err(bad("reply nested too deep"));
        }
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.len() < 3 || !line.ends_with(b"\r\n") || line.len() > 4096 {
            return Err(bad("malformed reply line"));
        }
        let (kind, rest) = (line[0], &line[1..line.len() - 2]);
        let text = std::str::from_utf8(rest).map_err(|_| bad("reply not utf-8"))?;
        match kind {
            b'+' => Ok(Reply::Simple(text.to_owned())),
            b'-' => Ok(Reply::Error(text.to_owned())),
            b':' => text.parse().map(Reply::Int).map_err(|_| bad("bad integer")),
            b'$' => {
                let len: i64 = text.parse().map_err(|_| bad("bad bulk length"))?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = usize::try_from(len).map_err(|_| bad("bad bulk length"))?;
                if len > 1024 * 1024 {
                    return Err(bad("bulk reply too large"));
                }
                let mut buf = vec![0; len + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(len);
                Ok(Reply::Bulk(Some(buf)))
            }
            b'*' => {
                let len: i64 = text.parse().map_err(|_| bad("bad array length"))?;
                if len < 0 {
                    return Ok(Reply::Array(None));
                }
                if len > 16 {
                    return Err(bad("array reply too large"));
                }
                let mut items = Vec::new();
                for _ in 0..len {
                    items.push(read_reply(r, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(bad("unknown reply type")),
        }
    })
}

/// Redis-backed shared state with a bounded pool and a circuit breaker.
pub struct RedisState {
    settings: RedisSettings,
    password: Option<String>,
    idle: Mutex<Vec<Conn>>,
    script_sha: String,
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("addr", &self.settings.addr)
            .field("circuit_open", &self.circuit_open())
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// A client for `settings`; `password` is the AUTH password when configured. No
    /// connection is made until the first call.
    pub fn new(settings: RedisSettings, password: Option<String>) -> Self {
        use sha1::Digest;
        let sha = hex::encode(sha1::Sha1::digest(TOKEN_BUCKET.as_bytes()));
        Self {
            settings,
            password,
            idle: Mutex::new(Vec::new()),
            script_sha: sha,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// A client of its own with the same settings (no pooled connection shared).
    pub(crate) fn fresh(&self) -> Self {
        Self::new(self.settings.clone(), self.password.clone())
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

    async fn connect(&self) -> io::Result<Conn> {
        let stream = TcpStream::connect(&self.settings.addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            reader: BufReader::new(stream),
        };
        if let Some(pw) = &self.password {
            if let Reply::Error(_) = conn.command(&[b"AUTH", pw.as_bytes()]).await? {
                return Err(bad("redis AUTH refused"));
            }
        }
        if self.settings.db != 0 {
            let db = self.settings.db.to_string();
            if let Reply::Error(_) = conn.command(&[b"SELECT", db.as_bytes()]).await? {
                return Err(bad("redis SELECT refused"));
            }
        }
        Ok(conn)
    }

    /// Runs one command under the timeout and the breaker.
    async fn call(&self, args: &[&[u8]]) -> Result<Reply, StateError> {
        if self.circuit_open() {
            return Err(StateError::CircuitOpen);
        }
        let pooled = self.idle.lock().pop();
        let attempt = async {
            let mut conn = match pooled {
                Some(c) => c,
                None => self.connect().await?,
            };
            let reply = conn.command(args).await?;
            Ok::<_, io::Error>((conn, reply))
        };
        match tokio::time::timeout(self.settings.timeout, attempt).await {
            Ok(Ok((conn, reply))) => {
                self.failures.store(0, Ordering::Relaxed);
                let mut g = self.idle.lock();
                if g.len() < MAX_IDLE {
                    g.push(conn);
                }
                Ok(reply)
            }
            Ok(Err(_)) => {
                self.trip();
                Err(StateError::Failed)
            }
            Err(_) => {
                self.trip();
                Err(StateError::Timeout)
            }
        }
    }

    fn trip(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= BREAKER_THRESHOLD {
            let until =
                self.now_ms() + u64::try_from(BREAKER_COOL_DOWN.as_millis()).unwrap_or(1000);
            self.open_until_ms.store(until, Ordering::Relaxed);
            // Pooled connections may be half-dead; start fresh after the cool-down.
            self.idle.lock().clear();
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
        let key = self.key(parts);
        match self.call(&[b"GET", &key]).await? {
            Reply::Bulk(v) => Ok(v),
            _ => Err(StateError::Failed),
        }
    }

    /// Sets the value at `prefix + parts` (no expiry).
    pub(crate) async fn set(&self, parts: &[&str], value: &[u8]) -> Result<(), StateError> {
        let key = self.key(parts);
        match self.call(&[b"SET", &key, value]).await? {
            Reply::Simple(s) if s == "OK" => Ok(()),
            _ => Err(StateError::Failed),
        }
    }

    /// Sets the value at `prefix + parts`, expiring after `ttl`.
    pub(crate) async fn set_px(
        &self,
        parts: &[&str],
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StateError> {
        let key = self.key(parts);
        let ms = ttl.as_millis().max(1).to_string();
        match self
            .call(&[b"SET", &key, value, b"PX", ms.as_bytes()])
            .await?
        {
            Reply::Simple(s) if s == "OK" => Ok(()),
            _ => Err(StateError::Failed),
        }
    }

    /// Takes the lock at `prefix + parts` for `owner` for `ttl`; false when another
    /// owner holds it.
    pub(crate) async fn lock(
        &self,
        parts: &[&str],
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let key = self.key(parts);
        let ms = ttl.as_millis().max(1).to_string();
        match self
            .call(&[b"SET", &key, owner.as_bytes(), b"NX", b"PX", ms.as_bytes()])
            .await?
        {
            Reply::Simple(s) if s == "OK" => Ok(true),
            Reply::Bulk(None) => Ok(false),
            _ => Err(StateError::Failed),
        }
    }

    /// Releases the lock at `prefix + parts` if `owner` still holds it.
    pub(crate) async fn unlock(&self, parts: &[&str], owner: &str) -> Result<(), StateError> {
        let key = self.key(parts);
        match self
            .call(&[b"EVAL", UNLOCK.as_bytes(), b"1", &key, owner.as_bytes()])
            .await?
        {
            Reply::Int(_) => Ok(()),
            _ => Err(StateError::Failed),
        }
    }
}

fn expect_ok(reply: &Reply) -> Result<(), StateError> {
    match reply {
        Reply::Error(_) => Err(StateError::Failed),
        _ => Ok(()),
    }
}

impl RemoteState for RedisState {
    async fn check_replay(
        &self,
        signature: &[u8; 32],
        ttl_secs: u64,
    ) -> Result<ReplayCheck, StateError> {
        let hex = hex::encode(signature);
        let key = self.key(&["replay", &hex]);
        let ttl = (ttl_secs.max(1) * 1000).to_string();
        match self
            .call(&[b"SET", &key, b"1", b"NX", b"PX", ttl.as_bytes()])
            .await?
        {
            Reply::Simple(s) if s == "OK" => Ok(ReplayCheck::Fresh),
            Reply::Bulk(None) => Ok(ReplayCheck::Replayed),
            _ => Err(StateError::Failed),
        }
    }

    async fn take(
        &self,
        key: &BucketKey<'_>,
        rate_per_sec: f64,
        burst: u32,
    ) -> Result<Take, StateError> {
        let rule = key.rule.to_string();
        let k = self.key(&["rl", key.route, &rule, key.per, key.value]);
        let rate = format!("{rate_per_sec}");
        let burst = burst.max(1).to_string();
        let mut reply = self
            .call(&[
                b"EVALSHA",
                self.script_sha.as_bytes(),
                b"1",
                &k,
                rate.as_bytes(),
                burst.as_bytes(),
            ])
            .await?;
        if matches!(&reply, Reply::Error(e) if e.starts_with("NOSCRIPT")) {
            reply = self
                .call(&[
                    b"EVAL",
                    TOKEN_BUCKET.as_bytes(),
                    b"1",
                    &k,
                    rate.as_bytes(),
                    burst.as_bytes(),
                ])
                .await?;
        }
        match reply {
            Reply::Array(Some(items)) => match items.as_slice() {
                [Reply::Int(1), _] => Ok(Take::Allowed),
                [Reply::Int(0), Reply::Int(wait)] => Ok(Take::Limited {
                    retry_after_secs: u32::try_from((*wait).max(1)).unwrap_or(u32::MAX),
                }),
                _ => Err(StateError::Failed),
            },
            _ => Err(StateError::Failed),
        }
    }

    async fn was_delivered(&self, app: &str, event_id: &str) -> Result<bool, StateError> {
        let key = self.key(&["delivered", app, event_id]);
        match self.call(&[b"EXISTS", &key]).await? {
            Reply::Int(n) => Ok(n > 0),
            _ => Err(StateError::Failed),
        }
    }

    async fn mark_delivered(
        &self,
        app: &str,
        event_id: &str,
        ttl_secs: u64,
    ) -> Result<(), StateError> {
        let key = self.key(&["delivered", app, event_id]);
        let ttl = (ttl_secs.max(1) * 1000).to_string();
        let reply = self
            .call(&[b"SET", &key, b"1", b"PX", ttl.as_bytes()])
            .await?;
        expect_ok(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_is_named_by_its_sha1() {
        let state = RedisState::new(
            RedisSettings {
                addr: "127.0.0.1:1".into(),
                db: 0,
                key_prefix: "p:".into(),
                timeout: Duration::from_millis(10),
                password_env: None,
            },
            None,
        );
        assert_eq!(state.script_sha.len(), 40);
        assert_eq!(
            state.key(&["rl", "route", "0", "team", "T1"]),
            b"p:rl:route:0:team:T1"
        );
    }
}
