//! Server settings: listeners, admin listener, trusted proxies, limits, audit
//! sink, shared state, the egress door and the policy path. Built from a
//! [`ConfigSpec`](crate::spec::ConfigSpec) by the compiler in `compile/config.rs`, as the
//! policy's types in `model.rs` are by `compile.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::matcher::IpSet;
use crate::secrets::SecretRef;

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file this was loaded from.
    pub source: PathBuf,
    /// Public listeners; at least one.
    pub listen: Vec<Listener>,
    /// The admin listener (metrics, health, reload), if any.
    pub admin: Option<Admin>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: IpSet,
    /// Size, time and memory limits.
    pub limits: Limits,
    /// Where audit records go.
    pub audit: Audit,
    /// The policy file, resolved against the config file's directory.
    pub policy_path: PathBuf,
    /// Where replay cache, rate-limit buckets and delivered event ids live.
    pub state: State,
    /// The egress door (bots -> Slack Web API), when configured.
    pub egress: Option<Egress>,
    /// `tls:`: what every TLS connection of the gateway shares (its listeners, the egress
    /// listener and its client to Slack).
    pub tls: Tls,
}

/// `tls:`: settings shared by the gateway's TLS listeners (inbound and egress) and its
/// client to Slack. Certificates stay with each listener (`listen[].tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// `tls.key_exchange`: the key-exchange groups, in the gateway's order of preference.
    /// A listener answers with the first of them the client supports (asking the client
    /// for it by HelloRetryRequest when the client sent no share for it); the client to
    /// Slack offers them in this order. Default [`DEFAULT_KEY_EXCHANGE`].
    pub key_exchange: Vec<KeyExchange>,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            key_exchange: DEFAULT_KEY_EXCHANGE.to_vec(),
        }
    }
}

/// The default `tls.key_exchange`: the post-quantum hybrid first, then the classical groups
/// from the fastest; P-384 only for a client that offers nothing else.
pub const DEFAULT_KEY_EXCHANGE: &[KeyExchange] = &[
    KeyExchange::X25519MLKEM768,
    KeyExchange::X25519,
    KeyExchange::P256,
    KeyExchange::P384,
];

/// A TLS key-exchange group the gateway can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyExchange {
    /// X25519 combined with ML-KEM-768 (the hybrid browsers, OpenSSL 3.5 and Go offer),
    /// TLS 1.3 only: safe against a later quantum computer if either half holds.
    X25519MLKEM768,
    /// P-256 combined with ML-KEM-768, for deployments that need NIST curves only.
    SecP256r1MLKEM768,
    /// X25519 (classical).
    X25519,
    /// NIST P-256 / secp256r1 (classical).
    P256,
    /// NIST P-384 / secp384r1 (classical).
    P384,
}

impl KeyExchange {
    /// Every group, as the config names it.
    pub const ALL: &'static [KeyExchange] = &[
        KeyExchange::X25519MLKEM768,
        KeyExchange::SecP256r1MLKEM768,
        KeyExchange::X25519,
        KeyExchange::P256,
        KeyExchange::P384,
    ];

    /// The config word (IANA's name for the hybrids and X25519; `P-256`/`P-384` for the
    /// curves, whose IANA names `secp256r1`/`secp384r1` are read too).
    pub const fn as_str(&self) -> &'static str {
        match self {
            KeyExchange::X25519MLKEM768 => "X25519MLKEM768",
            KeyExchange::SecP256r1MLKEM768 => "SecP256r1MLKEM768",
            KeyExchange::X25519 => "X25519",
            KeyExchange::P256 => "P-256",
            KeyExchange::P384 => "P-384",
        }
    }

    /// Reads a config word, ignoring ASCII case.
    pub fn parse(word: &str) -> Option<Self> {
        const ALIASES: [(&str, KeyExchange); 2] = [
            ("secp256r1", KeyExchange::P256),
            ("secp384r1", KeyExchange::P384),
        ];
        let w = word.trim();
        Self::ALL
            .iter()
            .map(|&k| (k.as_str(), k))
            .chain(ALIASES)
            .find(|(name, _)| name.eq_ignore_ascii_case(w))
            .map(|(_, k)| k)
    }

    /// Whether this is a post-quantum hybrid (TLS 1.3 only).
    pub const fn is_hybrid(&self) -> bool {
        matches!(
            self,
            KeyExchange::X25519MLKEM768 | KeyExchange::SecP256r1MLKEM768
        )
    }
}

