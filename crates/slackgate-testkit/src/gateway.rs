//! An in-process gateway on free `127.0.0.1` ports, with its files in a temp dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use slackgate_fixtures::MapSecrets;
use slackgate_guard::Clock;
use slackgate_proxy::{AuditTarget, Options, RunningGateway};

use crate::certs::TestCerts;
use crate::client::{Client, Response};
use crate::{free_port, wait_until};

/// Builds a [`TestGateway`].
pub struct TestGatewayBuilder {
    policy: String,
    config_extra: String,
    secrets: MapSecrets,
    tls: Option<TestCerts>,
    clock: Option<Arc<dyn Clock>>,
    plain: bool,
    audit_queue: Option<usize>,
    threads: usize,
    fast_path: bool,
    /// `egress.slack_api` and `egress.ca_file`, when the egress door is on.
    egress: Option<(String, Option<PathBuf>)>,
    egress_timeout: String,
    egress_tls: Option<TestCerts>,
    /// `egress.hooks_base`, when set.
    hooks_base: Option<String>,
    /// Whether `egress.public_url` names the egress listener (secret custody).
    public_url: bool,
    pacing: Option<String>,
}

impl std::fmt::Debug for TestGatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGatewayBuilder").finish_non_exhaustive()
    }
}

/// A running gateway with its temp dir, ports and captured audit lines.
pub struct TestGateway {
    /// The running server.
    pub running: Option<RunningGateway>,
    /// Plain listener address (if any).
    pub addr: SocketAddr,
    /// TLS listener address (if any).
    pub tls_addr: Option<SocketAddr>,
    /// The egress listener's address (if the egress door is on).
    pub egress_addr: Option<SocketAddr>,
    /// The egress listener's certificate, when it serves TLS.
    pub egress_certs: Option<TestCerts>,
    /// Admin address.
    pub admin: SocketAddr,
    /// The TLS certificate in use.
    pub certs: Option<TestCerts>,
    /// Where config.yaml and policy.yaml live.
    pub dir: tempfile::TempDir,
    /// The secrets the gateway reads.
    pub secrets: MapSecrets,
    audit: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for TestGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGateway")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestGatewayBuilder {
    /// A gateway with this policy YAML.
    pub fn new(policy: &str) -> Self {
        Self {
            policy: policy.to_owned(),
            config_extra: String::new(),
            secrets: MapSecrets::default(),
            tls: None,
            clock: None,
            plain: true,
            audit_queue: None,
            threads: 2,
            fast_path: true,
            egress: None,
            egress_timeout: "5s".to_owned(),
            egress_tls: None,
            hooks_base: None,
            public_url: false,
            pacing: None,
        }
    }

    /// `egress.pacing: { max_wait: <max_wait> }`: Slack's tiers applied by the gateway.
    pub fn egress_pacing(mut self, max_wait: &str) -> Self {
        self.pacing = Some(max_wait.to_owned());
        self
    }

    /// Turns the egress door on: a plain egress listener on a free port whose allowed
    /// calls go to `slack_api` (a stand-in's URL), trusting `ca_file` besides the
    /// system roots.
    pub fn egress(mut self, slack_api: &str, ca_file: Option<&std::path::Path>) -> Self {
        self.egress = Some((slack_api.to_owned(), ca_file.map(PathBuf::from)));
        self
    }

    /// Whether simple requests take the fast path (default on); off, every HTTP/1
    /// request goes to pingora's proxy after the head checks.
    pub fn fast_path(mut self, on: bool) -> Self {
        self.fast_path = on;
        self
    }

    /// Worker threads (default 2; 1 runs pingora's single-thread, no-steal runtime).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Sets an env secret.
    pub fn secret(self, name: &str, value: &str) -> Self {
        self.secrets.set(name, value);
        self
    }

    /// Sets bot `name`'s gateway key and token, in the env variables a policy written with
    /// [`policy::bot`](crate::policy::bot) reads them from.
    pub fn bot(self, name: &str, key: &str, token: &str) -> Self {
        let (key_env, token_env) = crate::policy::bot_env(name);
        self.secret(&key_env, key).secret(&token_env, token)
    }

    /// Turns the egress door on in front of this Slack stand-in, trusting its test CA.
    pub fn slack(self, slack: &crate::SlackApi) -> Self {
        self.egress(&slack.url(), Some(slack.ca_file()))
    }

    /// Uses this fake clock for signatures and buckets.
    pub fn fake_clock(self, c: &Arc<slackgate_guard::FakeClock>) -> Self {
        self.clock(Arc::clone(c) as Arc<dyn Clock>)
    }

