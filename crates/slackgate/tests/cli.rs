//! The built `slackgate` binary, run as an operator would: `sign`, `check`, `explain`, `demo`.
//!
//! Signatures are cross-checked against Python's `hmac` module (an independent
//! implementation) and Slack's documented test vector. Nothing here uses the network
//! beyond loopback; the demo binds ports from `free_port()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use slackgate_testkit::policy::{app, bot, bot_as, bots_from, helpdesk_route, helpdesk_to};
use slackgate_testkit::{fixture, free_port, SignedRequest};
use support::{explain, explain_egress, slackgate, text};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The value of `X-Slack-Signature` in `slackgate sign` output.
fn signature_of(out: &Output) -> String {
    assert!(out.status.success(), "sign failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "two header lines: {stdout:?}");
    lines
        .iter()
        .find_map(|l| l.strip_prefix("X-Slack-Signature: "))
        .unwrap_or_else(|| panic!("no signature line in {stdout:?}"))
        .to_owned()
}

// === sign ===

/// HMAC-SHA256 computed by Python's standard library from the same secret, timestamp and body.
fn python_hmac(secret: &str, ts: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, body).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib, hmac, os, sys\n\
             body = open(sys.argv[2], 'rb').read()\n\
             base = b'v0:' + sys.argv[1].encode() + b':' + body\n\
             print('v0=' + hmac.new(os.environ['SG_SIGN_SECRET'].encode(), base, hashlib.sha256).hexdigest())",
            ts,
        ])
        .arg(&body_path)
        .env("SG_SIGN_SECRET", secret)
        .output()
        .expect("python3 is needed to cross-check signatures (scripts/deps.sh)");
    assert!(out.status.success(), "python3: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn sign_agrees_with_python_hmac() {
    let secret = "e3b0c44298fc1c149afbf4c8996fb924-sign-test";
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("event json", fixture("event_app_mention.json")),
        ("command form", fixture("command_ticket.form")),
        ("block_actions form", fixture("block_actions.form")),
        (
            "utf-8, newlines, CRLF and a trailing newline",
            "caf\u{e9} \u{1f525}\r\nline two\n&%=+\n"
                .as_bytes()
                .to_vec(),
        ),
        ("binary", (0u8..=255).collect()),
    ];
    for (ts, (what, body)) in ["1531420618", "1764377000", "0"].iter().cycle().zip(bodies) {
        let out = slackgate(
            &["sign", "--secret-env", "SG_SIGN_SECRET", "--timestamp", ts],
            &[("SG_SIGN_SECRET", secret)],
            &body,
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!("X-Slack-Request-Timestamp: {ts}\n")),
            "{what}: {stdout:?}"
        );
        let ours = signature_of(&out);
        assert_eq!(ours, python_hmac(secret, ts, &body), "{what}");
        assert!(!stdout.contains(secret) && !text(&out.stderr).contains(secret));
    }
}

#[test]
fn sign_reproduces_slacks_documented_vector() {
    let out = slackgate(
        &[
            "sign",
            "--secret-env",
            "SG_SIGN_SECRET",
            "--timestamp",
            "1531420618",
        ],
        &[("SG_SIGN_SECRET", "8f742231b10e8888abcd99yyyzzz85a5")],
        &fixture("signature_vector.form"),
    );
    assert_eq!(
        text(&out.stdout),
        "X-Slack-Request-Timestamp: 1531420618\n\
         X-Slack-Signature: v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503\n"
    );
}