/// The egress door: where bots send Web API calls and where allowed calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    /// The listener bots call (plain or TLS).
    pub listen: Listener,
    /// The Slack Web API base.
    pub slack_api: SlackApi,
    /// What every webhook URL of the policy must start with: `https://hooks.slack.com/`
    /// by default.
    pub hooks_base: SlackApi,
    /// An extra CA to trust for `slack_api` and `hooks_base`, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// The most one call to Slack may take. Default 10 s.
    pub timeout: Duration,
    /// How bots reach the egress listener (`http(s)://host[:port]/`, ending in `/`): the
    /// base of the capability URLs the gateway hands out in place of Slack's response and
    /// upload URLs. Without it, neither is taken into custody.
    pub public_url: Option<String>,
    /// `egress.pacing`: calls are paced by Slack's documented per-method tiers (and
    /// `chat.postMessage`'s one message per second per channel), across replicas with
    /// Redis; `None` without it.
    pub pacing: Option<Pacing>,
}

/// `egress.pacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// The longest a call is held back for its tier before it is answered
    /// `slack_rate_limited` instead. Default 1 s, at most 30 s.
    pub max_wait: Duration,
}

/// The Slack Web API base URL, split: `https://slack.com/api/` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackApi {
    /// `https` (always, except for a loopback stand-in, which may be `http`).
    pub tls: bool,
    /// The host name or IP address (also the TLS server name and `Host`).
    pub host: String,
    /// The port (443 by default for https).
    pub port: u16,
    /// The path prefix, starting and ending with `/`, e.g. `/api/`.
    pub path: String,
}

impl SlackApi {
    /// Splits a base URL. `http` is accepted only for a loopback host (a local
    /// stand-in in tests and benchmarks): tokens never travel in plain text.
    pub fn parse(url: &str) -> Result<SlackApi, &'static str> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("write an https:// URL such as https://slack.com/api/");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains(['?', '#']) || !path.ends_with('/') {
            return Err("write the base URL ending in `/`, without query or fragment, e.g. https://slack.com/api/");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((h, p)) = v6.split_once(']') else {
                return Err("write an IPv6 host in brackets, e.g. https://[::1]:8443/api/");
            };
            (format!("[{h}]"), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty()
            || host.contains('@')
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        {
            return Err("write a host name or IP address, e.g. https://slack.com/api/");
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err("use a port between 1 and 65535"),
            },
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare == "localhost"
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err("use https://: the gateway sends real tokens there (http:// is accepted only for a loopback stand-in)");
        }
        Ok(SlackApi {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
        })
    }

    /// The `Host` header value: the host, with the port when it is not the scheme's.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The request path of `url` (from this base's path on) when `url` is under this
    /// base: same scheme, host (case-insensitive) and port, and its path starts with
    /// this base's path. A webhook URL outside `egress.hooks_base` gets `None`.
    pub fn path_of<'u>(&self, url: &'u str) -> Option<&'u str> {
        fn strip<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
            let head = s.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix)
                .then(|| s.get(prefix.len()..))
                .flatten()
        }
        let rest = strip(url, if self.tls { "https://" } else { "http://" })?;
        let rest = strip(rest, &self.host)?;
        let rest = match rest.strip_prefix(':') {
            Some(r) => {
                let end = r.find('/')?;
                let port: u16 = r.get(..end)?.parse().ok()?;
                (port == self.port).then(|| r.get(end..)).flatten()?
            }
            None => {
                let default = if self.tls { 443 } else { 80 };
                (self.port == default).then_some(rest)?
            }
        };
        rest.starts_with(self.path.as_str()).then_some(rest)
    }
}

/// Shared-state settings: per replica in memory, or in Redis for many replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// The backend.
    pub backend: StateBackend,
    /// The local backend's directory for rotated tokens (`state.path`).
    pub path: Option<PathBuf>,
    /// Where the key that encrypts tokens at rest is read from (`state.encryption_key`).
    pub encryption_key: Option<StateKeyRef>,
}

/// Where `state.encryption_key` is read from, and where it stands in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKeyRef {
    /// The reference (never the value).
    pub source: SecretRef,
    /// 1-based line of the reference in the config file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The key that encrypts tokens at rest: 32 bytes. `Debug` never shows it.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl StateKey {
    /// The key bytes. Call it only where the AEAD key is built.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from bytes (tests and tools).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(not shown)")
    }
}

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateBackend {
    /// In this process only (the default).
    #[default]
    Local,
    /// In Redis, shared by every replica pointing at it.
    Redis(RedisSettings),
}

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `host:port` of the URL: the server (standalone), a seed node (cluster) or one
    /// sentinel (sentinel).
    pub addr: String,
    /// `rediss://`: every connection (sentinels too) is TLS.
    pub tls: bool,
    /// The CA the servers' certificates are checked against (`ca_file`); the system's
    /// roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// Database number (`/N` in the URL), 0 by default (always 0 in cluster mode).
    pub db: u32,
    /// Prefix of every key the gateway writes. Default `slackgate:`.
    pub key_prefix: String,
    /// The most a Redis round trip may take before the route's `state_failure`
    /// policy applies. Default 50 ms.
    pub timeout: Duration,
    /// Environment variable holding the ACL user name, if any (`username_env`).
    pub username_env: Option<String>,
    /// Environment variable holding the Redis password (AUTH), if any.
    pub password_env: Option<String>,
    /// One server, a cluster, or a master found through sentinels.
    pub mode: RedisMode,
}

