//! The policy model: apps and their signing secrets, upstreams, routes with
//! their IP rules, scopes and rate limits; and the compiler that builds it from
//! a [`PolicySpec`](crate::spec::PolicySpec).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use marked_yaml::{Node, Span, Spanned};
use sha2::{Digest, Sha256};
use slackgate_slack::SigningKey;

use crate::error::{Errors, LoadError, LoadErrors};
use crate::matcher::{GlobSet, IdSet, IpSet};
use crate::secrets::{
    describe_io, is_env_name, looks_secret, trim_secret, SecretRef, SecretSource,
};
use crate::spec::{
    AppSpec, DedupeSpec, LimitKeySpec, ModeSpec, OnDenySpec, PolicySpec, RateLimitSpec, RouteSpec,
    ScopeSpec, SecretRefSpec, SourceIpsSpec, SpannedList, StateFailureSpec, UpstreamSpec,
};
use crate::units::{Rate, RateError};
use crate::yaml::{self, NamedMap, LITERAL_SECRET_FIX, LITERAL_SECRET_MESSAGE};

// === model ===

/// A validated, compiled, immutable policy. Swapped as a whole on reload.
#[derive(Debug)]
pub struct Policy {
    /// The file the policy was loaded from.
    pub source: PathBuf,
    /// The first 16 hex characters of the SHA-256 of the policy file's bytes.
    pub hash: String,
    /// Apps by name.
    pub apps: BTreeMap<Arc<str>, Arc<App>>,
    /// Upstreams by name.
    pub upstreams: BTreeMap<Arc<str>, Arc<Upstream>>,
    /// The routes, looked up by path (and host).
    pub routes: RouteTable,
}

/// A Slack app: its optional app id pin and its signing secrets.
#[derive(Debug)]
pub struct App {
    /// The app's name in the policy.
    pub name: Arc<str>,
    /// When set, a verified payload's `api_app_id` must equal it.
    pub api_app_id: Option<Arc<str>>,
    /// The signing secrets, in policy order. Never empty; each is non-empty.
    pub secrets: Arc<[AppSecret]>,
}

impl App {
    /// The keys that have not expired at `now`, in policy order.
    pub fn live_keys(&self, now: SystemTime) -> impl Iterator<Item = &SigningKey> {
        self.secrets
            .iter()
            .filter(move |s| s.is_live(now))
            .map(|s| &s.key)
    }
}

/// One signing secret of an app.
#[derive(Debug, Clone)]
pub struct AppSecret {
    /// The prepared HMAC key; its id is the secret's `id` in the policy.
    pub key: SigningKey,
    /// After this instant the secret is no longer accepted.
    pub expires: Option<SystemTime>,
    /// Where the value was read from.
    pub source: SecretRef,
}

impl AppSecret {
    /// True when the secret has no expiry or expires after `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// A named set of bot backends.
#[derive(Debug)]
pub struct Upstream {
    /// The upstream's name in the policy.
    pub name: Arc<str>,
    /// Validated `host:port` targets, never empty.
    pub targets: Arc<[Arc<str>]>,
}

/// Whether a route's decisions are enforced or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Denials are answered as denials.
    Enforce,
    /// Denials are logged with `"shadow": true` and the request is forwarded anyway.
    Shadow,
}

impl Mode {
    /// The policy spelling: `enforce` or `shadow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// How a `scope_denied` decision is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnDeny {
    /// 403.
    Reject,
    /// 200 with `X-Slack-No-Retry: 1`, so Slack does not disable the subscription.
    Ack,
}

impl OnDeny {
    /// The policy spelling: `reject` or `ack`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnDeny::Reject => "reject",
            OnDeny::Ack => "ack",
        }
    }
}

/// A route's client IP rule.
#[derive(Debug, Clone, Default)]
pub struct SourceIpRule {
    /// `None` allows any address; `Some` is never empty.
    pub allow: Option<IpSet>,
    /// Addresses denied even when allowed.
    pub deny: IpSet,
}

impl SourceIpRule {
    /// True when `ip` is allowed and not denied.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
    }
}

/// Who may reach a route. Each dimension: `None` = any (key omitted),
/// `Some(set)` = must match one entry; sets are never empty in an `allow`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Enterprise (org) ids, `E…`.
    pub enterprises: Option<IdSet>,
    /// Workspace (team) ids, `T…`.
    pub teams: Option<IdSet>,
    /// Channel ids, `C…`, `G…` or `D…`.
    pub channels: Option<IdSet>,
    /// User ids, `U…` or `W…`, with `@group` references expanded.
    pub users: Option<IdSet>,
    /// Event types, e.g. `app_mention`.
    pub events: Option<IdSet>,
    /// Slash commands, e.g. `/ticket`.
    pub commands: Option<IdSet>,
    /// Action ids / callback ids, `*` globs allowed.
    pub actions: Option<GlobSet>,
}

impl Scope {
    /// True when no dimension is set (the scope says nothing).
    pub fn is_unrestricted(&self) -> bool {
        let Scope {
            enterprises,
            teams,
            channels,
            users,
            events,
            commands,
            actions,
        } = self;
        enterprises.is_none()
            && teams.is_none()
            && channels.is_none()
            && users.is_none()
            && events.is_none()
            && commands.is_none()
            && actions.is_none()
    }
}

/// What a rate limit bucket is keyed on (always verified facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// The payload's team id.
    Team,
    /// The payload's enterprise id.
    Enterprise,
    /// The payload's user id.
    User,
    /// The payload's channel id.
    Channel,
    /// The payload's api_app_id.
    App,
    /// The client IP.
    Ip,
    /// The route itself (one bucket).
    Route,
}