#[test]
fn sign_without_timestamp_uses_now() {
    let before = slackgate_testkit::now_unix();
    let out = slackgate(
        &["sign", "--secret-env", "SG_SIGN_SECRET"],
        &[("SG_SIGN_SECRET", "now-secret")],
        b"body",
    );
    let stdout = text(&out.stdout);
    let ts: i64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("X-Slack-Request-Timestamp: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((before..=slackgate_testkit::now_unix()).contains(&ts));
    assert_eq!(
        signature_of(&out),
        python_hmac("now-secret", &ts.to_string(), b"body")
    );
}

#[test]
fn sign_without_a_secret_fails_clearly_and_echoes_nothing() {
    // Another variable holds a secret and the body holds one: neither may be printed.
    let planted = "PLANTED-0ther-5ecret-value";
    for (var, env) in [
        ("SG_UNSET", vec![("HELPDESK_SIGNING_SECRET", planted)]),
        (
            "SG_EMPTY",
            vec![("SG_EMPTY", ""), ("HELPDESK_SIGNING_SECRET", planted)],
        ),
    ] {
        let out = slackgate(
            &["sign", "--secret-env", var, "--timestamp", "1531420618"],
            &env,
            format!("text={planted}").as_bytes(),
        );
        assert_eq!(out.status.code(), Some(1), "{var}");
        assert!(
            out.stdout.is_empty(),
            "no headers without a secret: {}",
            text(&out.stdout)
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(var) && stderr.contains("not set or empty"),
            "the message names the variable: {stderr}"
        );
        assert!(!stderr.contains(planted), "{stderr}");
    }
}

// === check ===

/// Every `env: NAME` a YAML file references outside comments.
fn env_refs(yaml: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in yaml.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("env:") {
            let boundary = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
            rest = &rest[i + 4..];
            let name: String = rest
                .trim_start()
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if boundary && !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn check_accepts_every_shipped_policy_and_config() {
    let dir = repo_root().join("policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "policies/ holds the examples: {files:?}");

    // The env vars every shipped file references, each with a distinct dummy value.
    let mut vars = Vec::new();
    for f in &files {
        vars.extend(env_refs(&std::fs::read_to_string(f).unwrap()));
    }
    vars.sort();
    vars.dedup();
    assert!(
        vars.iter().any(|v| v == "HELPDESK_SIGNING_SECRET"),
        "{vars:?}"
    );
    let values: Vec<(String, String)> = vars
        .iter()
        .map(|v| (v.clone(), format!("dummy-secret-for-{}", v.to_lowercase())))
        .collect();
    let env: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    for f in &files {
        let path = f.to_str().unwrap();
        let out = slackgate(&["check", path], &env, b"");
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "check {path}: {}{}",
            stdout,
            text(&out.stderr)
        );
        assert!(stdout.starts_with("ok: "), "{stdout}");
        for (_, value) in &values {
            assert!(
                !stdout.contains(value.as_str()) && !text(&out.stderr).contains(value.as_str())
            );
        }

        // A policy must also pass when a server config names it.
        let is_config = std::fs::read_to_string(f).unwrap().contains("\npolicy:");
        if !is_config {
            let config = tmp.path().join("config.yaml");
            std::fs::write(
                &config,
                format!("listen:\n  - addr: 127.0.0.1:8080\npolicy: {path}\n"),
            )
            .unwrap();
            let out = slackgate(&["check", config.to_str().unwrap()], &env, b"");
            assert!(
                out.status.success(),
                "config naming {path}: {}",
                text(&out.stderr)
            );
        }
    }

    // Without the secrets the same files fail, naming each missing variable.
    let out = slackgate(
        &["check", dir.join("multi-bot.yaml").to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for v in env_refs(&std::fs::read_to_string(dir.join("multi-bot.yaml")).unwrap()) {
        assert!(stderr.contains(&v), "{v} missing from: {stderr}");
    }
}

/// `file:line:column: error:` prefixes of a check's stderr, as (file, line).
fn error_positions(stderr: &str) -> Vec<(String, usize)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (head, _) = l.split_once(": error: ")?;
            let mut parts = head.rsplitn(3, ':');
            let col: usize = parts.next()?.parse().ok()?;
            let line: usize = parts.next()?.parse().ok()?;
            let file = parts.next()?;
            assert!(col >= 1, "{l}");
            Some((file.to_owned(), line))
        })
        .collect()
}

const PLANTED_LITERAL: &str = "PLANTED-literal-5ecret-7a1c";
const PLANTED_TOKEN: &str = "xoxb-1111-2222-PLANTEDt0ken";
const PLANTED_ENV: &str = "PLANTED-env-5ecret-93be";

#[test]
fn check_lists_every_policy_error_with_positions_and_never_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.yaml"),
        "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\n",
    )
    .unwrap();
    let policy = format!(
        "version: 1
apps:
  helpdesk:
    signing_secrets:
      - {{ id: current, secret: \"{PLANTED_LITERAL}\" }}
      - {{ id: pasted, env: \"{PLANTED_TOKEN}\" }}
      - {{ id: ok, env: HELPDESK_SIGNING_SECRET }}
upstreams:
  bot: {{ targets: [127.0.0.1:99999] }}
routes:
  - name: r
    path: /slack/events
    app: helpdesk
    upstream: bot
    colour: blue
  - name: r2
    path: /slack/other
    app: helpdesk
    upstream: bot
    rate_limits:
      - {{ per: planet, rate: 1/s, burst: 1 }}
"
    );
    std::fs::write(tmp.path().join("policy.yaml"), policy).unwrap();
    let config = tmp.path().join("config.yaml");
    let out = slackgate(
        &["check", config.to_str().unwrap()],
        &[("HELPDESK_SIGNING_SECRET", PLANTED_ENV)],
        b"",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("ok:"), "{stdout}");

    let positions = error_positions(&stderr);
    let lines: Vec<usize> = positions.iter().map(|(_, l)| *l).collect();
    // (Each route holds one error: within one mapping, slackgate-policy reports a structural
    // error such as an unknown key without also validating that mapping's values.)
    assert!(positions.len() >= 5, "every error is listed: {stderr}");
    assert!(
        positions.iter().all(|(f, _)| f.ends_with("policy.yaml")),
        "{stderr}"
    );
    for (line, what) in [
        (5, "literal secret"),
        (6, "token pasted as a variable name"),
        (9, "bad port"),
        (15, "unknown key"),
        (21, "unknown rate limit key"),
    ] {
        assert!(lines.contains(&line), "{what} at line {line}: {stderr}");
    }
    assert!(
        stderr.contains("fix: "),
        "each error says the fix: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{} error(s)", positions.len())),
        "{stderr}"
    );
    for planted in [PLANTED_LITERAL, PLANTED_TOKEN, PLANTED_ENV, "PLANTED"] {
        assert!(!stderr.contains(planted), "{planted} echoed: {stderr}");
        assert!(!stdout.contains(planted), "{planted} echoed: {stdout}");
    }

    // The same policy checked on its own reports the same errors.
    let alone = slackgate(
        &["check", tmp.path().join("policy.yaml").to_str().unwrap()],
        &[("HELPDESK_SIGNING_SECRET", PLANTED_ENV)],
        b"",
    );
    assert_eq!(alone.status.code(), Some(1));
    assert_eq!(error_positions(&text(&alone.stderr)).len(), positions.len());
    assert!(!text(&alone.stderr).contains("PLANTED"));
}

#[test]
fn check_validates_socket_mode_and_never_echoes_the_app_token() {
    const APP_TOKEN: &str = "xapp-1-A0HELPDESK-1-PLANTED0app0token";
    const BOT_TOKEN_AS_APP: &str = "xoxb-1111-2222-PLANTED0bot0token";
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.yaml");
    let with_egress = "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n";
    let policy = |helpdesk: &str, other: &str| {
        format!(
            "version: 1
apps:
  helpdesk:
    signing_secrets: [{{ id: current, env: HELPDESK_SIGNING_SECRET }}]
{helpdesk}
  other:
    signing_secrets: [{{ id: current, env: HELPDESK_SIGNING_SECRET }}]
{other}
upstreams:
  bot: {{ targets: [127.0.0.1:3000] }}
routes:
  - {{ name: events, path: /slack/events, app: helpdesk, upstream: bot }}
  - {{ name: other, path: /slack/other, app: other, upstream: bot }}
"
        )
    };
    let env = [
        (
            "HELPDESK_SIGNING_SECRET",
            "8f14e45fceea167a5a36dedd4bea2543",
        ),
        ("HELPDESK_APP_TOKEN", APP_TOKEN),
        ("OTHER_APP_TOKEN", BOT_TOKEN_AS_APP),
    ];
    let check = |config_text: &str, policy_text: &str| {
        std::fs::write(&config, config_text).unwrap();
        std::fs::write(tmp.path().join("policy.yaml"), policy_text).unwrap();
        let out = slackgate(&["check", config.to_str().unwrap()], &env, b"");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            !stdout.contains("PLANTED") && !stderr.contains("PLANTED"),
            "a token echoed: {stdout}{stderr}"
        );
        (out.status.code(), stdout, stderr)
    };

    // A valid socket_mode checks ok.
    let good = "    socket_mode:\n      app_token: { env: HELPDESK_APP_TOKEN }\n      connections: 2\n      paths: { events_api: /slack/events }";
    let (code, stdout, stderr) = check(with_egress, &policy(good, ""));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");

    // Every error, each at its line, and only those: too many connections, a path that is
    // no route of the app, a bot token where the app token belongs, a literal app token.
    // (The paths of an app that fails name its routes: no error of their own.)
    let bad_helpdesk = "    socket_mode:
      app_token: { env: HELPDESK_APP_TOKEN }
      connections: 11
      paths: { events_api: /slack/events, interactive: /slack/other }";
    let bad_other = format!(
        "    socket_mode:
      app_token: {{ env: OTHER_APP_TOKEN }}
      paths: {{ events_api: /slack/other }}
  third:
    signing_secrets: [{{ id: current, env: HELPDESK_SIGNING_SECRET }}]
    socket_mode:
      app_token: \"{APP_TOKEN}\"
      paths: {{ events_api: /slack/other }}"
    );
    let (code, stdout, stderr) = check(with_egress, &policy(bad_helpdesk, &bad_other));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines: Vec<usize> = error_positions(&stderr).iter().map(|(_, l)| *l).collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    for (line, what) in [
        (7, "connections: 11"),
        (8, "a path of another app's route"),
        (12, "a bot token as the app token"),
        (17, "a literal app token"),
    ] {
        assert!(lines.contains(&line), "{what} at line {line}: {stderr}");
    }
    for needle in [
        "it must be 1 to 10",
        "is not an app-level token",
        "socket_mode path `/slack/other` (interactive) of app `helpdesk` is not the path of a route of that app",
        "one of the app's routes: `/slack/events`;",
        "`apps.third.socket_mode.app_token`: expected a mapping",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in: {stderr}");
    }

    // socket_mode needs the egress section (apps.connections.open goes to egress.slack_api).
    let (code, _, stderr) = check(
        "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\n",
        &policy(good, ""),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "app `helpdesk` has `socket_mode`, but the server config has no `egress` section"
        ),
        "{stderr}"
    );
}

