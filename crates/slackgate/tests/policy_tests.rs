//! `slackgate test`, run as an operator (or a GitOps pipeline) would: every shipped policy
//! passes its tests files in `policies/tests/`, a wrong expectation is shown next to the
//! actual decision and exits 1, a malformed tests file exits 2 naming file:line:column, and
//! no secret is ever printed. Nothing here uses the network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use slackgate_testkit::policy::{app, bot};
use support::{slackgate, text};

/// The value every test plants as the example's signing secret; never printed.
const PLANTED: &str = "planted-5ecret-value-0123456789";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The environment variable names a policy references (`env: NAME`), outside comments.
fn env_refs(yaml: &str) -> Vec<String> {
    let mut names: Vec<String> = yaml
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split("env:").skip(1))
        .map(|rest| {
            rest.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A distinct dummy value for every variable `policy` references.
fn dummy_secrets(policy: &Path) -> Vec<(String, String)> {
    env_refs(&std::fs::read_to_string(policy).unwrap())
        .into_iter()
        .map(|v| {
            let value = format!("{PLANTED}-{}", v.to_lowercase());
            (v, value)
        })
        .collect()
}

fn run_test(config: &Path, tests: &[&Path], secrets: &[(String, String)]) -> Output {
    let mut args = vec!["test".to_owned(), config.to_str().unwrap().to_owned()];
    args.extend(tests.iter().map(|t| t.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = slackgate(&args, &env, b"");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(PLANTED), "a secret was printed: {all}");
    out
}

/// The example config and secrets, and a temp file holding `tests`.
struct Example {
    config: PathBuf,
    secrets: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Example {
    fn new() -> Self {
        let policies = repo_root().join("policies");
        Self {
            config: policies.join("example.config.yaml"),
            secrets: dummy_secrets(&policies.join("example.yaml")),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn tests_file(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn run(&self, tests: &[&Path]) -> Output {
        run_test(&self.config, tests, &self.secrets)
    }
}

/// A case that passes on policies/example.yaml.
const PASSING: &str = "  - name: a mention in the help channel is forwarded
    request:
      path: /slack/helpdesk
      event: { type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0333, channel: C0HELP }
    expect: { reason: allowed }
";

// === the shipped tests ===

#[test]
fn every_example_policy_passes_its_tests() {
    let policies = repo_root().join("policies");
    let tests_dir = policies.join("tests");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tests.yaml"))
        .collect();
    tests.sort();
    let mut tested = Vec::new();
    for t in &tests {
        // `NAME.tests.yaml` and `NAME.WHAT.tests.yaml` test policies/NAME.yaml, through
        // policies/NAME.config.yaml when there is one.
        let file = t.file_name().unwrap().to_string_lossy().into_owned();
        let name = file.split('.').next().unwrap().to_owned();
        let policy = policies.join(format!("{name}.yaml"));
        assert!(
            policy.exists(),
            "{file} tests a policy that does not exist: {policy:?}"
        );
        let config = policies.join(format!("{name}.config.yaml"));
        let config = if config.exists() {
            config
        } else {
            policy.clone()
        };
        let out = run_test(&config, &[t], &dummy_secrets(&policy));
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "slackgate test {config:?} {t:?}:\n{stdout}{}",
            text(&out.stderr)
        );
        let summary = stdout.lines().last().unwrap_or_default();
        let passed: usize = summary
            .strip_suffix(" passed, 0 failed")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("summary of {file}: {summary:?}"));
        assert!(passed >= 5, "{file}: {summary}");
        tested.push(policy);
    }
    // Every example policy (a file with routes, not a config) has tests.
    for entry in std::fs::read_dir(&policies).unwrap() {
        let path = entry.unwrap().path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml");
        if is_yaml && !path.to_string_lossy().ends_with(".config.yaml") {
            assert!(
                tested.contains(&path),
                "{path:?} has no tests file in policies/tests/"
            );
        }
    }
}

// === failures ===

#[test]
fn a_wrong_expectation_shows_the_actual_decision_and_exits_1() {
    let ex = Example::new();
    let tests = ex.tests_file(
        "wrong.tests.yaml",
        &format!(
            "cases:\n{PASSING}  - name: a denied user is expected to pass
    request:
      path: /slack/helpdesk
      event: {{ type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0BAD, channel: C0HELP }}
    expect: {{ reason: allowed, status: 200 }}
"
        ),
    );
    let out = ex.run(&[&tests]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let path = tests.display();
    assert!(
        stdout.contains(&format!(
            "FAIL  {path}:7:11: a denied user is expected to pass\n\
             \x20 expected: reason allowed, status 200\n\
             \x20 actual:   reason scope_denied, rule deny.users, shadow false, status 403, route helpdesk, secret_id current\n\
             \x20 differs:  reason, status\n"
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains("a mention in the help channel"),
        "passes are quiet: {stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 1 failed"),
        "{stdout}"
    );

    // `--verbose` lists the passing case too.
    let out = slackgate(
        &[
            "test",
            "-v",
            ex.config.to_str().unwrap(),
            tests.to_str().unwrap(),
        ],
        &ex.secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        b"",
    );
    assert!(
        text(&out.stdout).contains(&format!(
            "ok    {path}:2:11: a mention in the help channel is forwarded"
        )),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn each_field_of_an_expectation_is_compared() {
    let ex = Example::new();
    let tests = ex.tests_file(
        "fields.tests.yaml",
        "cases:
  - name: wrong rule
    request: { path: /slack/helpdesk, event: { type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0BAD, channel: C0HELP } }
    expect: { reason: scope_denied, rule: allow.users }
  - name: wrong shadow
    request: { path: /slack/helpdesk, event: { type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0333, channel: C0HELP } }
    expect: { reason: allowed, shadow: true }
  - name: wrong route
    request: { path: /slack/helpdesk, event: { type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0333, channel: C0HELP } }
    expect: { reason: allowed, route: other }
  - name: wrong secret
    request: { path: /slack/helpdesk, event: { type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0333, channel: C0HELP } }
    expect: { reason: allowed, secret_id: previous }
",
    );
    let out = ex.run(&[&tests]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for differs in ["rule", "shadow", "route", "secret_id"] {
        assert!(
            stdout.contains(&format!("  differs:  {differs}\n")),
            "{differs}: {stdout}"
        );
    }
    assert_eq!(stdout.lines().last(), Some("0 passed, 4 failed"));
}

#[test]
fn a_malformed_tests_file_exits_2_naming_file_line_and_column() {
    let ex = Example::new();
    let tests = ex.tests_file(
        "malformed.tests.yaml",
        &format!(
            "cases:\n{PASSING}  - name: a typo in a key
    request:
      path: /slack/helpdesk
      evnt: {{ type: app_mention }}
    expect: {{ reason: allowed }}
  - name: an unknown reason
    request: {{ path: /slack/helpdesk }}
    expect: {{ reason: alowed }}
  - name: two bodies
    request: {{ path: /slack/helpdesk, body: x, command: {{ command: /ticket }} }}
    expect: {{ reason: allowed }}
  - name: a secret the app does not have
    request: {{ path: /slack/helpdesk, secret: nope, body: x }}
    expect: {{ reason: allowed }}
stat: shared
"
        ),
    );
    let out = ex.run(&[&tests]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let path = tests.display();
    for (at, what) in [
        ("10:7", "error: unknown key `evnt` in `cases[1].request`"),
        ("14:23", "error: unknown `cases[2].expect.reason`"),
        ("16:57", "error: a request has one body"),
        (
            "19:47",
            "error: app `helpdesk` of route `helpdesk` has no secret `nope`",
        ),
        ("21:1", "error: unknown key `stat` at the top level"),
    ] {
        assert!(
            stderr.contains(&format!("{path}:{at}: {what}")),
            "{at} {what}:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("  fix: use one of the reason codes: allowed, no_route,"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  fix: use one of its secret ids: `current`, `previous`"),
        "{stderr}"
    );
    assert!(stderr.contains("5 error(s)"), "{stderr}");
    // A file that does not load runs none of its cases, and the others still run.
    let good = ex.tests_file("good.tests.yaml", &format!("cases:\n{PASSING}"));
    let out = ex.run(&[&tests, &good]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout).lines().last(), Some("1 passed, 0 failed"));
}

#[test]
fn a_yaml_syntax_error_exits_2_with_its_position() {
    let ex = Example::new();
    let tests = ex.tests_file(
        "syntax.tests.yaml",
        "cases:\n  - name: x\n    request: { path: /slack/helpdesk\n    expect: { reason: allowed }\n",
    );
    let out = ex.run(&[&tests]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:4:", tests.display()))
            && stderr.contains("YAML syntax error"),
        "{stderr}"
    );
}

#[test]
fn a_value_in_the_wrong_place_is_never_echoed() {
    let ex = Example::new();
    let tests = ex.tests_file(
        "leak.tests.yaml",
        &format!(
            "cases:
  - name: a secret pasted as a header map
    request: {{ path: /slack/helpdesk, headers: {PLANTED} }}
    expect: {{ reason: {PLANTED} }}
  - name: a secret pasted as a body mapping
    request: {{ path: /slack/helpdesk, body: {{ secret: {PLANTED} }}, signature: {PLANTED} }}
    expect: {{ reason: allowed, status: {PLANTED} }}
"
        ),
    );
    // run_test asserts that PLANTED is printed nowhere.
    let out = ex.run(&[&tests]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("wrong type for `cases[0].request.headers`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wrong type for `cases[1].request.body`"),
        "{stderr}"
    );
}

#[test]
fn a_policy_that_does_not_load_exits_2() {
    let ex = Example::new();
    let tests = ex.tests_file("t.tests.yaml", &format!("cases:\n{PASSING}"));
    // Without its secrets the policy does not load, as `run` would refuse it.
    let out = run_test(&ex.config, &[&tests], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("HELPDESK_SIGNING_SECRET"));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

// === state ===

#[test]
fn cases_run_on_a_fresh_guard_unless_the_file_shares_one() {
    let ex = Example::new();
    let twice = format!("{PASSING}{}", PASSING.replace("is forwarded", "again"));
    let fresh = ex.tests_file("fresh.tests.yaml", &format!("cases:\n{twice}"));
    let out = ex.run(&[&fresh]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let shared = ex.tests_file(
        "shared.tests.yaml",
        &format!("state: shared\ncases:\n{twice}"),
    );
    let out = ex.run(&[&shared]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "again\n  expected: reason allowed\n  actual:   reason replayed, rule replay,"
        ),
        "the same delivery twice on one guard is a replay: {stdout}"
    );
}

// === documentation ===

#[test]
fn the_documented_examples_pass_on_the_example_policy() {
    let ex = Example::new();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Policy tests")
        .expect("README has Policy tests")..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    let from_readme = ex.tests_file("readme.tests.yaml", yaml);

    let help = text(&slackgate(&["test", "--help"], &[], b"").stdout);
    let yaml: String = help
        .lines()
        .skip_while(|l| *l != "A tests file:")
        .skip(1)
        .take_while(|l| !l.starts_with("request:"))
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let from_help = ex.tests_file("help.tests.yaml", &yaml);

    for file in [&from_readme, &from_help] {
        let out = ex.run(&[file]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file:?}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.ends_with(" passed, 0 failed\n") && !stdout.starts_with("0 "),
            "{stdout}"
        );
    }
}

#[test]
fn help_documents_the_format() {
    let out = slackgate(&["test", "--help"], &[], b"");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "state: fresh",
        "signature: valid (default) | bad | none",
        "expect: reason (required), rule, shadow, status",
        "Exit 0: all passed; 1: a case failed; 2:",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let out = slackgate(&["--help"], &[], b"");
    assert!(text(&out.stdout).contains("test "), "{}", text(&out.stdout));
}

// === calls to the egress door ===

fn egress_policy() -> String {
    format!(
        "version: 1
{}routes: []
bots:
{}    team: T0ACME
    methods: [chat.postMessage, \"reactions.*\"]
    channels: [C0HELP]
    deny_args: [username]
    rate_limits:
      - {{ per: bot, rate: 1/min, burst: 2 }}
{}    app: helpdesk
    methods: [chat.postMessage]
    reply_scope: 10m
",
        app("helpdesk", "HELPDESK_SIGNING_SECRET"),
        bot("helpdesk"),
        bot("replier")
    )
}

const EGRESS_CASES: &str = "cases:
  - name: helpdesk posts into its channel
    call:
      bot: helpdesk
      method: chat.postMessage
      args: { channel: C0HELP, text: on it }
    expect: { reason: allowed, status: 200, bot: helpdesk }
  - name: a JSON body is read too
    call:
      bot: helpdesk
      method: reactions.add
      encoding: json
      args: { channel: C0HELP, name: eyes, timestamp: \"1.2\" }
    expect: { reason: allowed }
  - name: another channel is denied
    call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0OPS, text: x } }
    expect: { reason: channel_denied, rule: channels }
  - name: a method it does not list is denied
    call: { bot: helpdesk, method: files.upload, args: { channels: C0HELP } }
    expect: { reason: method_denied, rule: methods, bot: helpdesk }
  - name: a denied argument is denied
    call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0HELP, username: ceo } }
    expect: { reason: argument_denied }
  - name: another team is denied
    call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0HELP, team_id: T0OTHER } }
    expect: { reason: team_denied }
  - name: a token in the query string is refused
    call: { bot: helpdesk, method: chat.postMessage, query: token=xoxb-1 }
    expect: { reason: token_in_url }
  - name: a wrong key is nobody
    call: { key: wrong, method: chat.postMessage, args: { channel: C0HELP } }
    expect: { reason: unknown_bot }
  - name: no key is nobody
    call: { key: none, method: chat.postMessage }
    expect: { reason: unknown_bot }
  - name: the replier may not write where nobody spoke to its app
    call: { bot: replier, method: chat.postMessage, args: { channel: C0HELP, text: hi } }
    expect: { reason: channel_denied, rule: reply_scope }
  - name: the replier may answer where it was spoken to
    call:
      bot: replier
      method: chat.postMessage
      args: { channel: C0HELP, text: hi }
      replied_in: [C0HELP]
    expect: { reason: allowed }
";

fn egress_rig() -> (tempfile::TempDir, PathBuf, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bots.yaml");
    std::fs::write(&policy, egress_policy()).unwrap();
    let secrets = vec![
        (
            "HELPDESK_SIGNING_SECRET".to_owned(),
            format!("{PLANTED}-signing"),
        ),
        (
            "HELPDESK_GATEWAY_KEY".to_owned(),
            format!("{PLANTED}-helpdesk-key"),
        ),
        (
            "HELPDESK_BOT_TOKEN".to_owned(),
            format!("xoxb-{PLANTED}-helpdesk"),
        ),
        (
            "REPLIER_GATEWAY_KEY".to_owned(),
            format!("{PLANTED}-replier-key"),
        ),
        (
            "REPLIER_BOT_TOKEN".to_owned(),
            format!("xoxb-{PLANTED}-replier"),
        ),
    ];
    (dir, policy, secrets)
}

#[test]
fn calls_to_the_egress_door_are_policy_tests_too() {
    let (dir, policy, secrets) = egress_rig();
    let tests = dir.path().join("bots.tests.yaml");
    std::fs::write(&tests, EGRESS_CASES).unwrap();
    let out = run_test(&policy, &[&tests], &secrets);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("11 passed, 0 failed"), "{stdout}");

    // Shared state: the bot's rate limit (burst 2) carries over from case to case.
    let shared = dir.path().join("bots.shared.tests.yaml");
    std::fs::write(
        &shared,
        "state: shared
cases:
  - name: first
    call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0HELP } }
    expect: { reason: allowed }
  - name: second
    call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0HELP } }
    expect: { reason: allowed }
  - name: third is over the limit
    call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0HELP } }
    expect: { reason: rate_limited, status: 429 }
",
    )
    .unwrap();
    let out = run_test(&policy, &[&shared], &secrets);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // A wrong expectation shows the actual decision.
    let wrong = dir.path().join("wrong.tests.yaml");
    std::fs::write(
        &wrong,
        "cases:
  - name: expects the wrong thing
    call: { bot: helpdesk, method: files.upload }
    expect: { reason: allowed, bot: replier }
",
    )
    .unwrap();
    let out = run_test(&policy, &[&wrong], &secrets);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("actual:   reason method_denied, rule methods, status 200, bot helpdesk")
            && stdout.contains("differs:  reason, bot"),
        "{stdout}"
    );
}

