//! Real `redis-server`s and `redis-sentinel`s on free loopback ports, stopped when dropped
//! (the shared-state tests; `scripts/deps.sh` installs them): a plain one, a TLS-only one
//! with an ACL user, the masters of a Redis Cluster, a replica, and sentinels.
//!
//! Every start waits by polling (PING, `cluster_state:ok`), never by sleeping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::{FromRedisValue, RedisResult};

use crate::certs::TestCa;
use crate::{free_port, wait_until};

/// How long a server may take to answer its first PING.
const START_LIMIT: Duration = Duration::from_secs(15);

/// A running `redis-server` that keeps nothing on disk.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    /// Where it listens (TLS only, when started with [`RedisBuilder::tls`]).
    pub addr: SocketAddr,
    /// The cluster bus port, in cluster mode.
    pub bus_port: Option<u16>,
    ca: Option<PathBuf>,
    user: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// How to start a [`Redis`].
#[derive(Debug, Default)]
pub struct RedisBuilder {
    addr: Option<SocketAddr>,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    user: Option<(String, String)>,
    cluster: bool,
    replica_of: Option<SocketAddr>,
}

impl RedisBuilder {
    /// Listens on `addr` rather than a free port.
    pub fn on(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// TLS only (no plain port), with the server certificate `ca` signed.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some((ca.cert.clone(), ca.key.clone(), ca.ca.clone()));
        self
    }

    /// An ACL user `name` with `password` and every key and command; the default user off.
    pub fn acl_user(mut self, name: &str, password: &str) -> Self {
        self.user = Some((name.to_owned(), password.to_owned()));
        self
    }

    /// A cluster node (no slots until they are assigned: see [`RedisCluster`]).
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// A replica of `master`.
    pub fn replica_of(mut self, master: SocketAddr) -> Self {
        self.replica_of = Some(master);
        self
    }

    /// Starts it and waits until it answers PING.
    pub fn start(self) -> Redis {
        let addr = self.addr.unwrap_or_else(free_port);
        let dir = tempfile::tempdir().unwrap();
        let port = addr.port().to_string();
        let mut cmd = Command::new("redis-server");
        // A replica syncs at once (not after the default 5 s diskless-sync delay).
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(dir.path());
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some((cert, key, ca)) => {
                cmd.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca);
            }
        }
        if let Some((name, password)) = &self.user {
            cmd.args(["--user", "default", "off"]).args([
                "--user",
                name,
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ]);
        }
        let bus_port = self.cluster.then(|| free_port().port());
        if let Some(bus) = bus_port {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .args(["--cluster-port", &bus.to_string()]);
        }
        if let Some(master) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &master.port().to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests: run scripts/deps.sh");
        let r = Redis {
            child,
            addr,
            bus_port,
            ca: self.tls.map(|(_, _, ca)| ca),
            user: self.user,
            _dir: dir,
        };
        assert!(
            wait_until(START_LIMIT, || r.ping()),
            "redis-server did not start"
        );
        r
    }
}

/// A sync client of the server at `addr`, over TLS when `ca` is given, as `user`.
fn client(
    addr: SocketAddr,
    ca: Option<&PathBuf>,
    user: Option<&(String, String)>,
) -> redis::Client {
    use redis::IntoConnectionInfo;
    // redis-rs' TLS takes rustls' process default, which the gateway sets (aws-lc-rs);
    // a test may ask a Redis before any gateway runs.
    slackgate_proxy::tls::install_process_default();
    let host = addr.ip().to_string();
    let at = match ca {
        Some(_) => redis::ConnectionAddr::TcpTls {
            host,
            port: addr.port(),
            insecure: false,
            tls_params: None,
        },
        None => redis::ConnectionAddr::Tcp(host, addr.port()),
    };
    let mut node = redis::RedisConnectionInfo::default();
    if let Some((name, password)) = user {
        node = node.set_username(name).set_password(password);
    }
    let info = at.into_connection_info().unwrap().set_redis_settings(node);
    match ca {
        Some(ca) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca).unwrap()),
            },
        ),
        None => redis::Client::open(info),
    }
    .unwrap()
}

