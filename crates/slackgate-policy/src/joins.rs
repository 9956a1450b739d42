//! The checks where a server config and a policy meet, run by the one loader (`load.rs`)
//! after both compiled: each model's compiler sees only its own file, so what one file
//! requires of the other is checked here, in one place, and every caller of the loader
//! runs all of them.
//!
//! | join | config | policy |
//! |---|---|---|
//! | [`check_webhooks`] | `egress.hooks_base` | every webhook's `url` |
//! | [`check_rotation`] | `state.encryption_key`, `state.path` or Redis | bots with `rotation:` |
//! | [`check_groups`] | `egress` | groups with `usergroup:` |
//! | [`check_custody`] | `egress`, `egress.public_url` | routes with `response_urls: custody` or `workflow_tokens: custody` |
//! | [`check_socket_mode`] | `egress` (`slack_api`, `ca_file`) | apps with `socket_mode:` |

use crate::config::{Config, StateBackend};
use crate::error::{LoadError, LoadErrors};
use crate::model::Policy;

/// A check where a server config and a policy meet: every error it finds, or `Ok`.
pub(crate) type Join = fn(&Config, &Policy) -> Result<(), LoadErrors>;

/// The joins, all run on every load. A new one goes here so that no caller can miss it.
pub(crate) const JOINS: &[Join] = &[
    check_webhooks,
    check_rotation,
    check_groups,
    check_custody,
    check_socket_mode,
];

/// Checks what joins the config and the policy: every webhook URL starts with
/// `egress.hooks_base`, so the hooks' client (which only ever connects to that base) can
/// carry it. The errors name the webhook, never its URL. Without an egress door no bot
/// can post to a webhook, so there is nothing to check.
pub(crate) fn check_webhooks(config: &Config, policy: &Policy) -> Result<(), LoadErrors> {
    let Some(egress) = &config.egress else {
        return Ok(());
    };
    let errors: Vec<LoadError> = policy
        .webhooks
        .iter()
        .filter(|hook| egress.hooks_base.path_of(hook.url.expose()).is_none())
        .map(|hook| {
            LoadError::new(
                &policy.source,
                hook.at.line,
                hook.at.column,
                format!(
                    "the url of webhook `{}` does not start with egress.hooks_base",
                    hook.name
                ),
                "point `url` at a webhook URL Slack gave (it starts with https://hooks.slack.com/), or set `egress.hooks_base` in the server config to the base it is under",
            )
        })
        .collect();
    LoadErrors::unless_any(errors)
}

/// Checks what token rotation needs of the config: a key to encrypt the rotated tokens
/// with (`state.encryption_key`), and a place to keep them (`state.path`, or the Redis
/// backend). The errors stand at the bot's `rotation:` and name the config key to set.
pub(crate) fn check_rotation(config: &Config, policy: &Policy) -> Result<(), LoadErrors> {
    let mut errors = Vec::new();
    for bot in policy.bots.iter() {
        let Some(r) = bot.token.rotation() else {
            continue;
        };
        let at = |message: String, fix: String| {
            LoadError::new(&policy.source, r.at.line, r.at.column, message, fix)
        };
        if config.state.encryption_key.is_none() {
            errors.push(at(
                format!("bot `{}` rotates its token, but the server config has no `state.encryption_key`", bot.name),
                format!("add `state: {{ encryption_key: {{ env: SLACKGATE_STATE_KEY }} }}` to {} (32 random bytes in base64, `openssl rand -base64 32`): rotated tokens are kept encrypted with it", config.source.display()),
            ));
        }
        if config.state.path.is_none() && matches!(config.state.backend, StateBackend::Local) {
            errors.push(at(
                format!("bot `{}` rotates its token, but the server config has no `state.path`", bot.name),
                format!("add `state: {{ path: /var/lib/slackgate }}` to {} (a directory only the gateway can write), or use the Redis backend: each refresh token works once, so the newest must survive a restart", config.source.display()),
            ));
        }
    }
    LoadErrors::unless_any(errors)
}

/// Checks what the user groups of `policy` need from `config`: the gateway reads their
/// members from `egress.slack_api`, so a policy with a user group needs an `egress`
/// section (without one, their members could never be read and every allow list naming
/// them would deny everyone, silently).
pub(crate) fn check_groups(config: &Config, policy: &Policy) -> Result<(), LoadErrors> {
    if config.egress.is_some() {
        return Ok(());
    }
    let errors: Vec<LoadError> = policy
        .usergroups
        .values()
        .map(|g| {
            LoadError::new(
                &policy.source,
                g.defined_at.0,
                g.defined_at.1,
                format!(
                    "group `{}` reads its members from Slack user group {}, but the server config has no `egress` section",
                    g.name, g.usergroup
                ),
                "add `egress:` (with `listen` and `slack_api`) to the server config: the gateway calls usergroups.users.list there; or list the group's user ids instead",
            )
        })
        .collect();
    LoadErrors::unless_any(errors)
}

/// Checks what custody needs of the config: capabilities are used through the egress
/// door, so a route that hands them out needs an `egress` section; response-URL
/// capabilities are URLs under `egress.public_url`, so `response_urls: custody` needs it.
pub(crate) fn check_custody(config: &Config, policy: &Policy) -> Result<(), LoadErrors> {
    let mut errors = Vec::new();
    for route in policy.routes.iter() {
        let Some(loc) = &route.custody_at else {
            continue;
        };
        let at = |message: String, fix: String| {
            LoadError::new(&policy.source, loc.line, loc.column, message, fix)
        };
        let wants = [
            ("response_urls", route.response_urls.is_on()),
            ("workflow_tokens", route.workflow_tokens.is_on()),
        ];
        for (key, on) in wants {
            if !on {
                continue;
            }
            match &config.egress {
                None => errors.push(at(
                    format!("route `{}` has `{key}: custody`, but the server config has no `egress` section", route.name),
                    format!("add `egress:` (with `listen`, `slack_api` and `public_url`) to {}: the bot uses what the gateway keeps through the egress door", config.source.display()),
                )),
                Some(e) if key == "response_urls" && e.public_url.is_none() => errors.push(at(
                    format!("route `{}` has `response_urls: custody`, but the server config has no `egress.public_url`", route.name),
                    format!("add `public_url: http://HOST:PORT/` under `egress:` in {} (how bots reach the egress listener): response URLs become URLs under it", config.source.display()),
                )),
                Some(_) => {}
            }
        }
    }
    LoadErrors::unless_any(errors)
}

/// Checks what Socket Mode needs of the config: the gateway calls
/// `apps.connections.open` at `egress.slack_api` (trusting `egress.ca_file`), so an app
/// with `socket_mode` needs an `egress` section.
pub(crate) fn check_socket_mode(config: &Config, policy: &Policy) -> Result<(), LoadErrors> {
    if config.egress.is_some() {
        return Ok(());
    }
    let errors: Vec<LoadError> = policy
        .apps
        .values()
        .filter_map(|app| Some((app, app.socket_mode.as_ref()?)))
        .map(|(app, s)| {
            LoadError::new(
                &policy.source,
                s.at.0,
                s.at.1,
                format!(
                    "app `{}` has `socket_mode`, but the server config has no `egress` section",
                    app.name
                ),
                format!("add `egress:` (with `listen` and `slack_api`) to {}: the gateway opens its Socket Mode connections with apps.connections.open there", config.source.display()),
            )
        })
        .collect();
    LoadErrors::unless_any(errors)
}