impl LimitKey {
    /// The policy spelling, e.g. `team`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKey::Team => "team",
            LimitKey::Enterprise => "enterprise",
            LimitKey::User => "user",
            LimitKey::Channel => "channel",
            LimitKey::App => "app",
            LimitKey::Ip => "ip",
            LimitKey::Route => "route",
        }
    }
}

/// One token-bucket rate limit of a route.
#[derive(Debug, Clone)]
pub struct RateLimitRule {
    /// What the buckets are keyed on.
    pub per: LimitKey,
    /// The refill rate.
    pub rate: Rate,
    /// The bucket size.
    pub burst: NonZeroU32,
    /// A stable description for audit `rule`, e.g. `rate_limits[0] per team 20/s burst 40`.
    pub label: Arc<str>,
}

/// A route: where requests on a path go and what they must satisfy.
#[derive(Debug)]
pub struct Route {
    /// The route's unique name (audit and metric label).
    pub name: Arc<str>,
    /// The exact request path, starting with `/`.
    pub path: Arc<str>,
    /// When set (lower case, no port), the route matches only this Host.
    pub host: Option<Arc<str>>,
    /// The app whose secrets verify requests on this route.
    pub app: Arc<App>,
    /// Where verified requests are forwarded.
    pub upstream: Arc<Upstream>,
    /// Enforce or shadow.
    pub mode: Mode,
    /// How scope denials are answered.
    pub on_deny: OnDeny,
    /// Only with `mode: shadow`: unverified requests are forwarded too (logged).
    pub allow_unverified_shadow: bool,
    /// Client IP allow/deny.
    pub source_ips: SourceIpRule,
    /// Every set dimension must match.
    pub allow: Scope,
    /// Any matching dimension denies.
    pub deny: Scope,
    /// Rate limits, in policy order.
    pub rate_limits: Arc<[RateLimitRule]>,
    /// Slack retries of an event already delivered with a 2xx are answered 200 and
    /// not forwarded again.
    pub dedupe: Option<Dedupe>,
    /// What happens when the shared state (Redis) is slow or down.
    pub state_failure: StateFailure,
    /// Runtime state the proxy keeps per route (its metric handles), built on first use.
    pub runtime: RouteRuntime,
}

/// A slot for per-route state a runtime builds on first use, for example metric handles
/// looked up once instead of on every request. It lives and dies with the compiled route,
/// so every reload starts with an empty slot. The first type stored wins; asking for
/// another type returns `None`.
#[derive(Default)]
pub struct RouteRuntime(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl RouteRuntime {
    /// The stored value, built by `init` if the slot is empty; `None` when the slot holds
    /// a value of another type.
    pub fn get_or_init<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> T,
    ) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

impl std::fmt::Debug for RouteRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "RouteRuntime(set)"
        } else {
            "RouteRuntime(empty)"
        })
    }
}

/// What identifies a redelivery to absorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedupe {
    /// The Events API `event_id`.
    EventId,
}

/// The answer when the shared-state backend fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateFailure {
    /// Fall back to this replica's own state (counted and alerted); the default.
    #[default]
    FailOpen,
    /// Answer 503 `state_unavailable`.
    FailClosed,
}

impl StateFailure {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StateFailure::FailOpen => "fail_open",
            StateFailure::FailClosed => "fail_closed",
        }
    }
}

/// Routes indexed by exact path.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_path: HashMap<Box<str>, Box<[Arc<Route>]>>,
    all: Box<[Arc<Route>]>,
}

impl RouteTable {
    /// Finds the route for a request. A route with a host matches only that
    /// Host (case-insensitive, any `:port` in the header ignored) and wins over
    /// a route without host on the same path, which matches any Host.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let candidates = self.by_path.get(path)?;
        let host = host.map(strip_port);
        let mut fallback = None;
        for r in candidates.iter() {
            match (&r.host, host) {
                (Some(rh), Some(h)) if rh.eq_ignore_ascii_case(h) => return Some(r),
                (Some(_), _) => {}
                (None, _) => fallback = Some(r),
            }
        }
        fallback
    }

    /// All routes in policy order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.all.iter()
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The route with this name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Route>> {
        self.all.iter().find(|r| &*r.name == name)
    }

    fn from_routes(routes: Vec<Arc<Route>>) -> Self {
        let mut by_path: HashMap<Box<str>, Vec<Arc<Route>>> = HashMap::new();
        for r in &routes {
            by_path
                .entry(Box::from(&*r.path))
                .or_default()
                .push(Arc::clone(r));
        }
        RouteTable {
            by_path: by_path
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            all: routes.into(),
        }
    }
}

/// "host:port" -> "host", "[::1]:8443" -> "[::1]"; other values unchanged.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if host[i + 1..].bytes().all(|b| b.is_ascii_digit())
                && (!host[..i].contains(':') || host[..i].ends_with(']')) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

// === loading ===

/// Reads and compiles a policy file, reading secrets from `secrets`.
/// Relative secret `file:` paths are resolved against the policy file's directory.
pub fn load_policy(
    path: &Path,
    secrets: &dyn SecretSource,
    now: SystemTime,
) -> Result<Policy, LoadErrors> {
    let text = crate::read_text(path)?;
    compile_policy(path, &text, secrets, now)
}