#[test]
fn check_lists_every_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        "listen:\n  - addr: 127.0.0.1:notaport\nadmn: { addr: 127.0.0.1:9090 }\nlimits: { max_body_bytes: lots }\npolicy: policy.yaml\n",
    )
    .unwrap();
    let out = slackgate(&["check", config.to_str().unwrap()], &[], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<usize> = error_positions(&stderr).iter().map(|(_, l)| *l).collect();
    for line in [2, 3, 4] {
        assert!(lines.contains(&line), "error at line {line}: {stderr}");
    }

    let missing = slackgate(&["check", "/nonexistent/slackgate.yaml"], &[], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/nonexistent/slackgate.yaml"));
}

#[test]
fn check_reports_bot_errors_with_positions_and_never_a_key_or_token() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n",
    )
    .unwrap();
    let planted_value = "xoxb-3333-4444-PLANTEDvalue";
    let planted_env = "xoxb-5555-6666-PLANTEDenv";
    // Structural errors: a literal key, a literal token value, an unknown key, a bad `per`.
    std::fs::write(
        tmp.path().join("policy.yaml"),
        format!(
            "version: 1
routes: []
bots:
  helpdesk:
    key: {PLANTED_TOKEN}
    token: {{ env: HELPDESK_BOT_TOKEN }}
    methods: [chat.postMessage]
  deploy:
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ value: \"{planted_value}\" }}
    methods: [chat.postMessage]
  standup:
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ env: HELPDESK_BOT_TOKEN }}
    methods: [chat.postMessage]
    colour: blue
  ops:
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ env: HELPDESK_BOT_TOKEN }}
    methods: [chat.postMessage]
    rate_limits:
      - {{ per: planet, rate: 1/s, burst: 1 }}
