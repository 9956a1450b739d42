//! The policy compiler: policy text -> [`PolicySpec`] -> validated [`Policy`].
//!
//! Every error is collected (with its file:line:column and the fix) rather than stopping
//! at the first; a spec that did not deserialize whole is compiled from its valid parts
//! (`partial_spec`) so semantic checks still run on them. Apps and their secrets are
//! compiled in `compile/apps.rs`, routes (scopes, IP rules, rate limits) in
//! `compile/routes.rs`, bots in `compile/bots.rs`, webhooks in `compile/webhooks.rs`; this
//! file drives them and compiles upstreams and groups. The server config has its own
//! compiler, `compile/config.rs`, which uses nothing of this file.

mod apps;
mod bots;
mod config;
mod groups;
mod routes;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use marked_yaml::{Node, Span, Spanned};
use sha2::{Digest, Sha256};

use crate::apps::App;
use crate::bots::BotTable;
use crate::error::{Errors, LoadError, LoadErrors};
use crate::model::{Policy, RouteTable, Upstream};
use crate::secrets::{describe_io, looks_secret, SecretSource};
use crate::spec::{AppSpec, BotSpec, GroupSpec, PolicySpec, RouteSpec, UpstreamSpec, WebhookSpec};
use crate::webhooks::WebhookTable;
use crate::yaml;

pub use config::compile_config;
pub(crate) use config::read_state_key;

