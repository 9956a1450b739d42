//! Every command loads a config the same way (`slackgate_policy::load`): for configs that
//! each break one rule where the server config and the policy meet (a webhook URL outside
//! `egress.hooks_base`, a rotating bot without a state key or a place for its tokens, a
//! user group without `egress:`, a state key that is unset or not 32 bytes) or a rule of
//! the policy alone (a user group naming an unknown bot), `check`, `explain`, `test`,
//! `run`, the library's start and a running gateway's reload all refuse, with the same
//! error text, byte for byte. A config breaking two rules gets both reported by all of
//! them, and a config they accept (bots without `egress:`) is accepted by all of them.
//!
//! Issue 26, finding 10: `explain` and `test` used to accept what `run` and `check`
//! refused, and `check` stopped at the first failing check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use slackgate_proxy::{AuditTarget, Options, RunningGateway};
use slackgate_testkit::{free_port, MapSecrets};
use support::{slackgate, text};

const HOOK_OUTSIDE: &str = "https://hooks.example.net/services/T0/B0/planted0hook0secret";
const GATEWAY_KEY: &str = "gk_3f9a1c7e5b2d4068a9e1f3c5";
const BOT_TOKEN: &str = "xoxb-1111-2222-planted0token0value";

/// The secrets every command gets, as env vars (the binary) or in memory (the library).
/// `LOADERS_UNSET_STATE_KEY` is deliberately absent.
const ENV: &[(&str, &str)] = &[
    ("HELPDESK_SIGNING_SECRET", "loaders-agree-5ecret-0123456789"),
    ("HELPDESK_GATEWAY_KEY", GATEWAY_KEY),
    ("HELPDESK_BOT_TOKEN", BOT_TOKEN),
    ("LOADERS_OUTSIDE_HOOK_URL", HOOK_OUTSIDE),
    (
        "LOADERS_STATE_KEY",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ),
    ("LOADERS_SHORT_STATE_KEY", "AAECAwQFBgc="),
    ("LOADERS_CLIENT_SECRET", "planted0client0secret0value"),
    ("LOADERS_REFRESH_TOKEN", "xoxe-1-planted0refresh0value"),
];

/// Values that must never appear in any output.
const PLANTED: &[&str] = &["planted0", GATEWAY_KEY, "AAECAwQF", "5ecret-0123"];

const POLICY: &str = r#"version: 1
apps:
  helpdesk:
    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]
upstreams:
  bot: { targets: ["127.0.0.1:9"] }
routes:
  - name: helpdesk
    path: /slack/events
    app: helpdesk
    upstream: bot
bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage]
"#;

const ROTATING_TOKEN: &str = r#"    token: { env: HELPDESK_BOT_TOKEN }
"#;
const ROTATION: &str = r#"    token:
      rotation:
        client_id: "1234.5678"
        client_secret: { env: LOADERS_CLIENT_SECRET }
        refresh_token: { env: LOADERS_REFRESH_TOKEN }
"#;
const HOOK: &str =
    "webhooks:\n  alerts: { url: { env: LOADERS_OUTSIDE_HOOK_URL }, bots: [helpdesk] }\n";

/// A tests file `test` would run if the config loaded.
const TESTS: &str = "cases:
  - name: a mention is forwarded
    request: { path: /slack/events, event: { type: app_mention, team: T0ACME, user: U0333, channel: C0HELP } }
    expect: { reason: allowed }
";

/// One temp directory holding `config.yaml`, `policy.yaml` and `tests.yaml`, and the
/// ports its configs name.
struct Rig {
    dir: tempfile::TempDir,
    listen: String,
    admin: String,
    egress: String,
}

/// What a case changes in the good config and policy.
#[derive(Default)]
struct Breakage {
    /// The config has no `egress:` section.
    no_egress: bool,
    /// Appended to the config.
    config_extra: String,
    /// The bot's token is `rotation:`.
    rotation: bool,
    /// Appended to the policy.
    policy_extra: &'static str,
}

