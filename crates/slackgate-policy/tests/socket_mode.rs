//! `apps.<app>.socket_mode`: the app token is a reference to an `xapp-` token and never
//! echoed; `connections` is 1 to 10 (default 1); each of `paths` names a route path of the
//! same app; and an app with `socket_mode` needs the server config's `egress` section.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use slackgate_fixtures::MapSecrets;
use slackgate_policy::{compile_policy, load, LoadErrors, Policy};
use support::now;

const APP_TOKEN: &str = "xapp-1-A0HELPDESK-1111-planted0apptoken0value";

fn secrets() -> MapSecrets {
    let s = MapSecrets::in_memory(&[
        (
            "HELPDESK_SIGNING_SECRET",
            "8f14e45fceea167a5a36dedd4bea2543",
        ),
        ("HELPDESK_APP_TOKEN", APP_TOKEN),
        ("HELPDESK_BOT_TOKEN", "xoxb-1111-2222-planted0token0value"),
    ]);
    s.set_file("app.token", format!("{APP_TOKEN}\n"));
    s
}

/// A policy with app `helpdesk` (its `socket_mode` block is `socket`, indented under the
/// app), app `other`, and routes `/slack/events` and `/slack/commands` of `helpdesk` and
/// `/other` of `other`.
fn policy(socket: &str) -> String {
    format!(
        "version: 1
apps:
  helpdesk:
    signing_secrets: [{{ id: current, env: HELPDESK_SIGNING_SECRET }}]
{socket}
  other:
    signing_secrets: [{{ id: current, env: HELPDESK_SIGNING_SECRET }}]
upstreams:
  bot: {{ targets: [127.0.0.1:3000] }}
routes:
  - {{ name: events, path: /slack/events, app: helpdesk, upstream: bot }}
  - {{ name: commands, path: /slack/commands, app: helpdesk, upstream: bot }}
  - {{ name: other, path: /other, app: other, upstream: bot }}
"
    )
}

fn compile(socket: &str) -> Result<Policy, LoadErrors> {
    compile_policy(Path::new("policy.yaml"), &policy(socket), &secrets(), now())
}

fn error(socket: &str) -> String {
    let e = compile(socket)
        .map(|_| ())
        .expect_err("a load error")
        .to_string();
    assert!(!e.contains("planted0"), "the error echoes a token: {e}");
    e
}

#[test]
fn a_socket_mode_app_loads_with_its_token_connections_and_paths() {
    let p = compile(
        "    socket_mode:
      app_token: { env: HELPDESK_APP_TOKEN }
      connections: 2
      paths: { events_api: /slack/events, slash_commands: /slack/commands }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = p.apps["helpdesk"]
        .socket_mode
        .as_ref()
        .expect("socket_mode");
    assert_eq!(s.app_token.expose(), APP_TOKEN);
    assert_eq!(s.connections, 2);
    assert_eq!(
        s.paths.for_type("events_api").map(|p| &**p),
        Some("/slack/events")
    );
    assert_eq!(
        s.paths.for_type("slash_commands").map(|p| &**p),
        Some("/slack/commands")
    );
    assert!(s.paths.for_type("interactive").is_none());
    assert!(p.apps["other"].socket_mode.is_none());
    // The token's Debug shows where it comes from, never its value.
    assert!(!format!("{:?}", p.apps["helpdesk"]).contains("planted0"));
}

#[test]
fn connections_default_to_one_and_a_file_reference_works() {
    let p = compile(
        "    socket_mode:
      app_token: { file: app.token }
      paths: { events_api: /slack/events }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = p.apps["helpdesk"]
        .socket_mode
        .as_ref()
        .expect("socket_mode");
    assert_eq!(s.connections, 1);
    assert_eq!(s.app_token.expose(), APP_TOKEN);
}

#[test]
fn a_literal_app_token_is_a_load_error_that_does_not_echo_it() {
    let e = error(&format!(
        "    socket_mode:
      app_token: {{ token: {APP_TOKEN} }}
      paths: {{ events_api: /slack/events }}"
    ));
    assert!(e.contains("literal"), "{e}");
}

#[test]
fn a_token_that_is_not_an_app_token_is_refused() {
    let e = error(
        "    socket_mode:
      app_token: { env: HELPDESK_BOT_TOKEN }
      paths: { events_api: /slack/events }",
    );
    assert!(e.contains("is not an app-level token"), "{e}");
    assert!(e.contains("xapp-"), "{e}");
}

#[test]
fn connections_out_of_range_are_refused() {
    for n in ["0", "11", "-1"] {
        let e = error(&format!(
            "    socket_mode:
      app_token: {{ env: HELPDESK_APP_TOKEN }}
      connections: {n}
      paths: {{ events_api: /slack/events }}"
        ));
        assert!(e.contains("it must be 1 to 10"), "{n}: {e}");
        // The app fails, and its routes with it; its paths, which name its routes, are
        // not reported again as naming no route.
        assert!(!e.contains("is not the path of a route"), "{n}: {e}");
        assert_eq!(e.matches("error:").count(), 1, "{n}: {e}");
    }
}

#[test]
fn each_path_must_be_a_route_path_of_the_same_app() {
    let e = error(
        "    socket_mode:
      app_token: { env: HELPDESK_APP_TOKEN }
      paths: { events_api: /slack/nowhere, interactive: /other }",
    );
    assert!(
        e.contains("socket_mode path `/slack/nowhere` (events_api) of app `helpdesk` is not the path of a route of that app"),
        "{e}"
    );
    assert!(
        e.contains("socket_mode path `/other` (interactive) of app `helpdesk`"),
        "{e}"
    );
    assert!(e.contains("`/slack/events`, `/slack/commands`"), "{e}");
}

#[test]
fn paths_must_name_at_least_one_path_and_no_unknown_key() {
    let e = error(
        "    socket_mode:
      app_token: { env: HELPDESK_APP_TOKEN }
      paths: {}",
    );
    assert!(e.contains("names no path"), "{e}");
    let e = error(
        "    socket_mode:
      app_token: { env: HELPDESK_APP_TOKEN }
      paths: { events: /slack/events }",
    );
    assert!(e.contains("events"), "{e}");
}

#[test]
fn socket_mode_needs_the_egress_section() {
    let dir = tempfile::tempdir().unwrap();
    let socket = "    socket_mode:
      app_token: { env: HELPDESK_APP_TOKEN }
      paths: { events_api: /slack/events }";
    std::fs::write(dir.path().join("policy.yaml"), policy(socket)).unwrap();
    let config = "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: policy.yaml\n";
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let e = load(&dir.path().join("config.yaml"), &secrets(), now())
        .map(|_| ())
        .expect_err("no egress")
        .to_string();
    assert!(
        e.contains(
            "app `helpdesk` has `socket_mode`, but the server config has no `egress` section"
        ),
        "{e}"
    );
    assert!(!e.contains("planted0"), "{e}");

    let with_egress = "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: policy.yaml\negress: { listen: { addr: 127.0.0.1:8081 } }\n";
    std::fs::write(dir.path().join("config.yaml"), with_egress).unwrap();
    load(&dir.path().join("config.yaml"), &secrets(), now()).unwrap_or_else(|e| panic!("{e}"));
}
