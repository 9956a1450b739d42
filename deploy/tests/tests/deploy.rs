//! Checks `deploy/`: renders the Kubernetes overlays with kustomize, lints every
//! manifest with yamllint, validates every resource against the Kubernetes
//! schema with kubernetes-validate, and cross-checks the rendered objects
//! against slackgate's own config and policy loader (the code behind
//! `slackgate check`), so a port, path, secret key or grace period that drifts
//! between the YAML files and the gateway fails here instead of in a cluster.
//!
//! It also evaluates the rendered NetworkPolicies with Kubernetes' semantics
//! (`netpol`: a bot may reach only the egress door and DNS) and enforces them in a lab
//! of network namespaces with nftables rules generated from them (`netns`).
//!
//! External tools: `kubectl` (or a standalone `kustomize`), `yamllint`,
//! `kubernetes-validate`, and for the lab `ip`, `nft` and `python3`, as root. A missing
//! tool fails the test with the install hint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use slackgate_policy::{BotToken, SecretRef, SecretSource, StateBackend};

mod netns;
mod netpol;

/// The Kubernetes version whose (strict) schemas the manifests must pass.
/// kubernetes-validate ships the schemas in its package; no network is used.
const K8S_VERSION: &str = "1.37.0";

/// The overlays under `deploy/kubernetes/overlays`.
const OVERLAYS: &[&str] = &["ingress", "sidecar", "socket-mode"];

/// How Slack reaches an overlay's gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// Over HTTP: the inbound listeners are the pod's ports.
    Http,
    /// Over the gateway's own Socket Mode WebSockets only: every listener but the admin
    /// one binds loopback and is no container port.
    SocketMode,
}

/// Slack's limit of Socket Mode connections per app (`slackgate_policy::MAX_SOCKET_CONNECTIONS`).
const SLACK_MAX_SOCKETS: u64 = slackgate_policy::MAX_SOCKET_CONNECTIONS as u64;

/// Custom resources kubernetes-validate has no schema for. They are left out of
/// schema validation explicitly (yamllint and the cross-checks still see them);
/// any other resource without a schema fails.
const SKIPPED_CRDS: &[(&str, &str)] = &[("monitoring.coreos.com/v1", "ServiceMonitor")];

/// Every committed Secret value must carry this marker: real secrets never live in git.
const PLACEHOLDER: &str = "REPLACE_ME";

/// A placeholder may go on with `-` and a stand-in of the value's shape
/// (`REPLACE_ME-xoxb-helpdesk-bot-token`): the pod's view gives the loader the stand-in,
/// so a token that is not `xoxb-`, or a state key that is not 32 bytes, fails here.
/// The gateway itself refuses the placeholders.
fn stand_in(value: &str) -> &str {
    value
        .strip_prefix(PLACEHOLDER)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(value)
}

/// After the grace period pingora gives its runtimes this long to stop
/// (`graceful_shutdown_timeout_seconds` in slackgate-proxy).
const RUNTIME_STOP: Duration = Duration::from_secs(5);

/// The label that puts a bot pod behind the gateway's NetworkPolicy.
const UPSTREAM_LABEL: &str = "slackgate/upstream";

// === tools ===

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

fn kube_dir() -> PathBuf {
    deploy_dir().join("kubernetes")
}

const PY_HINT: &str =
    "install it with scripts/deps.sh (pip install -r scripts/python-requirements.txt)";

/// Runs a command; a missing program fails the test with `hint`.
fn run(cmd: &mut Command, hint: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("`{program}` is not installed, and the deploy tests need it: {hint}")
        }
        Err(e) => panic!("running `{program}`: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Renders an overlay with `kubectl kustomize`, or `kustomize build` when only
/// the standalone binary is installed. Rendered once per overlay per test run.
fn render(overlay: &str) -> &'static str {
    static RENDERED: OnceLock<BTreeMap<&'static str, String>> = OnceLock::new();
    let all = RENDERED.get_or_init(|| {
        OVERLAYS
            .iter()
            .map(|&o| {
                let dir = kube_dir().join("overlays").join(o);
                let mut cmd = if on_path("kubectl") || !on_path("kustomize") {
                    let mut c = Command::new("kubectl");
                    c.arg("kustomize");
                    c
                } else {
                    let mut c = Command::new("kustomize");
                    c.arg("build");
                    c
                };
                let out = run(
                    cmd.arg(&dir),
                    "kubectl (which embeds kustomize) or kustomize is needed to render the overlays",
                );
                assert!(out.status.success(), "kustomize {o} failed:\n{}", text(&out));
                (o, String::from_utf8(out.stdout).expect("utf-8 output"))
            })
            .collect()
    });
    all.get(overlay).expect("a known overlay")
}

// === YAML ===

/// Splits a YAML stream into its documents' texts (comment-only documents dropped).
fn split_docs(stream: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in stream.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// YAML to JSON with every scalar as a string (numbers are parsed where used).
fn to_json(node: &marked_yaml::Node) -> Value {
    match node {
        marked_yaml::Node::Scalar(s) => Value::String(s.as_str().to_owned()),
        marked_yaml::Node::Sequence(s) => Value::Array(s.iter().map(to_json).collect()),
        marked_yaml::Node::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn parse_docs(stream: &str, what: &str) -> Vec<Value> {
    split_docs(stream)
        .iter()
        .map(|d| {
            let node = marked_yaml::parse_yaml(0, d)
                .unwrap_or_else(|e| panic!("{what}: not valid YAML: {e}\n{d}"));
            to_json(&node)
        })
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn num(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn is_crd(doc: &Value) -> bool {
    SKIPPED_CRDS
        .iter()
        .any(|(api, kind)| s(&doc["apiVersion"]) == *api && s(&doc["kind"]) == *kind)
}

/// The rendered objects of one overlay.
#[derive(Debug)]
struct Rendered {
    overlay: &'static str,
    objects: Vec<Value>,
}

impl Rendered {
    fn of(overlay: &'static str) -> Self {
        Rendered {
            overlay,
            objects: parse_docs(render(overlay), overlay),
        }
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| s(&o["kind"]) == kind)
            .collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| s(&o["kind"]) == kind && s(&o["metadata"]["name"]) == name)
            .unwrap_or_else(|| panic!("{}: no {kind} named {name}", self.overlay))
    }

    /// The Services that select pods labelled `labels`.
    fn services_selecting(&self, labels: &Value) -> Vec<&Value> {
        self.all("Service")
            .into_iter()
            .filter(|svc| selects(&svc["spec"]["selector"], labels))
            .collect()
    }

    /// The Service `state.redis.url` names, the Deployment behind it, and the port.
    fn redis<'a>(&self, redis: &'a slackgate_policy::RedisSettings) -> (&Value, &Value, &'a str) {
        let (host, port) = redis.addr.rsplit_once(':').expect("HOST:PORT");
        let svc = self.get("Service", host.split('.').next().unwrap_or(host));
        let deployment = self
            .all("Deployment")
            .into_iter()
            .find(|d| {
                selects(
                    &svc["spec"]["selector"],
                    &d["spec"]["template"]["metadata"]["labels"],
                )
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: no Deployment behind the Redis Service {host}",
                    self.overlay
                )
            });
        (svc, deployment, port)
    }

    /// The Deployment and its container that run slackgate.
    fn gateway(&self) -> (&Value, &Value) {
        self.all("Deployment")
            .into_iter()
            .find_map(|d| {
                items(&d["spec"]["template"]["spec"]["containers"])
                    .iter()
                    .find(|c| s(&c["args"][0]) == "run" && s(&c["image"]).contains("slackgate"))
                    .map(|c| (d, c))
            })
            .unwrap_or_else(|| panic!("{}: no Deployment runs `slackgate run`", self.overlay))
    }
}

/// True when `selector` (a matchLabels map) selects objects labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(sel) = selector.as_object() else {
        return false;
    };
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

// === the pod's view of its files and environment ===

/// What one container sees: files from ConfigMap and Secret volume mounts, and
/// its environment. Implements [`SecretSource`] so the policy loads exactly as
/// it would inside the pod.
#[derive(Debug, Default)]
struct PodView {
    files: BTreeMap<PathBuf, String>,
    /// Files that come from a Secret, with the Secret's type.
    secret_files: BTreeMap<PathBuf, String>,
    /// Files and env vars that come from a Secret: (Secret name, key).
    secret_origin: BTreeMap<String, (String, String)>,
    env: BTreeMap<String, String>,
    secret_env: BTreeSet<String>,
    /// Every mount path, with whether it is writable.
    mounts: BTreeMap<PathBuf, bool>,
}