impl Rig {
    fn new() -> Self {
        Rig {
            dir: tempfile::tempdir().unwrap(),
            listen: free_port().to_string(),
            admin: free_port().to_string(),
            egress: free_port().to_string(),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Writes the files of `b` (the default: a config and policy that load).
    fn write(&self, b: &Breakage) {
        let mut config = format!(
            "listen:\n  - addr: {}\nadmin: {{ addr: {} }}\npolicy: policy.yaml\n",
            self.listen, self.admin
        );
        if !b.no_egress {
            config.push_str(&format!(
                "egress:\n  listen: {{ addr: {} }}\n  slack_api: http://127.0.0.1:9/api/\n",
                self.egress
            ));
        }
        config.push_str(&b.config_extra);
        let mut policy = POLICY.to_owned();
        if b.rotation {
            policy = policy.replace(ROTATING_TOKEN, ROTATION);
        }
        policy.push_str(b.policy_extra);
        std::fs::write(self.config_path(), config).unwrap();
        std::fs::write(self.dir.path().join("policy.yaml"), policy).unwrap();
        std::fs::write(self.dir.path().join("tests.yaml"), TESTS).unwrap();
    }

    fn options(&self) -> Options {
        let mut opts = Options::new(self.config_path());
        opts.secrets = Arc::new(MapSecrets::in_memory(ENV));
        opts.audit = Some(AuditTarget::Memory(Arc::default()));
        opts.upgrade_sock = Some(self.dir.path().join("upgrade.sock"));
        opts.pid_file = Some(self.dir.path().join("slackgate.pid"));
        // The reloads here are the test's own.
        opts.watch_interval = None;
        opts
    }

    /// What every way of loading says about the files as they are: `Ok(())` from all, or
    /// the errors, which must be the same text from all of them.
    fn verdicts(&self, running: &RunningGateway) -> Result<(), String> {
        let config = self.config_path();
        let config = config.to_str().unwrap();
        let tests = self.dir.path().join("tests.yaml");

        let check = slackgate(&["check", config], ENV, b"");
        let explain = slackgate(
            &["explain", "-c", config, "--path", "/slack/events"],
            ENV,
            b"",
        );
        let test = slackgate(&["test", config, tests.to_str().unwrap()], ENV, b"");
        for out in [&check, &explain, &test] {
            let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
            for p in PLANTED {
                assert!(!all.contains(p), "a secret was printed:\n{all}");
            }
        }
        let reload = running.shared.reload();
        for e in &reload.errors {
            for p in PLANTED {
                assert!(!e.contains(p), "a secret was printed:\n{e}");
            }
        }

        if check.status.success() {
            assert!(explain.status.success(), "{}", text(&explain.stderr));
            assert_eq!(test.status.code(), Some(0), "{}", text(&test.stderr));
            assert!(reload.ok, "{:?}", reload.errors);
            return Ok(());
        }
        // `check`: the errors, then their count.
        let stderr = text(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{stderr}");
        let (errors, count) = stderr
            .trim_end()
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("no error count: {stderr}"));
        let n = errors.matches(": error: ").count();
        assert_eq!(count, format!("{n} error(s)"), "{stderr}");

        assert_eq!(explain.status.code(), Some(1), "explain accepted: {errors}");
        assert_eq!(
            text(&explain.stderr),
            format!("error: {errors}\n"),
            "explain"
        );
        assert_eq!(test.status.code(), Some(2), "test accepted: {errors}");
        assert_eq!(text(&test.stderr), stderr, "test");

        let run = slackgate(
            &[
                "run",
                "-c",
                config,
                "--upgrade-sock",
                self.dir.path().join("run.sock").to_str().unwrap(),
            ],
            ENV,
            b"",
        );
        assert_eq!(run.status.code(), Some(1), "run started: {errors}");
        assert_eq!(text(&run.stderr), format!("error: {errors}\n"), "run");

        match slackgate_proxy::start(self.options()) {
            Ok(_) => panic!("the library started with: {errors}"),
            Err(e) => assert_eq!(e.to_string(), errors, "the library's start"),
        }
        assert!(!reload.ok, "a reload took: {errors}");
        assert_eq!(reload.errors.join("\n"), errors, "reload");
        Err(errors.to_owned())
    }
}

/// A gateway serving the good files of `rig`, which the cases then break under it.
fn serving(rig: &Rig) -> RunningGateway {
    rig.write(&Breakage::default());
    let running = slackgate_proxy::start(rig.options()).unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !running.shared.is_ready() {
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    running
}

fn in_policy(rig: &Rig, line: usize, column: usize) -> String {
    format!(
        "{}:{line}:{column}: error: ",
        rig.dir.path().join("policy.yaml").display()
    )
}

fn in_config(rig: &Rig, line: usize, column: usize) -> String {
    format!("{}:{line}:{column}: error: ", rig.config_path().display())
}

/// An error expected: its `file:line:column: error: ` and the start of its message.
type Want = (String, &'static str);

/// Asserts `errors` holds exactly `want.len()` errors, each of `want` among them.
fn assert_errors(errors: &str, want: &[Want]) {
    assert_eq!(errors.matches(": error: ").count(), want.len(), "{errors}");
    for (at, message) in want {
        assert!(
            errors.contains(&format!("{at}{message}")),
            "{at}{message}:\n{errors}"
        );
    }
}

#[test]
fn every_command_refuses_each_broken_join_with_the_same_errors() {
    let rig = Rig::new();
    let running = serving(&rig);
    assert_eq!(
        rig.verdicts(&running),
        Ok(()),
        "the good files load everywhere"
    );

    let state_dir = format!(
        "state:\n  path: {}\n",
        rig.dir.path().join("state").display()
    );
    let key_only = "state:\n  encryption_key: { env: LOADERS_STATE_KEY }\n".to_owned();
    let with_path_and = |key: &str| format!("{state_dir}  encryption_key: {{ env: {key} }}\n");
    let cases: Vec<(&str, Breakage, Vec<Want>)> = vec![
        (
            "a webhook URL outside egress.hooks_base",
            Breakage {
                policy_extra: HOOK,
                ..Breakage::default()
            },
            vec![(
                in_policy(&rig, 18, 25),
                "the url of webhook `alerts` does not start with egress.hooks_base",
            )],
        ),
        (
            "a rotating bot without a state key",
            Breakage {
                rotation: true,
                config_extra: state_dir.clone(),
                ..Breakage::default()
            },
            vec![(
                in_policy(&rig, 17, 18),
                "bot `helpdesk` rotates its token, but the server config has no `state.encryption_key`",
            )],
        ),
        (
            "a rotating bot without a place for its tokens",
            Breakage {
                rotation: true,
                config_extra: key_only,
                ..Breakage::default()
            },
            vec![(
                in_policy(&rig, 17, 18),
                "bot `helpdesk` rotates its token, but the server config has no `state.path`",
            )],
        ),
        (
            "a user group without egress",
            Breakage {
                no_egress: true,
                policy_extra: "groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }\n",
                ..Breakage::default()
            },
            vec![(
                in_policy(&rig, 18, 3),
                "group `oncall` reads its members from Slack user group S0ONCALL, but the server config has no `egress` section",
            )],
        ),
        (
            "a state key that is not set",
            Breakage {
                config_extra: with_path_and("LOADERS_UNSET_STATE_KEY"),
                ..Breakage::default()
            },
            vec![(
                in_config(&rig, 10, 26),
                "`state.encryption_key`: environment variable `LOADERS_UNSET_STATE_KEY` is not set",
            )],
        ),
        (
            "a state key that is not 32 bytes",
            Breakage {
                config_extra: with_path_and("LOADERS_SHORT_STATE_KEY"),
                ..Breakage::default()
            },
            vec![(
                in_config(&rig, 10, 26),
                "`state.encryption_key` is not 32 bytes in base64",
            )],
        ),
        (
            "a user group naming an unknown bot",
            Breakage {
                policy_extra: "groups:\n  oncall: { usergroup: S0ONCALL, bot: nobody, refresh: 5m }\n",
                ..Breakage::default()
            },
            vec![(
                in_policy(&rig, 18, 39),
                "group `oncall` names bot `nobody`, which is not defined",
            )],
        ),
    ];
    for (what, breakage, want) in cases {
        rig.write(&breakage);
        let errors = rig
            .verdicts(&running)
            .expect_err(&format!("{what}: accepted"));
        assert_errors(&errors, &want);
    }
    running.shutdown();
}

#[test]
fn two_broken_joins_are_both_reported_by_every_command() {
    let rig = Rig::new();
    let running = serving(&rig);
    // A webhook outside hooks_base, a rotating bot without `state.path`, and a state key
    // that is not set: three steps of the load, three errors, all of them everywhere.
    rig.write(&Breakage {
        rotation: true,
        policy_extra: HOOK,
        config_extra: "state:\n  encryption_key: { env: LOADERS_UNSET_STATE_KEY }\n".to_owned(),
        ..Breakage::default()
    });
    let errors = rig.verdicts(&running).expect_err("accepted");
    assert_errors(
        &errors,
        &[
            (
                in_config(&rig, 9, 26),
                "`state.encryption_key`: environment variable `LOADERS_UNSET_STATE_KEY` is not set",
            ),
            (
                in_policy(&rig, 17, 18),
                "bot `helpdesk` rotates its token, but the server config has no `state.path`",
            ),
            (
                in_policy(&rig, 22, 25),
                "the url of webhook `alerts` does not start with egress.hooks_base",
            ),
        ],
    );
    // The config file's error first, then the policy's in file order.
    let config_at = errors.find("config.yaml:").unwrap();
    let policy_at = errors.find("policy.yaml:").unwrap();
    assert!(config_at < policy_at, "{errors}");
    running.shutdown();
}

#[test]
fn bots_without_egress_load_everywhere_with_the_same_note() {
    let rig = Rig::new();
    let running = serving(&rig);
    rig.write(&Breakage {
        no_egress: true,
        ..Breakage::default()
    });
    assert_eq!(rig.verdicts(&running), Ok(()));
    let check = slackgate(&["check", rig.config_path().to_str().unwrap()], ENV, b"");
    let stdout = text(&check.stdout);
    assert!(
        stdout.contains(&format!(
            "note: the policy has bots but {} has no `egress:` section; `run` opens no egress door",
            rig.config_path().display()
        )),
        "{stdout}"
    );
    running.shutdown();
}

#[test]
fn run_refuses_a_policy_file_that_check_explain_and_test_take_alone() {
    let rig = Rig::new();
    rig.write(&Breakage::default());
    let policy = rig.dir.path().join("policy.yaml");
    let policy = policy.to_str().unwrap();
    let check = slackgate(&["check", policy], ENV, b"");
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("(policy)"));
    let run = slackgate(
        &[
            "run",
            "-c",
            policy,
            "--upgrade-sock",
            rig.dir.path().join("run.sock").to_str().unwrap(),
        ],
        ENV,
        b"",
    );
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        text(&run.stderr),
        format!("error: {policy}: error: this is a policy file; the gateway serves a server config\n  fix: give `run` a server config (`listen:` and `policy:` naming this file), as in policies/example.config.yaml\n")
    );
}
