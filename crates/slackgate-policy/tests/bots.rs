//! The `bots:` section (the egress door): what compiles, what is an error, and that no
//! error shows a key or a token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use slackgate_fixtures::policy::bot_as;
use slackgate_fixtures::MapSecrets;
use slackgate_policy::{
    compile_config, compile_policy, BotToken, Config, EgressLimitKey, Loaded, Policy, SlackApi,
};
use support::now;

const KEY: &str = "gk_3f9a1c7e5b2d4068a9e1f3c5";
const TOKEN: &str = "xoxb-1111-2222-planted0token0value";
const REFRESH: &str = "xoxe-1-planted0refresh0value";
const HOOK_URL: &str = "https://hooks.slack.com/services/T0ACME/B0ALERT/planted0hook0secret";

fn secrets() -> MapSecrets {
    let s = MapSecrets::in_memory(&[
        ("HELPDESK_GATEWAY_KEY", KEY),
        ("OTHER_KEY", "gk_0000aaaa1111bbbb2222cccc"),
        ("HELPDESK_BOT_TOKEN", TOKEN),
        ("SHORT_KEY", "short"),
        ("ID_SHAPED_KEY", "C0HELPDESKGATEWAYKEY0123"),
        ("NOT_A_TOKEN", "hunter2-not-a-slack-token"),
        ("EMPTY", ""),
        ("ALERTS_WEBHOOK_URL", HOOK_URL),
        ("CLIENT_SECRET", "planted0client0secret0value"),
        ("REFRESH_TOKEN", REFRESH),
        ("STATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("SHORT_STATE_KEY", "AAECAwQFBgc="),
        (
            "PLAIN_HOOK_URL",
            "http://hooks.example.com/services/T0/B0/planted0hook0secret",
        ),
    ]);
    s.set_file("bot.token", format!("{TOKEN}\n"));
    s
}

fn load(bots: &str) -> Result<Policy, String> {
    let text = format!("version: 1\nroutes: []\nbots:\n{bots}");
    compile_policy(Path::new("policy.yaml"), &text, &secrets(), now()).map_err(|e| {
        let out = e.to_string();
        assert!(!out.contains(KEY), "an error shows the key:\n{out}");
        assert!(
            !out.contains("planted0token0value"),
            "an error shows the token:\n{out}"
        );
        assert!(
            !out.contains("planted0hook0secret"),
            "an error shows a webhook URL:\n{out}"
        );
        assert!(
            !out.contains("planted0client0secret") && !out.contains("planted0refresh"),
            "an error shows a rotation secret:\n{out}"
        );
        out
    })
}

fn err(bots: &str) -> String {
    match load(bots) {
        Ok(_) => panic!("loaded without error:\n{bots}"),
        Err(e) => e,
    }
}

const HELPDESK: &str = "  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { file: bot.token }
    team: T0ACME
    methods: [chat.postMessage, \"reactions.*\", admin.conversations.invite]
    channels: [C0HELP, C0OPS]
    deny_args: [username, icon_url]
    rate_limits:
      - { per: method, rate: 1/s, burst: 5 }
";

#[test]
fn a_bot_compiles_and_is_found_by_its_key() {
    let p = load(HELPDESK).unwrap();
    assert_eq!(p.bots.len(), 1);
    let bot = p.bots.by_key(KEY.as_bytes()).expect("found by key");
    assert_eq!(&*bot.name, "helpdesk");
    match &bot.token {
        BotToken::Static(t) => assert_eq!(t.expose(), TOKEN),
        BotToken::Rotating(_) => panic!("a plain token reference compiled as rotation"),
    }
    assert_eq!(bot.team.as_deref(), Some("T0ACME"));
    assert!(bot.channels.as_ref().unwrap().contains("C0OPS"));
    assert!(bot.deny_args.contains("icon_url"));
    assert_eq!(bot.rate_limits[0].per, EgressLimitKey::Method);
    assert_eq!(
        &*bot.rate_limits[0].label,
        "rate_limits[0] per method 1/s burst 5"
    );
    assert!(p.bots.by_key(b"gk_3f9a1c7e5b2d4068a9e1f3c4").is_none());
    assert!(p.bots.by_key(b"").is_none());
    assert!(p.bots.by_key(TOKEN.as_bytes()).is_none());
    // Debug output never shows a credential.
    let debug = format!("{p:?}");
    assert!(!debug.contains(KEY) && !debug.contains(TOKEN));
}

#[test]
fn privileged_methods_need_their_exact_name() {
    let p = load(HELPDESK).unwrap();
    let m = &p.bots.by_name("helpdesk").unwrap().methods;
    assert!(m.permits("chat.postMessage", false));
    assert!(m.permits("reactions.add", false));
    assert!(!m.permits("chat.delete", false));
    // Listed exactly: allowed even though privileged.
    assert!(m.permits("admin.conversations.invite", true));
    // A pattern never reaches a privileged method.
    let p = load(
        "  b:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [\"*\"]
",
    )
    .unwrap();
    let m = &p.bots.by_name("b").unwrap().methods;
    assert!(m.permits("users.info", false));
    assert!(!m.permits("admin.users.list", true));
}

#[test]
fn literal_keys_and_tokens_are_errors() {
    let e = err("  b:
    key: gk_3f9a1c7e5b2d4068a9e1f3c5
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage]
");
    assert!(
        e.contains("policy.yaml:5:10") && e.contains("literal secrets are not allowed"),
        "{e}"
    );
    let e = err("  b:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { value: xoxb-1111-2222-planted0token0value }
    methods: [chat.postMessage]
");
    assert!(e.contains("literal secrets are not allowed"), "{e}");
    let e = err("  b:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: xoxb-1111-2222-planted0token0value }
    methods: [chat.postMessage]
");
    assert!(e.contains("looks like a literal secret"), "{e}");
}

#[test]
fn credential_problems_are_named_with_their_fix() {
    let cases: &[(&str, &str)] = &[
        (
            "key: { env: MISSING_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }",
            "environment variable MISSING_KEY (key of bot `b`) is not set",
        ),
        (
            "key: { env: EMPTY }\n    token: { env: HELPDESK_BOT_TOKEN }",
            "is empty",
        ),
        (
            "key: { env: SHORT_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }",
            "shorter than 20 characters",
        ),
        (
            "key: { env: ID_SHAPED_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }",
            "the key of bot `b` has the shape of a Slack id",
        ),
        (
            "key: { env: HELPDESK_BOT_TOKEN }\n    token: { env: HELPDESK_BOT_TOKEN }",
            "the key of bot `b` is its Slack token",
        ),
        (
            "key: { env: HELPDESK_GATEWAY_KEY }\n    token: { env: NOT_A_TOKEN }",
            "is not a Slack token",
        ),
        (
            "key: { env: HELPDESK_GATEWAY_KEY, file: k }\n    token: { env: HELPDESK_BOT_TOKEN }",
            "has both `env` and `file`",
        ),
        (
            "key: {}\n    token: { env: HELPDESK_BOT_TOKEN }",
            "has neither `env` nor `file`",
        ),
    ];
    for (creds, expected) in cases {
        let e = err(&format!(
            "  b:\n    {creds}\n    methods: [chat.postMessage]\n"
        ));
        assert!(e.contains(expected), "{creds}: {e}");
        assert!(e.contains("policy.yaml:"), "{e}");
    }
}

#[test]
fn two_bots_with_one_key_are_an_error() {
    let e = err(&format!(
        "{}    methods: [chat.postMessage]\n{}    methods: [chat.postMessage]\n",
        bot_as("a", "helpdesk"),
        bot_as("b", "helpdesk")
    ));
    assert!(
        e.contains("bots `a` and `b` have the same gateway key"),
        "{e}"
    );
}

#[test]
fn rule_problems_are_errors() {
    let base =
        "  b:\n    key: { env: HELPDESK_GATEWAY_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }\n";
    let cases: &[(&str, &str)] = &[
        ("methods: []", "has no methods"),
        (
            "methods: [/api/chat.postMessage]",
            "not a Web API method name",
        ),
        (
            "methods: [chat.postMessage]\n    team: acme",
            "is not a Slack team id",
        ),
        (
            "methods: [chat.postMessage]\n    channels: []",
            "`channels` of bot `b` is empty",
        ),
        (
            "methods: [chat.postMessage]\n    channels: [general]",
            "channel of bot `b`",
        ),
        (
            "methods: [chat.postMessage]\n    deny_args: [channel]",
            "which the gateway rules on itself",
        ),
        (
            "methods: [chat.postMessage]\n    deny_args: [channel_ids]",
            "which the gateway rules on itself",
        ),
        (
            "methods: [chat.PostMessage]",
            "lists `chat.PostMessage`, which Slack spells `chat.postMessage`",
        ),
        (
            "methods: [chat.postMessage]\n    rate_limits: [{ per: user, rate: 1/s, burst: 1 }]",
            "invalid value",
        ),
        (
            "methods: [chat.postMessage]\n    rate_limits: [{ per: bot, rate: 0/s, burst: 1 }]",
            "is zero",
        ),
        (
            "methods: [chat.postMessage]\n    app: nosuch",
            "names app `nosuch`, which is not defined",
        ),
        (
            "methods: [chat.postMessage]\n    metods: [x]",
            "unknown key `metods`",
        ),
    ];
    for (rest, expected) in cases {
        let e = err(&format!("{base}    {rest}\n"));
        assert!(e.contains(expected), "{rest}: {e}");
    }
}

#[test]
fn unknown_keys_in_a_bot_list_the_real_ones() {
    let e = err("  b:\n    key: { env: HELPDESK_GATEWAY_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }\n    methods: [chat.postMessage]\n    chanels: [C0HELP]\n");
    assert!(
        e.contains("`key`") && e.contains("`token`") && e.contains("`channels`"),
        "{e}"
    );
}

#[test]
fn egress_config() {
    let c = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n  ca_file: ca.pem\n  timeout: 2s\n",
    )
    .unwrap();
    let e = c.egress.unwrap();
    assert_eq!(e.listen.addr.port(), 8081);
    assert_eq!(
        e.slack_api,
        SlackApi::parse("https://slack.com/api/").unwrap()
    );
    assert_eq!(e.slack_api.port, 443);
    assert_eq!(e.timeout.as_secs(), 2);
    let bad = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\negress:\n  listen: { addr: 127.0.0.1:8080 }\n  slack_api: http://slack.com/api/\n",
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("already used"), "{bad}");
    assert!(
        bad.contains("config.yaml:5:14") && bad.contains("use https://"),
        "{bad}"
    );
}

#[test]
fn slack_api_urls() {
    let a = SlackApi::parse("https://127.0.0.1:8443/api/").unwrap();
    assert_eq!(
        (a.tls, a.host.as_str(), a.port, a.path.as_str()),
        (true, "127.0.0.1", 8443, "/api/")
    );
    assert_eq!(a.authority(), "127.0.0.1:8443");
    assert!(SlackApi::parse("http://127.0.0.1:9/api/").is_ok());
    assert!(SlackApi::parse("http://[::1]:9/api/").is_ok());
    for bad in [
        "slack.com/api/",
        "https://slack.com/api",
        "https://slack.com/api/?x=1",
        "https://user@slack.com/api/",
        "https://slack.com:0/api/",
        "http://slack.com/api/",
        "ftp://slack.com/api/",
    ] {
        assert!(SlackApi::parse(bad).is_err(), "{bad}");
    }
}

// === webhooks ===

fn with_hooks(hooks: &str) -> Result<Policy, String> {
    load(&format!("{HELPDESK}webhooks:\n{hooks}"))
}

fn hook_err(hooks: &str) -> String {
    match with_hooks(hooks) {
        Ok(_) => panic!("loaded without error:\n{hooks}"),
        Err(e) => e,
    }
}

#[test]
fn webhooks_compile_and_never_show_their_url() {
    let p =
        with_hooks("  alerts: { url: { env: ALERTS_WEBHOOK_URL }, bots: [helpdesk] }\n").unwrap();
    let hook = p.webhooks.get("alerts").unwrap();
    assert_eq!(&*hook.name, "alerts");
    assert_eq!(&*hook.method, "hooks.alerts");
    assert_eq!(hook.url.expose(), HOOK_URL);
    assert!(hook.permits("helpdesk"));
    assert!(!hook.permits("other"));
    assert_eq!(p.webhooks.len(), 1);
    let debug = format!("{p:?}");
    assert!(!debug.contains("planted0hook0secret"), "{debug}");
}

#[test]
fn a_literal_webhook_url_is_an_error_and_not_echoed() {
    let e = hook_err("  alerts:\n    url: https://hooks.slack.com/services/T0ACME/B0ALERT/planted0hook0secret\n    bots: [helpdesk]\n");
    assert!(e.contains("literal secrets are not allowed"), "{e}");
    let e = hook_err("  alerts:\n    url: { value: https://hooks.slack.com/services/T0ACME/B0ALERT/planted0hook0secret }\n    bots: [helpdesk]\n");
    assert!(e.contains("literal secrets are not allowed"), "{e}");
}

#[test]
fn webhook_bots_must_be_defined_and_listed() {
    let e = hook_err("  alerts: { url: { env: ALERTS_WEBHOOK_URL }, bots: [nobody] }\n");
    assert!(
        e.contains("webhook `alerts` names bot `nobody`, which is not defined")
            && e.contains("`helpdesk`"),
        "{e}"
    );
    let e = hook_err("  alerts: { url: { env: ALERTS_WEBHOOK_URL }, bots: [] }\n");
    assert!(e.contains("lists no bots"), "{e}");
    let e = hook_err("  alerts: { url: { env: ALERTS_WEBHOOK_URL } }\n");
    assert!(e.contains("missing required key `bots`"), "{e}");
}

#[test]
fn a_plain_http_webhook_url_is_an_error() {
    let e = hook_err("  alerts: { url: { env: PLAIN_HOOK_URL }, bots: [helpdesk] }\n");
    assert!(
        e.contains("the url of webhook `alerts` is not a usable webhook URL")
            && e.contains("https://"),
        "{e}"
    );
}

#[test]
fn hooks_base_defaults_to_slack_and_must_be_a_base_url() {
    let c = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n",
    )
    .unwrap();
    let base = c.egress.unwrap().hooks_base;
    assert_eq!(base, SlackApi::parse("https://hooks.slack.com/").unwrap());
    assert_eq!(
        base.path_of(HOOK_URL),
        Some("/services/T0ACME/B0ALERT/planted0hook0secret")
    );
    assert_eq!(
        base.path_of("https://HOOKS.slack.com/services/x"),
        Some("/services/x")
    );
    assert_eq!(
        base.path_of("https://hooks.slack.com.evil.test/services/x"),
        None
    );
    assert_eq!(base.path_of("https://evil.test/services/x"), None);
    assert_eq!(base.path_of("http://hooks.slack.com/services/x"), None);
    assert_eq!(
        base.path_of("https://hooks.slack.com:443/services/x"),
        Some("/services/x")
    );
    assert_eq!(
        base.path_of("https://hooks.slack.com:8443/services/x"),
        None
    );
    let local = SlackApi::parse("http://127.0.0.1:9000/hooks/").unwrap();
    assert_eq!(
        local.path_of("http://127.0.0.1:9000/hooks/a"),
        Some("/hooks/a")
    );
    assert_eq!(local.path_of("http://127.0.0.1:9000/other/a"), None);
    assert_eq!(local.path_of("http://127.0.0.1:9001/hooks/a"), None);
    assert_eq!(local.path_of("http://127.0.0.1/hooks/a"), None);
    let bad = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n  hooks_base: http://hooks.slack.com/\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("config.yaml:5:15") && bad.contains("`egress.hooks_base` is not a usable"),
        "{bad}"
    );
}