/// Compiles policy text that was read from `source`.
pub fn compile_policy(
    source: &Path,
    text: &str,
    secrets: &dyn SecretSource,
    now: SystemTime,
) -> Result<Policy, LoadErrors> {
    let mut errs = Errors::new(source);
    let policy = yaml::parse(text, &mut errs).and_then(|node| {
        let (spec, partial) = match marked_yaml::from_node::<PolicySpec>(&node) {
            Ok(spec) => (spec, false),
            Err(e) => (partial_spec(&node, &e, &mut errs), true),
        };
        let declared = Declared {
            apps: yaml::key_names(&node, "apps"),
            upstreams: yaml::key_names(&node, "upstreams"),
            groups: yaml::key_names(&node, "groups"),
        };
        let base = source.parent().unwrap_or_else(|| Path::new(""));
        Compiler {
            errs: &mut errs,
            secrets,
            now,
            base,
            partial,
            declared,
        }
        .policy(spec, source, policy_hash(text.as_bytes()))
    });
    errs.finish(policy)
}

/// The first 16 hex characters of the SHA-256 of `bytes`.
pub fn policy_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..8])
}

/// The top-level keys of a policy, as in [`PolicySpec`].
const POLICY_KEYS: &[&str] = &["version", "apps", "upstreams", "groups", "routes"];

/// Builds as much of a [`PolicySpec`] as deserializes, reporting every
/// structural error, so that semantic checks still run on the valid parts.
fn partial_spec(node: &Node, err: &marked_yaml::FromNodeError, errs: &mut Errors) -> PolicySpec {
    let before = errs.len();
    yaml::check_top_level(node, POLICY_KEYS, &["version", "routes"], errs);
    let get = |key: &str| node.as_mapping().and_then(|m| m.get_node(key));
    let version = yaml::probe_key::<Spanned<u32>>(node, "version", errs)
        .unwrap_or_else(|| Spanned::new(*node.span(), 1));
    let apps = get("apps")
        .map(|n| yaml::probe_named::<AppSpec>(n, "apps", errs))
        .unwrap_or_default();
    let upstreams = get("upstreams")
        .map(|n| yaml::probe_named::<UpstreamSpec>(n, "upstreams", errs))
        .unwrap_or_default();
    let groups = get("groups")
        .map(|n| yaml::probe_named::<SpannedList>(n, "groups", errs))
        .unwrap_or_default();
    let routes = get("routes")
        .map(|n| yaml::probe_items::<RouteSpec>(n, "routes", errs))
        .unwrap_or_else(|| Spanned::new(*node.span(), Vec::new()));
    if errs.len() == before {
        yaml::report_from_node(err, "", errs);
    }
    PolicySpec {
        version,
        apps,
        upstreams,
        groups,
        routes,
    }
}

/// Every name declared under `apps`, `upstreams` and `groups`, valid or not:
/// a reference to an invalid entry is not also reported as dangling.
struct Declared {
    apps: HashSet<String>,
    upstreams: HashSet<String>,
    groups: HashSet<String>,
}

struct Compiler<'a> {
    errs: &'a mut Errors,
    secrets: &'a dyn SecretSource,
    now: SystemTime,
    base: &'a Path,
    /// The spec holds only the parts that deserialized; structural errors were reported.
    partial: bool,
    declared: Declared,
}

/// Names of apps, upstreams, groups, routes and secret ids: they become metric
/// labels and audit fields, so they are kept short and plain.
fn is_name(s: &str) -> bool {
    !looks_secret(s)
        && !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// A name as shown in messages: names that fail [`is_name`] (and so might be a
/// pasted secret) are not echoed.
fn shown(s: &str) -> String {
    if is_name(s) {
        s.to_string()
    } else {
        "(name not shown)".to_string()
    }
}

/// A Slack id: starts with one of `prefixes`, then upper-case letters and digits.
fn is_slack_id(s: &str, prefixes: &[u8]) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b.len() <= 32
        && prefixes.contains(&b[0])
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn line_of(span: &Span) -> usize {
    span.start().map_or(0, |m| m.line())
}

fn names<'k>(keys: impl Iterator<Item = &'k str>) -> String {
    let v: Vec<String> = keys.map(|k| format!("`{k}`")).collect();
    if v.is_empty() {
        "(none defined)".to_string()
    } else {
        v.join(", ")
    }
}

/// The kinds of scope dimension, for validation and messages.
#[derive(Clone, Copy)]
enum Dim {
    Enterprises,
    Teams,
    Channels,
    Users,
    Events,
    Commands,
    Actions,
}

impl Dim {
    fn key(self) -> &'static str {
        match self {
            Dim::Enterprises => "enterprises",
            Dim::Teams => "teams",
            Dim::Channels => "channels",
            Dim::Users => "users",
            Dim::Events => "events",
            Dim::Commands => "commands",
            Dim::Actions => "actions",
        }
    }

    /// Checks one entry; returns the problem and its fix.
    fn check(self, s: &str) -> Result<(), (&'static str, &'static str)> {
        let ok = match self {
            Dim::Enterprises => is_slack_id(s, b"E"),
            Dim::Teams => is_slack_id(s, b"T"),
            Dim::Channels => is_slack_id(s, b"CGD"),
            Dim::Users => is_slack_id(s, b"UW"),
            Dim::Events => {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
            }
            Dim::Commands => {
                s.len() >= 2
                    && s.len() <= 64
                    && s.starts_with('/')
                    && !s[1..].contains(char::is_whitespace)
                    && !s[1..].contains('/')
            }
            Dim::Actions => !s.is_empty() && s.len() <= 255,
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Dim::Enterprises => (
                "is not a Slack enterprise id",
                "write an enterprise (org) id such as E0123ABCD",
            ),
            Dim::Teams => (
                "is not a Slack team id",
                "write a workspace (team) id such as T0123ABCD",
            ),
            Dim::Channels => (
                "is not a Slack channel id",
                "write a channel id such as C0123ABCD (G… or D… for private and direct)",
            ),
            Dim::Users => (
                "is not a Slack user id or @group",
                "write a user id such as U0123ABCD (or W…), or \"@group\" for a group defined under `groups:`",
            ),
            Dim::Events => (
                "is not a Slack event type",
                "write an event type such as app_mention or message",
            ),
            Dim::Commands => (
                "is not a slash command",
                "write the command with its slash, e.g. /ticket",
            ),
            Dim::Actions => (
                "is not an action id",
                "write an action_id or callback_id, optionally with * globs, e.g. ticket_*",
            ),
        })
    }
}

