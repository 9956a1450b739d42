//! The policy model: the validated, compiled, immutable types the guard evaluates per
//! request ([`Policy`], which holds the apps of `apps.rs` and the bots, webhooks and user
//! groups of their own files; upstreams; routes with their IP rules, scopes and rate
//! limits) and the route table that finds a route by host and path.
//!
//! Only the compiler (`compile.rs`) builds these from a spec; once built they cannot hold
//! an invalid state: sets are pre-compiled, secrets are prepared keys, counts are non-zero.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use crate::apps::App;
use crate::groups::UserSet;
use crate::matcher::{GlobSet, IdSet, IpSet, LookupHasher};
use crate::units::Rate;

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
    /// The bots of the egress door, looked up by key.
    pub bots: crate::bots::BotTable,
    /// The incoming webhooks the gateway holds, by name.
    pub webhooks: crate::webhooks::WebhookTable,
    /// The groups whose members come from a Slack user group, by name (list groups are
    /// expanded into the routes that name them and kept nowhere else).
    pub usergroups: crate::groups::UserGroups,
}

/// A named set of bot backends.
#[derive(Debug)]
pub struct Upstream {
    /// The upstream's name in the policy.
    pub name: Arc<str>,
    /// Validated `host:port` targets, never empty.
    pub targets: Arc<[Arc<str>]>,
}

pub use crate::mode::Mode;

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
    /// User ids, `U…` or `W…`, with list groups expanded, and the user groups named.
    pub users: Option<UserSet>,
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
        matches!(
            self,
            Scope {
                enterprises: None,
                teams: None,
                channels: None,
                users: None,
                events: None,
                commands: None,
                actions: None,
            }
        )
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
    /// With `resign`: the key the bot verifies with. The gateway removes Slack's signature
    /// headers and signs what it forwards with this key (v0, fresh timestamp), so Slack's
    /// signing secret stays in the gateway. Never one of the app's signing secrets.
    pub resign: Option<Resign>,
    /// The bot under `bots:` that answers this route (same app); capabilities minted
    /// for what the route forwards are bound to it.
    pub bot: Option<Arc<str>>,
    /// `response_urls: custody`: every `response_url` the route forwards is replaced by a
    /// capability URL under `egress.public_url` (needs `resign` and `bot`).
    pub response_urls: Custody,
    /// `workflow_tokens: custody`: every `bot_access_token` the route forwards is replaced
    /// by a capability key (needs `resign` and `bot`).
    pub workflow_tokens: Custody,
    /// Where the first `custody` key stands in the policy (for config-meets-policy errors).
    pub custody_at: Option<crate::bots::Location>,
}

/// A route's re-signing key and where it was read from.
#[derive(Debug, Clone)]
pub struct Resign {
    /// The prepared HMAC key (id `resign`).
    pub key: slackgate_slack::SigningKey,
    /// Where the value was read from.
    pub source: crate::secrets::SecretRef,
}

/// Whether the gateway keeps a kind of Slack capability out of the bot's hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Custody {
    /// The bot receives it as Slack sent it (the default).
    #[default]
    Off,
    /// The gateway keeps it and gives the bot a capability that works only through the
    /// egress door.
    Custody,
}

impl Custody {
    /// True for `custody`.
    pub fn is_on(self) -> bool {
        self == Custody::Custody
    }

    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Custody::Off => "off",
            Custody::Custody => "custody",
        }
    }
}

impl Route {
    /// True when the route rewrites anything it forwards (a response URL or a workflow
    /// token), so its body may differ from Slack's in those fields only.
    pub fn rewrites(&self) -> bool {
        self.response_urls.is_on() || self.workflow_tokens.is_on()
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
    by_path: HashMap<Box<str>, Box<[Arc<Route>]>, LookupHasher>,
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

    pub(crate) fn from_routes(routes: Vec<Arc<Route>>) -> Self {
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

/// The host of a `Host` header value without its port, as RFC 3986 writes a host:
/// `a.example:8443` -> `a.example`, `[::1]:8443` -> `[::1]` (an IPv6 literal keeps its
/// brackets); a value without a port (`a.example`, `[::1]`, and a bare `::1`, whose last
/// `:1` is part of the address) is returned unchanged.
///
/// [`RouteTable::find`] applies it, so a route's `host` (a host name or IPv4 address, as
/// the policy writes it, never with a port) matches whatever port the client named. It is
/// the gateway's one definition of "the host of a Host header".
pub fn strip_port(host: &str) -> &str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.example:8443"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }

    /// The proxy once had its own `strip_port`, which dropped an IPv6 literal's brackets
    /// and read a bare `::1` as host `::` with port 1. These are the values where the two
    /// disagreed; this one is kept because it leaves the host as it is written (RFC 3986
    /// `host`), the form a policy's `host` is compared in, and never turns one address
    /// into another.
    #[test]
    fn ipv6_hosts_keep_their_brackets_and_a_bare_address_is_not_cut() {
        assert_eq!(strip_port("[::1]:8443"), "[::1]"); // the proxy said `::1`
        assert_eq!(strip_port("[::1]"), "[::1]"); // the proxy said `::1`
        assert_eq!(strip_port("::1"), "::1"); // the proxy said `::`
        assert_eq!(strip_port("[2001:db8::7]:443"), "[2001:db8::7]");
        // Where they agreed.
        assert_eq!(strip_port("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(strip_port("a.example:"), "a.example");
        assert_eq!(strip_port("a.example:x"), "a.example:x");
    }
}