"
        ),
    )
    .unwrap();
    let env = [
        ("HELPDESK_BOT_TOKEN", planted_env),
        ("HELPDESK_GATEWAY_KEY", "gk_PLANTED_key_000000000000"),
    ];
    let out = slackgate(&["check", config.to_str().unwrap()], &env, b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let positions = error_positions(&stderr);
    assert!(
        positions.iter().all(|(f, _)| f.ends_with("policy.yaml")),
        "{stderr}"
    );
    let lines: Vec<usize> = positions.iter().map(|(_, l)| *l).collect();
    for (line, what) in [
        (5, "literal key"),
        (10, "literal token value"),
        (16, "unknown key"),
        (22, "unknown rate limit key"),
    ] {
        assert!(lines.contains(&line), "{what} at line {line}: {stderr}");
    }
    assert!(
        stderr.contains("literal secrets are not allowed") && stderr.contains("env: VAR_NAME"),
        "{stderr}"
    );
    // `policy.yaml:5:10: error:`: the column of the literal value.
    assert!(stderr.contains("policy.yaml:5:10: error: "), "{stderr}");
    assert!(stderr.contains("bots.standup"), "{stderr}");
    for planted in [PLANTED_TOKEN, planted_value, planted_env, "PLANTED"] {
        assert!(!stderr.contains(planted), "{planted} echoed: {stderr}");
        assert!(!stdout.contains(planted), "{planted} echoed: {stdout}");
    }

    // Value errors: a short key, a token that is not one, a bad method and channel, a
    // missing variable, a zero rate; and two bots sharing a key.
    std::fs::write(
        tmp.path().join("policy.yaml"),
        "version: 1
routes: []
bots:
  standup:
    key: { env: STANDUP_SIGNING_SECRET }
    token: { env: SG_SIGN_SECRET }
    methods: [\"chat post\"]
    channels: [not-a-channel]
  ops:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: SG_UNSET }
    methods: [chat.postMessage]
    rate_limits:
      - { per: bot, rate: 0/s, burst: 1 }
",
    )
    .unwrap();
    let env = [
        ("STANDUP_SIGNING_SECRET", "shortPLANTED"),
        ("SG_SIGN_SECRET", "hunter2-PLANTED-not-a-token"),
        ("HELPDESK_GATEWAY_KEY", "gk_PLANTED_key_000000000000"),
    ];
    let out = slackgate(&["check", config.to_str().unwrap()], &env, b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<usize> = error_positions(&stderr).iter().map(|(_, l)| *l).collect();
    for (line, what) in [
        (5, "short key"),
        (6, "not a Slack token"),
        (7, "bad method"),
        (8, "bad channel"),
        (11, "missing variable"),
        (14, "zero rate"),
    ] {
        assert!(lines.contains(&line), "{what} at line {line}: {stderr}");
    }
    assert!(
        stderr.contains("SG_UNSET"),
        "the variable is named: {stderr}"
    );
    assert!(stderr.contains("fix: "), "{stderr}");
    assert!(
        !stderr.contains("PLANTED") && !stdout.contains("PLANTED"),
        "{stderr}"
    );

    let shared = format!(
        "version: 1\nroutes: []\nbots:\n{}    methods: [chat.postMessage]\n{}    methods: [chat.postMessage]\n",
        bot_as("a", "helpdesk"),
        bot_as("b", "helpdesk")
    );
    std::fs::write(tmp.path().join("policy.yaml"), &shared).unwrap();
    let env = [
        ("HELPDESK_GATEWAY_KEY", "gk_PLANTED_key_000000000000"),
        ("HELPDESK_BOT_TOKEN", planted_env),
    ];
    let out = slackgate(&["check", config.to_str().unwrap()], &env, b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("policy.yaml:9:"), "{stderr}");
    assert!(stderr.contains("the same gateway key"), "{stderr}");
    assert!(!stderr.contains("PLANTED"), "{stderr}");

    // Fixed, it passes and counts its bots and the door.
    std::fs::write(
        tmp.path().join("policy.yaml"),
        shared.replace(
            "  b:\n    key: { env: HELPDESK_GATEWAY_KEY }",
            "  b:\n    key: { env: DEPLOYBOT_SIGNING_SECRET }",
        ),
    )
    .unwrap();
    let env = [
        ("HELPDESK_GATEWAY_KEY", "gk_PLANTED_key_000000000000"),
        ("DEPLOYBOT_SIGNING_SECRET", "gk_PLANTED_key_111111111111"),
        ("HELPDESK_BOT_TOKEN", planted_env),
    ];
    let out = slackgate(&["check", config.to_str().unwrap()], &env, b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(", 2 bot(s), "), "{stdout}");
    assert!(
        stdout.contains("egress: bots call http://127.0.0.1:8081/api/, allowed calls go to https://slack.com/api/"),
        "{stdout}"
    );
    assert!(!stdout.contains("PLANTED"), "{stdout}");
}

#[test]
fn check_reports_egress_config_errors_with_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.yaml");
    std::fs::write(
        &config,
        "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n  slack_api: http://slack.com/api/\n  timeout: soon\n",
    )
    .unwrap();
    let out = slackgate(&["check", config.to_str().unwrap()], &[], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<usize> = error_positions(&stderr).iter().map(|(_, l)| *l).collect();
    assert!(lines.contains(&6) && lines.contains(&7), "{stderr}");
    assert!(stderr.contains("use https://"), "{stderr}");
}

/// A user group: its load errors at their positions, the line `check` prints for a good
/// one, and, in a server config, the error for one without `egress:`.
#[test]
fn check_reports_user_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.yaml");
    let head = format!(
        "{}    team: T0ACME\n    methods: [chat.postMessage]\ngroups:\n",
        bots_from("helpdesk")
    );
    let env = [
        ("HELPDESK_BOT_TOKEN", "xoxb-3333-4444-PLANTEDvalue"),
        ("HELPDESK_GATEWAY_KEY", "gk_PLANTED_key_000000000000"),
    ];
    // Writes `file` (the group line after `head` for the policy), runs `check` on `target`:
    // exit code, stdout, stderr.
    let check = |file: &Path, content: &str, target: &Path| {
        std::fs::write(file, content).unwrap();
        let out = slackgate(&["check", target.to_str().unwrap()], &env, b"");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!stderr.contains("PLANTED"), "{stderr}");
        (out.status.code(), stdout, stderr)
    };
    let group = |line: &str| format!("{head}  oncall: {line}\n");

    let (code, _, stderr) = check(
        &policy,
        &group("{ usergroup: oncall, bot: helpbot, refresh: 10ms, team: T0 }"),
        &policy,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("policy.yaml:10:61: error: unknown key `team` in `groups.oncall`"),
        "{stderr}"
    );
    let (code, _, stderr) = check(
        &policy,
        &group("{ usergroup: oncall, bot: helpbot, refresh: 10ms }"),
        &policy,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(error_positions(&stderr).len(), 3, "{stderr}");
    for needle in [
        "policy.yaml:10:24: error: `usergroup` of group `oncall` is not a Slack user group id",
        "policy.yaml:10:37: error: group `oncall` names bot `helpbot`, which is not defined",
        "policy.yaml:10:55: error: `refresh` of group `oncall` is shorter than 1s",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }

    let good = group("{ usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }");
    let (code, stdout, stderr) = check(&policy, &good, &policy);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("group oncall: members read from Slack user group S0ONCALL with bot helpdesk's token every 300s"),
        "{stdout}"
    );
    // A server config without `egress:` cannot read it.
    let config = tmp.path().join("config.yaml");
    let listen = "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\n";
    let (code, _, stderr) = check(&config, listen, &config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("policy.yaml:10:3: error: group `oncall` reads its members from Slack user group S0ONCALL, but the server config has no `egress` section"),
        "{stderr}"
    );
    let with_egress = format!("{listen}egress:\n  listen: {{ addr: 127.0.0.1:8081 }}\n");
    let (code, _, stderr) = check(&config, &with_egress, &config);
    assert_eq!(code, Some(0), "{stderr}");
}

