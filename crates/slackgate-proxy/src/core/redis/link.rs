//! How the shared state reaches Redis, through redis-rs: one server, a Redis Cluster, or
//! the master the sentinels name; over TCP or TLS (`rediss://`, rustls with ring, the CA of
//! `ca_file` or the system's roots); as an ACL user. A [`Link`] makes connections; the
//! caller keeps one and asks for a new one when it broke, which for sentinels means asking
//! them again who the master is (a failover is followed without a restart).

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind, TlsCertificates,
    TlsMode, Value,
};
use slackgate_policy::{RedisMode, RedisSettings};

/// The ACL user and password, read from the environment at start. `Debug` shows neither.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The ACL user (`username_env`); the default user when `None`.
    pub username: Option<String>,
    /// The password (`password_env`).
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username.as_ref().map(|_| "set"))
            .field("password", &self.password.as_ref().map(|_| "set"))
            .finish()
    }
}

/// A connection: to one server (standalone, or the sentinels' master), or to a cluster
/// (which routes each command to the node of its key's slot).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

enum Target {
    Single(Client),
    Cluster(ClusterClient),
    /// Asked for the master at every new connection.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// Makes connections to the configured Redis.
pub(crate) struct Link {
    target: Target,
    connect_timeout: Duration,
    /// The Redis, as errors and `/status` name it: never a credential.
    name: String,
    /// Where the credentials come from, for the error that refuses them.
    who: String,
    /// The password, scrubbed from any error text as a last resort.
    password: Option<String>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `host` and `port` of `host:port` (`[::1]:6379` too); the config checked the form.
fn host_port(addr: &str) -> (String, u16) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_owned(), port.parse().unwrap_or(6379))
}

fn conn_addr(addr: &str, tls: bool) -> ConnectionAddr {
    let (host, port) = host_port(addr);
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// The CA certificates of `ca_file`, checked to hold at least one.
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read state.redis.ca_file {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("state.redis.ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "state.redis.ca_file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(pem)
}

impl Link {
    /// The link `settings` describe, with `creds`; reads `ca_file`. Connects to nothing.
    pub(crate) fn new(settings: &RedisSettings, creds: &Credentials) -> Result<Self, String> {
        let ca = settings.ca_file.as_deref().map(read_ca).transpose()?;
        let certs = ca.map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
        let connect_timeout = settings.timeout.max(Duration::from_secs(2));
        let (tls, addr) = (settings.tls, settings.addr.as_str());
        let scheme = if tls { "rediss" } else { "redis" };
        let built = |e: RedisError| format!("state.redis: {e}");
        let (target, name) = match &settings.mode {
            RedisMode::Standalone => {
                let mut node = RedisConnectionInfo::default().set_db(i64::from(settings.db));
                if let Some(u) = &creds.username {
                    node = node.set_username(u);
                }
                if let Some(p) = &creds.password {
                    node = node.set_password(p);
                }
                let info = conn_addr(addr, tls)
                    .into_connection_info()
                    .map_err(built)?
                    .set_redis_settings(node);
                let client = match certs {
                    Some(c) => Client::build_with_tls(info, c),
                    None => Client::open(info),
                }
                .map_err(built)?;
                (Target::Single(client), format!("{scheme}://{addr}"))
            }
            RedisMode::Cluster => {
                let seed = conn_addr(addr, tls).into_connection_info().map_err(built)?;
                let mut b = ClusterClientBuilder::new(vec![seed])
                    .connection_timeout(connect_timeout)
                    .response_timeout(connect_timeout)
                    .retries(2);
                if let Some(u) = &creds.username {
                    b = b.username(u);
                }
                if let Some(p) = &creds.password {
                    b = b.password(p);
                }
                if tls {
                    b = b.tls(TlsMode::Secure);
                }
                if let Some(c) = certs {
                    b = b.certs(c);
                }
                let client = b.build().map_err(built)?;
                (
                    Target::Cluster(client),
                    format!("{scheme}://{addr} (cluster)"),
                )
            }
            RedisMode::Sentinel { master, addrs } => {
                let sentinels = std::iter::once(addr)
                    .chain(addrs.iter().map(String::as_str))
                    .map(|a| conn_addr(a, tls));
                let mut b =
                    SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)
                        .map_err(built)?
                        .set_client_to_redis_db(i64::from(settings.db));
                if let Some(u) = &creds.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &creds.password {
                    b = b.set_client_to_redis_password(p);
                }
                if tls {
                    b = b
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                }
                if let Some(c) = certs {
                    b = b
                        .set_client_to_redis_certificates(c.clone())
                        .set_client_to_sentinel_certificates(c);
                }
                let client = b.build().map_err(built)?;
                let all = std::iter::once(addr)
                    .chain(addrs.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    Target::Sentinel(tokio::sync::Mutex::new(client)),
                    format!("master {master} of the sentinels at {scheme}://{all}"),
                )
            }
        };
        let who = match (&settings.username_env, &settings.password_env) {
            (Some(u), Some(p)) => format!("the ACL user in {u} with the password in {p}"),
            (None, Some(p)) => format!("the password in {p}"),
            _ => "no credentials".to_owned(),
        };
        Ok(Self {
            target,
            connect_timeout,
            name,
            who,
            password: creds.password.clone().filter(|p| !p.is_empty()),
        })
    }

    /// The Redis, as errors and `/status` name it (host:port, never a credential).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The most a new connection may take (it is made in the background, so a caller's
    /// own `timeout` does not cut a slow handshake short).
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// A new connection; for sentinels, to the master they name now.
    pub(crate) async fn connect(&self) -> RedisResult<Conn> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.connect_timeout));
        match &self.target {
            Target::Single(c) => c
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Conn::Single),
            Target::Cluster(c) => c.get_async_connection().await.map(Conn::Cluster),
            Target::Sentinel(s) => {
                let client = s.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Single)
            }
        }
    }

    /// One line for an error of this Redis: names it, never a credential.
    pub(crate) fn explain(&self, e: &RedisError) -> String {
        let text = if refused_credentials(e) {
            format!(
                "{} refused {} (wrong password, unknown or disabled user, or a user without the permissions the gateway needs)",
                self.name, self.who
            )
        } else if let Some(tls) = tls_failure(e) {
            format!(
                "{}: TLS failed: {tls} (check state.redis.ca_file and the server's certificate)",
                self.name
            )
        } else {
            format!("{}: {e}", self.name)
        };
        match &self.password {
            Some(p) => text.replace(p.as_str(), "[redacted]"),
            None => text,
        }
    }
}

