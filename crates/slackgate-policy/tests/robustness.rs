//! Loading never panics and fails closed on odd input; file-level behaviour of
//! the loaders with the real file system.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use slackgate_fixtures::MapSecrets;
use slackgate_policy::{compile_config, compile_policy, load, SecretRef, SystemSecrets};
use support::now;

fn policy_out(input: &str) -> String {
    match compile_policy(Path::new("p.yaml"), input, &MapSecrets::any_env(), now()) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn odd_documents_are_errors_with_positions() {
    for input in [
        "",
        "---\n",
        "[]\n",
        "42\n",
        "version: 1\n---\nversion: 1\n",
        "version: 1\nroutes: []\n...\n",
        "version: 1\nroutes: &a []\nx: *a\n",
        "version: !!int 1\n",
        "? [a]\n: b\n",
        "\u{feff}version: 1\n",
        "version: 1\nroutes:\n  - \n",
        "version: 1\nroutes: ~\n",
        "version: 1\napps: ~\nroutes: [{}]\n",
        "version: 1\napps: { a: ~ }\nroutes: []\n",
        "version: 1\napps: { a: { signing_secrets: ~ } }\nroutes: []\n",
        "version: 1\napps: { a: { signing_secrets: [~] } }\nroutes: []\n",
        "version: 1\napps: { a: { signing_secrets: [{ id: x, env: ~ }] } }\nroutes: []\n",
        "version: 1\nroutes: [{ name: r, path: /r, app: a, upstream: u, allow: ~ }]\n",
        "version: 18446744073709551616\nroutes: []\n",
    ] {
        let out = policy_out(input);
        if std::env::var_os("SHOW").is_some() {
            println!("--- {input:?}\n{out}");
        }
        assert_ne!(out, "ok", "{input:?}");
        for line in out.lines().filter(|l| !l.starts_with("  fix:")) {
            assert!(line.starts_with("p.yaml:"), "{input:?} -> {out}");
            assert!(line.contains(": error: "), "{input:?} -> {out}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "[-a-z0-9 :{}\\[\\],'\"&*!?|>#@/\n]{0,120}") {
        let _ = policy_out(&s);
        let _ = compile_config(Path::new("c.yaml"), &s);
    }

    #[test]
    fn mutated_example_never_panics(pos in 0usize..2000, byte in proptest::sample::select(b"-: {}[],'\"&*!\n x0".to_vec())) {
        let text = include_str!("../../../policies/multi-bot.yaml");
        let mut bytes = text.as_bytes().to_vec();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(s) = String::from_utf8(bytes) {
            let _ = policy_out(&s);
        }
    }
}

#[test]
fn document_markers_bom_and_null_env() {
    assert_eq!(
        policy_out("# policy\n---\nversion: 1\nroutes: []\n---\nroutes: [{ name: r }]\n"),
        "p.yaml:5:1: error: a second YAML document starts here; only one document per file is read\n  fix: remove this `---` line and merge the documents, or split them into separate files"
    );
    let with_bom =
        "\u{feff}version: 1\napps:\n  a: { signing_secrets: [{ id: k, env: ~ }] }\nroutes: []\n";
    assert_eq!(
        policy_out(with_bom),
        "p.yaml:3:40: error: `env` of secret `k` of app `a` is empty\n  fix: write the name of the environment variable that holds the secret, e.g. `env: HELPDESK_SIGNING_SECRET`\n\
         p.yaml:4:9: error: the policy has no routes and no bots: every request would be answered 404 no_route\n  fix: add at least one route under `routes:` (or a bot under `bots:`)"
    );
}

/// Found by the `policy_yaml` fuzz target (fuzz/regressions/policy_yaml): with lone `\r`
/// line endings the `---` check missed the second document, which the YAML parser
/// then dropped silently.
#[test]
fn second_documents_are_errors_with_any_line_ending() {
    for eol in ["\n", "\r\n", "\r"] {
        let text = [
            "# policy",
            "version: 1",
            "routes: []",
            "---",
            "routes: [{ name: r }]",
            "",
        ]
        .join(eol);
        assert_eq!(
            policy_out(&text),
            "p.yaml:4:1: error: a second YAML document starts here; only one document per file is read\n  fix: remove this `---` line and merge the documents, or split them into separate files",
            "{eol:?}"
        );
    }
}

#[test]
fn system_secrets_read_relative_files_and_trim_newlines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/helpdesk"), "abc123\n").unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, file: secrets/helpdesk }]\nupstreams:\n  h: { targets: [127.0.0.1:3000] }\nroutes: [{ name: r, path: /r, app: helpdesk, upstream: h }]\n",
    )
    .unwrap();
    let p = load(&policy, &SystemSecrets, now()).unwrap().policy;
    let app = &p.apps["helpdesk"];
    assert_eq!(
        app.secrets[0].source,
        SecretRef::File(dir.path().join("secrets/helpdesk"))
    );
    // The trimmed secret signs like Slack would with "abc123".
    let expected = slackgate_slack::SigningKey::new("x", b"abc123")
        .unwrap()
        .sign("1", b"body");
    assert_eq!(app.secrets[0].key.sign("1", b"body"), expected);
    assert_eq!(
        p.hash,
        slackgate_policy::policy_hash(&std::fs::read(&policy).unwrap())
    );

    // Secrets are re-read on every load: a rotated file is picked up.
    std::fs::write(dir.path().join("secrets/helpdesk"), "rotated").unwrap();
    let p2 = load(&policy, &SystemSecrets, now()).unwrap().policy;
    assert_ne!(
        p2.apps["helpdesk"].secrets[0].key.sign("1", b"body"),
        expected
    );
}

#[test]
fn unreadable_and_non_utf8_files_are_whole_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let e = load(&missing, &SystemSecrets, now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: error: cannot read the file: file not found\n  fix: check the path and the gateway's permissions",
            missing.display()
        )
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, [0xff, 0xfe, b'\n']).unwrap();
    let e = load(&bad, &SystemSecrets, now()).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("error: the file is not valid UTF-8\n  fix: save the file as UTF-8 text"),
        "{e}"
    );
}