// === explain ===

const EXPLAIN_SECRET: &str = "explain-5ecret-c0ffee";

/// A config + policy whose upstream is a socket the test holds, to prove nothing connects.
struct ExplainRig {
    dir: tempfile::TempDir,
    upstream: TcpListener,
}

impl ExplainRig {
    fn new() -> Self {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        upstream.set_nonblocking(true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            format!(
                "version: 1\n{}groups:\n  blocked: [U0BAD]\nroutes:\n{}",
                helpdesk_to(
                    "HELPDESK_SIGNING_SECRET",
                    "bot",
                    upstream.local_addr().unwrap()
                ),
                helpdesk_route(
                    "helpdesk",
                    "/slack/events",
                    "allow:\n  teams: [T0ACME]\n  events: [app_mention]\ndeny:\n  users: [\"@blocked\"]"
                )
            ),
        )
        .unwrap();
        Self { dir, upstream }
    }

    fn explain(&self, req: &SignedRequest) -> Value {
        explain(
            &self.dir.path().join("config.yaml"),
            req,
            &[],
            ("HELPDESK_SIGNING_SECRET", EXPLAIN_SECRET),
        )
    }

    fn assert_no_connection(&self) {
        match self.upstream.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("explain must not contact the upstream: {other:?}"),
        }
    }
}

#[test]
fn explain_prints_the_decision_for_allowed_and_denied_requests() {
    let rig = ExplainRig::new();

    let allowed = rig.explain(
        &SignedRequest::fixture("/slack/events", "event_app_mention.json").sign(EXPLAIN_SECRET),
    );
    assert_eq!(allowed["reason"], "allowed", "{allowed:#}");
    assert_eq!(allowed["rule"], Value::Null);
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["action"], "forward");
    assert_eq!(allowed["route"], "helpdesk");
    assert_eq!(allowed["upstream"], "bot");
    assert_eq!(allowed["secret_id"], "current");
    assert_eq!(allowed["facts"]["kind"], "event_callback");
    assert_eq!(allowed["facts"]["event_type"], "app_mention");
    assert_eq!(allowed["facts"]["user_id"], "U0333");
    assert_eq!(allowed["facts"]["team_id"], "T0ACME");

    let mention = text(&fixture("event_app_mention.json"));
    let denied = rig.explain(
        &SignedRequest::new("/slack/events", mention.replace("U0333", "U0BAD"))
            .sign(EXPLAIN_SECRET),
    );
    assert_eq!(denied["reason"], "scope_denied", "{denied:#}");
    assert_eq!(denied["rule"], "deny.users");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["action"], "respond");
    assert_eq!(denied["facts"]["user_id"], "U0BAD");

    let forged = rig.explain(
        &SignedRequest::fixture("/slack/events", "event_app_mention.json").sign("wrong-secret"),
    );
    assert_eq!(forged["reason"], "bad_signature", "{forged:#}");
    assert_eq!(forged["status"], 401);
    assert_eq!(
        forged["facts"],
        Value::Null,
        "no facts from an unverified body"
    );

    let unsigned = rig.explain(&SignedRequest::fixture(
        "/slack/events",
        "event_app_mention.json",
    ));
    assert_eq!(unsigned["reason"], "missing_signature");

    let nowhere = rig.explain(&SignedRequest::fixture(
        "/slack/nowhere",
        "event_app_mention.json",
    ));
    assert_eq!(nowhere["reason"], "no_route");
    assert_eq!(nowhere["status"], 404);
    assert_eq!(nowhere["rule"], Value::Null);

    rig.assert_no_connection();
}

// === explain --egress ===

const EGRESS_KEY: &str = "gk_explain_7c1e9a3f5b2d40680a9e";
const EGRESS_TOKEN: &str = "xoxb-1111-2222-explainPLANTEDt0ken";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded";
const JSON: &str = "Content-Type: application/json; charset=utf-8";

/// A config with an egress door and a policy with one bot, and the bot's credentials.
struct EgressRig {
    dir: tempfile::TempDir,
}

impl EgressRig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\negress:\n  listen: { addr: 127.0.0.1:8081 }\n  slack_api: https://slack.com/api/\nlimits: { max_body_bytes: 2048 }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            format!(
                "{}    team: T0ACME
    methods: [chat.postMessage, \"reactions.*\", \"apps.*\"]
    channels: [C0HELP, C0OPS]
    deny_args: [username, icon_url]
",
                bots_from("helpdesk")
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn env() -> [(&'static str, &'static str); 2] {
        [
            ("HELPDESK_GATEWAY_KEY", EGRESS_KEY),
            ("HELPDESK_BOT_TOKEN", EGRESS_TOKEN),
        ]
    }

    /// Explains a call with the bot's key in `Authorization: Bearer`.
    fn bearer(&self, target: &str, content_type: &str, body: &str) -> Value {
        let auth = format!("Authorization: Bearer {EGRESS_KEY}");
        explain_egress(
            &self.config(),
            target,
            &[&auth, content_type],
            body.as_bytes(),
            &Self::env(),
        )
    }

    /// Explains a call with these headers only.
    fn with(&self, target: &str, headers: &[&str], body: &str) -> Value {
        explain_egress(
            &self.config(),
            target,
            headers,
            body.as_bytes(),
            &Self::env(),
        )
    }
}