impl PodView {
    fn new(r: &Rendered, pod: &Value, container: &Value) -> Self {
        let mut view = PodView::default();
        let volumes = items(&pod["volumes"]);
        for m in items(&container["volumeMounts"]) {
            let name = s(&m["name"]);
            let mount = PathBuf::from(s(&m["mountPath"]));
            let read_only = s(&m["readOnly"]) == "true";
            let vol = volumes
                .iter()
                .find(|v| s(&v["name"]) == name)
                .unwrap_or_else(|| panic!("{}: volumeMount {name} has no volume", r.overlay));
            let (data, secret_type, secret_name) = if let Some(cm) = vol.get("configMap") {
                (r.get("ConfigMap", s(&cm["name"]))["data"].clone(), None, "")
            } else if let Some(sec) = vol.get("secret") {
                let secret = r.get("Secret", s(&sec["secretName"]));
                let mut data = secret["stringData"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                if let Some(d) = secret["data"].as_object() {
                    data.extend(d.clone());
                }
                (
                    Value::Object(data),
                    Some(s(&secret["type"]).to_owned()),
                    s(&sec["secretName"]),
                )
            } else {
                view.mounts.insert(mount, !read_only);
                continue;
            };
            // ConfigMap and Secret volumes are read-only whatever the mount says.
            view.mounts.insert(mount.clone(), false);
            let sub_path = s(&m["subPath"]);
            for (key, value) in data.as_object().into_iter().flatten() {
                let path = if sub_path.is_empty() {
                    mount.join(key)
                } else if sub_path == key {
                    mount.clone()
                } else {
                    continue;
                };
                let mut value = s(value);
                if let Some(t) = &secret_type {
                    view.secret_files.insert(path.clone(), t.clone());
                    view.secret_origin.insert(
                        path.display().to_string(),
                        (secret_name.to_owned(), key.clone()),
                    );
                    value = stand_in(value);
                }
                view.files.insert(path, value.to_owned());
            }
        }
        for e in items(&container["env"]) {
            let name = s(&e["name"]).to_owned();
            if let Some(v) = e.get("value") {
                view.env.insert(name, s(v).to_owned());
            } else if let Some(r#ref) = e["valueFrom"].get("secretKeyRef") {
                let secret = r.get("Secret", s(&r#ref["name"]));
                let key = s(&r#ref["key"]);
                let value = secret["stringData"]
                    .get(key)
                    .or_else(|| secret["data"].get(key))
                    .unwrap_or_else(|| {
                        panic!("{}: env {name}: Secret has no key {key}", r.overlay)
                    });
                view.env.insert(name.clone(), stand_in(s(value)).to_owned());
                view.secret_origin.insert(
                    format!("env:{name}"),
                    (s(&r#ref["name"]).to_owned(), key.to_owned()),
                );
                view.secret_env.insert(name);
            }
        }
        view
    }

    fn file(&self, path: &Path, what: &str) -> &str {
        self.files.get(path).unwrap_or_else(|| {
            panic!(
                "{what} {} is not provided by any ConfigMap or Secret mount; mounted files: {:?}",
                path.display(),
                self.files.keys().collect::<Vec<_>>()
            )
        })
    }

    fn writable(&self, dir: &str) -> bool {
        self.mounts.get(Path::new(dir)) == Some(&true)
    }
}

impl SecretSource for PodView {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.files
            .get(path)
            .map(|v| v.clone().into_bytes())
            .ok_or_else(|| std::io::Error::from(ErrorKind::NotFound))
    }
}

/// The gateway's config and policy, loaded from the pod's view.
#[derive(Debug)]
struct Loaded {
    view: PodView,
    config: slackgate_policy::Config,
    policy: slackgate_policy::Policy,
    /// Whether the config names a state key (read and checked by the join).
    state_key: bool,
}

fn load(r: &Rendered, pod: &Value, container: &Value) -> Loaded {
    let view = PodView::new(r, pod, container);
    let args: Vec<&str> = items(&container["args"]).iter().map(s).collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "-c" || w[0] == "--config")
        .map(|w| PathBuf::from(w[1]))
        .unwrap_or_else(|| panic!("{}: slackgate args {args:?} name no -c CONFIG", r.overlay));
    let config_text = view.file(&config_path, "the config file");
    let config = slackgate_policy::compile_config(&config_path, config_text)
        .unwrap_or_else(|e| panic!("{}: the config does not load:\n{e}", r.overlay));
    let policy_text = view.file(&config.policy_path, "the policy file");
    let policy = slackgate_policy::compile_policy(
        &config.policy_path,
        policy_text,
        &view,
        SystemTime::now(),
    )
    .unwrap_or_else(|e| panic!("{}: the policy does not load in the pod:\n{e}", r.overlay));
    // Where config and policy meet (custody needs egress.public_url, webhook URLs under
    // hooks_base, rotating bots' state) and the state key: what `slackgate check` runs.
    let joined = slackgate_policy::Loaded::join(Some(config.clone()), policy, &view)
        .unwrap_or_else(|e| {
            panic!(
                "{}: config and policy do not load together:\n{e}",
                r.overlay
            )
        });
    Loaded {
        view,
        config,
        policy: joined.policy,
        state_key: joined.state_key.is_some(),
    }
}

/// The container port a probe or Service `targetPort` names (by name or number).
fn resolve_port(container: &Value, port: &Value) -> Option<u64> {
    num(port).or_else(|| {
        items(&container["ports"])
            .iter()
            .find(|p| s(&p["name"]) == s(port))
            .and_then(|p| num(&p["containerPort"]))
    })
}

/// The container that declares the port a Service's `targetPort` names.
fn target_port_owner<'a>(pod: &'a Value, port: &Value) -> Option<(&'a Value, u64)> {
    items(&pod["containers"]).iter().find_map(|c| {
        resolve_port(c, port)
            .filter(|_| num(port).is_none())
            .map(|p| (c, p))
    })
}

// === checks shared by both overlays ===

fn check_gateway(r: &Rendered, door: Door) -> Loaded {
    let (deployment, container) = r.gateway();
    let pod = &deployment["spec"]["template"]["spec"];
    let loaded = load(r, pod, container);
    let (config, view) = (&loaded.config, &loaded.view);
    let o = r.overlay;

    // Ports: exactly the config's listeners (in Socket Mode none: they bind loopback) and
    // the admin listener, each exposed one on every interface.
    let admin = config.admin.as_ref().expect("an admin listener").addr;
    let mut config_ports: BTreeSet<u64> = BTreeSet::new();
    match door {
        Door::Http => config_ports.extend(config.listen.iter().map(|l| u64::from(l.addr.port()))),
        Door::SocketMode => {
            for addr in config.listen.iter().map(|l| l.addr) {
                assert!(
                    addr.ip().is_loopback(),
                    "{o}: {addr}: in Socket Mode nothing outside the pod calls the inbound listener; bind 127.0.0.1"
                );
            }
        }
    }
    config_ports.insert(u64::from(admin.port()));
    // The egress door: on every interface it is a container port (the ingress shape's
    // Service); on loopback (the sidecar) only the pod's own containers reach it, and it
    // must not be declared as one.
    if let Some(egress) = &config.egress {
        let addr = egress.listen.addr;
        if addr.ip().is_unspecified() {
            config_ports.insert(u64::from(addr.port()));
        } else {
            assert!(
                addr.ip().is_loopback(),
                "{o}: egress.listen {addr} must be 0.0.0.0 (behind a Service) or loopback (sidecar)"
            );
        }
        assert!(
            egress.slack_api.tls,
            "{o}: egress.slack_api must be https: tokens never travel in plain text"
        );
        assert!(
            egress.public_url.is_some(),
            "{o}: set egress.public_url: without it the bots get Slack's upload URLs, which a \
             bot that may only reach the door cannot use"
        );
    }
    let container_ports: BTreeSet<u64> = items(&container["ports"])
        .iter()
        .filter_map(|p| num(&p["containerPort"]))
        .collect();
    assert_eq!(
        container_ports, config_ports,
        "{o}: container ports must equal the config's listen and admin ports"
    );
    let exposed = match door {
        Door::Http => config.listen.iter().map(|l| l.addr).collect(),
        Door::SocketMode => Vec::new(),
    };
    for addr in exposed.into_iter().chain([admin]) {
        assert!(
            addr.ip().is_unspecified(),
            "{o}: {addr} must bind 0.0.0.0 (or [::]) so Services, probes and scrapes reach it"
        );
    }

    // TLS files come from a kubernetes.io/tls Secret.
    for l in &config.listen {
        if let Some(tls) = &l.tls {
            for f in [&tls.cert, &tls.key] {
                view.file(f, "the TLS file");
                assert_eq!(
                    view.secret_files.get(f).map(String::as_str),
                    Some("kubernetes.io/tls"),
                    "{o}: {} must come from a kubernetes.io/tls Secret",
                    f.display()
                );
            }
        }
    }

    // Probes: liveness /healthz, readiness /readyz, both on the admin port.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(s(&get["path"]), path, "{o}: {probe} must GET {path}");
        assert_eq!(
            resolve_port(container, &get["port"]),
            Some(u64::from(admin.port())),
            "{o}: {probe} must hit the admin port"
        );
    }

    // Every secret the config and policy name comes from a Secret, not a literal.
    let refs = secret_refs(&loaded);
    assert!(
        refs.iter().any(|(what, _)| what.contains("signing secret")),
        "{o}: the policy has no signing secret"
    );
    for (what, source) in &refs {
        match source {
            SecretRef::File(p) => assert!(
                view.secret_files.contains_key(p),
                "{o}: {what}: {} is not a key of a mounted Secret",
                p.display()
            ),
            SecretRef::Env(n) => assert!(
                view.secret_env.contains(n),
                "{o}: {what}: env {n} must come from a secretKeyRef"
            ),
        }
    }
    if let StateBackend::Redis(redis) = &config.state.backend {
        let env = redis
            .password_env
            .as_ref()
            .unwrap_or_else(|| panic!("{o}: Redis without a password (state.redis.password_env)"));
        assert!(
            view.secret_env.contains(env),
            "{o}: state.redis.password_env {env} must come from a secretKeyRef"
        );
    }

    // Graceful shutdown: kubelet's SIGKILL must come after preStop + drain.
    let grace = num(&pod["terminationGracePeriodSeconds"]).unwrap_or_else(|| {
        panic!("{o}: set terminationGracePeriodSeconds explicitly (above limits.shutdown_grace)")
    });
    let pre_stop = num(&container["lifecycle"]["preStop"]["sleep"]["seconds"]).unwrap_or(0);
    let drain = Duration::from_secs(pre_stop) + config.limits.shutdown_grace + RUNTIME_STOP;
    assert!(
        Duration::from_secs(grace) > drain,
        "{o}: terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop}s + \
         shutdown_grace {:?} + pingora's {RUNTIME_STOP:?} runtime stop",
        config.limits.shutdown_grace
    );

    // Hardening.
    let sc = &container["securityContext"];
    let pod_sc = &pod["securityContext"];
    let either = |k: &str| {
        if sc.get(k).is_some() {
            &sc[k]
        } else {
            &pod_sc[k]
        }
    };
    assert_eq!(s(either("runAsNonRoot")), "true", "{o}: runAsNonRoot");
    assert_eq!(
        s(&sc["allowPrivilegeEscalation"]),
        "false",
        "{o}: allowPrivilegeEscalation"
    );
    assert_eq!(
        s(&sc["readOnlyRootFilesystem"]),
        "true",
        "{o}: readOnlyRootFilesystem"
    );
    assert!(
        items(&sc["capabilities"]["drop"])
            .iter()
            .any(|c| s(c) == "ALL"),
        "{o}: capabilities must drop ALL"
    );
    assert_eq!(
        s(&either("seccompProfile")["type"]),
        "RuntimeDefault",
        "{o}: seccompProfile RuntimeDefault"
    );
    assert!(
        view.writable("/tmp"),
        "{o}: the root file system is read-only, so /tmp (upgrade socket) needs a writable volume"
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                container["resources"][kind].get(res).is_some(),
                "{o}: resources.{kind}.{res} must be set"
            );
        }
    }
    let image = s(&container["image"]);
    assert!(
        image.contains(':') && !image.ends_with(":latest"),
        "{o}: image {image} needs a pinned tag (set by the kustomize images transformer)"
    );
    loaded
}

