//! Running the built `slackgate` binary from tests, as an operator would.
// Shared by test files (crates without an API), each using some of it: `pub` for them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod python;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slackgate_testkit::SignedRequest;

pub const BIN: &str = env!("CARGO_BIN_EXE_slackgate");

/// Environment variables the tests set; removed from the inherited environment first so
/// a developer's shell cannot change the outcome.
pub const TEST_VARS: &[&str] = &[
    "SG_SIGN_SECRET",
    "SG_EMPTY",
    "SG_UNSET",
    "HELPDESK_SIGNING_SECRET",
    "HELPDESK_SIGNING_SECRET_PREVIOUS",
    "DEPLOYBOT_SIGNING_SECRET",
    "DEPLOYBOT_SIGNING_SECRET_PREVIOUS",
    "STANDUP_SIGNING_SECRET",
    "HELPDESK_GATEWAY_KEY",
    "HELPDESK_BOT_TOKEN",
];

/// Runs the binary with `args`, extra `env` and `stdin`, and waits (polling, bounded) for it.
pub fn slackgate(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn");
    for v in TEST_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn slackgate");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("slackgate {args:?} did not exit within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `slackgate explain -c CONFIG` for `req` (path, content type and, when set, the
/// signature headers), with `extra` arguments and the app's secret in `secret` (name,
/// value). Asserts that it succeeds and echoes neither the secret nor the signature, and
/// returns its JSON.
pub fn explain(config: &Path, req: &SignedRequest, extra: &[&str], secret: (&str, &str)) -> Value {
    let mut args = vec![
        "explain".to_owned(),
        "-c".to_owned(),
        config.to_str().unwrap().to_owned(),
        "--path".to_owned(),
        req.path.clone(),
        "--header".to_owned(),
        format!("Content-Type: {}", req.content_type),
    ];
    if let Some(ts) = &req.timestamp {
        args.extend([
            "--header".to_owned(),
            format!("X-Slack-Request-Timestamp: {ts}"),
        ]);
    }
    if let Some(sig) = &req.signature {
        args.extend(["--header".to_owned(), format!("X-Slack-Signature:{sig}")]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = slackgate(&args, &[secret], &req.body);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "explain: {stdout}{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains(secret.1) && !text(&out.stderr).contains(secret.1));
    if let Some(sig) = &req.signature {
        assert!(
            !stdout.contains(sig.as_str()),
            "the signature is not echoed"
        );
    }
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON from explain ({e}): {stdout}"))
}

/// Runs `slackgate explain -c CONFIG --egress --path TARGET` with `headers` (`Name: value`)
/// and `body`, the bot's key and token in `env`. Asserts that it succeeds and prints
/// none of the `env` values (the key, the token), and returns its JSON.
pub fn explain_egress(
    config: &Path,
    target: &str,
    headers: &[&str],
    body: &[u8],
    env: &[(&str, &str)],
) -> Value {
    let mut args = vec![
        "explain".to_owned(),
        "-c".to_owned(),
        config.to_str().unwrap().to_owned(),
        "--egress".to_owned(),
        "--path".to_owned(),
        target.to_owned(),
    ];
    for h in headers {
        args.extend(["--header".to_owned(), (*h).to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = slackgate(&args, env, body);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "explain --egress: {stdout}{stderr}");
    for (_, value) in env {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "explain --egress printed a credential:\n{stdout}{stderr}"
        );
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("JSON from explain --egress ({e}): {stdout}"))
}