/// Groups by name: (position of the name, expanded members).
type Groups = HashMap<String, Vec<String>>;

impl Compiler<'_> {
    fn policy(&mut self, spec: PolicySpec, source: &Path, hash: String) -> Option<Policy> {
        let PolicySpec {
            version,
            apps,
            upstreams,
            groups,
            routes,
        } = spec;
        let start = self.errs.len();

        if *version != 1 {
            self.errs.at(
                version.span(),
                format!("unsupported policy version {}", *version),
                "set `version: 1` (the only version this slackgate understands)",
            );
        }

        let mut compiled_apps: BTreeMap<Arc<str>, Arc<App>> = BTreeMap::new();
        for (name, spec) in apps.0 {
            if let Some(app) = self.app(&name, spec) {
                compiled_apps.insert(Arc::clone(&app.name), Arc::new(app));
            }
        }

        let mut compiled_upstreams: BTreeMap<Arc<str>, Arc<Upstream>> = BTreeMap::new();
        for (name, spec) in upstreams.0 {
            if let Some(u) = self.upstream(&name, spec) {
                compiled_upstreams.insert(Arc::clone(&u.name), Arc::new(u));
            }
        }

        let groups = self.groups(groups);

        if routes.is_empty() && !self.partial {
            self.errs.at(
                routes.span(),
                "the policy has no routes: every request would be answered 404 no_route",
                "add at least one route under `routes:`",
            );
        }
        let mut compiled_routes = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut by_path: HashMap<(Option<String>, String), (String, usize)> = HashMap::new();
        let refs = Refs {
            apps: &compiled_apps,
            upstreams: &compiled_upstreams,
            groups: &groups,
        };
        for spec in routes.iter() {
            if let Some(r) = self.route(spec, &refs, &mut by_name, &mut by_path) {
                compiled_routes.push(Arc::new(r));
            }
        }

        (self.errs.len() == start).then(|| Policy {
            source: source.to_path_buf(),
            hash,
            apps: compiled_apps,
            upstreams: compiled_upstreams,
            routes: RouteTable::from_routes(compiled_routes),
        })
    }

    fn check_name(&mut self, what: &str, name: &Spanned<String>) -> bool {
        if is_name(name) {
            return true;
        }
        self.errs.at(
            name.span(),
            format!("invalid {what} name"),
            "use 1-64 letters, digits, '_', '-' or '.'",
        );
        false
    }

    // --- apps and secrets ---

    fn app(&mut self, name: &Spanned<String>, spec: AppSpec) -> Option<App> {
        let AppSpec {
            api_app_id,
            signing_secrets,
        } = spec;
        let start = self.errs.len();
        self.check_name("app", name);
        let app_name: Arc<str> = Arc::from(name.as_str());
        let app_label = shown(name);

        let api_app_id = api_app_id.and_then(|id| {
            if is_slack_id(&id, b"A") {
                Some(Arc::<str>::from(id.as_str()))
            } else {
                self.errs.at(
                    id.span(),
                    format!("`api_app_id` of app `{app_label}` is not a Slack app id"),
                    "write the app id from the app's Basic Information page, e.g. A0123ABCDEF (starts with A), or omit the key",
                );
                None
            }
        });

        if signing_secrets.is_empty() {
            self.errs.at(
                signing_secrets.span(),
                format!("app `{app_label}` has no signing secrets: its routes could never verify a request"),
                "add at least one entry such as `- { id: current, env: MY_APP_SIGNING_SECRET }`",
            );
        }
        let list_span = *signing_secrets.span();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut secrets = Vec::new();
        for spec in signing_secrets.iter() {
            if let Some(s) = self.secret(&app_label, spec, list_span, &mut seen) {
                secrets.push(s);
            }
        }
        if self.errs.len() == start && secrets.iter().all(|s| !s.is_live(self.now)) {
            self.errs.at(
                &list_span,
                format!("every signing secret of app `{app_label}` has expired"),
                "add the app's current signing secret (Slack app settings, Basic Information) or move `expires` into the future",
            );
        }
        (self.errs.len() == start).then(|| App {
            name: app_name,
            api_app_id,
            secrets: secrets.into(),
        })
    }

    fn secret(
        &mut self,
        app: &str,
        spec: &SecretRefSpec,
        list_span: Span,
        seen: &mut HashMap<String, usize>,
    ) -> Option<AppSecret> {
        let SecretRefSpec {
            id,
            env,
            file,
            expires,
            secret,
            value,
            signing_secret,
            token,
            password,
        } = spec;
        let start = self.errs.len();
        for literal in [secret, value, signing_secret, token, password]
            .into_iter()
            .flatten()
        {
            self.errs
                .at(literal.span(), LITERAL_SECRET_MESSAGE, LITERAL_SECRET_FIX);
        }

        let Some(id) = id else {
            let at = env
                .as_ref()
                .map(|s| *s.span())
                .or_else(|| file.as_ref().map(|s| *s.span()))
                .or_else(|| expires.as_ref().map(|s| *s.span()))
                .unwrap_or(list_span);
            self.errs.at(
                &at,
                format!("a signing secret of app `{app}` has no `id`"),
                "add `id: current` (a short name recorded in audit logs as secret_id)",
            );
            return None;
        };
        if self.check_name("secret id", id) {
            if let Some(first) = seen.insert(id.to_string(), line_of(id.span())) {
                self.errs.at(
                    id.span(),
                    format!(
                        "duplicate secret id `{}` in app `{app}` (first on line {first})",
                        id.as_str()
                    ),
                    "give each signing secret of an app its own id, e.g. current and previous",
                );
            }
        }

        let expires =
            expires
                .as_ref()
                .and_then(|e| match humantime::parse_rfc3339_weak(e.trim()) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        self.errs.at(
                            e.span(),
                            format!(
                            "`expires` of secret `{}` in app `{app}` is not an RFC 3339 timestamp",
                            id.as_str()
                        ),
                            "write a UTC timestamp such as 2026-12-31T00:00:00Z",
                        );
                        None
                    }
                });

        let what = format!("secret `{}` of app `{app}`", shown(id));
        let (source, bytes) = match (env, file) {
            (Some(_), Some(f)) => {
                self.errs.at(
                    f.span(),
                    format!("{what} has both `env` and `file`"),
                    "keep exactly one of `env:` or `file:`",
                );
                return None;
            }
            (None, None) => {
                if self.errs.len() == start {
                    self.errs.at(
                        id.span(),
                        format!("{what} has neither `env` nor `file`"),
                        "add `env: VAR_NAME` or `file: /path/to/secret`",
                    );
                }
                return None;
            }
            (Some(var), None) => {
                if matches!(var.trim(), "" | "~" | "null") {
                    self.errs.at(
                        var.span(),
                        format!("`env` of {what} is empty"),
                        "write the name of the environment variable that holds the secret, e.g. `env: HELPDESK_SIGNING_SECRET`",
                    );
                    return None;
                }
                if !is_env_name(var) || looks_secret(var) {
                    self.errs.at(
                        var.span(),
                        format!("`env` of {what} looks like a literal secret, not an environment variable name"),
                        "write the NAME of the variable that holds the secret, e.g. `env: HELPDESK_SIGNING_SECRET` (letters, digits and _); if this was the secret itself, rotate it",
                    );
                    return None;
                }
                match self.secrets.env(var) {
                    None => {
                        self.errs.at(
                            var.span(),
                            format!("environment variable {} ({what}) is not set", var.as_str()),
                            format!("set {} in the gateway's environment (e.g. from a Kubernetes Secret), or remove this secret", var.as_str()),
                        );
                        return None;
                    }
                    Some(v) if trim_secret(v.as_bytes()).is_empty() => {
                        self.errs.at(
                            var.span(),
                            format!("environment variable {} ({what}) is empty", var.as_str()),
                            format!("put the app's signing secret in {}", var.as_str()),
                        );
                        return None;
                    }
                    Some(v) => (
                        SecretRef::Env(var.to_string()),
                        trim_secret(v.as_bytes()).to_vec(),
                    ),
                }
            }
            (None, Some(f)) => {
                if f.trim().is_empty() {
                    self.errs.at(
                        f.span(),
                        format!("`file` of {what} is empty"),
                        "write the path of the file that holds the secret",
                    );
                    return None;
                }
                if looks_secret(f) {
                    self.errs.at(
                        f.span(),
                        format!("`file` of {what} looks like a literal secret, not a path"),
                        "write the path of the file that holds the secret, e.g. `file: /run/secrets/helpdesk-signing-secret`; if this was the secret itself, rotate it",
                    );
                    return None;
                }
                let path = self.base.join(f.as_str());
                match self.secrets.read_file(&path) {
                    Err(e) => {
                        self.errs.at(
                            f.span(),
                            format!("cannot read secret file {} ({what}): {}", path.display(), describe_io(&e)),
                            "mount the secret file at this path and make it readable by the gateway, or fix the path (relative paths start at the policy file's directory)",
                        );
                        return None;
                    }
                    Ok(b) if trim_secret(&b).is_empty() => {
                        self.errs.at(
                            f.span(),
                            format!("secret file {} ({what}) is empty", path.display()),
                            "put the app's signing secret in the file",
                        );
                        return None;
                    }
                    Ok(b) => (SecretRef::File(path), trim_secret(&b).to_vec()),
                }
            }
        };
        if self.errs.len() != start {
            return None;
        }
        match SigningKey::new(id.as_str(), &bytes) {
            Ok(key) => Some(AppSecret {
                key,
                expires,
                source,
            }),
            Err(_) => {
                self.errs.at(
                    id.span(),
                    format!("{what} cannot be used as a signing key"),
                    "check the secret's value",
                );
                None
            }
        }
    }

    // --- upstreams and groups ---

    fn upstream(&mut self, name: &Spanned<String>, spec: UpstreamSpec) -> Option<Upstream> {
        let UpstreamSpec { targets } = spec;
        let start = self.errs.len();
        self.check_name("upstream", name);
        if targets.is_empty() {
            self.errs.at(
                targets.span(),
                format!("upstream `{}` has no targets", shown(name)),
                "add at least one `host:port` target",
            );
        }
        let mut out = Vec::new();
        for t in targets.iter() {
            match check_target(t) {
                Ok(()) => out.push(Arc::<str>::from(t.trim())),
                Err(fix) => self.errs.at(
                    t.span(),
                    format!("invalid target in upstream `{}`", shown(name)),
                    fix,
                ),
            }
        }
        (self.errs.len() == start).then(|| Upstream {
            name: Arc::from(name.as_str()),
            targets: out.into(),
        })
    }

    fn groups(&mut self, groups: NamedMap<SpannedList>) -> Groups {
        let mut out = Groups::new();
        for (name, members) in groups.0 {
            let start = self.errs.len();
            self.check_name("group", &name);
            if members.is_empty() {
                self.errs.at(
                    members.span(),
                    format!("group `{}` is empty", shown(&name)),
                    "add user ids, or remove the group and its references",
                );
            }
            for m in members.iter() {
                if m.starts_with('@') {
                    self.errs.at(
                        m.span(),
                        format!(
                            "group `{}` contains a group reference; groups cannot be nested",
                            shown(&name)
                        ),
                        "list the user ids directly",
                    );
                } else if let Err((problem, fix)) = Dim::Users.check(m) {
                    self.errs.at(
                        m.span(),
                        format!("member of group `{}` {problem}", shown(&name)),
                        fix,
                    );
                }
            }
            if self.errs.len() == start {
                out.insert(
                    name.to_string(),
                    members.iter().map(|m| m.to_string()).collect(),
                );
            }
        }
        out
    }

    // --- routes ---

    fn route(
        &mut self,
        spec: &RouteSpec,
        refs: &Refs<'_>,
        by_name: &mut HashMap<String, usize>,
        by_path: &mut HashMap<(Option<String>, String), (String, usize)>,
    ) -> Option<Route> {
        let RouteSpec {
            name,
            path,
            host,
            app,
            upstream,
            mode,
            on_deny,
            allow_unverified_shadow,
            source_ips,
            allow,
            deny,
            rate_limits,
            dedupe,
            state_failure,
        } = spec;
        let start = self.errs.len();

        if self.check_name("route", name) {
            if let Some(first) = by_name.insert(name.to_string(), line_of(name.span())) {
                self.errs.at(
                    name.span(),
                    format!(
                        "duplicate route name `{}` (first on line {first})",
                        name.as_str()
                    ),
                    "give every route a unique name: it labels metrics and audit records",
                );
            }
        }
        let rname_shown = shown(name);
        let rname = rname_shown.as_str();

        let path_ok = if !path.starts_with('/') {
            self.errs.at(
                path.span(),
                format!("path of route `{rname}` must start with '/'"),
                "write the request path Slack posts to, e.g. /slack/events",
            );
            false
        } else if path.len() > 1024
            || path.contains(['?', '#'])
            || path.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            self.errs.at(
                path.span(),
                format!("path of route `{rname}` must be a plain path"),
                "remove any query string (?...), fragment (#...) and spaces; routes match the exact path",
            );
            false
        } else {
            true
        };

        let host_norm = host.as_ref().and_then(|h| {
            let lower = h.trim().to_ascii_lowercase();
            let ok = !lower.is_empty()
                && !looks_secret(&lower)
                && lower.len() <= 253
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if ok {
                Some(lower)
            } else {
                self.errs.at(
                    h.span(),
                    format!("host of route `{rname}` is not a host name"),
                    "write the host name only, without scheme or port, e.g. slack.example.com, or omit `host` to match any host",
                );
                None
            }
        });

        if path_ok && (host.is_none() || host_norm.is_some()) {
            let key = (host_norm.clone(), path.to_string());
            if let Some((first, line)) = by_path.get(&key) {
                let on_host = host_norm
                    .as_deref()
                    .map(|h| format!(" on host {h}"))
                    .unwrap_or_default();
                self.errs.at(
                    path.span(),
                    format!(
                        "duplicate route for path {}{on_host}: route `{first}` on line {line} already serves it",
                        path.as_str()
                    ),
                    "give each route its own path (or host), or merge the two routes",
                );
            } else {
                by_path.insert(key, (rname.to_string(), line_of(path.span())));
            }
        }

        let app_ref = match refs.apps.get(app.as_str()) {
            Some(a) => Some(Arc::clone(a)),
            None => {
                if !self.declared.apps.contains(app.as_str()) {
                    self.errs.at(
                        app.span(),
                        format!("route `{rname}` references unknown app `{}`", shown(app)),
                        format!(
                            "define it under `apps:` or use one of: {}",
                            names(refs.apps.keys().map(|k| &**k))
                        ),
                    );
                }
                None
            }
        };
        let upstream_ref = match refs.upstreams.get(upstream.as_str()) {
            Some(u) => Some(Arc::clone(u)),
            None => {
                if !self.declared.upstreams.contains(upstream.as_str()) {
                    self.errs.at(
                        upstream.span(),
                        format!(
                            "route `{rname}` references unknown upstream `{}`",
                            shown(upstream)
                        ),
                        format!(
                            "define it under `upstreams:` or use one of: {}",
                            names(refs.upstreams.keys().map(|k| &**k))
                        ),
                    );
                }
                None
            }
        };

        let mode = match mode.as_ref().map(|m| **m) {
            None | Some(ModeSpec::Enforce) => Mode::Enforce,
            Some(ModeSpec::Shadow) => Mode::Shadow,
        };
        let on_deny = match on_deny.as_ref().map(|o| **o) {
            None | Some(OnDenySpec::Reject) => OnDeny::Reject,
            Some(OnDenySpec::Ack) => OnDeny::Ack,
        };
        let allow_unverified_shadow = match allow_unverified_shadow {
            Some(flag) if mode == Mode::Enforce => {
                self.errs.at(
                    flag.span(),
                    format!("`allow_unverified_shadow` on route `{rname}` only applies to `mode: shadow`"),
                    "remove `allow_unverified_shadow`, or set `mode: shadow` on this route",
                );
                false
            }
            Some(flag) => **flag,
            None => false,
        };

        let source_ips = self.source_ips(rname, source_ips.as_ref());
        let allow = self.scope(rname, "allow", allow.as_ref(), refs, true);
        let deny = self.scope(rname, "deny", deny.as_ref(), refs, false);
        let rate_limits = self.rate_limits(rname, rate_limits.as_deref().unwrap_or_default());
        let dedupe = dedupe.as_ref().map(|d| match **d {
            DedupeSpec::EventId => Dedupe::EventId,
        });
        let state_failure = match state_failure.as_ref().map(|f| **f) {
            None | Some(StateFailureSpec::FailOpen) => StateFailure::FailOpen,
            Some(StateFailureSpec::FailClosed) => StateFailure::FailClosed,
        };

        if self.errs.len() != start {
            return None;
        }
        Some(Route {
            name: Arc::from(name.as_str()),
            path: Arc::from(path.as_str()),
            host: host_norm.map(Arc::from),
            app: app_ref?,
            upstream: upstream_ref?,
            mode,
            on_deny,
            allow_unverified_shadow,
            source_ips,
            allow,
            deny,
            rate_limits: rate_limits.into(),
            dedupe,
            state_failure,
            runtime: RouteRuntime::default(),
        })
    }

    fn source_ips(&mut self, route: &str, spec: Option<&SourceIpsSpec>) -> SourceIpRule {
        let Some(SourceIpsSpec { allow, deny }) = spec else {
            return SourceIpRule::default();
        };
        let allow = allow.as_ref().map(|list| {
            if list.is_empty() {
                self.empty_allow(route, "source_ips.allow", list.span());
            }
            self.ipset(list)
        });
        let deny = deny.as_ref().map(|l| self.ipset(l)).unwrap_or_default();
        SourceIpRule { allow, deny }
    }

    /// Parses a CIDR list into an [`IpSet`], reporting every bad entry.
    pub(crate) fn ipset(&mut self, list: &SpannedList) -> IpSet {
        parse_cidrs(list, self.errs)
    }

    fn empty_allow(&mut self, route: &str, key: &str, span: &Span) {
        self.errs.at(
            span,
            format!("`{key}` of route `{route}` is an empty list, which would deny everything"),
            "omit the key to allow any, or list at least one entry",
        );
    }

    fn scope(
        &mut self,
        route: &str,
        which: &str,
        spec: Option<&ScopeSpec>,
        refs: &Refs<'_>,
        is_allow: bool,
    ) -> Scope {
        let Some(ScopeSpec {
            enterprises,
            teams,
            channels,
            users,
            events,
            commands,
            actions,
        }) = spec
        else {
            return Scope::default();
        };
        let mut ids = |dim: Dim, list: &Option<SpannedList>| -> Option<IdSet> {
            let list = list.as_ref()?;
            self.scope_list(route, which, dim, list, refs, is_allow)
                .map(|v| v.into_iter().collect())
        };
        let enterprises = ids(Dim::Enterprises, enterprises);
        let teams = ids(Dim::Teams, teams);
        let channels = ids(Dim::Channels, channels);
        let users = ids(Dim::Users, users);
        let events = ids(Dim::Events, events);
        let commands = ids(Dim::Commands, commands);
        let actions = actions.as_ref().and_then(|list| {
            self.scope_list(route, which, Dim::Actions, list, refs, is_allow)
                .map(|v| v.iter().map(String::as_str).collect::<GlobSet>())
        });
        Scope {
            enterprises,
            teams,
            channels,
            users,
            events,
            commands,
            actions,
        }
    }

    /// Validates one scope dimension; expands `@group` in users.
    fn scope_list(
        &mut self,
        route: &str,
        which: &str,
        dim: Dim,
        list: &SpannedList,
        refs: &Refs<'_>,
        is_allow: bool,
    ) -> Option<Vec<String>> {
        let key = format!("{which}.{}", dim.key());
        if list.is_empty() {
            if is_allow {
                self.empty_allow(route, &key, list.span());
                return None;
            }
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        for entry in list.iter() {
            if let (Dim::Users, Some(group)) = (dim, entry.strip_prefix('@')) {
                match refs.groups.get(group) {
                    Some(members) => out.extend(members.iter().cloned()),
                    None if self.declared.groups.contains(group) => {}
                    None => self.errs.at(
                        entry.span(),
                        format!(
                            "`{key}` of route `{route}` references unknown group `@{}`",
                            shown(group)
                        ),
                        format!(
                            "define it under `groups:` or use one of: {}",
                            names(refs.groups.keys().map(String::as_str))
                        ),
                    ),
                }
                continue;
            }
            match dim.check(entry) {
                Ok(()) => out.push(entry.to_string()),
                Err((problem, fix)) => self.errs.at(
                    entry.span(),
                    format!("entry of `{key}` in route `{route}` {problem}"),
                    fix,
                ),
            }
        }
        Some(out)
    }

    fn rate_limits(&mut self, route: &str, specs: &[RateLimitSpec]) -> Vec<RateLimitRule> {
        let mut out = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let RateLimitSpec { per, rate, burst } = spec;
            let per = match **per {
                LimitKeySpec::Team => LimitKey::Team,
                LimitKeySpec::Enterprise => LimitKey::Enterprise,
                LimitKeySpec::User => LimitKey::User,
                LimitKeySpec::Channel => LimitKey::Channel,
                LimitKeySpec::App => LimitKey::App,
                LimitKeySpec::Ip => LimitKey::Ip,
                LimitKeySpec::Route => LimitKey::Route,
            };
            let parsed = match Rate::parse(rate) {
                Ok(r) => Some(r),
                Err(e) => {
                    let problem = match e {
                        RateError::MissingUnit => "has no time unit",
                        RateError::BadCount => "does not start with a whole number",
                        RateError::Zero => "is zero: nothing would ever be allowed",
                        RateError::BadUnit => "has an unknown time unit",
                    };
                    self.errs.at(
                        rate.span(),
                        format!("rate of `rate_limits[{i}]` in route `{route}` {problem}"),
                        "write COUNT/UNIT with a count above 0 and unit s, min or h, e.g. 20/s, 600/min or 5/h",
                    );
                    None
                }
            };
            let nz_burst = NonZeroU32::new(**burst);
            if nz_burst.is_none() {
                self.errs.at(
                    burst.span(),
                    format!("burst of `rate_limits[{i}]` in route `{route}` is 0: every request would be limited"),
                    "set burst to at least 1 (the number of requests allowed at once)",
                );
            }
            if let (Some(rate_v), Some(b)) = (parsed, nz_burst) {
                out.push(RateLimitRule {
                    per,
                    rate: rate_v,
                    burst: b,
                    label: Arc::from(format!(
                        "rate_limits[{i}] per {} {} burst {b}",
                        per.as_str(),
                        rate.trim()
                    )),
                });
            }
        }
        out
    }
}