const ROTATING: &str = "  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token:
      rotation:
        client_id: \"1234.5678\"
        client_secret: { env: CLIENT_SECRET }
        refresh_token: { env: REFRESH_TOKEN }
    methods: [chat.postMessage]
";

#[test]
fn a_rotating_token_compiles_with_its_client_and_first_refresh_token() {
    let p = load(ROTATING).unwrap();
    let bot = p.bots.by_name("helpdesk").unwrap();
    let r = bot.token.rotation().expect("rotation");
    assert_eq!(&*r.client_id, "1234.5678");
    assert_eq!(r.refresh_token.expose(), REFRESH);
    assert_eq!((r.at.line, r.at.column), (8, 18));
    let debug = format!("{bot:?}");
    assert!(!debug.contains("planted0"), "{debug}");
    // The fingerprint follows the first refresh token: a new one starts over.
    let other =
        load(&ROTATING.replace("client_id: \"1234.5678\"", "client_id: \"1234.9999\"")).unwrap();
    assert_ne!(
        bot.token.fingerprint(),
        other.bots.by_name("helpdesk").unwrap().token.fingerprint()
    );
}

#[test]
fn rotation_problems_are_errors_at_their_place() {
    let e = err(&ROTATING.replace("client_id: \"1234.5678\"", "client_id: helpdesk"));
    assert!(
        e.contains("policy.yaml:8:20") && e.contains("is not a Slack client id"),
        "{e}"
    );
    let e = err(&ROTATING.replace(
        "refresh_token: { env: REFRESH_TOKEN }",
        "refresh_token: { env: HELPDESK_BOT_TOKEN }",
    ));
    assert!(e.contains("is not a Slack refresh token"), "{e}");
    let e = err(&ROTATING.replace(
        "client_secret: { env: CLIENT_SECRET }",
        "client_secret: planted0client0secret0value",
    ));
    assert!(e.contains("literal"), "{e}");
    let e = err(&ROTATING.replace(
        "refresh_token: { env: REFRESH_TOKEN }",
        "refresh_token: { value: xoxe-1-planted0refresh0value }",
    ));
    assert!(e.contains("literal"), "{e}");
    let e = err(&ROTATING.replace(
        "refresh_token: { env: REFRESH_TOKEN }",
        "refresh_token: { env: EMPTY }",
    ));
    assert!(e.contains("refresh_token of bot `helpdesk`"), "{e}");
    let e = err(&ROTATING.replace(
        "    token:\n",
        "    token:\n      env: HELPDESK_BOT_TOKEN\n",
    ));
    assert!(e.contains("both a reference and `rotation`"), "{e}");
    let e = err(&ROTATING.replace(
        "client_id: \"1234.5678\"",
        "client_id: \"1234.5678\"\n        lifetime: 12h",
    ));
    assert!(e.contains("unknown key `lifetime`"), "{e}");
    let e = err(&ROTATING.replace(
        "key: { env: HELPDESK_GATEWAY_KEY }",
        "key: { env: CLIENT_SECRET }",
    ));
    assert!(e.contains("is its Slack token"), "{e}");
    let e = err(&ROTATING.replace("key: { env: HELPDESK_GATEWAY_KEY }", "key: { rotation: { client_id: \"1.2\", client_secret: { env: CLIENT_SECRET }, refresh_token: { env: REFRESH_TOKEN } } }"));
    assert!(e.contains("cannot be `rotation:`"), "{e}");
}

