//! Pieces of policy YAML that many tests share, so each test's policy names only what
//! is its own. Each piece is whole lines, ending in a newline.
//!
//! A bot's credentials follow one naming rule: bot `name` reads its gateway key from env
//! `{NAME}_GATEWAY_KEY` and its token from `{NAME}_BOT_TOKEN` ([`bot`]); the testkit's
//! gateway builder sets the two secrets by the same rule.

use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use slackgate_policy::{compile_policy, Policy, SecretSource};

/// `text` compiled as `policy.yaml` with `secrets`, `now` seconds after the epoch. A
/// test's policy must compile: an error panics with the loader's message.
pub fn compiled(text: &str, secrets: &dyn SecretSource, now: u64) -> Policy {
    compile_policy(
        Path::new("policy.yaml"),
        text,
        secrets,
        UNIX_EPOCH + Duration::from_secs(now),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// App `helpdesk` (`api_app_id: A0HELPDESK`) with one signing secret, `current`, read
/// from env `secret_env`: the `apps:` section.
pub fn helpdesk_app(secret_env: &str) -> String {
    format!(
        "apps:\n  helpdesk:\n    api_app_id: A0HELPDESK\n    signing_secrets:\n      - {{ id: current, env: {secret_env} }}\n"
    )
}

/// App `name` (no `api_app_id`) with one signing secret, `current`, read from env
/// `secret_env`: the `apps:` section.
pub fn app(name: &str, secret_env: &str) -> String {
    format!(
        "apps:\n  {name}:\n    signing_secrets:\n      - {{ id: current, env: {secret_env} }}\n"
    )
}

/// One upstream, `name`, with one target: the `upstreams:` section.
pub fn upstream(name: &str, target: impl Display) -> String {
    format!("upstreams:\n  {name}: {{ targets: [\"{target}\"] }}\n")
}

/// [`helpdesk_app`] and [`upstream`]: an inbound policy's head, before `routes:`.
pub fn helpdesk_to(secret_env: &str, upstream_name: &str, target: impl Display) -> String {
    format!(
        "{}{}",
        helpdesk_app(secret_env),
        upstream(upstream_name, target)
    )
}

/// A whole inbound policy: `version: 1`, [`helpdesk_to`] and these `routes` (each
/// written with [`route`] or [`helpdesk_route`]).
pub fn helpdesk_policy(secret_env: &str, target: impl Display, routes: &[String]) -> String {
    format!(
        "version: 1\n{}routes:\n{}",
        helpdesk_to(secret_env, "bot", target),
        routes.concat()
    )
}

/// Route `name` on `path` for `app`, forwarding to `upstream`: one entry under `routes:`
/// (its other keys follow, indented four spaces).
pub fn route(name: &str, path: &str, app: &str, upstream: &str) -> String {
    format!("  - name: {name}\n    path: {path}\n    app: {app}\n    upstream: {upstream}\n")
}

/// Route `name` on `path` for app `helpdesk` to upstream `bot` (the names [`helpdesk_to`]
/// gives them), with `rest`: its other keys, written unindented, one a line.
pub fn helpdesk_route(name: &str, path: &str, rest: &str) -> String {
    route(name, path, "helpdesk", "bot") + &keys(rest)
}

/// More keys of the entry before: `rest`, written unindented, one a line, indented under
/// a [`route`] or a [`bot`].
pub fn keys(rest: &str) -> String {
    rest.lines().map(|line| format!("    {line}\n")).collect()
}

/// The env variables bot `name` reads its gateway key and its token from:
/// `{NAME}_GATEWAY_KEY` and `{NAME}_BOT_TOKEN`.
pub fn bot_env(name: &str) -> (String, String) {
    let upper = name.to_ascii_uppercase();
    (format!("{upper}_GATEWAY_KEY"), format!("{upper}_BOT_TOKEN"))
}

/// Bot `name` under `bots:`, up to its credentials (read from [`bot_env`]); its other
/// keys follow, indented four spaces.
pub fn bot(name: &str) -> String {
    bot_as(name, name)
}

/// Bot `name` under `bots:` with the credentials of bot `creds_of` ([`bot`]): two bots
/// written with one `creds_of` share a key and a token.
pub fn bot_as(name: &str, creds_of: &str) -> String {
    let (key, token) = bot_env(creds_of);
    format!("  {name}:\n    key: {{ env: {key} }}\n    token: {{ env: {token} }}\n")
}

/// A policy without inbound routes whose first bot is `name` ([`bot`]): the head of an
/// egress-only policy, the bot's other keys to follow.
pub fn bots_from(name: &str) -> String {
    format!("version: 1\nroutes: []\nbots:\n{}", bot(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_the_yaml_they_stand_for() {
        assert_eq!(
            helpdesk_to("HELPDESK_SECRET", "bot", "127.0.0.1:9"),
            r#"apps:
  helpdesk:
    api_app_id: A0HELPDESK
    signing_secrets:
      - { id: current, env: HELPDESK_SECRET }
upstreams:
  bot: { targets: ["127.0.0.1:9"] }
"#
        );
        assert_eq!(
            format!("{}{}", bots_from("helpdesk"), bot("reporter")),
            r#"version: 1
routes: []
bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
  reporter:
    key: { env: REPORTER_GATEWAY_KEY }
    token: { env: REPORTER_BOT_TOKEN }
"#
        );
        assert_eq!(
            helpdesk_route("open", "/o", "mode: shadow\nallow:\n  teams: [T0]"),
            "  - name: open\n    path: /o\n    app: helpdesk\n    upstream: bot\n    mode: shadow\n    allow:\n      teams: [T0]\n"
        );
        assert_eq!(
            bot_as("a", "helpdesk"),
            "  a:\n    key: { env: HELPDESK_GATEWAY_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }\n"
        );
        assert_eq!(
            app("helpdesk", "S"),
            "apps:\n  helpdesk:\n    signing_secrets:\n      - { id: current, env: S }\n"
        );
        assert_eq!(
            route("helpdesk", "/slack/events", "helpdesk", "bot"),
            "  - name: helpdesk\n    path: /slack/events\n    app: helpdesk\n    upstream: bot\n"
        );
    }
}