/// What routes may reference.
struct Refs<'a> {
    apps: &'a BTreeMap<Arc<str>, Arc<App>>,
    upstreams: &'a BTreeMap<Arc<str>, Arc<Upstream>>,
    groups: &'a Groups,
}

/// Parses a list of IPs and CIDRs, reporting each bad entry. A CIDR with host
/// bits set is an error: `10.0.0.1/8` is ambiguous between a typo and `10.0.0.0/8`.
pub(crate) fn parse_cidrs(list: &SpannedList, errs: &mut Errors) -> IpSet {
    let mut nets = Vec::with_capacity(list.len());
    for entry in list.iter() {
        let s = entry.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            if net.trunc() == net {
                nets.push(net);
            } else {
                errs.at(
                    entry.span(),
                    "CIDR has bits set after the prefix length",
                    format!("write the network address, {}", net.trunc()),
                );
            }
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            errs.at(
                entry.span(),
                "not an IP address or CIDR",
                "write an address or network such as 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32",
            );
        }
    }
    IpSet::from_cidrs(nets)
}

/// Checks a `host:port` target; returns the fix on failure.
fn check_target(t: &str) -> Result<(), &'static str> {
    let t = t.trim();
    if t.contains("://") {
        return Err("write host:port without a scheme, e.g. 127.0.0.1:3000");
    }
    if t.contains('/') {
        return Err("write host:port without a path, e.g. 127.0.0.1:3000");
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let Some((h, p)) = rest.split_once("]:") else {
            return Err("write an IPv6 target as [addr]:port, e.g. [::1]:3000");
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("write an IPv6 target as [addr]:port, e.g. [::1]:3000");
        }
        (h, p)
    } else {
        let Some((h, p)) = t.rsplit_once(':') else {
            return Err("add the port: host:port, e.g. 127.0.0.1:3000");
        };
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(
                "write a host name or IPv4 address before the port, e.g. bot.internal:3000",
            );
        }
        (h, p)
    };
    let _ = host;
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err("use a port between 1 and 65535, e.g. 127.0.0.1:3000"),
    }
}