/// Reads and compiles a policy file, reading secrets from `secrets`.
/// Relative secret `file:` paths are resolved against the policy file's directory.
pub(crate) fn load_policy(
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
            bots: yaml::key_names(&node, "bots"),
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

/// The top-level keys of a policy file, as in `PolicySpec` (the one list of them: the
/// binary tells a policy from a server config by these).
pub const POLICY_KEYS: &[&str] = &[
    "version",
    "apps",
    "upstreams",
    "groups",
    "routes",
    "bots",
    "webhooks",
];

/// Builds as much of a [`PolicySpec`] as deserializes, reporting every
/// structural error, so that semantic checks still run on the valid parts.
fn partial_spec(node: &Node, err: &marked_yaml::FromNodeError, errs: &mut Errors) -> PolicySpec {
    let before = errs.len();
    yaml::check_top_level(node, POLICY_KEYS, &["version", "routes"], errs);
    let get = |key: &str| node.as_mapping().and_then(|m| m.get_node(key));
    // Probed (and any errors reported) in this order.
    let spec = PolicySpec {
        version: yaml::probe_key::<Spanned<u32>>(node, "version", errs)
            .unwrap_or_else(|| Spanned::new(*node.span(), 1)),
        apps: get("apps")
            .map(|n| yaml::probe_named::<AppSpec>(n, "apps", errs))
            .unwrap_or_default(),
        upstreams: get("upstreams")
            .map(|n| yaml::probe_named::<UpstreamSpec>(n, "upstreams", errs))
            .unwrap_or_default(),
        groups: get("groups")
            .map(|n| yaml::probe_named::<Spanned<GroupSpec>>(n, "groups", errs))
            .unwrap_or_default(),
        routes: get("routes")
            .map(|n| yaml::probe_items::<RouteSpec>(n, "routes", errs))
            .unwrap_or_else(|| Spanned::new(*node.span(), Vec::new())),
        bots: get("bots")
            .map(|n| yaml::probe_named::<BotSpec>(n, "bots", errs))
            .unwrap_or_default(),
        webhooks: get("webhooks")
            .map(|n| yaml::probe_named::<WebhookSpec>(n, "webhooks", errs))
            .unwrap_or_default(),
    };
    if errs.len() == before {
        yaml::report_from_node(err, "", errs);
    }
    spec
}

/// Every name declared under `apps`, `upstreams` and `groups`, valid or not:
/// a reference to an invalid entry is not also reported as dangling.
struct Declared {
    apps: HashSet<String>,
    bots: HashSet<String>,
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

/// List groups by name: their user ids.
type Groups = HashMap<String, Vec<String>>;

impl Compiler<'_> {
    fn policy(&mut self, spec: PolicySpec, source: &Path, hash: String) -> Option<Policy> {
        let PolicySpec {
            version,
            apps,
            upstreams,
            groups,
            routes,
            bots,
            webhooks,
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
        let mut socket_paths = Vec::new();
        for (name, spec) in apps.0 {
            if let Some(app) = self.app(&name, spec, &mut socket_paths) {
                compiled_apps.insert(Arc::clone(&app.name), Arc::new(app));
            }
        }

        let mut compiled_upstreams: BTreeMap<Arc<str>, Arc<Upstream>> = BTreeMap::new();
        for (name, spec) in upstreams.0 {
            if let Some(u) = self.upstream(&name, spec) {
                compiled_upstreams.insert(Arc::clone(&u.name), Arc::new(u));
            }
        }

        let (groups, usergroups) = self.groups(groups);

        if routes.is_empty() && bots.0.is_empty() && !self.partial {
            self.errs.at(
                routes.span(),
                "the policy has no routes and no bots: every request would be answered 404 no_route",
                "add at least one route under `routes:` (or a bot under `bots:`)",
            );
        }
        let mut compiled_routes = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut by_path: HashMap<(Option<String>, String), (String, usize)> = HashMap::new();
        let refs = Refs {
            apps: &compiled_apps,
            upstreams: &compiled_upstreams,
            groups: &groups,
            usergroups: &usergroups,
        };
        for spec in routes.iter() {
            if let Some(r) = self.route(spec, &refs, &mut by_name, &mut by_path) {
                compiled_routes.push(Arc::new(r));
            }
        }

        self.socket_paths(&socket_paths, &routes);
        let compiled_bots = self.bots(bots.0, &compiled_apps);
        for spec in routes.iter() {
            self.route_bot(spec, &compiled_bots);
        }
        let compiled_webhooks = self.webhooks(webhooks.0, &compiled_bots);

        (self.errs.len() == start).then(|| Policy {
            source: source.to_path_buf(),
            hash,
            apps: compiled_apps,
            upstreams: compiled_upstreams,
            routes: RouteTable::from_routes(compiled_routes),
            bots: BotTable::new(compiled_bots),
            webhooks: WebhookTable::new(compiled_webhooks),
            usergroups,
        })
    }

    /// Checks a route's `bot`: a bot under `bots:` whose `app` is the route's app (the
    /// capabilities the route mints are bound to it and used under its rules).
    fn route_bot(&mut self, spec: &RouteSpec, bots: &[Arc<crate::bots::Bot>]) {
        let Some(name) = &spec.bot else {
            return;
        };
        let route = shown(&spec.name);
        match bots.iter().find(|b| *b.name == **name) {
            Some(bot) if bot.app.as_ref().is_none_or(|a| *a.name != *spec.app) => {
                self.errs.at(
                    name.span(),
                    format!(
                        "bot `{}` of route `{route}` does not belong to app `{}`",
                        shown(name),
                        shown(&spec.app)
                    ),
                    format!(
                        "set `app: {}` on bot `{}`, or name a bot of that app",
                        shown(&spec.app),
                        shown(name)
                    ),
                );
            }
            Some(_) => {}
            None if !self.declared.bots.contains(name.as_str()) => {
                self.errs.at(
                    name.span(),
                    format!("route `{route}` references unknown bot `{}`", shown(name)),
                    format!(
                        "define it under `bots:` or use one of: {}",
                        names(bots.iter().map(|b| &*b.name))
                    ),
                );
            }
            None => {}
        }
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
}

/// What routes may reference.
struct Refs<'a> {
    apps: &'a BTreeMap<Arc<str>, Arc<App>>,
    upstreams: &'a BTreeMap<Arc<str>, Arc<Upstream>>,
    groups: &'a Groups,
    usergroups: &'a crate::groups::UserGroups,
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