fn state_config(state: &str) -> slackgate_policy::Config {
    compile_config(
        Path::new("config.yaml"),
        &format!("listen: [{{ addr: 127.0.0.1:8080 }}]\npolicy: p.yaml\negress:\n  listen: {{ addr: 127.0.0.1:8081 }}\n{state}"),
    )
    .unwrap()
}

/// What every command gets for `config` with `policy`: [`Loaded::join`], as `load` runs it.
fn join(config: &Config, policy: Policy) -> Result<Loaded, String> {
    Loaded::join(Some(config.clone()), policy, &secrets()).map_err(|e| e.to_string())
}

#[test]
fn rotation_needs_a_state_key_and_a_place_for_the_tokens() {
    let e = join(&state_config(""), load(ROTATING).unwrap()).unwrap_err();
    assert!(e.contains("policy.yaml:8:18"), "{e}");
    assert!(
        e.contains("no `state.encryption_key`") && e.contains("no `state.path`"),
        "{e}"
    );
    let ok =
        state_config("state:\n  path: /var/lib/slackgate\n  encryption_key: { env: STATE_KEY }\n");
    let loaded = join(&ok, load(ROTATING).unwrap()).unwrap();
    assert_eq!(
        ok.state.path.as_deref(),
        Some(Path::new("/var/lib/slackgate"))
    );
    let key = loaded.state_key.expect("a key");
    assert_eq!(key.expose()[31], 31);
    assert!(!format!("{key:?}").contains("31"));
}

#[test]
fn a_bad_state_key_is_a_load_error_that_names_its_place() {
    for (state, want) in [
        (
            "  encryption_key: { env: MISSING_KEY }\n",
            "`MISSING_KEY` is not set",
        ),
        (
            "  encryption_key: { env: SHORT_STATE_KEY }\n",
            "not 32 bytes in base64",
        ),
        ("  encryption_key: { env: EMPTY }\n", "is empty"),
    ] {
        let c = state_config(&format!("state:\n{state}"));
        // A bot that does not rotate: the key is read and checked all the same.
        let e = join(&c, load(HELPDESK).unwrap()).unwrap_err();
        assert_eq!(e.matches("error:").count(), 1, "{e}");
        assert!(e.contains("config.yaml:6:26") && e.contains(want), "{e}");
    }
    let literal = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\nstate:\n  encryption_key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        literal.contains("config.yaml:4:19") && literal.contains("literal"),
        "{literal}"
    );
    assert!(!literal.contains("AAECAw"), "{literal}");
}