/// Every Secret in the rendered output holds placeholders only.
fn check_placeholders(r: &Rendered) {
    let secrets = r.all("Secret");
    assert!(!secrets.is_empty(), "{}: no Secret rendered", r.overlay);
    for secret in secrets {
        let name = s(&secret["metadata"]["name"]);
        assert!(
            secret.get("data").is_none(),
            "{}: Secret {name} has `data`: commit placeholders in `stringData`, never real values",
            r.overlay
        );
        for (key, value) in secret["stringData"].as_object().into_iter().flatten() {
            assert!(
                s(value).starts_with(PLACEHOLDER),
                "{}: Secret {name} key {key} is not a {PLACEHOLDER} placeholder: real secrets never go into git",
                r.overlay
            );
        }
    }
}

/// The bots' NetworkPolicy (pods labelled [`UPSTREAM_LABEL`]) admits traffic from the
/// gateway pods (`labels`) only.
fn check_bots_admit_only_the_gateway(policies: &[&Value], labels: &Value) {
    let bots = policies
        .iter()
        .find(|p| {
            p["spec"]["podSelector"]["matchLabels"]
                .get(UPSTREAM_LABEL)
                .is_some()
                && items(&p["spec"]["policyTypes"])
                    .iter()
                    .any(|t| s(t) == "Ingress")
        })
        .expect("a NetworkPolicy for the bot pods' ingress");
    assert!(items(&bots["spec"]["policyTypes"])
        .iter()
        .any(|t| s(t) == "Ingress"));
    let rules = items(&bots["spec"]["ingress"]);
    assert!(
        !rules.is_empty(),
        "the bots' NetworkPolicy needs an ingress rule from the gateway"
    );
    for rule in rules {
        let from = items(&rule["from"]);
        assert!(
            !from.is_empty(),
            "a bot ingress rule without `from` admits everyone"
        );
        for peer in from {
            assert!(
                peer.get("ipBlock").is_none()
                    && selects(&peer["podSelector"]["matchLabels"], labels),
                "bot ingress peer {peer} is not the gateway"
            );
        }
    }
}

/// Every secret reference of the config and policy, with what it is for.
fn secret_refs(loaded: &Loaded) -> Vec<(String, SecretRef)> {
    let mut refs = Vec::new();
    let p = &loaded.policy;
    for app in p.apps.values() {
        for secret in app.secrets.iter() {
            refs.push((
                format!("app {} signing secret", app.name),
                secret.source.clone(),
            ));
        }
        if let Some(socket) = &app.socket_mode {
            refs.push((
                format!("app {} socket_mode.app_token", app.name),
                socket.app_token.source.clone(),
            ));
        }
    }
    for route in p.routes.iter() {
        if let Some(resign) = &route.resign {
            refs.push((
                format!("route {} resign", route.name),
                resign.source.clone(),
            ));
        }
    }
    for bot in p.bots.iter() {
        refs.push((format!("bot {} key", bot.name), bot.key.source.clone()));
        match &bot.token {
            BotToken::Static(t) => refs.push((format!("bot {} token", bot.name), t.source.clone())),
            BotToken::Rotating(r) => {
                refs.push((
                    format!("bot {} rotation.client_secret", bot.name),
                    r.client_secret.source.clone(),
                ));
                refs.push((
                    format!("bot {} rotation.refresh_token", bot.name),
                    r.refresh_token.source.clone(),
                ));
            }
        }
    }
    for hook in p.webhooks.iter() {
        refs.push((
            format!("webhook {} url", hook.name),
            hook.url.source.clone(),
        ));
    }
    if let Some(key) = &loaded.config.state.encryption_key {
        refs.push(("state.encryption_key".to_owned(), key.source.clone()));
    }
    refs
}

/// The (Secret, key) a secret reference reads, in the pod's view.
fn origin<'a>(view: &'a PodView, source: &SecretRef) -> Option<&'a (String, String)> {
    match source {
        SecretRef::File(p) => view.secret_origin.get(&p.display().to_string()),
        SecretRef::Env(n) => view.secret_origin.get(&format!("env:{n}")),
    }
}

/// Why `text` looks like a credential, if it does: a Slack token (`xoxb-`, `xoxp-`,
/// `xoxa-`, `xoxr-`, `xoxe.`/`xoxe-`, `xapp-`), or a long run of hex (Slack signing
/// secrets and client secrets are 32 hex digits, gateway keys `openssl rand -hex 24`), or
/// 32 bytes in base64 (a state key).
fn credential_shape(text: &str) -> Option<String> {
    for prefix in [
        "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxe.", "xoxe-", "xapp-",
    ] {
        if text.contains(prefix) {
            return Some(format!("a Slack token ({prefix}...)"));
        }
    }
    let words =
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='));
    for word in words {
        let core = word.trim_end_matches('=');
        if word.len() >= 32 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(format!(
                "{} hex digits (a signing secret or key)",
                word.len()
            ));
        }
        let base64 = core.len() >= 43
            && core
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            && core.bytes().any(|b| b.is_ascii_digit())
            && core.bytes().any(|b| b.is_ascii_uppercase());
        if base64 {
            return Some("a long base64 value (a key)".to_owned());
        }
    }
    None
}

