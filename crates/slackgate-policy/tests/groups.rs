//! `groups:`: list groups are expanded into the routes that name them (as before), user
//! groups (`{ usergroup, bot, refresh }`) are kept by name and named by the routes' user
//! sets; a user group needs the config's `egress` to be read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use slackgate_policy::{compile_config, compile_policy, Config, Loaded, Policy};
use support::{now, standard_secrets};

const HEAD: &str = "version: 1
apps:
  helpdesk:
    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]
upstreams:
  helpdesk: { targets: [127.0.0.1:3000] }
bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage]
";

fn load(rest: &str) -> Result<Policy, String> {
    let text = format!("{HEAD}{rest}");
    compile_policy(Path::new("policy.yaml"), &text, &standard_secrets(), now())
        .map_err(|e| e.to_string())
}

const TWO_KINDS: &str = "groups:
  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }
  admins: [U0111, U0222]
  contractors: { usergroup: S0CONTRACT, bot: helpdesk, refresh: 1s }
routes:
  - name: helpdesk
    path: /slack/helpdesk
    app: helpdesk
    upstream: helpdesk
    allow: { users: [U0333, \"@oncall\", \"@admins\", \"@oncall\"] }
    deny: { users: [\"@contractors\"] }
";

#[test]
fn user_groups_are_kept_by_name_and_named_by_routes() {
    let p = load(TWO_KINDS).unwrap();
    let names: Vec<&str> = p.usergroups.keys().map(|k| &**k).collect();
    assert_eq!(names, ["contractors", "oncall"]);
    let oncall = &p.usergroups["oncall"];
    assert_eq!(&*oncall.usergroup, "S0ONCALL");
    assert_eq!(&*oncall.bot, "helpdesk");
    assert_eq!(oncall.refresh, Duration::from_secs(300));
    assert_eq!(oncall.defined_at, (13, 3));
    assert_eq!(p.usergroups["contractors"].refresh, Duration::from_secs(1));

    let r = p.routes.by_name("helpdesk").unwrap();
    let allow = r.allow.users.as_ref().unwrap();
    // The list group is expanded as before; the user group is named once, not expanded.
    for u in ["U0333", "U0111", "U0222"] {
        assert!(allow.has_id(u), "{u}");
    }
    assert_eq!(allow.ids.len(), 3);
    let named: Vec<&str> = allow.groups.iter().map(|g| &*g.name).collect();
    assert_eq!(named, ["oncall"]);
    let deny = r.deny.users.as_ref().unwrap();
    assert!(deny.ids.is_empty());
    assert_eq!(&*deny.groups[0].usergroup, "S0CONTRACT");
}

#[test]
fn an_allow_list_of_only_a_user_group_is_not_empty() {
    let p = load(
        "groups:
  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }
routes:
  - { name: r, path: /r, app: helpdesk, upstream: helpdesk, allow: { users: [\"@oncall\"] } }
",
    )
    .unwrap();
    let users = p.routes.by_name("r").unwrap().allow.users.clone().unwrap();
    assert!(users.ids.is_empty());
    assert_eq!(users.groups.len(), 1);
}

#[test]
fn list_groups_compile_as_before_and_name_no_user_group() {
    let p = load(
        "groups:
  oncall: [U0111]
routes:
  - { name: r, path: /r, app: helpdesk, upstream: helpdesk, allow: { users: [\"@oncall\"] } }
",
    )
    .unwrap();
    assert!(p.usergroups.is_empty());
    let users = p.routes.by_name("r").unwrap().allow.users.clone().unwrap();
    assert!(users.has_id("U0111"));
    assert!(users.groups.is_empty());
}

#[test]
fn an_unknown_group_lists_both_kinds_and_a_user_group_cannot_be_nested() {
    let e = load(
        "groups:
  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }
  admins: [U0111, \"@oncall\"]
  leads: [U0444]
routes:
  - { name: r, path: /r, app: helpdesk, upstream: helpdesk, allow: { users: [\"@sre\"] } }
",
    )
    .unwrap_err();
    assert!(
        e.contains("policy.yaml:14:19: error: group `admins` contains a group reference"),
        "{e}"
    );
    assert!(
        e.contains("references unknown group `@sre`\n  fix: define it under `groups:` or use one of: `leads`, `oncall`"),
        "{e}"
    );
}

#[test]
fn a_user_group_may_name_a_bot_whose_own_definition_is_broken_without_a_second_error() {
    let e = load(
        "  broken:
    key: { env: NOT_SET }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage]
groups:
  oncall: { usergroup: S0ONCALL, bot: broken, refresh: 5m }
routes: []
",
    )
    .unwrap_err();
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    assert!(e.contains("NOT_SET"), "{e}");
}

/// What every command gets for `config` with `policy`: [`Loaded::join`], as `load` runs it.
fn join(config: &Config, policy: Policy) -> Result<Loaded, String> {
    Loaded::join(Some(config.clone()), policy, &standard_secrets()).map_err(|e| e.to_string())
}

#[test]
fn a_user_group_needs_the_egress_section() {
    let without = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: policy.yaml\n",
    )
    .unwrap();
    let e = join(&without, load(TWO_KINDS).unwrap()).unwrap_err();
    assert_eq!(e.lines().filter(|l| l.contains("error:")).count(), 2, "{e}");
    assert!(
        e.contains("policy.yaml:13:3: error: group `oncall` reads its members from Slack user group S0ONCALL, but the server config has no `egress` section\n  fix: add `egress:`"),
        "{e}"
    );
    let with = compile_config(
        Path::new("config.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: policy.yaml\negress: { listen: { addr: 127.0.0.1:8081 } }\n",
    )
    .unwrap();
    assert!(join(&with, load(TWO_KINDS).unwrap()).is_ok());
    // A policy with only list groups needs nothing.
    let lists = load("groups:\n  admins: [U0111]\nroutes: []\n").unwrap();
    assert!(join(&without, lists).is_ok());
}

#[test]
fn a_definition_is_the_same_wherever_it_is_written() {
    let a = load(TWO_KINDS).unwrap();
    let moved = load(&TWO_KINDS.replace("groups:\n", "groups:\n  first: [U0999]\n")).unwrap();
    let slower = load(&TWO_KINDS.replace("refresh: 5m", "refresh: 10m")).unwrap();
    let (g, m, s) = (
        &a.usergroups["oncall"],
        &moved.usergroups["oncall"],
        &slower.usergroups["oncall"],
    );
    assert_ne!(g.defined_at, m.defined_at);
    assert!(g.same_definition(m));
    assert!(!g.same_definition(s));
}