/// (reason, rule, status, action) of an explain --egress answer.
fn egress_verdict(v: &Value) -> (String, Value, u64, String) {
    (
        v["reason"].as_str().unwrap_or_default().to_owned(),
        v["rule"].clone(),
        v["status"].as_u64().unwrap_or_default(),
        v["action"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn explain_egress_prints_the_decision_for_allowed_and_denied_calls() {
    let rig = EgressRig::new();

    let allowed = rig.bearer("/api/chat.postMessage", FORM, "channel=C0HELP&text=hi");
    assert_eq!(allowed["direction"], "egress", "{allowed:#}");
    assert_eq!(allowed["reason"], "allowed");
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["action"], "forward");
    assert_eq!(allowed["bot"], "helpdesk");
    assert_eq!(allowed["method"], "chat.postMessage");
    assert_eq!(allowed["channel_id"], "C0HELP");
    assert_eq!(allowed["rule"], Value::Null);
    assert_eq!(allowed["retry_after"], Value::Null);
    assert_eq!(allowed["strips_token_argument"], false);
    assert_eq!(
        allowed["upstream"],
        "https://slack.com/api/chat.postMessage"
    );

    // A JSON body; the key as a `token` form argument, which is removed before Slack.
    let json = rig.bearer(
        "/api/reactions.add",
        JSON,
        r#"{"channel":"C0OPS","name":"eyes","timestamp":"1.2","team_id":"T0ACME"}"#,
    );
    assert_eq!(
        (&json["reason"], &json["channel_id"], &json["team_id"]),
        (&"allowed".into(), &"C0OPS".into(), &"T0ACME".into()),
        "{json:#}"
    );
    let in_body = rig.with(
        "/api/chat.postMessage",
        &[FORM],
        &format!("token={EGRESS_KEY}&channel=C0HELP&text=hi"),
    );
    assert_eq!(in_body["reason"], "allowed", "{in_body:#}");
    assert_eq!(in_body["bot"], "helpdesk");
    assert_eq!(in_body["strips_token_argument"], true);

    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "method_denied",
            rig.bearer("/api/users.list", FORM, ""),
            "methods",
            Some("users.list"),
        ),
        (
            "method_denied",
            // A privileged method is not allowed by a pattern, only by its exact name.
            rig.bearer("/api/apps.uninstall", FORM, ""),
            "methods",
            Some("apps.uninstall"),
        ),
        (
            "channel_denied",
            rig.bearer("/api/chat.postMessage", FORM, "channel=C0ELSE&text=hi"),
            "channels",
            Some("chat.postMessage"),
        ),
        (
            "argument_denied",
            rig.bearer(
                "/api/chat.postMessage",
                FORM,
                "channel=C0HELP&text=hi&username=ceo",
            ),
            "deny_args: username",
            Some("chat.postMessage"),
        ),
        (
            "team_denied",
            rig.bearer(
                "/api/chat.postMessage",
                FORM,
                "channel=C0HELP&text=hi&team_id=T0OTHER",
            ),
            "team",
            Some("chat.postMessage"),
        ),
        (
            "malformed_call",
            rig.bearer(
                "/api/chat.postMessage",
                FORM,
                "channel=C0HELP&channel=C0OPS&text=hi",
            ),
            "the argument `channel` is given more than once with different values",
            None,
        ),
        (
            "malformed_call",
            rig.bearer("/api/chat.postMessage", JSON, "{not json"),
            "the call's JSON body is not valid JSON",
            None,
        ),
        (
            "malformed_call",
            rig.bearer("/api/", FORM, "channel=C0HELP"),
            "path",
            None,
        ),
        (
            "malformed_call",
            // Over the config's limits.max_body_bytes (2048): the listener does not read it.
            rig.bearer("/api/chat.postMessage", FORM, &"a".repeat(2049)),
            "body over limits.max_body_bytes",
            None,
        ),
        (
            "malformed_call",
            rig.with(
                "/api/chat.postMessage",
                &[
                    &format!("Authorization: Bearer {EGRESS_KEY}"),
                    "authorization: Bearer gk_another_key_0000000000",
                    FORM,
                ],
                "channel=C0HELP",
            ),
            "a header sent twice",
            None,
        ),
        (
            "unknown_bot",
            rig.with(
                "/api/chat.postMessage",
                &["Authorization: Bearer gk_not_a_bot_key_00000000", FORM],
                "channel=C0HELP",
            ),
            "key",
            None,
        ),
        (
            "unknown_bot",
            rig.with("/api/chat.postMessage", &[FORM], "channel=C0HELP"),
            "no key",
            None,
        ),
    ];
    for (reason, v, rule, method) in &cases {
        assert_eq!(
            egress_verdict(v),
            (
                (*reason).to_owned(),
                Value::from(*rule),
                200,
                "respond".to_owned()
            ),
            "{v:#}"
        );
        assert_eq!(v["upstream"], Value::Null);
        if let Some(m) = method {
            assert_eq!(v["method"], *m, "{v:#}");
            assert_eq!(v["bot"], "helpdesk", "{v:#}");
        }
    }
    // The channel reported is the one that was denied.
    assert_eq!(cases[2].1["channel_id"], "C0ELSE");
}

#[test]
fn explain_egress_refuses_a_token_in_the_query_string() {
    let rig = EgressRig::new();
    for v in [
        rig.bearer(
            &format!("/api/chat.postMessage?token={EGRESS_KEY}&channel=C0HELP"),
            FORM,
            "",
        ),
        rig.with(
            &format!("/api/chat.postMessage?token={EGRESS_TOKEN}"),
            &[FORM],
            "channel=C0HELP",
        ),
    ] {
        assert_eq!(
            egress_verdict(&v),
            (
                "token_in_url".to_owned(),
                "query".into(),
                200,
                "respond".to_owned()
            ),
            "{v:#}"
        );
    }

    // --query is the same as the path's ?query; arguments in it are read as Slack reads them.
    let out = slackgate(
        &[
            "explain",
            "-c",
            rig.config().to_str().unwrap(),
            "--egress",
            "--path",
            "/api/chat.postMessage",
            "--query",
            &format!("channel=C0HELP&token={EGRESS_KEY}"),
            "--header",
            &format!("Authorization: Bearer {EGRESS_KEY}"),
        ],
        &EgressRig::env(),
        b"",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains(EGRESS_KEY), "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["reason"], "token_in_url", "{v:#}");

    let q = rig.bearer("/api/chat.postMessage?channel=C0ELSE", FORM, "text=hi");
    assert_eq!(
        (&q["reason"], &q["channel_id"]),
        (&"channel_denied".into(), &"C0ELSE".into())
    );
}

#[test]
fn explain_egress_usage_errors_echo_no_credential() {
    let rig = EgressRig::new();
    let config = rig.config();
    let config = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = slackgate(args, &EgressRig::env(), b"channel=C0HELP");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            !all.contains(EGRESS_KEY) && !all.contains(EGRESS_TOKEN),
            "{all}"
        );
        (out.status.code(), all)
    };

    // The query given twice.
    let (code, all) = run(&[
        "explain",
        "-c",
        config,
        "--egress",
        "--path",
        "/api/a.b?x=1",
        "--query",
        "y=2",
    ]);
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("give the query string once"), "{all}");

    // A header without `:`, holding the key: named, not echoed.
    let header = format!("Bearer {EGRESS_KEY}");
    let (code, all) = run(&[
        "explain", "-c", config, "--egress", "--path", "/api/a.b", "--header", &header,
    ]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("--header") && all.contains("Name:value"),
        "{all}"
    );

    // Inbound-only flags do not mix with --egress; --query needs it.
    let (code, _) = run(&[
        "explain", "-c", config, "--egress", "--path", "/api/a.b", "--host", "x",
    ]);
    assert_eq!(code, Some(2));
    let (code, _) = run(&[
        "explain", "-c", config, "--path", "/api/a.b", "--query", "x",
    ]);
    assert_eq!(code, Some(2));

    // A missing secret is a load error naming the variable, exit 1 as for inbound explain.
    let out = slackgate(
        &["explain", "-c", config, "--egress", "--path", "/api/a.b"],
        &[("HELPDESK_GATEWAY_KEY", EGRESS_KEY)],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("HELPDESK_BOT_TOKEN"), "{stderr}");
    assert!(!stderr.contains(EGRESS_KEY), "{stderr}");
}