    /// Appends raw YAML to the config (e.g. `trusted_proxies: [127.0.0.0/8]`).
    pub fn config(mut self, yaml: &str) -> Self {
        self.config_extra.push_str(yaml);
        self.config_extra.push('\n');
        self
    }

    /// Adds a TLS listener with a fresh certificate.
    pub fn tls(mut self) -> Self {
        self.tls = Some(TestCerts::generate());
        self
    }

    /// Only the TLS listener, no plain one.
    pub fn tls_only(mut self) -> Self {
        self.tls = Some(TestCerts::generate());
        self.plain = false;
        self
    }

    /// Uses this clock for signatures and buckets.
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = Some(c);
        self
    }

    /// Serves the egress listener over TLS with a fresh certificate.
    pub fn egress_tls(mut self) -> Self {
        self.egress_tls = Some(TestCerts::generate());
        self
    }

    /// `egress.hooks_base` (a webhook stand-in's base URL; default Slack's own).
    pub fn hooks_base(mut self, url: &str) -> Self {
        self.hooks_base = Some(url.to_owned());
        self
    }

    /// Sets `egress.public_url` to the egress listener's own URL, so that the gateway hands
    /// bots capability URLs on it (secret custody).
    pub fn egress_public_url(mut self) -> Self {
        self.public_url = true;
        self
    }

    /// `egress.timeout` (default 5s).
    pub fn egress_timeout(mut self, t: &str) -> Self {
        self.egress_timeout = t.to_owned();
        self
    }

    /// Caps the audit queue (to test what happens when the audit sink stalls).
    pub fn audit_queue(mut self, n: usize) -> Self {
        self.audit_queue = Some(n);
        self
    }

    /// Writes the files, starts the gateway and waits until it is ready.
    pub fn start(self) -> TestGateway {
        self.try_start()
            .unwrap_or_else(|e| panic!("gateway start: {e}"))
    }

    /// Starts the gateway; `Err` is the start-up error as the binary would print it.
    pub fn try_start(self) -> Result<TestGateway, String> {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_port();
        let admin = free_port();
        let tls_addr = self.tls.as_ref().map(|_| free_port());
        std::fs::write(dir.path().join("policy.yaml"), &self.policy).unwrap();
        let mut config = String::from("listen:\n");
        if self.plain {
            config.push_str(&format!("  - addr: {addr}\n"));
        }
        if let (Some(t), Some(a)) = (&self.tls, tls_addr) {
            config.push_str(&format!(
                "  - addr: {a}\n    tls: {{ cert: {}, key: {} }}\n",
                t.cert.display(),
                t.key.display()
            ));
        }
        config.push_str(&format!(
            "admin: {{ addr: {admin} }}\npolicy: policy.yaml\n"
        ));
        let egress_addr = self.egress.as_ref().map(|_| free_port());
        if let (Some((api, ca)), Some(a)) = (&self.egress, egress_addr) {
            let tls = self.egress_tls.as_ref().map_or(String::new(), |t| {
                format!(
                    ", tls: {{ cert: {}, key: {} }}",
                    t.cert.display(),
                    t.key.display()
                )
            });
            config.push_str(&format!(
                "egress:\n  listen: {{ addr: {a}{tls} }}\n  slack_api: {api}\n  timeout: {}\n",
                self.egress_timeout
            ));
            if let Some(ca) = ca {
                config.push_str(&format!("  ca_file: {}\n", ca.display()));
            }
            if let Some(w) = &self.pacing {
                config.push_str(&format!("  pacing: {{ max_wait: {w} }}\n"));
            }
            if let Some(base) = &self.hooks_base {
                config.push_str(&format!("  hooks_base: {base}\n"));
            }
            if self.public_url {
                let scheme = if self.egress_tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                config.push_str(&format!("  public_url: {scheme}://{a}/\n"));
            }
        }
        config.push_str(&self.config_extra);
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();

        let audit = Arc::new(Mutex::new(Vec::new()));
        let mut opts = Options::new(config_path);
        opts.secrets = Arc::new(self.secrets.clone());
        if let Some(c) = self.clock {
            opts.clock = c;
        }
        opts.audit = Some(AuditTarget::Memory(Arc::clone(&audit)));
        opts.threads = self.threads;
        opts.fast_path = self.fast_path;
        opts.upgrade_sock = Some(dir.path().join("upgrade.sock"));
        opts.pid_file = Some(dir.path().join("slackgate.pid"));
        opts.watch_interval = Some(Duration::from_millis(50));
        if let Some(n) = self.audit_queue {
            opts.audit_queue = n;
        }
        let running = slackgate_proxy::start(opts).map_err(|e| e.to_string())?;
        let shared = Arc::clone(&running.shared);
        assert!(
            wait_until(Duration::from_secs(20), || shared.is_ready()),
            "gateway did not become ready"
        );
        Ok(TestGateway {
            running: Some(running),
            addr,
            tls_addr,
            egress_addr,
            egress_certs: self.egress_tls,
            admin,
            certs: self.tls,
            dir,
            secrets: self.secrets,
            audit,
        })
    }
}