#[test]
fn a_broken_call_case_exits_2_naming_its_place() {
    let (dir, policy, secrets) = egress_rig();
    let tests = dir.path().join("broken.tests.yaml");
    std::fs::write(
        &tests,
        "cases:
  - name: unknown bot
    call: { bot: nobody, method: chat.postMessage }
    expect: { reason: allowed }
  - name: an inbound reason for a call
    call: { bot: helpdesk, method: chat.postMessage }
    expect: { reason: bad_signature }
  - name: a route for a call
    call: { bot: helpdesk, method: chat.postMessage }
    expect: { reason: allowed, route: helpdesk }
  - name: a literal key
    call: { key: planted-5ecret-value-0123456789-x, method: chat.postMessage }
    expect: { reason: unknown_bot }
  - name: both
    request: { path: /x }
    call: { bot: helpdesk, method: chat.postMessage }
    expect: { reason: allowed }
",
    )
    .unwrap();
    let out = run_test(&policy, &[&tests], &secrets);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in [
        "broken.tests.yaml:3:18: error: `cases[0].call.bot` names no bot of the policy",
        "use one of: helpdesk, replier",
        "broken.tests.yaml:7:23: error: unknown `cases[1].expect.reason`",
        "egress reason codes",
        "broken.tests.yaml:10:39: error: `cases[2].expect.route` does not apply to a `call:` case",
        "broken.tests.yaml:12:18: error: invalid value for `cases[3].call.key`",
        "`cases[4]` has both `request` and `call`",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}