/// `state.redis.mode`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// One server (or a managed endpoint that fails over behind one name).
    #[default]
    Standalone,
    /// Redis Cluster: `addr` is one seed node; the others are learned from it.
    Cluster,
    /// The master of `master`, as the sentinels at `addr` and `addrs` name it; a
    /// failover is followed without a restart.
    Sentinel {
        /// The monitored master's name.
        master: String,
        /// The other sentinels, `host:port`.
        addrs: Vec<String>,
    },
}

impl RedisMode {
    /// The config word: `standalone`, `cluster`, `sentinel`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            RedisMode::Standalone => "standalone",
            RedisMode::Cluster => "cluster",
            RedisMode::Sentinel { .. } => "sentinel",
        }
    }
}

/// One public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The socket address to bind.
    pub addr: SocketAddr,
    /// TLS files; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and private key in PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, resolved against the config file's directory.
    pub cert: PathBuf,
    /// The private key, resolved against the config file's directory.
    pub key: PathBuf,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The socket address to bind.
    pub addr: SocketAddr,
}

/// Limits; every duration except `shutdown_grace` is above zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body read (413 above). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Time allowed to read a whole body (408 after). Default 5 s.
    pub body_read_timeout: Duration,
    /// Time allowed for the upstream to answer (504 after). Default 2800 ms,
    /// under Slack's 3 s deadline.
    pub upstream_timeout: Duration,
    /// Accepted distance between the signed timestamp and now, both directions. Default 300 s.
    pub max_clock_skew: Duration,
    /// The most rate-limit buckets kept before evicting. Default 1,000,000.
    pub max_rate_limit_keys: usize,
    /// The most signatures remembered for replay detection. Default 1,000,000.
    pub max_replay_entries: usize,
    /// How long in-flight requests may finish on shutdown. Default 10 s.
    pub shutdown_grace: Duration,
    /// The largest request head (request line and headers) read; a longer one is
    /// refused with 431 as soon as it is exceeded, never buffered past it. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Time allowed for a whole request head, from its first byte (from the accept for a
    /// connection's first request); not reset by reads. 408 after. Default 10 s.
    pub head_read_timeout: Duration,
    /// The most connections one listener holds at once (each of `listen`, and
    /// `egress.listen`); past it a new connection is closed at accept and counted in
    /// `slackgate_connections_refused_total{listener}`. Default 10,000.
    pub max_connections: usize,
    /// The most channels one egress call may name (`channels`, `channel_ids`, ...
    /// together); more is `malformed_call`. Default 100.
    pub max_call_channels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            body_read_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_millis(2800),
            max_clock_skew: Duration::from_secs(300),
            max_rate_limit_keys: 1_000_000,
            max_replay_entries: 1_000_000,
            shutdown_grace: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            head_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_call_channels: 100,
        }
    }
}

/// The audit sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Where JSON lines are written.
    pub path: AuditPath,
    /// The most bytes of records waiting for the writer; past it new records are
    /// dropped and counted (`slackgate_audit_dropped_total`). Default 16 MiB.
    pub max_queue_bytes: usize,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            path: AuditPath::Stdout,
            max_queue_bytes: DEFAULT_AUDIT_QUEUE_BYTES,
        }
    }
}

/// The default of `audit.max_queue_bytes`: 16 MiB.
pub const DEFAULT_AUDIT_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// An audit destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditPath {
    /// Standard output (`"-"`, the default).
    Stdout,
    /// A file, appended to; resolved against the config file's directory.
    File(PathBuf),
}

/// The top-level keys of a server config file, as in `ConfigSpec` (the one list of them:
/// the binary tells a policy from a server config by these).
pub const CONFIG_KEYS: &[&str] = &[
    "listen",
    "admin",
    "trusted_proxies",
    "limits",
    "audit",
    "policy",
    "state",
    "egress",
    "tls",
];