// === tests ===

#[test]
fn yamllint_passes_strict_on_manifests_and_rendered_overlays() {
    let config = deploy_dir().join(".yamllint.yaml");
    // `yamllint --strict` with the repository's rules on `paths` must pass.
    let lint = |paths: &[PathBuf], what: &str| {
        let out = run(
            Command::new("yamllint")
                .arg("--strict")
                .arg("-c")
                .arg(&config)
                .args(paths),
            PY_HINT,
        );
        assert!(out.status.success(), "yamllint on {what}:\n{}", text(&out));
    };
    lint(&[kube_dir(), config.clone()], "deploy/kubernetes");

    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for o in OVERLAYS {
        let f = dir.path().join(format!("{o}.yaml"));
        std::fs::write(&f, render(o)).unwrap();
        files.push(f);
    }
    lint(&files, "the rendered overlays");
}

/// The YAML files of `deploy/kubernetes` by role, from the kustomization files.
#[derive(Debug, Default)]
struct Layout {
    resources: Vec<PathBuf>,
    patches: Vec<PathBuf>,
    generated: Vec<PathBuf>,
    kustomizations: Vec<PathBuf>,
}

fn layout() -> Layout {
    let mut layout = Layout::default();
    let mut dirs = vec![kube_dir().join("base")];
    dirs.extend(OVERLAYS.iter().map(|o| kube_dir().join("overlays").join(o)));
    for dir in dirs {
        let k = dir.join("kustomization.yaml");
        let text = std::fs::read_to_string(&k).unwrap();
        let doc = parse_docs(&text, "kustomization").remove(0);
        for r in items(&doc["resources"]) {
            let p = dir.join(s(r));
            if p.is_file() {
                layout.resources.push(p);
            }
        }
        for p in items(&doc["patches"]) {
            layout.patches.push(dir.join(s(&p["path"])));
        }
        for g in items(&doc["configMapGenerator"])
            .iter()
            .chain(items(&doc["secretGenerator"]))
        {
            for f in items(&g["files"]) {
                let f = s(f);
                layout
                    .generated
                    .push(dir.join(f.rsplit_once('=').map_or(f, |(_, p)| p)));
            }
        }
        layout.kustomizations.push(k);
    }
    layout
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_yaml_file_has_a_role() {
    let l = layout();
    let known: BTreeSet<&PathBuf> = l
        .resources
        .iter()
        .chain(&l.patches)
        .chain(&l.generated)
        .chain(&l.kustomizations)
        .collect();
    let mut all = Vec::new();
    yaml_files(&kube_dir(), &mut all);
    for f in &all {
        assert!(
            known.contains(f),
            "{} is not referenced by any kustomization.yaml (resource, patch or generator file)",
            f.display()
        );
    }
}

fn kubernetes_validate(files: &[PathBuf], expected: usize, what: &str) {
    let out = run(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg("-k")
            .arg(K8S_VERSION)
            .args(files),
        PY_HINT,
    );
    let report = text(&out);
    assert!(
        out.status.success() && !report.contains("WARN") && !report.contains("ERROR"),
        "kubernetes-validate --strict -k {K8S_VERSION} on {what}:\n{report}"
    );
    let passed = report.matches(" passed for resource ").count();
    assert_eq!(
        passed, expected,
        "kubernetes-validate on {what}: {expected} resources sent, {passed} passed:\n{report}"
    );
}

/// Writes the documents that have a schema to `dir/name`; returns how many.
fn without_crds(stream: &str, dir: &Path, name: &str, files: &mut Vec<PathBuf>) -> usize {
    let docs: Vec<String> = split_docs(stream)
        .into_iter()
        .filter(|d| !is_crd(&parse_docs(d, name)[0]))
        .collect();
    if !docs.is_empty() {
        let f = dir.join(name);
        std::fs::write(&f, docs.join("---\n")).unwrap();
        files.push(f);
    }
    docs.len()
}

#[test]
fn kubernetes_validate_passes_on_manifests_and_rendered_overlays() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout();
    let (mut files, mut count) = (Vec::new(), 0);
    for (i, f) in l.resources.iter().enumerate() {
        let stream = std::fs::read_to_string(f).unwrap();
        let name = format!("{i}-{}", f.file_name().unwrap().to_string_lossy());
        count += without_crds(&stream, dir.path(), &name, &mut files);
    }
    kubernetes_validate(&files, count, "the resource files of deploy/kubernetes");

    let (mut files, mut count) = (Vec::new(), 0);
    for o in OVERLAYS {
        count += without_crds(
            render(o),
            dir.path(),
            &format!("rendered-{o}.yaml"),
            &mut files,
        );
    }
    kubernetes_validate(&files, count, "the rendered overlays");
}

#[test]
fn secrets_in_git_are_placeholders() {
    for o in OVERLAYS {
        check_placeholders(&Rendered::of(o));
    }
}