/// The server refused the credentials (or the user may not run the gateway's commands).
pub(crate) fn refused_credentials(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm)
    ) || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// The TLS handshake failed (an unknown CA, a wrong name, an alert from the server).
pub(crate) fn tls_failure(e: &RedisError) -> Option<String> {
    /// The rustls error inside an I/O error, however it is wrapped.
    fn of_io(io: &std::io::Error) -> Option<String> {
        let inner = io.get_ref()?;
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        inner.downcast_ref::<std::io::Error>().and_then(of_io)
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        // redis-rs keeps an I/O error behind an `Arc`.
        let io = s.downcast_ref::<std::io::Error>().or_else(|| {
            s.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
                .and_then(|a| a.downcast_ref::<std::io::Error>())
        });
        if let Some(found) = io.and_then(of_io) {
            return Some(found);
        }
        source = s.source();
    }
    None
}

/// The server refused to run the command because it is not the one to write to now (a
/// replica, a master that lost its replicas, a slot in migration, a server still
/// loading): nothing ran, so it may be sent again on a new connection.
pub(crate) fn not_run_here(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::BusyLoading
        )
    )
}

/// Whether the connection that gave `e` is to be dropped and made again: it broke, or
/// its server is no longer the one to write to (a demoted master, a cluster in change).
pub(crate) fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
            ) | ErrorKind::ClusterConnectionNotFound
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_credentials_are_never_shown() {
        assert_eq!(host_port("[::1]:6380"), ("::1".to_owned(), 6380));
        assert_eq!(host_port("redis.svc:6379"), ("redis.svc".to_owned(), 6379));
        let creds = Credentials {
            username: Some("gateway".into()),
            password: Some("hunter2-secret".into()),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert!(!format!("{creds:?}").contains("gateway"));
    }
}