#[test]
fn explain_egress_takes_a_policy_alone_and_notes_a_config_without_egress() {
    let rig = EgressRig::new();
    let policy = rig.dir.path().join("policy.yaml");
    let alone = explain_egress(
        &policy,
        "/api/chat.postMessage",
        &[&format!("Authorization: Bearer {EGRESS_KEY}"), FORM],
        b"channel=C0HELP",
        &EgressRig::env(),
    );
    assert_eq!(alone["reason"], "allowed", "{alone:#}");
    assert_eq!(alone["upstream"], Value::Null, "no config, no slack_api");

    let plain = rig.dir.path().join("inbound-only.yaml");
    std::fs::write(
        &plain,
        "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\n",
    )
    .unwrap();
    let out = slackgate(
        &[
            "explain",
            "-c",
            plain.to_str().unwrap(),
            "--egress",
            "--path",
            "/api/chat.postMessage",
        ],
        &EgressRig::env(),
        b"channel=C0HELP",
    );
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no `egress:` section"), "{stderr}");
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["reason"], "unknown_bot");
}

// === suggest ===

#[test]
fn suggest_reads_the_policy_a_config_names_filters_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!(
            "{}    mode: shadow\n    methods: [chat.postMessage]\n{}    methods: [auth.test]\n",
            bots_from("helpdesk"),
            bot("reporter")
        ),
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "listen:\n  - addr: 127.0.0.1:8080\npolicy: policy.yaml\n",
    )
    .unwrap();
    let line = |bot: &str, method: &str, day: u8| {
        format!(
            "{{\"ts\":\"2026-11-{day:02}T10:00:00.000000Z\",\"direction\":\"egress\",\"bot\":\"{bot}\",\"method\":\"{method}\",\"channel_id\":\"C0HELP\",\"reason\":\"method_denied\",\"status\":200,\"rule\":\"methods\",\"shadow\":true}}\n"
        )
    };
    let audit = dir.path().join("audit.log");
    std::fs::write(
        &audit,
        [
            line("helpdesk", "reactions.add", 1),
            line("helpdesk", "chat.update", 20),
            line("reporter", "users.info", 20),
            "not json at all xoxb-1-secret\n".to_owned(),
        ]
        .concat(),
    )
    .unwrap();
    // `slackgate suggest -c CONFIG --audit FILE ARGS...`: exit status, stdout, stderr.
    let suggest = |file: &Path, args: &[&str]| {
        let mut all = vec!["suggest", "-c", config.to_str().unwrap()];
        all.extend(["--audit", file.to_str().unwrap()]);
        all.extend(args);
        let out = slackgate(&all, &[], b"");
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, stdout, stderr) = suggest(&audit, &["--since", "2026-11-10", "--bot", "helpdesk"]);
    assert!(ok, "{stderr}");
    // Only helpdesk, only since the 10th; reporter as it was.
    assert!(stdout.contains("- chat.update  # 1 call"), "{stdout}");
    assert!(
        !stdout.contains("reactions.add") && !stdout.contains("users.info"),
        "{stdout}"
    );
    assert!(stdout.contains("methods: [auth.test]"), "{stdout}");
    // The bad line is named by file:line:column, its content never echoed.
    assert!(
        stderr.contains("audit.log:4:2: not an audit record (not JSON)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("xoxb") && !stdout.contains("xoxb"),
        "{stderr}"
    );

    let (ok, _, stderr) = suggest(&dir.path().join("nope.log"), &[]);
    assert!(!ok && stderr.contains("nope.log"), "{stderr}");
    let (ok, _, stderr) = suggest(&audit, &["--since", "last tuesday"]);
    assert!(!ok && stderr.contains("--since"), "{stderr}");
}

// === demo ===

/// `slackgate demo --self-test` on these listen, admin and egress addresses.
fn demo_self_test(listen: &str, admin: &str, egress: &str) -> Output {
    slackgate(
        &[
            "demo",
            "--self-test",
            "--listen",
            listen,
            "--admin",
            admin,
            "--egress",
            egress,
        ],
        &[],
        b"",
    )
}