#[test]
fn ingress_overlay_is_consistent_with_the_gateway() {
    let r = Rendered::of("ingress");
    let loaded = check_gateway(&r, Door::Http);
    let (deployment, container) = r.gateway();
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let name = s(&deployment["metadata"]["name"]);
    let admin_port = u64::from(loaded.config.admin.as_ref().unwrap().addr.port());

    // Highly available: two or more replicas, spread, a PDB and an HPA that keep it so.
    assert!(
        num(&deployment["spec"]["replicas"]).unwrap_or(1) >= 2,
        "replicas >= 2"
    );
    assert!(
        pod["affinity"].get("podAntiAffinity").is_some(),
        "gateway pods need podAntiAffinity"
    );
    let pdbs = r.all("PodDisruptionBudget");
    assert!(
        pdbs.iter().any(|p| s(&p["apiVersion"]) == "policy/v1"
            && selects(&p["spec"]["selector"]["matchLabels"], labels)),
        "a policy/v1 PodDisruptionBudget must select the gateway pods"
    );
    let hpa = r
        .all("HorizontalPodAutoscaler")
        .into_iter()
        .find(|h| s(&h["spec"]["scaleTargetRef"]["name"]) == name)
        .expect("a HorizontalPodAutoscaler for the gateway Deployment");
    assert_eq!(s(&hpa["apiVersion"]), "autoscaling/v2");
    assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
    assert!(
        num(&hpa["spec"]["minReplicas"]).unwrap_or(1) >= 2,
        "HPA minReplicas >= 2"
    );

    // Services: the public one reaches a TLS listener, the admin one the admin port.
    let listener_ports: BTreeSet<u64> = loaded
        .config
        .listen
        .iter()
        .filter(|l| l.tls.is_some())
        .map(|l| u64::from(l.addr.port()))
        .collect();
    let egress = loaded
        .config
        .egress
        .as_ref()
        .expect("the ingress gateway runs the egress door (config egress:)");
    let egress_port = Some(u64::from(egress.listen.addr.port()));
    let services = r.services_selecting(labels);
    let mut public = false;
    let mut admin_service = None;
    let mut egress_service = None;
    for svc in &services {
        for p in items(&svc["spec"]["ports"]) {
            let target =
                resolve_port(container, &p["targetPort"]).expect("a resolvable targetPort");
            if listener_ports.contains(&target) {
                public = true;
            } else if Some(target) == egress_port {
                assert_eq!(
                    s(&svc["spec"]["type"]),
                    "ClusterIP",
                    "the egress door is for the cluster's bots only"
                );
                egress_service = Some((
                    s(&svc["metadata"]["name"]).to_owned(),
                    s(&p["port"]).to_owned(),
                ));
            } else if target == admin_port {
                assert_eq!(
                    s(&svc["spec"]["type"]),
                    "ClusterIP",
                    "the admin port (POST /reload) must not be exposed outside the cluster"
                );
                admin_service = Some((*svc, s(&p["name"]).to_owned()));
            } else {
                panic!("Service port {p} reaches no gateway listener");
            }
        }
    }
    assert!(public, "no Service reaches the gateway's TLS listener");
    let (egress_svc, egress_svc_port) = egress_service.expect("a Service for the egress door");
    // The capability URLs the gateway hands out name that Service.
    let public_url = egress.public_url.as_deref().unwrap_or("");
    assert!(
        public_url.starts_with(&format!("http://{egress_svc}:{egress_svc_port}/"))
            || public_url.starts_with(&format!("http://{egress_svc}.")),
        "egress.public_url {public_url} must be the egress Service {egress_svc}:{egress_svc_port}"
    );

    // Shared state: Redis, reached through a Service of this overlay, with its password
    // from the Secret the dev Redis reads too; the state key from a Secret.
    let StateBackend::Redis(redis) = &loaded.config.state.backend else {
        panic!("several replicas need state.backend: redis");
    };
    assert!(
        loaded.state_key,
        "state.encryption_key must be set (from a Secret)"
    );
    let (redis_svc, redis_deployment, port) = r.redis(redis);
    assert_eq!(
        s(&redis_svc["spec"]["type"]),
        "ClusterIP",
        "Redis stays inside the cluster"
    );
    let redis_container = &redis_deployment["spec"]["template"]["spec"]["containers"][0];
    let redis_port = items(&redis_svc["spec"]["ports"])
        .iter()
        .find(|p| s(&p["port"]) == port)
        .unwrap_or_else(|| panic!("the Redis Service has no port {port}"));
    assert!(
        resolve_port(redis_container, &redis_port["targetPort"]).is_some(),
        "the Redis Service's targetPort is not a port of the Redis container"
    );
    let password_env = redis.password_env.as_deref().unwrap();
    let gateway_password = loaded
        .view
        .secret_origin
        .get(&format!("env:{password_env}"))
        .unwrap();
    let redis_view = PodView::new(
        &r,
        &redis_deployment["spec"]["template"]["spec"],
        redis_container,
    );
    assert!(
        redis_view.secret_origin.values().any(|o| o == gateway_password),
        "the dev Redis must take its password from the Secret key the gateway reads ({gateway_password:?})"
    );
    let (admin_svc, admin_port_name) = admin_service.expect("a Service for the admin port");
    let monitor = r
        .all("ServiceMonitor")
        .into_iter()
        .next()
        .expect("a ServiceMonitor");
    assert_eq!(s(&monitor["apiVersion"]), "monitoring.coreos.com/v1");
    assert!(
        selects(
            &monitor["spec"]["selector"]["matchLabels"],
            &admin_svc["metadata"]["labels"]
        ),
        "the ServiceMonitor must select the admin Service"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(
        s(&endpoint["port"]),
        admin_port_name,
        "ServiceMonitor endpoint port"
    );
    assert_eq!(s(&endpoint["path"]), "/metrics", "ServiceMonitor path");

    // NetworkPolicy: bots accept traffic from gateway pods only; the gateway has its own.
    let policies = r.all("NetworkPolicy");
    check_bots_admit_only_the_gateway(&policies, labels);
    let own = policies
        .iter()
        .find(|p| selects(&p["spec"]["podSelector"]["matchLabels"], labels))
        .expect("a NetworkPolicy for the gateway pods");
    let types: Vec<&str> = items(&own["spec"]["policyTypes"]).iter().map(s).collect();
    assert!(
        types.contains(&"Ingress") && types.contains(&"Egress"),
        "gateway policyTypes"
    );
    let admin_rule_open = items(&own["spec"]["ingress"]).iter().any(|rule| {
        items(&rule["from"]).is_empty()
            && (items(&rule["ports"]).is_empty()
                || items(&rule["ports"])
                    .iter()
                    .any(|p| num(&p["port"]) == Some(admin_port)))
    });
    assert!(
        !admin_rule_open,
        "the gateway's NetworkPolicy opens the admin port to everyone"
    );
    assert!(
        s(&own["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"][UPSTREAM_LABEL])
            == "true",
        "the gateway's egress must reach pods labelled {UPSTREAM_LABEL}"
    );

    // The signing-secret volume is readable by the non-root user only through fsGroup.
    assert!(
        pod["securityContext"].get("fsGroup").is_some(),
        "fsGroup lets the non-root gateway read Secret files mounted with mode 0440"
    );
}

#[test]
fn sidecar_overlay_hides_the_bot_behind_the_gateway() {
    let r = Rendered::of("sidecar");
    let loaded = check_gateway(&r, Door::Http);
    let (deployment, gateway) = r.gateway();
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let bots: Vec<&Value> = items(&pod["containers"])
        .iter()
        .filter(|c| s(&c["name"]) != s(&gateway["name"]))
        .collect();
    assert_eq!(bots.len(), 1, "the sidecar pod holds the bot and slackgate");
    let bot = bots[0];

    // The bot listens on loopback, on the port the policy forwards to.
    let env: BTreeMap<&str, &str> = items(&bot["env"])
        .iter()
        .map(|e| (s(&e["name"]), s(&e["value"])))
        .collect();
    assert_eq!(
        env.get("BIND_ADDRESS"),
        Some(&"127.0.0.1"),
        "the bot must bind loopback only"
    );
    let bot_port = env
        .get("PORT")
        .and_then(|p| p.parse::<u64>().ok())
        .expect("bot PORT");
    let mut targets = 0;
    for upstream in loaded.policy.upstreams.values() {
        for t in upstream.targets.iter() {
            targets += 1;
            let (host, port) = t.rsplit_once(':').unwrap();
            assert!(
                host == "127.0.0.1" || host == "localhost",
                "upstream target {t} must be the bot in the same pod, on loopback"
            );
            assert_eq!(
                port.parse::<u64>().ok(),
                Some(bot_port),
                "upstream target {t}"
            );
        }
    }
    assert!(targets > 0);

    // The egress door on loopback, and the bot's SDK pointed at it with its key.
    let egress = loaded
        .config
        .egress
        .as_ref()
        .expect("the sidecar runs the egress door (config egress:)");
    let door = egress.listen.addr;
    assert!(
        door.ip().is_loopback(),
        "the sidecar's egress door stays on loopback"
    );
    let api_url = format!("http://{door}/api/");
    assert!(
        env.values().any(|v| *v == api_url),
        "the bot's env must point its Slack SDK at {api_url} (SLACK_API_URL / base_url)"
    );
    let bot_view = PodView::new(&r, pod, bot);
    for b in loaded.policy.bots.iter() {
        let key = origin(&loaded.view, &b.key.source)
            .unwrap_or_else(|| panic!("bot {}: the key is not from a Secret", b.name));
        assert!(
            bot_view
                .secret_origin
                .iter()
                .any(|(k, o)| k.starts_with("env:") && o == key),
            "the bot must read its gateway key from the Secret key slackgate checks ({key:?})"
        );
        // The real token is the gateway's alone: the bot sees no key of its Secret.
        let BotToken::Static(token) = &b.token else {
            continue;
        };
        let (token_secret, _) = origin(&loaded.view, &token.source)
            .unwrap_or_else(|| panic!("bot {}: the token is not from a Secret", b.name));
        assert!(
            !bot_view
                .secret_origin
                .values()
                .any(|(name, _)| name == token_secret)
                && !items(&bot["envFrom"])
                    .iter()
                    .any(|e| s(&e["secretRef"]["name"]) == token_secret),
            "the bot container must not see Secret {token_secret}: it holds the real token"
        );
        assert_ne!(
            token_secret, &key.0,
            "the token and the bot's key share a Secret"
        );
    }

    // Kubelet probes the pod IP, which a loopback-only bot no longer answers.
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &bot[probe];
        for how in ["httpGet", "tcpSocket", "grpc"] {
            assert!(
                p.get(how).is_none(),
                "bot {probe}.{how} goes to the pod IP and fails once the bot binds 127.0.0.1"
            );
        }
    }

    // The bot's Service now lands on slackgate's listener, never on the bot.
    let listen: BTreeSet<u64> = loaded
        .config
        .listen
        .iter()
        .map(|l| u64::from(l.addr.port()))
        .collect();
    let services = r.services_selecting(labels);
    assert!(!services.is_empty(), "a Service must select the bot's pods");
    for svc in services {
        for p in items(&svc["spec"]["ports"]) {
            let (owner, port) = target_port_owner(pod, &p["targetPort"])
                .or_else(|| num(&p["targetPort"]).map(|n| (gateway, n)))
                .expect("a resolvable targetPort");
            assert_eq!(
                s(&owner["name"]),
                s(&gateway["name"]),
                "Service {} targets container {}: Slack would skip the gateway",
                s(&svc["metadata"]["name"]),
                s(&owner["name"])
            );
            assert!(
                listen.contains(&port),
                "Service port {p} reaches no slackgate listener"
            );
        }
    }
}

