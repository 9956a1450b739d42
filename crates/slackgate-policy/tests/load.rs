//! `load`, the one loader: a server config or a policy alone, told by its keys; every error
//! of every step collected (config, state key, policy, the checks where config and policy
//! meet), config-file errors first; and none of them shows a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use slackgate_fixtures::MapSecrets;
use slackgate_policy::{load, LoadErrors, Loaded};
use support::now;

const KEY: &str = "gk_3f9a1c7e5b2d4068a9e1f3c5";
const HOOK: &str = "https://hooks.example.net/services/T0/B0/planted0hook0secret";

fn secrets() -> MapSecrets {
    MapSecrets::in_memory(&[
        ("HELPDESK_GATEWAY_KEY", KEY),
        ("HELPDESK_BOT_TOKEN", "xoxb-1111-2222-planted0token0value"),
        ("HOOK_URL", HOOK),
        ("SHORT_STATE_KEY", "AAECAwQFBgc="),
        ("STATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ])
}

const POLICY: &str = "version: 1
routes: []
bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage]
webhooks:
  alerts: { url: { env: HOOK_URL }, bots: [helpdesk] }
";

const CONFIG: &str = "listen: [{ addr: 127.0.0.1:8080 }]
policy: policy.yaml
egress: { listen: { addr: 127.0.0.1:8081 } }
";

/// Writes `config.yaml` and `policy.yaml` into a new directory and loads `file` of it.
fn load_files(
    config: &str,
    policy: &str,
    file: &str,
) -> (tempfile::TempDir, Result<Loaded, LoadErrors>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let loaded = load(&dir.path().join(file), &secrets(), now());
    (dir, loaded)
}

fn assert_no_secret(out: &str) {
    assert!(
        !out.contains("planted0") && !out.contains(KEY) && !out.contains("AAECAw"),
        "{out}"
    );
}

#[test]
fn every_step_reports_at_once_config_file_first() {
    // A short state key (config + secrets), an unknown key in the policy, and a webhook
    // outside hooks_base (a join).
    let config = format!("{CONFIG}state:\n  encryption_key: {{ env: SHORT_STATE_KEY }}\n");
    let (dir, loaded) = load_files(
        &config,
        &POLICY.replace("version: 1\n", "version: 1\ncolour: red\n"),
        "config.yaml",
    );
    let e = loaded.unwrap_err().to_string();
    assert_no_secret(&e);
    // The policy did not compile, so no join ran on it: two errors.
    assert_eq!(e.matches(": error: ").count(), 2, "{e}");
    let config_at = e
        .find(&format!(
            "{}:5:26: error: `state.encryption_key` is not 32 bytes",
            dir.path().join("config.yaml").display()
        ))
        .unwrap_or_else(|| panic!("{e}"));
    let policy_at = e
        .find(&format!(
            "{}:2:1: error: unknown key `colour`",
            dir.path().join("policy.yaml").display()
        ))
        .unwrap_or_else(|| panic!("{e}"));
    assert!(config_at < policy_at, "{e}");

    // The policy compiles: the key and the join are both reported.
    let (dir, loaded) = load_files(&config, POLICY, "config.yaml");
    let e = loaded.unwrap_err().to_string();
    assert_no_secret(&e);
    assert_eq!(e.matches(": error: ").count(), 2, "{e}");
    assert!(
        e.contains(&format!(
            "{}:9:25: error: the url of webhook `alerts` does not start with egress.hooks_base",
            dir.path().join("policy.yaml").display()
        )),
        "{e}"
    );
}

#[test]
fn a_good_config_loads_with_its_state_key_and_a_policy_loads_alone() {
    let config = "listen: [{ addr: 127.0.0.1:8080 }]
policy: policy.yaml
egress:
  listen: { addr: 127.0.0.1:8081 }
  hooks_base: https://hooks.example.net/
state:
  encryption_key: { env: STATE_KEY }
";
    let (dir, loaded) = load_files(config, POLICY, "config.yaml");
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
    let c = loaded.config.as_ref().expect("a config");
    assert_eq!(c.policy_path, dir.path().join("policy.yaml"));
    assert_eq!(loaded.state_key.as_ref().map(|k| k.expose()[31]), Some(31));
    assert!(loaded.egress().is_some());
    assert!(loaded.notes().is_empty());

    // The policy alone: no config, so nothing where they meet is checked.
    let (_dir, alone) = load_files(config, POLICY, "policy.yaml");
    let alone = alone.unwrap_or_else(|e| panic!("{e}"));
    assert!(alone.config.is_none() && alone.state_key.is_none());
    assert_eq!(alone.limits(), slackgate_policy::Limits::default());
}

#[test]
fn bots_without_egress_load_with_a_note() {
    let (dir, loaded) = load_files(
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: policy.yaml\n",
        POLICY,
        "config.yaml",
    );
    let notes = loaded.unwrap_or_else(|e| panic!("{e}")).notes();
    assert_eq!(
        notes,
        [format!(
            "the policy has bots but {} has no `egress:` section; `run` opens no egress door",
            dir.path().join("config.yaml").display()
        )]
    );
}