#[test]
fn demo_self_test_prints_allowed_denied_replayed() {
    let listen = free_port().to_string();
    let admin = free_port().to_string();
    let egress = free_port().to_string();
    let out = demo_self_test(&listen, &admin, &egress);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "demo --self-test failed:\n{stdout}\n{stderr}"
    );
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("self-test "))
        .collect();
    assert_eq!(results.len(), 7, "{stdout}");
    assert!(
        results[0].starts_with("self-test allowed: 200 "),
        "{}",
        results[0]
    );
    assert!(
        results[1].starts_with("self-test denied: 403 "),
        "{}",
        results[1]
    );
    assert!(results[1].contains("scope_denied"), "{}", results[1]);
    assert!(
        results[2].starts_with("self-test replayed: 401 "),
        "{}",
        results[2]
    );
    assert!(results[2].contains("replayed"), "{}", results[2]);

    // The egress door: the allowed call reached the stand-in and came back from it.
    let allowed = results[3]
        .strip_prefix("self-test egress allowed: 200 ")
        .unwrap_or_else(|| panic!("{}", results[3]));
    let allowed: Value = serde_json::from_str(allowed).unwrap();
    assert_eq!(allowed["ok"], true, "{allowed}");
    assert_eq!(allowed["channel"], "C0DEMO");
    assert_eq!(allowed["message"]["text"], "hi");
    for (line, reason) in [
        (results[4], "channel_denied"),
        (results[5], "method_denied"),
    ] {
        let body = line
            .strip_prefix(&format!("self-test egress {reason}: 200 "))
            .unwrap_or_else(|| panic!("{line}"));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (&v["ok"], &v["error"]),
            (&false.into(), &reason.into()),
            "{line}"
        );
    }
    // chat.postMessage needed chat:write; the other granted scopes are reported unused.
    assert_eq!(
        results[6],
        r#"self-test unused_scopes: ["channels:read","reactions:write","users:read"]"#
    );

    // The printed curl commands point at the chosen listeners; the egress ones carry the
    // demo's gateway key, and the bot token is printed nowhere.
    assert!(
        stdout.contains(&format!("curl -sS -i http://{listen}/slack/events")),
        "{stdout}"
    );
    let key = stdout
        .split("Authorization: Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no key in {stdout}"));
    assert!(key.starts_with("gk_demo_") && key.len() >= 20, "{key}");
    assert!(
        stdout.contains(&format!(
            "curl -sS -i http://{egress}/api/chat.postMessage -H 'Authorization: Bearer {key}' -d channel=C0DEMO -d text=hi"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "curl -sS -i http://{egress}/api/chat.postMessage -H 'Authorization: Bearer {key}' -d channel=C0SECRET -d text=hi"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("http://{egress}/api/users.list")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("xoxb-") && !stderr.contains("xoxb-"),
        "the demo bot token is printed:\n{stdout}\n{stderr}"
    );
}

/// `RunningGateway::shutdown` once returned while audit records were still queued for the
/// writer thread, and the process then exited without them: `demo --self-test` (which
/// shuts down and exits right after its last request) lost audit lines in about 1 run in
/// 4. It now drains the queue first (`AuditSink::drain`).
#[test]
fn demo_self_test_writes_every_audit_record_before_it_exits() {
    let (listen, admin, egress) = (
        free_port().to_string(),
        free_port().to_string(),
        free_port().to_string(),
    );
    let out = demo_self_test(&listen, &admin, &egress);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // audit.path "-": one JSON line per request on stdout, inbound and egress.
    let reasons: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["direction"].as_str().unwrap_or_default().to_owned(),
                v["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("inbound", "allowed"),
        ("inbound", "scope_denied"),
        ("inbound", "replayed"),
        ("egress", "allowed"),
        ("egress", "channel_denied"),
        ("egress", "method_denied"),
    ]
    .iter()
    .map(|(d, r)| ((*d).to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(reasons, expected, "{stdout}");
}

#[test]
fn demo_on_a_busy_egress_port_fails_fast_naming_the_flag() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let egress = busy.local_addr().unwrap().to_string();
    let (listen, admin) = (free_port().to_string(), free_port().to_string());
    let out = demo_self_test(&listen, &admin, &egress);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--egress") && stderr.contains(&egress),
        "{stderr}"
    );
}

#[test]
fn demo_on_a_busy_port_fails_fast_naming_the_flag() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    let admin = free_port().to_string();
    let egress = free_port().to_string();
    let started = Instant::now();
    let out = demo_self_test(&listen, &admin, &egress);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--listen") && stderr.contains(&listen),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fails before starting the gateway"
    );
}

#[test]
fn explain_egress_shows_the_reply_scope_decision() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\n{}routes: []\nbots:\n{}    app: helpdesk
    methods: [chat.postMessage]
    reply_scope: 10m
",
            app("helpdesk", "HELPDESK_SIGNING_SECRET"),
            bot("helpdesk")
        ),
    )
    .unwrap();
    let env = [
        ("HELPDESK_GATEWAY_KEY", EGRESS_KEY),
        ("HELPDESK_BOT_TOKEN", EGRESS_TOKEN),
        (
            "HELPDESK_SIGNING_SECRET",
            "8f742231b10e8888abcd99yyyzzz85a5",
        ),
    ];
    let auth = format!("Authorization: Bearer {EGRESS_KEY}");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "-c",
            policy.to_str().unwrap(),
            "--egress",
            "--path",
            "/api/chat.postMessage",
            "--header",
            &auth,
            "--header",
            FORM,
        ];
        args.extend_from_slice(extra);
        let out = slackgate(&args, &env, b"channel=C0HELP&text=hi");
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Offline no channel has spoken to the app: a chat write is denied by reply_scope.
    let none = run(&[]);
    assert_eq!(
        egress_verdict(&none),
        (
            "channel_denied".to_owned(),
            "reply_scope".into(),
            200,
            "respond".to_owned()
        ),
        "{none:#}"
    );
    assert_eq!(none["reply_scope"]["window_secs"], 600);
    assert_eq!(none["reply_scope"]["app"], "helpdesk");
    assert_eq!(none["reply_scope"]["denied_by_it"], true);
    // As if C0HELP had just sent the app a verified request: allowed; another channel not.
    let seen = run(&["--replied-in", "C0HELP"]);
    assert_eq!(seen["reason"], "allowed", "{seen:#}");
    assert_eq!(
        seen["reply_scope"]["replied_in"],
        serde_json::json!(["C0HELP"])
    );
    assert_eq!(seen["reply_scope"]["denied_by_it"], false);
    let other = run(&["--replied-in", "C0OPS"]);
    assert_eq!(other["reason"], "channel_denied", "{other:#}");
}