#[test]
fn expired_secrets_are_kept_but_not_live() {
    let input = "version: 1\napps:\n  a:\n    signing_secrets:\n      - { id: old, env: A, expires: 2030-01-01T00:00:00Z }\n      - { id: new, env: B }\nupstreams:\n  u: { targets: [127.0.0.1:1] }\nroutes: [{ name: r, path: /r, app: a, upstream: u }]\n";
    let p = compile_policy(Path::new("p.yaml"), input, &MapSecrets::any_env(), now()).unwrap();
    let app = &p.apps["a"];
    assert_eq!(app.secrets.len(), 2);
    let live: Vec<&str> = app.live_keys(now()).map(|k| k.id()).collect();
    assert_eq!(live, ["new"]);
    let before = now() - Duration::from_secs(365 * 24 * 3600);
    let live: Vec<&str> = app.live_keys(before).map(|k| k.id()).collect();
    assert_eq!(live, ["old", "new"]);
}

#[test]
fn host_routes_win_over_hostless_routes_on_the_same_path() {
    let input = "version: 1\napps:\n  a: { signing_secrets: [{ id: k, env: A }] }\nupstreams:\n  u: { targets: [127.0.0.1:1] }\nroutes:\n  - { name: any, path: /s, app: a, upstream: u }\n  - { name: one, path: /s, host: one.example, app: a, upstream: u }\n";
    let p = compile_policy(Path::new("p.yaml"), input, &MapSecrets::any_env(), now()).unwrap();
    assert_eq!(
        &*p.routes.find(Some("one.example"), "/s").unwrap().name,
        "one"
    );
    assert_eq!(
        &*p.routes.find(Some("ONE.example:8443"), "/s").unwrap().name,
        "one"
    );
    assert_eq!(
        &*p.routes.find(Some("two.example"), "/s").unwrap().name,
        "any"
    );
    assert_eq!(&*p.routes.find(None, "/s").unwrap().name, "any");
    assert!(p.routes.find(None, "/s/").is_none());
    // An IPv6 literal cannot be a route's host, so it routes like any other unknown host,
    // with or without a port (`strip_port` never turns `::1` into `::`).
    for h in ["[::1]:8443", "[::1]", "::1"] {
        assert_eq!(&*p.routes.find(Some(h), "/s").unwrap().name, "any", "{h}");
    }
    for h in ["\"[::1]\"", "\"::1\""] {
        let text = input.replace("host: one.example", &format!("host: {h}"));
        assert!(policy_out(&text).contains("is not a host name"), "{h}");
    }
    assert_eq!(
        p.routes.iter().map(|r| &*r.name).collect::<Vec<_>>(),
        ["any", "one"]
    );
}