#[test]
fn socket_mode_overlay_opens_no_public_door() {
    let r = Rendered::of("socket-mode");
    let loaded = check_gateway(&r, Door::SocketMode);
    let (deployment, container) = r.gateway();
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let name = s(&deployment["metadata"]["name"]);
    let admin_port = u64::from(loaded.config.admin.as_ref().unwrap().addr.port());
    let policy = &loaded.policy;

    // Every app holds its Socket Mode connections and every route belongs to such an
    // app: nothing is left that Slack would have to reach over HTTP.
    assert!(!policy.apps.is_empty() && !policy.routes.is_empty());
    for app in policy.apps.values() {
        assert!(
            app.socket_mode.is_some(),
            "app {} has no socket_mode",
            app.name
        );
    }
    for route in policy.routes.iter() {
        assert!(
            route.app.socket_mode.is_some(),
            "route {} needs Slack to call it over HTTP",
            route.path
        );
    }

    // No way in from outside: no Ingress (nor a Gateway API route), no Service but
    // ClusterIP ones, and those reach the admin port only.
    for kind in ["Ingress", "HTTPRoute", "Gateway"] {
        assert!(
            r.all(kind).is_empty(),
            "Socket Mode needs no {kind}: Slack is reached over the gateway's own WebSockets"
        );
    }
    for svc in r.all("Service") {
        let svc_name = s(&svc["metadata"]["name"]);
        assert_eq!(
            s(&svc["spec"]["type"]),
            "ClusterIP",
            "Service {svc_name} is reachable from outside the cluster"
        );
        assert!(
            svc["spec"].get("externalIPs").is_none(),
            "Service {svc_name} has externalIPs"
        );
    }
    let services = r.services_selecting(labels);
    assert!(!services.is_empty(), "an admin Service for the scrapes");
    for svc in services {
        for p in items(&svc["spec"]["ports"]) {
            assert_eq!(
                resolve_port(container, &p["targetPort"]),
                Some(admin_port),
                "Service port {p} reaches something other than the admin listener"
            );
        }
    }

    // Slack's limit of connections per app holds during a rollout too: (replicas +
    // maxSurge) pods each open `connections`. No autoscaler may raise the count past it.
    let replicas = num(&deployment["spec"]["replicas"]).unwrap_or(1);
    assert!(
        replicas >= 2,
        "a second replica keeps the apps connected through a drain"
    );
    let surge = num(&deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"])
        .expect("maxSurge as a number of pods");
    for app in policy.apps.values() {
        let per_pod = u64::from(app.socket_mode.as_ref().unwrap().connections);
        assert!(
            (replicas + surge) * per_pod <= SLACK_MAX_SOCKETS,
            "app {}: ({replicas} replicas + {surge} surge) x {per_pod} connections exceeds \
             Slack's {SLACK_MAX_SOCKETS} per app",
            app.name
        );
    }
    assert!(
        !r.all("HorizontalPodAutoscaler")
            .iter()
            .any(|h| s(&h["spec"]["scaleTargetRef"]["name"]) == name),
        "an autoscaler would open more connections than Slack allows per app"
    );
    assert!(
        r.all("PodDisruptionBudget")
            .iter()
            .any(|p| selects(&p["spec"]["selector"]["matchLabels"], labels)),
        "a PodDisruptionBudget keeps one pod connected through node drains"
    );

    // The gateway's NetworkPolicy admits the admin port from named peers only, and lets
    // the gateway out to Slack on 443; the bots' admits only the gateway.
    let policies = r.all("NetworkPolicy");
    let own = policies
        .iter()
        .find(|p| selects(&p["spec"]["podSelector"]["matchLabels"], labels))
        .expect("a NetworkPolicy for the gateway pods");
    let types: Vec<&str> = items(&own["spec"]["policyTypes"]).iter().map(s).collect();
    assert!(types.contains(&"Ingress") && types.contains(&"Egress"));
    for rule in items(&own["spec"]["ingress"]) {
        assert!(
            !items(&rule["from"]).is_empty(),
            "an ingress rule without `from` admits everyone: {rule}"
        );
        let ports: Vec<Option<u64>> = items(&rule["ports"])
            .iter()
            .map(|p| num(&p["port"]))
            .collect();
        assert_eq!(
            ports,
            [Some(admin_port)],
            "ingress to anything but the admin port: {rule}"
        );
    }
    assert!(
        items(&own["spec"]["egress"])
            .iter()
            .any(|rule| items(&rule["ports"])
                .iter()
                .any(|p| num(&p["port"]) == Some(443))),
        "the gateway must reach Slack (apps.connections.open, wss://) on 443"
    );
    check_bots_admit_only_the_gateway(&policies, labels);
}

#[test]
fn configmaps_and_env_hold_no_credentials() {
    // The detector itself: what it must catch, and what it must let through.
    for bad in [
        "token: xoxb-1111-2222-abcdef",
        "app_token: xapp-1-A0-123-abc",
        "secret: 8f14e45fceea167a5a36dedd4bea2543",
        "key: c2xhY2tnYXRlLXN0YXRlLWtleS1wbGFjZWhvbGRlcjA=",
    ] {
        assert!(credential_shape(bad).is_some(), "not caught: {bad}");
    }
    for good in [
        "file: /etc/slackgate/tokens/helpdesk-bot-token",
        "url: redis://slackgate-redis:6379/0",
        "slack_api: https://slack.com/api/",
        "methods: [chat.postMessage, reactions.*]",
    ] {
        assert_eq!(credential_shape(good), None, "{good}");
    }

    for o in OVERLAYS {
        let r = Rendered::of(o);
        let maps = r.all("ConfigMap");
        assert!(!maps.is_empty(), "{o}: no ConfigMap rendered");
        for cm in maps {
            let name = s(&cm["metadata"]["name"]);
            for (key, value) in cm["data"].as_object().into_iter().flatten() {
                for (n, line) in s(value).lines().enumerate() {
                    if let Some(why) = credential_shape(line) {
                        panic!(
                            "{o}: ConfigMap {name} key {key} line {}: {why}: credentials belong in \
                             Secrets, referenced with file: or env:",
                            n + 1
                        );
                    }
                }
            }
        }
        // No container gets a credential as a literal env value either.
        for workload in r.all("Deployment") {
            let pod = &workload["spec"]["template"]["spec"];
            for c in items(&pod["containers"])
                .iter()
                .chain(items(&pod["initContainers"]))
            {
                for e in items(&c["env"]) {
                    if let Some(why) = e.get("value").and_then(|v| credential_shape(s(v))) {
                        panic!(
                            "{o}: container {} env {}: {why}: use a secretKeyRef",
                            s(&c["name"]),
                            s(&e["name"])
                        );
                    }
                }
            }
        }
    }
}

// === the lock-down, evaluated ===

/// The namespace the ingress overlay is applied in, in the modelled cluster.
const GATEWAY_NS: &str = "slackgate";

/// The ingress overlay's NetworkPolicies applied to a modelled cluster: the gateway and
/// the Redis pods as rendered, a labelled bot, an unlabelled pod next to them, a pod in
/// another namespace, kube-dns, Prometheus; and addresses outside every pod.
#[derive(Debug)]
struct Model {
    cluster: netpol::Cluster,
    /// Stands for slack.com (a documentation address: public, outside every private range).
    slack: IpAddr,
    /// Internal, non-pod addresses: a private host, cloud metadata, the API server's Service.
    internal: Vec<IpAddr>,
    /// A client on the internet (Slack calling the Request URL).
    client: IpAddr,
    egress_port: u16,
    public_port: u16,
    admin_port: u16,
    slack_port: u16,
    redis_port: u16,
    bot_port: u16,
}

/// A modelled pod: name, namespace, address, labels, named ports.
type PodRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, u16)],
);