/// Used by the crate root for whole-file errors.
pub(crate) fn unreadable(path: &Path, e: &std::io::Error) -> LoadErrors {
    LoadError::whole_file(
        path,
        format!("cannot read the file: {}", describe_io(e)),
        "check the path and the gateway's permissions",
    )
    .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.example:8443"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn targets() {
        assert!(check_target("127.0.0.1:3000").is_ok());
        assert!(check_target("bot.internal:80").is_ok());
        assert!(check_target("[::1]:3000").is_ok());
        assert!(check_target("127.0.0.1").is_err());
        assert!(check_target("127.0.0.1:0").is_err());
        assert!(check_target("127.0.0.1:70000").is_err());
        assert!(check_target("http://bot:80").is_err());
        assert!(check_target(":80").is_err());
        assert!(check_target("[zz]:80").is_err());
    }

    #[test]
    fn hash_is_16_hex() {
        let h = policy_hash(b"version: 1\n");
        assert_eq!(h.len(), 16);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn top_level_keys_match_the_spec() {
        assert_eq!(yaml::serde_keys::<PolicySpec>(), POLICY_KEYS);
    }

    #[test]
    fn slack_ids() {
        assert!(is_slack_id("T0ACME", b"T"));
        assert!(!is_slack_id("T", b"T"));
        assert!(!is_slack_id("t0acme", b"T"));
        assert!(!is_slack_id("C0ACME", b"T"));
    }
}
