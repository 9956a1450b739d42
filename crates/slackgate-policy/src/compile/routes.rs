//! Routes: path and host, references to an app and an upstream, mode, source IPs, the
//! `allow` and `deny` scopes (with `@group` expansion) and rate limits.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use marked_yaml::{Span, Spanned};

use slackgate_slack::SigningKey;

use super::apps::Hints;
use super::{is_name, is_slack_id, line_of, names, shown, Compiler, Refs};
use crate::groups::{UserGroup, UserSet};
use crate::matcher::{parse_cidrs, GlobSet, IdSet, IpSet};
use crate::model::{
    Custody, Dedupe, LimitKey, Mode, OnDeny, RateLimitRule, Resign, Route, Scope, SourceIpRule,
    StateFailure,
};
use crate::secrets::looks_secret;
use crate::spec::{
    CredentialSpec, CustodySpec, DedupeSpec, LimitKeySpec, ModeSpec, OnDenySpec, RateLimitSpec,
    RouteSpec, ScopeSpec, SourceIpsSpec, SpannedList, StateFailureSpec,
};
use crate::units::{Rate, RateError};

/// The kinds of scope dimension, for validation and messages.
#[derive(Clone, Copy)]
pub(super) enum Dim {
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
    pub(super) fn check(self, s: &str) -> Result<(), (&'static str, &'static str)> {
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

impl Compiler<'_> {
    pub(super) fn route(
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
            resign,
            bot,
            response_urls,
            workflow_tokens,
        } = spec;
        let start = self.errs.len();
        let response_urls_at = response_urls
            .as_ref()
            .filter(|c| matches!(***c, CustodySpec::Custody))
            .map(|c| c.span());
        let workflow_tokens_at = workflow_tokens
            .as_ref()
            .filter(|c| matches!(***c, CustodySpec::Custody))
            .map(|c| c.span());

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

        let resign = resign
            .as_ref()
            .and_then(|r| self.resign(rname, r, app_ref.as_deref()));
        let bot = bot.as_ref().and_then(|b| {
            if is_name(b) {
                Some(Arc::<str>::from(b.as_str()))
            } else {
                self.errs.at(
                    b.span(),
                    format!("`bot` of route `{rname}` is not a bot name"),
                    "write the name of the bot under `bots:` that answers this route",
                );
                None
            }
        });
        let response_urls = self.custody(rname, "response_urls", response_urls.as_ref(), spec);
        let workflow_tokens =
            self.custody(rname, "workflow_tokens", workflow_tokens.as_ref(), spec);
        let custody_at = [response_urls_at, workflow_tokens_at]
            .into_iter()
            .flatten()
            .next()
            .map(|span| {
                let (line, column) = crate::error::span_pos(span);
                crate::bots::Location { line, column }
            });

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
            resign,
            bot,
            response_urls,
            workflow_tokens,
            custody_at,
        })
    }

    /// Reads a route's `resign` reference into a key; it must not be one of the app's
    /// signing secrets (the bot would then hold Slack's secret after all).
    fn resign(
        &mut self,
        route: &str,
        spec: &Spanned<CredentialSpec>,
        app: Option<&crate::apps::App>,
    ) -> Option<Resign> {
        let what = format!("`resign` of route `{route}`");
        let (cred, span) = self.credential(
            &what,
            spec,
            &Hints {
                env_example: "HELPDESK_BOT_SIGNING_SECRET",
                file_example: "/run/secrets/helpdesk-bot-signing-secret",
                content: "the secret the bot verifies requests with",
            },
        )?;
        let key = match SigningKey::new("resign", cred.expose().as_bytes()) {
            Ok(k) => k,
            Err(_) => {
                self.errs.at(
                    &span,
                    format!("{what} cannot be used as a signing key"),
                    "check the secret's value",
                );
                return None;
            }
        };
        if let Some(app) = app {
            // Equal keys give equal MACs; the probe says nothing of either secret.
            let probe = key.mac(b"0", b"slackgate resign probe");
            if app
                .secrets
                .iter()
                .any(|s| s.key.mac(b"0", b"slackgate resign probe") == probe)
            {
                self.errs.at(
                    &span,
                    format!("{what} is one of app `{}`'s signing secrets", app.name),
                    "give the bot its own secret (`openssl rand -hex 32`), not Slack's: the point of `resign` is that Slack's signing secret stays in the gateway",
                );
                return None;
            }
        }
        Some(Resign {
            key,
            source: cred.source.clone(),
        })
    }

    /// Reads `response_urls` or `workflow_tokens`; `custody` needs `resign` and `bot`
    /// (whether `bot` names a bot of the route's app is checked once bots are compiled).
    fn custody(
        &mut self,
        route: &str,
        key: &str,
        spec: Option<&Spanned<CustodySpec>>,
        route_spec: &RouteSpec,
    ) -> Custody {
        let Some(spec) = spec else {
            return Custody::Off;
        };
        match **spec {
            CustodySpec::Off => Custody::Off,
            CustodySpec::Custody => {
                if route_spec.resign.is_none() {
                    self.errs.at(
                        spec.span(),
                        format!("`{key}: custody` on route `{route}` needs `resign`"),
                        "add `resign: { env: MY_BOT_SIGNING_SECRET }`: the gateway rewrites what it forwards, so it must sign it with a secret the bot verifies",
                    );
                }
                if route_spec.bot.is_none() {
                    self.errs.at(
                        spec.span(),
                        format!("`{key}: custody` on route `{route}` needs `bot`"),
                        "add `bot: NAME` naming the bot under `bots:` that answers this route: its capabilities are bound to it",
                    );
                }
                Custody::Custody
            }
        }
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
                .map(|(v, _)| v.into_iter().collect())
        };
        // Checked (and any errors reported) in this order.
        Scope {
            enterprises: ids(Dim::Enterprises, enterprises),
            teams: ids(Dim::Teams, teams),
            channels: ids(Dim::Channels, channels),
            events: ids(Dim::Events, events),
            commands: ids(Dim::Commands, commands),
            users: users.as_ref().and_then(|list| {
                self.scope_list(route, which, Dim::Users, list, refs, is_allow)
                    .map(|(ids, groups)| UserSet {
                        ids: ids.into_iter().collect(),
                        groups: groups.into(),
                    })
            }),
            actions: actions.as_ref().and_then(|list| {
                self.scope_list(route, which, Dim::Actions, list, refs, is_allow)
                    .map(|(v, _)| v.iter().map(String::as_str).collect::<GlobSet>())
            }),
        }
    }

    /// Validates one scope dimension; in users, expands a list `@group` and collects the
    /// user groups named (the second part, empty for every other dimension).
    fn scope_list(
        &mut self,
        route: &str,
        which: &str,
        dim: Dim,
        list: &SpannedList,
        refs: &Refs<'_>,
        is_allow: bool,
    ) -> Option<(Vec<String>, Vec<Arc<UserGroup>>)> {
        let key = format!("{which}.{}", dim.key());
        if list.is_empty() {
            if is_allow {
                self.empty_allow(route, &key, list.span());
                return None;
            }
            return Some((Vec::new(), Vec::new()));
        }
        let mut out = Vec::new();
        let mut usergroups: Vec<Arc<UserGroup>> = Vec::new();
        for entry in list.iter() {
            if let (Dim::Users, Some(group)) = (dim, entry.strip_prefix('@')) {
                if let Some(g) = refs.usergroups.get(group) {
                    if !usergroups.iter().any(|u| u.name == g.name) {
                        usergroups.push(Arc::clone(g));
                    }
                    continue;
                }
                match refs.groups.get(group) {
                    Some(members) => out.extend(members.iter().cloned()),
                    None if self.declared.groups.contains(group) => {}
                    None => {
                        let mut known: Vec<&str> = refs
                            .groups
                            .keys()
                            .map(String::as_str)
                            .chain(refs.usergroups.keys().map(|k| &**k))
                            .collect();
                        known.sort_unstable();
                        self.errs.at(
                            entry.span(),
                            format!(
                                "`{key}` of route `{route}` references unknown group `@{}`",
                                shown(group)
                            ),
                            format!(
                                "define it under `groups:` or use one of: {}",
                                names(known.into_iter())
                            ),
                        )
                    }
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
        Some((out, usergroups))
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
            let words = LimitWords {
                examples: "20/s, 600/min or 5/h",
                what: "request",
            };
            let owner = format!("route `{route}`");
            if let Some((rate, burst, label)) =
                self.rate_limit(&owner, i, per.as_str(), rate, burst, &words)
            {
                out.push(RateLimitRule {
                    per,
                    rate,
                    burst,
                    label,
                });
            }
        }
        out
    }

    /// The rate, burst and audit label of `rate_limits[i]` of `owner` (e.g. "route `x`"),
    /// keyed on `per`, reporting each problem with the fix.
    pub(super) fn rate_limit(
        &mut self,
        owner: &str,
        i: usize,
        per: &str,
        rate: &Spanned<String>,
        burst: &Spanned<u32>,
        words: &LimitWords,
    ) -> Option<(Rate, NonZeroU32, Arc<str>)> {
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
                    format!("rate of `rate_limits[{i}]` in {owner} {problem}"),
                    format!(
                        "write COUNT/UNIT with a count above 0 and unit s, min or h, e.g. {}",
                        words.examples
                    ),
                );
                None
            }
        };
        let nz_burst = NonZeroU32::new(**burst);
        if nz_burst.is_none() {
            self.errs.at(
                burst.span(),
                format!(
                    "burst of `rate_limits[{i}]` in {owner} is 0: every {} would be limited",
                    words.what
                ),
                format!(
                    "set burst to at least 1 (the number of {}s allowed at once)",
                    words.what
                ),
            );
        }
        let (parsed, burst) = (parsed?, nz_burst?);
        let label = format!("rate_limits[{i}] per {per} {} burst {burst}", rate.trim());
        Some((parsed, burst, Arc::from(label)))
    }
}

/// How a rate limit's errors speak of its owner's traffic.
pub(super) struct LimitWords {
    /// Example rates for the fix, e.g. `20/s, 600/min or 5/h`.
    pub(super) examples: &'static str,
    /// What one token admits: `request` or `call`.
    pub(super) what: &'static str,
}