/// The pods around the gateway that the policies must keep out, or let in.
const BYSTANDERS: &[PodRow] = &[
    (
        "neighbour",
        GATEWAY_NS,
        "10.244.1.40",
        &[("app.kubernetes.io/name", "wiki")],
        &[("http", 8080)],
    ),
    (
        "stranger",
        "default",
        "10.244.2.40",
        &[("app", "stranger")],
        &[("https", 443)],
    ),
    (
        "dns",
        "kube-system",
        "10.244.0.10",
        &[("k8s-app", "kube-dns")],
        &[("dns", 53)],
    ),
    (
        "prometheus",
        "monitoring",
        "10.244.3.10",
        &[("app.kubernetes.io/name", "prometheus")],
        &[],
    ),
];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn pod_from(name: &str, ns: &str, ip_text: &str, template: &Value) -> netpol::Pod {
    let labels = template["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), s(v).to_owned()))
        .collect();
    let ports = items(&template["spec"]["containers"])
        .iter()
        .flat_map(|c| items(&c["ports"]))
        .filter_map(|p| Some((s(&p["name"]).to_owned(), num(&p["containerPort"])? as u16)))
        .collect();
    netpol::Pod {
        name: name.to_owned(),
        namespace: ns.to_owned(),
        labels,
        ip: ip(ip_text),
        ports,
    }
}

fn modelled_pod(
    name: &str,
    ns: &str,
    ip_text: &str,
    labels: &[(&str, &str)],
    ports: &[(&str, u16)],
) -> netpol::Pod {
    netpol::Pod {
        name: name.to_owned(),
        namespace: ns.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ip: ip(ip_text),
        ports: ports.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

fn ingress_model() -> Model {
    let r = Rendered::of("ingress");
    let loaded = check_gateway(&r, Door::Http);
    let (gateway, _) = r.gateway();
    let config = &loaded.config;
    let egress = config.egress.as_ref().expect("egress door");
    let StateBackend::Redis(redis) = &config.state.backend else {
        panic!("state.backend: redis");
    };
    let (_, redis_deployment, redis_port) = r.redis(redis);
    let bot_port = loaded
        .policy
        .upstreams
        .values()
        .flat_map(|u| u.targets.iter())
        .find_map(|t| t.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .expect("an upstream port");

    let mut cluster = netpol::Cluster::default();
    for ns in [GATEWAY_NS, "kube-system", "monitoring", "default"] {
        cluster.namespaces.insert(
            ns.to_owned(),
            [("kubernetes.io/metadata.name".to_owned(), ns.to_owned())].into(),
        );
    }
    cluster.pods = vec![
        pod_from(
            "gateway",
            GATEWAY_NS,
            "10.244.1.10",
            &gateway["spec"]["template"],
        ),
        pod_from(
            "redis",
            GATEWAY_NS,
            "10.244.1.30",
            &redis_deployment["spec"]["template"],
        ),
        modelled_pod(
            "bot",
            GATEWAY_NS,
            "10.244.1.20",
            &[
                ("app.kubernetes.io/name", "helpdesk-bot"),
                (UPSTREAM_LABEL, "true"),
            ],
            &[("http", bot_port)],
        ),
    ];
    cluster.pods.extend(
        BYSTANDERS
            .iter()
            .map(|(name, ns, ip, labels, ports)| modelled_pod(name, ns, ip, labels, ports)),
    );
    cluster.policies = r
        .all("NetworkPolicy")
        .into_iter()
        .map(|p| (GATEWAY_NS.to_owned(), p.clone()))
        .collect();
    let public_port = config
        .listen
        .iter()
        .find(|l| l.tls.is_some())
        .expect("a TLS listener")
        .addr
        .port();
    Model {
        cluster,
        slack: ip("203.0.113.7"),
        internal: vec![ip("192.168.10.5"), ip("169.254.169.254"), ip("10.96.0.1")],
        client: ip("198.51.100.23"),
        egress_port: egress.listen.addr.port(),
        public_port,
        admin_port: config.admin.as_ref().unwrap().addr.port(),
        slack_port: egress.slack_api.port,
        redis_port: redis_port.parse().unwrap(),
        bot_port,
    }
}

impl Model {
    fn pod(&self, name: &str) -> netpol::End<'_> {
        netpol::End::Pod(self.cluster.pod(name))
    }

    /// Every end of the model: the pods, Slack, the internal addresses, the client.
    fn ends(&self) -> Vec<(String, netpol::End<'_>)> {
        let mut ends: Vec<_> = self
            .cluster
            .pods
            .iter()
            .map(|p| (p.name.clone(), netpol::End::Pod(p)))
            .collect();
        ends.push(("slack".to_owned(), netpol::End::Addr(self.slack)));
        for a in &self.internal {
            ends.push((format!("internal {a}"), netpol::End::Addr(*a)));
        }
        ends.push(("client".to_owned(), netpol::End::Addr(self.client)));
        ends
    }

    /// The ports tried: every port the policies, pods and config name, and common ones.
    fn ports(&self) -> BTreeSet<u16> {
        let mut ports: BTreeSet<u16> = [22, 53, 80, 443, 3000, 5432, 6379, 8080, 8081, 8443, 9090]
            .into_iter()
            .chain([
                self.egress_port,
                self.public_port,
                self.admin_port,
                self.slack_port,
                self.redis_port,
                self.bot_port,
            ])
            .collect();
        ports.extend(
            self.cluster
                .pods
                .iter()
                .flat_map(|p| p.ports.values().copied()),
        );
        for (_, policy) in &self.cluster.policies {
            for dir in ["ingress", "egress"] {
                for rule in items(&policy["spec"][dir]) {
                    ports.extend(
                        items(&rule["ports"])
                            .iter()
                            .filter_map(|p| num(&p["port"]))
                            .map(|p| p as u16),
                    );
                }
            }
        }
        ports
    }

    /// Everything `from` may open: (end name, port, protocol).
    fn reachable(&self, from: netpol::End<'_>) -> BTreeSet<(String, u16, netpol::Proto)> {
        let mut out = BTreeSet::new();
        for (name, end) in self.ends() {
            if end.ip() == from.ip() {
                continue;
            }
            for port in self.ports() {
                for proto in [netpol::Proto::Tcp, netpol::Proto::Udp] {
                    if self.cluster.allowed(from, end, port, proto) {
                        out.insert((name.clone(), port, proto));
                    }
                }
            }
        }
        out
    }

    /// Who may open `port`/TCP on `to`.
    fn admitted(&self, to: netpol::End<'_>, port: u16) -> BTreeSet<String> {
        self.ends()
            .into_iter()
            .filter(|(_, from)| {
                from.ip() != to.ip() && self.cluster.allowed(*from, to, port, netpol::Proto::Tcp)
            })
            .map(|(name, _)| name)
            .collect()
    }
}

#[test]
fn ingress_network_policies_make_the_door_the_only_way_out() {
    use netpol::Proto::{Tcp, Udp};
    let m = ingress_model();
    let t = |name: &str, port: u16, proto| (name.to_owned(), port, proto);

    // A bot may reach nothing but the gateway's egress port and DNS.
    let bot = m.pod("bot");
    let expected: BTreeSet<_> = [
        t("gateway", m.egress_port, Tcp),
        t("dns", 53, Udp),
        t("dns", 53, Tcp),
    ]
    .into();
    let reach = m.reachable(bot);
    let extra: Vec<_> = reach.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&reach).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "a labelled bot pod may reach exactly the egress door and DNS; also reaches {extra:?}, \
         misses {missing:?}"
    );
    // And no rule of the bots' egress opens an address block, whatever the model holds.
    for rule in m
        .cluster
        .rules(m.cluster.pod("bot"), netpol::Direction::Egress)
        .expect("bots are egress-isolated")
    {
        let peers = rule
            .peers
            .expect("a bot egress rule without `to` opens every address");
        assert!(
            peers.iter().all(|p| matches!(p, netpol::Peer::Pods(_))),
            "a bot egress rule opens an ipBlock: {peers:?}"
        );
        assert!(
            rule.ports.is_some(),
            "a bot egress rule without ports opens every port"
        );
    }

    // The gateway reaches Slack on 443 outside the cluster, Redis, the bots and DNS, and
    // nothing else: no private address, no metadata endpoint, no other pod.
    let gateway = m.pod("gateway");
    let reach = m.reachable(gateway);
    for must in [
        t("slack", m.slack_port, Tcp),
        t("redis", m.redis_port, Tcp),
        t("bot", m.bot_port, Tcp),
        t("dns", 53, Udp),
    ] {
        assert!(
            reach.contains(&must),
            "the gateway must reach {must:?}; it reaches {reach:?}"
        );
    }
    for (name, port, proto) in &reach {
        let ok = name == "bot"
            || (name == "redis" && *port == m.redis_port && *proto == Tcp)
            || (name == "dns" && *port == 53)
            || (name == "slack" && *port == m.slack_port && *proto == Tcp)
            || (name == "client" && *port == m.slack_port && *proto == Tcp);
        assert!(
            ok,
            "the gateway may reach {name} on {port}/{}",
            proto.name()
        );
    }
    // The 443 rule spares every private range, whatever pod or node address a cluster uses.
    for private in [
        "10.1.2.3",
        "172.20.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "fd00::1",
    ] {
        assert!(
            !m.cluster
                .allowed(gateway, netpol::End::Addr(ip(private)), m.slack_port, Tcp),
            "the gateway may reach {private}:{}",
            m.slack_port
        );
    }

    // Who gets in: the egress door only from bots, Redis only from the gateway, bots
    // only from the gateway, the admin port only from Prometheus, the public port from all.
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        m.admitted(gateway, m.egress_port),
        set(&["bot"]),
        "egress door"
    );
    assert_eq!(
        m.admitted(m.pod("redis"), m.redis_port),
        set(&["gateway"]),
        "Redis"
    );
    assert_eq!(m.admitted(bot, m.bot_port), set(&["gateway"]), "the bot");
    assert_eq!(
        m.admitted(gateway, m.admin_port),
        set(&["prometheus"]),
        "admin port"
    );
    assert!(
        m.admitted(gateway, m.public_port).contains("client"),
        "public port"
    );
}

