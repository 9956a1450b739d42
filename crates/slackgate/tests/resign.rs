//! `slackgate sign --resign-env`: besides Slack's two headers, what a bot behind a route
//! with `resign` receives for the same body: the gateway's headers, signed with the bot's
//! own secret; neither secret is printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use slackgate_slack::{verify, SigningKey};

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_SECRET: &str = "b0t-0wn-5ecret-for-resign-only";

/// Runs `slackgate sign ARGS` with the two secrets exported and `body` on stdin.
fn sign(args: &[&str], body: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slackgate"))
        .arg("sign")
        .args(args)
        .env("SG_SLACK_SECRET", SLACK_SECRET)
        .env("SG_BOT_SECRET", BOT_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

fn value<'a>(line: &'a str, name: &str) -> &'a str {
    line.strip_prefix(name)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or_else(|| panic!("{line} is not {name}"))
}

#[test]
fn sign_with_resign_prints_what_the_bot_receives() {
    let body = b"token=x&command=%2Fticket&text=hi";
    let ts = "1531420618";
    let (ok, stdout, stderr) = sign(
        &[
            "--secret-env",
            "SG_SLACK_SECRET",
            "--timestamp",
            ts,
            "--resign-env",
            "SG_BOT_SECRET",
        ],
        body,
    );
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[2].starts_with("# what the bot receives"), "{stdout}");
    let slack = SigningKey::new("slack", SLACK_SECRET.as_bytes()).unwrap();
    let bot = SigningKey::new("bot", BOT_SECRET.as_bytes()).unwrap();
    let at = ts.parse().unwrap();
    for (pair, key, other) in [(&lines[0..2], &slack, &bot), (&lines[3..5], &bot, &slack)] {
        let ts = value(pair[0], "X-Slack-Request-Timestamp");
        let sig = value(pair[1], "X-Slack-Signature");
        let check = |k: &SigningKey| {
            verify(
                [k],
                Some(sig.as_bytes()),
                Some(ts.as_bytes()),
                body,
                at,
                300,
            )
            .is_ok()
        };
        assert!(check(key) && !check(other), "{stdout}");
    }
    assert!(!stdout.contains(SLACK_SECRET) && !stdout.contains(BOT_SECRET));
    // Without the flag, the output is Slack's two headers alone, as before.
    let (ok, plain, _) = sign(
        &["--secret-env", "SG_SLACK_SECRET", "--timestamp", ts],
        body,
    );
    assert!(ok);
    assert_eq!(plain.lines().collect::<Vec<_>>(), lines[0..2]);
}

#[test]
fn sign_with_an_unset_resign_variable_fails_and_prints_nothing() {
    let (ok, stdout, stderr) = sign(
        &[
            "--secret-env",
            "SG_SLACK_SECRET",
            "--resign-env",
            "SG_NOT_SET_ANYWHERE",
        ],
        b"body",
    );
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("SG_NOT_SET_ANYWHERE"), "{stderr}");
    assert!(!stderr.contains(SLACK_SECRET) && !stderr.contains(BOT_SECRET));
}
