//! Secret custody's load errors: `resign` equal to one of the app's signing secrets or
//! written as a literal; `response_urls`/`workflow_tokens: custody` without `resign` or
//! `bot`; a `bot` of another app or unknown; and, where config meets policy, custody
//! without `egress` or response URLs without `egress.public_url`. None echoes a secret;
//! a complete custody route loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use slackgate_fixtures::MapSecrets;
use slackgate_policy::{compile_policy, load, Custody};
use support::{now, PLANTED};

/// The bot's own secret (not one of the app's).
const BOT_SECRET: &str = "b0t5ecret-planted-of-the-helpdesk-bot";

fn secrets() -> MapSecrets {
    MapSecrets::in_memory(&[
        ("HELPDESK_SIGNING_SECRET", PLANTED),
        ("BOT_SIGNING_SECRET", BOT_SECRET),
        ("HELPDESK_GATEWAY_KEY", "gk_3f9a1c7e5b2d4068a9e1f3c5"),
        ("HELPDESK_BOT_TOKEN", "xoxb-1111-2222-planted0token0value"),
        ("OTHER_GATEWAY_KEY", "gk_0a1b2c3d4e5f60718293a4b5"),
        ("OTHER_BOT_TOKEN", "xoxb-1111-3333-planted0token0value"),
    ])
}

/// Apps `helpdesk` and `other`, bots `helpdesk` (of app helpdesk) and `stranger` (of app
/// other), and the head of route `helpdesk`; each case appends its keys to the route.
const HEAD: &str = "version: 1
apps:
  helpdesk:
    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]
  other:
    signing_secrets: [{ id: current, env: BOT_SIGNING_SECRET }]
upstreams:
  helpdesk: { targets: [127.0.0.1:3000] }
bots:
  helpdesk:
    methods: [chat.postMessage]
    app: helpdesk
    token: { env: HELPDESK_BOT_TOKEN }
    key: { env: HELPDESK_GATEWAY_KEY }
  stranger:
    app: other
    key: { env: OTHER_GATEWAY_KEY }
    token: { env: OTHER_BOT_TOKEN }
    methods: [chat.postMessage]
routes:
  - name: helpdesk
    path: /slack/helpdesk
    app: helpdesk
    upstream: helpdesk
";

/// The policy's load errors with `keys` added to the route (empty when it loads).
fn errors_with(keys: &str) -> String {
    let policy = format!("{HEAD}{keys}");
    let out = match compile_policy(Path::new("policy.yaml"), &policy, &secrets(), now()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert!(
        !out.contains(PLANTED) && !out.contains(BOT_SECRET) && !out.contains("planted0"),
        "an error echoes a secret: {out}"
    );
    out
}

fn assert_error(keys: &str, message: &str) {
    let out = errors_with(keys);
    assert!(out.contains(message), "wanted `{message}`, got: {out}");
    assert_eq!(out.matches(": error: ").count(), 1, "{out}");
}

#[test]
fn resign_equal_to_an_app_secret_is_an_error() {
    assert_error(
        "    resign: { env: HELPDESK_SIGNING_SECRET }\n",
        "`resign` of route `helpdesk` is one of app `helpdesk`'s signing secrets",
    );
    // Another app's secret is the bot's own as far as this route goes.
    assert_eq!(errors_with("    resign: { env: BOT_SIGNING_SECRET }\n"), "");
}

#[test]
fn a_literal_resign_secret_is_an_error_that_does_not_echo_it() {
    for (keys, message) in [
        (
            format!("    resign: {{ value: {BOT_SECRET} }}\n"),
            "literal secrets are not allowed in a policy file",
        ),
        (
            format!("    resign: {{ secret: {BOT_SECRET} }}\n"),
            "literal secrets are not allowed in a policy file",
        ),
        (
            format!("    resign: {{ env: {PLANTED} }}\n"),
            "`env` of `resign` of route `helpdesk` looks like a literal secret",
        ),
        (
            format!("    resign: {BOT_SECRET}\n"),
            "wrong type for `routes[0].resign`: expected a mapping",
        ),
    ] {
        assert_error(&keys, message);
    }
}

#[test]
fn custody_without_resign_is_an_error() {
    assert_error(
        "    bot: helpdesk\n    response_urls: custody\n",
        "`response_urls: custody` on route `helpdesk` needs `resign`",
    );
}

#[test]
fn custody_without_bot_is_an_error() {
    assert_error(
        "    resign: { env: BOT_SIGNING_SECRET }\n    workflow_tokens: custody\n",
        "`workflow_tokens: custody` on route `helpdesk` needs `bot`",
    );
}

#[test]
fn a_bot_of_another_app_is_an_error() {
    assert_error(
        "    resign: { env: BOT_SIGNING_SECRET }\n    bot: stranger\n    response_urls: custody\n",
        "bot `stranger` of route `helpdesk` does not belong to app `helpdesk`",
    );
}

#[test]
fn an_unknown_bot_is_an_error() {
    assert_error(
        "    resign: { env: BOT_SIGNING_SECRET }\n    bot: nobody\n    response_urls: custody\n",
        "route `helpdesk` references unknown bot `nobody`",
    );
}

/// Writes the server config and the policy and loads them, as the gateway does.
fn load_with(egress: &str, keys: &str) -> Result<slackgate_policy::Loaded, String> {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("listen: [{{ addr: 127.0.0.1:8080 }}]\npolicy: policy.yaml\n{egress}");
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), format!("{HEAD}{keys}")).unwrap();
    load(&dir.path().join("config.yaml"), &secrets(), now()).map_err(|e| {
        let out = e.to_string();
        assert!(!out.contains(PLANTED) && !out.contains(BOT_SECRET), "{out}");
        out
    })
}

const CUSTODY: &str = "    resign: { env: BOT_SIGNING_SECRET }
    bot: helpdesk
    response_urls: custody
    workflow_tokens: custody
";

#[test]
fn response_urls_in_custody_need_egress_public_url() {
    let no_public_url = "egress: { listen: { addr: 127.0.0.1:8081 } }\n";
    let e = load_with(no_public_url, CUSTODY).unwrap_err();
    assert!(
        e.contains("route `helpdesk` has `response_urls: custody`, but the server config has no `egress.public_url`"),
        "{e}"
    );
    // Workflow tokens alone need the egress door, not the public URL.
    let tokens_only = CUSTODY.replace("    response_urls: custody\n", "");
    assert!(load_with(no_public_url, &tokens_only).is_ok());
    let e = load_with("", &tokens_only).unwrap_err();
    assert!(
        e.contains("has `workflow_tokens: custody`, but the server config has no `egress` section"),
        "{e}"
    );
}

#[test]
fn a_complete_custody_route_loads() {
    let egress =
        "egress: { listen: { addr: 127.0.0.1:8081 }, public_url: \"http://egress.bots:8081/\" }\n";
    let loaded = load_with(egress, CUSTODY).unwrap();
    let config = loaded.config.unwrap();
    assert_eq!(
        config.egress.unwrap().public_url.as_deref(),
        Some("http://egress.bots:8081/")
    );
    let route = loaded.policy.routes.iter().next().unwrap();
    assert_eq!(route.bot.as_deref(), Some("helpdesk"));
    assert_eq!(route.response_urls, Custody::Custody);
    assert_eq!(route.workflow_tokens, Custody::Custody);
    let resign = route.resign.as_ref().unwrap();
    let sig = resign.key.sign("1", b"body");
    let bot = slackgate_slack::SigningKey::new("bot", BOT_SECRET.as_bytes()).unwrap();
    assert_eq!(sig, bot.sign("1", b"body"));
}