#[test]
fn netns_lab_enforces_the_rendered_network_policies() {
    let m = ingress_model();
    let Some(lab) = netns::Lab::start(&m.cluster, &m.ends()) else {
        return; // the reason is printed, and it failed unless SLACKGATE_NETNS_OPTIONAL is set
    };
    use netpol::Proto::{Tcp, Udp};
    // (from, to, port, protocol, open): the pairs that tell the lock-down.
    let probes: Vec<(&str, &str, u16, netpol::Proto, bool)> = vec![
        ("bot", "gateway", m.egress_port, Tcp, true),
        ("bot", "dns", 53, Udp, true),
        ("bot", "dns", 53, Tcp, true),
        ("bot", "slack", m.slack_port, Tcp, false),
        ("bot", "slack", 80, Tcp, false),
        ("bot", "gateway", m.admin_port, Tcp, false),
        ("bot", "gateway", m.public_port, Tcp, false),
        ("bot", "redis", m.redis_port, Tcp, false),
        ("bot", "internal 192.168.10.5", 443, Tcp, false),
        ("bot", "internal 169.254.169.254", 80, Tcp, false),
        ("bot", "neighbour", 8080, Tcp, false),
        ("gateway", "slack", m.slack_port, Tcp, true),
        ("gateway", "redis", m.redis_port, Tcp, true),
        ("gateway", "bot", m.bot_port, Tcp, true),
        ("gateway", "dns", 53, Udp, true),
        ("gateway", "slack", 80, Tcp, false),
        ("gateway", "internal 192.168.10.5", 443, Tcp, false),
        ("gateway", "internal 169.254.169.254", 80, Tcp, false),
        ("gateway", "internal 10.96.0.1", 443, Tcp, false),
        ("gateway", "neighbour", 8080, Tcp, false),
        ("gateway", "stranger", 443, Tcp, false),
        ("neighbour", "gateway", m.egress_port, Tcp, false),
        ("neighbour", "bot", m.bot_port, Tcp, false),
        ("neighbour", "redis", m.redis_port, Tcp, false),
        ("neighbour", "slack", m.slack_port, Tcp, true),
        ("stranger", "gateway", m.egress_port, Tcp, false),
        ("prometheus", "gateway", m.admin_port, Tcp, true),
        ("client", "gateway", m.public_port, Tcp, true),
        ("client", "gateway", m.egress_port, Tcp, false),
        ("client", "bot", m.bot_port, Tcp, false),
    ];
    // The kernel first: real sockets through the rules generated from the policies.
    let results = lab.probe(
        &probes
            .iter()
            .map(|(f, t, p, pr, _)| (*f, *t, *p, *pr))
            .collect::<Vec<_>>(),
    );
    let ends: BTreeMap<String, netpol::End<'_>> = m.ends().into_iter().collect();
    let mut wrong = Vec::new();
    for ((from, to, port, proto, open), got) in probes.iter().zip(&results) {
        let what = format!("{from} -> {to}:{port}/{}", proto.name());
        let want = if *open { "open" } else { "EHOSTUNREACH" };
        if got != want {
            wrong.push(format!("kernel: {what}: wanted {want}, got {got}"));
        }
        if m.cluster.allowed(ends[*from], ends[*to], *port, *proto) != *open {
            wrong.push(format!("evaluator: {what}: wanted {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the lock-down does not hold:\n{}\nnftables rules generated from the rendered policies:\n{}",
        wrong.join("\n"),
        lab.rules()
    );
}

/// deploy/README.md ("Shared state in Redis") says how a managed Redis over TLS with an
/// ACL user is named: the ingress config with a `rediss://` URL, `ca_file` and
/// `username_env` loads, as TLS with that CA and user.
#[test]
fn managed_redis_over_tls_loads_as_the_readme_says() {
    let r = Rendered::of("ingress");
    let (deployment, container) = r.gateway();
    let view = PodView::new(&r, &deployment["spec"]["template"]["spec"], container);
    let path = Path::new("/etc/slackgate/config/config.yaml");
    let text = view.file(path, "the config file");
    let url = "redis://slackgate-redis:6379/0";
    assert!(text.contains(url), "the ingress config names {url}");
    let tls = text.replace(
        &format!("url: {url}"),
        "url: rediss://redis.example.internal:6380/0\n    ca_file: /etc/slackgate/redis/ca.pem\n    username_env: REDIS_USER",
    );
    let config =
        slackgate_policy::compile_config(path, &tls).expect("rediss:// with ca_file loads");
    let slackgate_policy::StateBackend::Redis(redis) = &config.state.backend else {
        panic!("the ingress config's backend is Redis");
    };
    assert!(redis.tls);
    assert_eq!(redis.addr, "redis.example.internal:6380");
    assert_eq!(
        redis.ca_file.as_deref(),
        Some(Path::new("/etc/slackgate/redis/ca.pem"))
    );
    assert_eq!(redis.username_env.as_deref(), Some("REDIS_USER"));
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    for needle in [
        "rediss://",
        "ca_file",
        "username_env",
        "mode: cluster",
        "mode: sentinel",
    ] {
        assert!(
            readme.contains(needle),
            "deploy/README.md must say how: {needle}"
        );
    }
}

#[test]
fn dockerfile_builds_slackgate_into_a_non_root_image() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("docker/Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a builder stage and a runtime stage: {froms:?}"
    );
    assert!(
        froms[0].starts_with("FROM rust:1-bookworm AS builder"),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "FROM gcr.io/distroless/cc-debian12:nonroot");
    assert!(
        dockerfile.contains("install -y --no-install-recommends cmake"),
        "cmake for pingora"
    );
    assert!(dockerfile.contains("cargo build --release --locked -p slackgate"));
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(
        last_stage.contains("\nUSER 65532:65532"),
        "the runtime stage runs as non-root"
    );
    assert!(
        last_stage.contains("\nHEALTHCHECK NONE"),
        "the health check choice is explicit"
    );
    assert!(last_stage.contains("ENTRYPOINT [\"/usr/local/bin/slackgate\"]"));

    // The image exposes every port the Kubernetes configs bind.
    let exposed: BTreeSet<u64> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .filter_map(|p| p.parse().ok())
        .collect();
    for o in OVERLAYS {
        let r = Rendered::of(o);
        let (_, container) = r.gateway();
        for p in items(&container["ports"]) {
            let port = num(&p["containerPort"]).unwrap();
            assert!(exposed.contains(&port), "{o}: port {port} is not EXPOSEd");
        }
    }
}

#[test]
fn dockerignore_keeps_every_workspace_member() {
    let ignore =
        std::fs::read_to_string(deploy_dir().join("docker/Dockerfile.dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for required in [".git", "**/target"] {
        assert!(
            patterns.contains(&required),
            "the build context must leave out {required}"
        );
    }
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members");
    let members: Vec<&str> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.contains(&"deploy/tests"));
    for member in members {
        // A pattern that is a path prefix of a member, not re-included later, drops it.
        let mut dropped = false;
        for p in &patterns {
            let (negated, p) = p.strip_prefix('!').map_or((false, *p), |rest| (true, rest));
            let prefix = p.trim_end_matches('/');
            let hits = member == prefix || member.starts_with(&format!("{prefix}/"));
            if hits {
                dropped = !negated;
            }
        }
        assert!(
            !dropped,
            "Dockerfile.dockerignore drops workspace member {member}: cargo needs it"
        );
    }
}

#[test]
fn readme_documents_the_procedures() {
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    for topic in [
        "## Migrating a legacy bot behind the sidecar",
        "## Rotating a signing secret",
        "## Running as the ingress layer",
        "## Upgrades and draining",
        "## Health checks",
        "## Socket Mode: no public endpoint",
        "## How the manifests are tested",
        "## The egress door in Kubernetes",
        "## Verifying the lock-down",
        "## Shared state in Redis",
        "kubectl exec",
        "SLACKGATE_NETNS_OPTIONAL",
        "terminationGracePeriodSeconds",
        "expires",
        K8S_VERSION,
    ] {
        assert!(readme.contains(topic), "deploy/README.md lacks {topic:?}");
    }
}

#[test]
fn split_docs_drops_comment_only_documents() {
    let docs = split_docs("# head\n---\na: 1\n---\n# only a comment\n--- # tail\nb: 2\n");
    assert_eq!(docs, vec!["a: 1\n".to_string(), "b: 2\n".to_string()]);
}
