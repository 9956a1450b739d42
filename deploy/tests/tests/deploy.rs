//! Checks `deploy/`: renders the Kubernetes overlays with kustomize, lints every
//! manifest with yamllint, validates every resource against the Kubernetes
//! schema with kubernetes-validate, and cross-checks the rendered objects
//! against slackgate's own config and policy loader (the code behind
//! `slackgate check`), so a port, path, secret key or grace period that drifts
//! between the YAML files and the gateway fails here instead of in a cluster.
//!
//! External tools: `kubectl` (or a standalone `kustomize`), `yamllint` and
//! `kubernetes-validate`. A missing tool fails the test with the install hint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use slackgate_policy::{SecretRef, SecretSource};

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
            let (data, secret_type) = if let Some(cm) = vol.get("configMap") {
                (r.get("ConfigMap", s(&cm["name"]))["data"].clone(), None)
            } else if let Some(sec) = vol.get("secret") {
                let secret = r.get("Secret", s(&sec["secretName"]));
                let mut data = secret["stringData"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                if let Some(d) = secret["data"].as_object() {
                    data.extend(d.clone());
                }
                (Value::Object(data), Some(s(&secret["type"]).to_owned()))
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
                if let Some(t) = &secret_type {
                    view.secret_files.insert(path.clone(), t.clone());
                }
                view.files.insert(path, s(value).to_owned());
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
                view.env.insert(name.clone(), s(value).to_owned());
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
    Loaded {
        view,
        config,
        policy,
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

/// Asserts that `source` (a policy credential or secret reference) is read from a mounted
/// Secret's key or a `secretKeyRef` env var of the pod.
fn assert_from_secret(o: &str, view: &PodView, source: &SecretRef, what: &str) {
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
            let egress = config.egress.as_ref().map(|e| e.listen.addr);
            for addr in config.listen.iter().map(|l| l.addr).chain(egress) {
                assert!(
                    addr.ip().is_loopback(),
                    "{o}: {addr}: in Socket Mode nothing outside the pod calls a listener; bind 127.0.0.1"
                );
            }
        }
    }
    config_ports.insert(u64::from(admin.port()));
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

    // Every signing secret and Socket Mode app token the policy names comes from a
    // Secret, not a literal.
    let mut secrets = 0;
    for app in loaded.policy.apps.values() {
        for secret in app.secrets.iter() {
            secrets += 1;
            assert_from_secret(o, view, &secret.source, &format!("app {}", app.name));
        }
        if let Some(socket) = &app.socket_mode {
            let what = format!("app {}: socket_mode app_token", app.name);
            assert_from_secret(o, view, &socket.app_token.source, &what);
        }
    }
    assert!(secrets > 0, "{o}: the policy has no signing secret");

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
            // An app-level token's placeholder keeps the `xapp-` the policy loader requires.
            let value = s(value);
            let value = value.strip_prefix("xapp-").unwrap_or(value);
            assert!(
                value.starts_with(PLACEHOLDER),
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
        })
        .expect("a NetworkPolicy for the bot pods");
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
    let services = r.services_selecting(labels);
    let mut public = false;
    let mut admin_service = None;
    for svc in &services {
        for p in items(&svc["spec"]["ports"]) {
            let target =
                resolve_port(container, &p["targetPort"]).expect("a resolvable targetPort");
            if listener_ports.contains(&target) {
                public = true;
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