impl TestGateway {
    /// A client for the plain listener.
    pub fn client(&self) -> Client {
        Client::plain(self.addr)
    }

    /// A client for the TLS listener, trusting the test certificate.
    pub fn tls_client(&self) -> Client {
        let certs = self.certs.as_ref().expect("tls gateway");
        Client::tls(self.tls_addr.expect("tls gateway"), &certs.der)
    }

    /// A client for the egress listener (TLS, trusting its test certificate, when it
    /// was built with `egress_tls`).
    pub fn egress_client(&self) -> Client {
        let addr = self.egress_addr.expect("egress gateway");
        match &self.egress_certs {
            Some(c) => Client::tls(addr, &c.der),
            None => Client::plain(addr),
        }
    }

    /// `POST {target}` on a fresh connection to the egress listener, with these headers
    /// (`Content-Length` added) and body: the gateway's answer.
    pub fn egress_post(&self, target: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let mut req = format!("POST {target} HTTP/1.1\r\nHost: slackgate\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.egress_client().raw(req.as_bytes()).expect("an answer")
    }

    /// The `n`-th audit record (1-based), which must be an egress one.
    pub fn egress_record(&self, n: usize) -> serde_json::Value {
        let r = self.audit_nth(n);
        assert_eq!(r["direction"], "egress", "{r}");
        r
    }

    /// A client for the admin listener.
    pub fn admin_client(&self) -> Client {
        Client::plain(self.admin)
    }

    /// The policy file path.
    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }

    /// Replaces the policy file (atomically, by rename).
    pub fn write_policy(&self, yaml: &str) {
        let tmp = self.dir.path().join(".policy.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.policy_path()).unwrap();
    }

    /// Replaces the policy file and waits until the gateway runs a newer generation
    /// (panics with the reload status when it does not within 15 s).
    pub fn reload_policy(&self, yaml: &str) {
        let before = self.shared().current().generation;
        self.write_policy(yaml);
        assert!(
            wait_until(Duration::from_secs(15), || self
                .shared()
                .current()
                .generation
                > before),
            "the policy was not reloaded: {:?}",
            self.shared().reload_status()
        );
    }

    /// The shared state of the running gateway.
    pub fn shared(&self) -> &Arc<slackgate_proxy::Shared> {
        &self.running.as_ref().expect("running").shared
    }

    /// The features' state the running gateway's server owns (token vault, scope ledger,
    /// user groups).
    pub fn features(&self) -> &slackgate_proxy::admin::Features {
        &self.running.as_ref().expect("running").features
    }

    /// Audit lines written so far, waiting until at least `n` arrived.
    pub fn audit_lines(&self, n: usize) -> Vec<serde_json::Value> {
        wait_until(Duration::from_secs(5), || self.audit.lock().len() >= n);
        self.audit
            .lock()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Blocks the audit writer until the guard is dropped (a stalled log pipeline).
    pub fn block_audit(&self) -> parking_lot::MutexGuard<'_, Vec<String>> {
        self.audit.lock()
    }

    /// Raw audit lines written so far.
    pub fn audit_raw(&self) -> Vec<String> {
        self.audit.lock().clone()
    }

    /// The latest audit record, waiting for the `n`-th.
    pub fn audit_nth(&self, n: usize) -> serde_json::Value {
        let lines = self.audit_lines(n);
        lines
            .get(n - 1)
            .cloned()
            .unwrap_or_else(|| panic!("only {} audit lines, wanted {n}", lines.len()))
    }

    /// The metrics text from the admin listener.
    pub fn metrics(&self) -> String {
        let r = self.admin_client().get("/metrics").unwrap();
        String::from_utf8(r.body).unwrap()
    }

    /// Value of one metric sample line (exact name with labels), or 0.
    pub fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics(), sample)
    }
}

/// Finds `sample` (e.g. `slackgate_requests_total{route="r",reason="allowed"}`) in a scrape.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}