/// Runs one command on a new connection to `c`.
fn query<T: FromRedisValue>(c: &redis::Client, args: &[&str]) -> RedisResult<T> {
    let mut conn = c.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn)
}

impl Redis {
    /// How to start one with TLS, an ACL user, in a cluster or as a replica.
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    /// Starts a plain one on `addr` and waits until it answers PING.
    pub fn start_on(addr: SocketAddr) -> Self {
        Self::builder().on(addr).start()
    }

    /// Starts a plain one on a free port.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Runs one command (as the ACL user, over TLS where so started).
    pub fn query<T: FromRedisValue>(&self, args: &[&str]) -> RedisResult<T> {
        query(
            &client(self.addr, self.ca.as_ref(), self.user.as_ref()),
            args,
        )
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        self.query::<String>(&["PING"]).is_ok_and(|p| p == "PONG")
    }

    /// Its role now: `master` or `slave` (`INFO replication`).
    pub fn role(&self) -> Option<String> {
        let info: String = self.query(&["INFO", "replication"]).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_owned())
    }

    /// Whether, as a replica, its link to its master is up (the first sync done).
    pub fn replica_synced(&self) -> bool {
        self.query::<String>(&["INFO", "replication"])
            .is_ok_and(|i| i.contains("master_link_status:up"))
    }

    /// Kills it (the tests of a Redis that dies).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three masters of one Redis Cluster, each serving a third of the slots.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts three nodes, gives each a third of the 16384 slots, introduces them to each
    /// other and waits until every one reports `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<Redis> = (0..3).map(|_| Redis::builder().cluster().start()).collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (lo, hi)) in nodes.iter().zip(ranges) {
            node.query::<()>(&["CLUSTER", "ADDSLOTSRANGE", &lo.to_string(), &hi.to_string()])
                .unwrap();
        }
        for node in &nodes[1..] {
            let port = node.addr.port().to_string();
            let bus = node.bus_port.unwrap_or_default().to_string();
            nodes[0]
                .query::<()>(&["CLUSTER", "MEET", "127.0.0.1", &port, &bus])
                .unwrap();
        }
        let ok = wait_until(Duration::from_secs(30), || {
            nodes.iter().all(|n| {
                n.query::<String>(&["CLUSTER", "INFO"]).is_ok_and(|i| {
                    i.contains("cluster_state:ok") && i.contains("cluster_known_nodes:3")
                })
            })
        });
        assert!(ok, "the cluster did not form");
        Self { nodes }
    }

    /// The node a client starts from.
    pub fn seed(&self) -> SocketAddr {
        self.nodes[0].addr
    }
}

/// A running `redis-sentinel` monitoring one master.
#[derive(Debug)]
pub struct Sentinel {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// Starts one that monitors `master` as `name` (quorum 1) and waits until it answers.
    pub fn start(name: &str, master: SocketAddr) -> Self {
        let addr = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {name} 127.0.0.1 {mport} 1\nsentinel down-after-milliseconds {name} 2000\nsentinel failover-timeout {name} 10000\n",
                port = addr.port(),
                dir = dir.path().display(),
                mport = master.port(),
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel is needed for these tests: run scripts/deps.sh");
        let s = Self {
            child,
            addr,
            _dir: dir,
        };
        assert!(
            wait_until(START_LIMIT, || s.query::<String>(&["PING"]).is_ok()),
            "redis-sentinel did not start"
        );
        s
    }

    /// Runs one command.
    pub fn query<T: FromRedisValue>(&self, args: &[&str]) -> RedisResult<T> {
        query(&client(self.addr, None, None), args)
    }

    /// The master it names for `name` now.
    pub fn master(&self, name: &str) -> Option<SocketAddr> {
        let (host, port): (String, String) = self
            .query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])
            .ok()?;
        format!("{host}:{port}").parse().ok()
    }

    /// How many replicas of `name` it knows and sees up.
    pub fn replicas_up(&self, name: &str) -> usize {
        let replicas: Vec<std::collections::HashMap<String, String>> = self
            .query(&["SENTINEL", "REPLICAS", name])
            .unwrap_or_default();
        replicas
            .iter()
            .filter(|r| r.get("flags").is_some_and(|f| f == "slave"))
            .count()
    }

    /// Kills it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
    }
}
