//! One test per error class, each asserting the exact message printed by
//! `slackgate check`. The same cases generate docs/policy-errors.md
//! (`UPDATE_DOCS=1 cargo test -p slackgate-policy --test errors` rewrites it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use slackgate_policy::{compile_config, compile_policy, LoadErrors};
use support::{now, standard_secrets, PLANTED};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Policy,
    Config,
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    class: &'static str,
    kind: Kind,
    input: &'static str,
    expected: &'static str,
}

fn output(kind: Kind, input: &str) -> String {
    let secrets = standard_secrets();
    let res: Result<(), LoadErrors> = match kind {
        Kind::Policy => {
            compile_policy(Path::new("policy.yaml"), input, &secrets, now()).map(|_| ())
        }
        Kind::Config => compile_config(Path::new("config.yaml"), input).map(|_| ()),
    };
    match res {
        Ok(()) => "<loaded without error>".to_string(),
        Err(e) => e.to_string(),
    }
}

fn run(case: &Case) {
    let got = output(case.kind, case.input);
    assert_eq!(got, case.expected, "case {} ({})", case.name, case.class);
    assert!(!got.contains(PLANTED), "case {} echoes a secret", case.name);
}

/// A valid policy head: app `helpdesk` and upstream `helpdesk`; cases append `routes:`.
macro_rules! head {
    () => {
        "version: 1
apps:
  helpdesk:
    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]
upstreams:
  helpdesk: { targets: [127.0.0.1:3000] }
"
    };
}

/// A valid route, to be followed by more of its keys.
macro_rules! route {
    () => {
        "routes:
  - name: helpdesk
    path: /slack/helpdesk
    app: helpdesk
    upstream: helpdesk
"
    };
}

/// [`head!`] with bot `helpdesk` (lines 7 to 11); cases append `groups:` and a route.
macro_rules! bot_head {
    () => {
        concat!(
            head!(),
            "bots:\n  helpdesk:\n    key: { env: HELPDESK_GATEWAY_KEY }\n    token: { env: HELPDESK_BOT_TOKEN }\n    methods: [chat.postMessage]\n"
        )
    };
}

macro_rules! cases {
    ($( $name:ident: $class:literal, $kind:ident, $input:expr => $expected:expr; )*) => {
        const CASES: &[Case] = &[
            $( Case { name: stringify!($name), class: $class, kind: Kind::$kind, input: $input, expected: $expected }, )*
        ];
        $(
            #[test]
            fn $name() {
                run(&Case { name: stringify!($name), class: $class, kind: Kind::$kind, input: $input, expected: $expected });
            }
        )*
    };
}

cases! {
    yaml_syntax: "YAML syntax error", Policy,
        "version: 1\nroutes: [\n  - { name: a\n" =>
        "policy.yaml:3:3: error: YAML syntax error: \"-\" is only valid inside a block\n  fix: fix the YAML syntax here (check indentation, `key: value` colons, quotes and brackets)";
    duplicate_yaml_key: "duplicate key", Policy,
        concat!(head!(), route!(), "    path: /other\n") =>
        "policy.yaml:12:5: error: duplicate key `path` (first defined on line 9)\n  fix: remove or rename one of them; YAML would silently keep only the last one";
    unknown_key: "unknown key", Policy,
        concat!(head!(), route!(), "    on_denied: ack\n") =>
        "policy.yaml:12:5: error: unknown key `on_denied` in `routes[0]`\n  fix: remove it or correct the spelling; allowed keys here: `name`, `path`, `host`, `app`, `upstream`, `mode`, `on_deny`, `allow_unverified_shadow`, `source_ips`, `allow`, `deny`, `rate_limits`, `dedupe`, `state_failure`, `resign`, `bot`, `response_urls`, `workflow_tokens`";
    unknown_top_level_key: "unknown top-level key", Policy,
        concat!(head!(), route!(), "route: []\n") =>
        "policy.yaml:12:1: error: unknown key `route` at the top level\n  fix: remove it or correct the spelling; allowed keys here: `version`, `apps`, `upstreams`, `groups`, `routes`, `bots`, `webhooks`";
    missing_key: "missing required key", Policy,
        concat!(head!(), "routes:\n  - { name: helpdesk, path: /slack/helpdesk, app: helpdesk }\n") =>
        "policy.yaml:8:5: error: missing required key `upstream` in `routes[0]`\n  fix: add `upstream: ...` here";
    wrong_type_list: "wrong type (scalar for a list)", Policy,
        concat!(head!(), route!(), "    allow: { teams: T0ACME }\n") =>
        "policy.yaml:12:21: error: wrong type for `routes[0].allow.teams`: expected a list, found a string\n  fix: write a list here, e.g. [a, b] or one `- item` per line";
    wrong_type_bool: "wrong type (not a boolean)", Policy,
        concat!(head!(), route!(), "    mode: shadow\n    allow_unverified_shadow: maybe\n") =>
        "policy.yaml:13:30: error: wrong type for `routes[0].allow_unverified_shadow`: expected true or false\n  fix: write true or false";
    wrong_type_number: "wrong type (not a number)", Policy,
        concat!(head!(), route!(), "    rate_limits: [{ per: team, rate: 20/s, burst: lots }]\n") =>
        "policy.yaml:12:51: error: wrong type for `routes[0].rate_limits[0].burst`: expected a whole number\n  fix: write a whole number without quotes, units or sign, e.g. 40";
    invalid_enum_value: "invalid enum value", Policy,
        concat!(head!(), route!(), "    mode: audit\n") =>
        "policy.yaml:12:11: error: invalid value for `routes[0].mode`\n  fix: use one of: `enforce`, `shadow`";
    invalid_bot_mode: "invalid bot mode", Policy,
        concat!(bot_head!(), "    mode: audit\n", route!()) =>
        "policy.yaml:12:11: error: invalid value for `bots.helpdesk.mode`\n  fix: use one of: `enforce`, `shadow`";
    version_not_1: "version is not 1", Policy,
        concat!("version: 2\n", "apps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:1:10: error: unsupported policy version 2\n  fix: set `version: 1` (the only version this slackgate understands)";
    no_routes: "no routes", Policy,
        concat!(head!(), "routes: []\n") =>
        "policy.yaml:7:9: error: the policy has no routes and no bots: every request would be answered 404 no_route\n  fix: add at least one route under `routes:` (or a bot under `bots:`)";
    dangling_app: "route references unknown app", Policy,
        concat!(head!(), "routes:\n  - { name: helpdesk, path: /slack/helpdesk, app: helpdessk, upstream: helpdesk }\n") =>
        "policy.yaml:8:51: error: route `helpdesk` references unknown app `helpdessk`\n  fix: define it under `apps:` or use one of: `helpdesk`";
    dangling_upstream: "route references unknown upstream", Policy,
        concat!(head!(), "routes:\n  - { name: helpdesk, path: /slack/helpdesk, app: helpdesk, upstream: bot }\n") =>
        "policy.yaml:8:71: error: route `helpdesk` references unknown upstream `bot`\n  fix: define it under `upstreams:` or use one of: `helpdesk`";
    dangling_group: "users references unknown @group", Policy,
        concat!(head!(), "groups:\n  oncall: [U0111]\n", route!(), "    allow: { users: [U0333, \"@on-call\"] }\n") =>
        "policy.yaml:14:29: error: `allow.users` of route `helpdesk` references unknown group `@on-call`\n  fix: define it under `groups:` or use one of: `oncall`";
    nested_group: "group contains a group", Policy,
        concat!(head!(), "groups:\n  oncall: [U0111, \"@sre\"]\n  sre: [U0222]\n", route!()) =>
        "policy.yaml:8:19: error: group `oncall` contains a group reference; groups cannot be nested\n  fix: list the user ids directly";
    group_wrong_type: "group is neither a list nor a user group", Policy,
        concat!(head!(), "groups:\n  oncall: U0111\n", route!()) =>
        "policy.yaml:8:11: error: wrong type for `groups.oncall`: expected a list of user ids or a mapping with usergroup, bot and refresh, found a string\n  fix: write a list of user ids or a mapping with usergroup, bot and refresh here";
    usergroup_unknown_key: "unknown key in a user group", Policy,
        concat!(bot_head!(), "groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m, every: 5m }\n", route!()) =>
        "policy.yaml:13:62: error: unknown key `every` in `groups.oncall`\n  fix: remove it or correct the spelling; allowed keys here: `usergroup`, `bot`, `refresh`";
    usergroup_bad_id: "user group id is not an S… id", Policy,
        concat!(bot_head!(), "groups:\n  oncall: { usergroup: oncall-team, bot: helpdesk, refresh: 5m }\n", route!()) =>
        "policy.yaml:13:24: error: `usergroup` of group `oncall` is not a Slack user group id\n  fix: write the user group's id, e.g. S0123ABCD (starts with S; Slack shows it in the group's URL and in usergroups.list), not its @handle or name";
    usergroup_unknown_bot: "user group names an unknown bot", Policy,
        concat!(bot_head!(), "groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdsk, refresh: 5m }\n", route!()) =>
        "policy.yaml:13:39: error: group `oncall` names bot `helpdsk`, which is not defined\n  fix: use one of the bots under `bots:` (`helpdesk`); its token needs the usergroups:read scope";
    usergroup_no_refresh: "user group without refresh", Policy,
        concat!(bot_head!(), "groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdesk }\n", route!()) =>
        "policy.yaml:13:3: error: group `oncall` has no `refresh`\n  fix: add `refresh: 5m` (how often its members are read from Slack; Slack allows about 20 usergroups.users.list calls a minute)";
    usergroup_refresh_too_short: "user group refresh under 1s", Policy,
        concat!(bot_head!(), "groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 500ms }\n", route!()) =>
        "policy.yaml:13:58: error: `refresh` of group `oncall` is shorter than 1s\n  fix: write 1s or more, e.g. 5m: Slack allows about 20 usergroups.users.list calls a minute, and a change of members is also picked up at once from subteam_members_changed events";
    usergroup_refresh_not_duration: "user group refresh is not a duration", Policy,
        concat!(bot_head!(), "groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: hourly }\n", route!()) =>
        "policy.yaml:13:58: error: `refresh` of group `oncall` is not a duration\n  fix: write a whole number and a unit (ms, s, m, h), e.g. 5m";
    duplicate_route_path: "duplicate route path", Policy,
        concat!(head!(), route!(), "  - { name: helpdesk2, path: /slack/helpdesk, app: helpdesk, upstream: helpdesk }\n") =>
        "policy.yaml:12:30: error: duplicate route for path /slack/helpdesk: route `helpdesk` on line 9 already serves it\n  fix: give each route its own path (or host), or merge the two routes";
    duplicate_route_path_on_host: "duplicate route path on the same host", Policy,
        concat!(head!(), "routes:\n  - { name: a, path: /slack, host: Slack.Example.com, app: helpdesk, upstream: helpdesk }\n  - { name: b, path: /slack, host: slack.example.com, app: helpdesk, upstream: helpdesk }\n") =>
        "policy.yaml:9:22: error: duplicate route for path /slack on host slack.example.com: route `a` on line 8 already serves it\n  fix: give each route its own path (or host), or merge the two routes";
    duplicate_route_name: "duplicate route name", Policy,
        concat!(head!(), route!(), "  - { name: helpdesk, path: /slack/other, app: helpdesk, upstream: helpdesk }\n") =>
        "policy.yaml:12:13: error: duplicate route name `helpdesk` (first on line 8)\n  fix: give every route a unique name: it labels metrics and audit records";
    duplicate_secret_id: "duplicate secret id in an app", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets:\n      - { id: current, env: HELPDESK_SIGNING_SECRET }\n      - { id: current, env: OTHER_SECRET }\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:6:15: error: duplicate secret id `current` in app `helpdesk` (first on line 5)\n  fix: give each signing secret of an app its own id, e.g. current and previous";
    bad_cidr: "bad CIDR", Policy,
        concat!(head!(), route!(), "    source_ips: { allow: [10.0.0.0/33] }\n") =>
        "policy.yaml:12:27: error: not an IP address or CIDR\n  fix: write an address or network such as 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32";
    cidr_host_bits: "CIDR with host bits set", Policy,
        concat!(head!(), route!(), "    source_ips: { deny: [10.1.2.3/8] }\n") =>
        "policy.yaml:12:26: error: CIDR has bits set after the prefix length\n  fix: write the network address, 10.0.0.0/8";
    rate_without_unit: "bad rate: no unit (\"20\")", Policy,
        concat!(head!(), route!(), "    rate_limits: [{ per: team, rate: 20, burst: 40 }]\n") =>
        "policy.yaml:12:38: error: rate of `rate_limits[0]` in route `helpdesk` has no time unit\n  fix: write COUNT/UNIT with a count above 0 and unit s, min or h, e.g. 20/s, 600/min or 5/h";
    rate_bad_count: "bad rate: not a number (\"x/s\")", Policy,
        concat!(head!(), route!(), "    rate_limits: [{ per: team, rate: x/s, burst: 40 }]\n") =>
        "policy.yaml:12:38: error: rate of `rate_limits[0]` in route `helpdesk` does not start with a whole number\n  fix: write COUNT/UNIT with a count above 0 and unit s, min or h, e.g. 20/s, 600/min or 5/h";
    rate_zero: "bad rate: zero (\"0/s\")", Policy,
        concat!(head!(), route!(), "    rate_limits: [{ per: team, rate: 0/s, burst: 40 }]\n") =>
        "policy.yaml:12:38: error: rate of `rate_limits[0]` in route `helpdesk` is zero: nothing would ever be allowed\n  fix: write COUNT/UNIT with a count above 0 and unit s, min or h, e.g. 20/s, 600/min or 5/h";
    rate_bad_unit: "bad rate: unknown unit (\"20/fortnight\")", Policy,
        concat!(head!(), route!(), "    rate_limits: [{ per: team, rate: 20/fortnight, burst: 40 }]\n") =>
        "policy.yaml:12:38: error: rate of `rate_limits[0]` in route `helpdesk` has an unknown time unit\n  fix: write COUNT/UNIT with a count above 0 and unit s, min or h, e.g. 20/s, 600/min or 5/h";
    burst_zero: "burst 0", Policy,
        concat!(head!(), route!(), "    rate_limits: [{ per: user, rate: 1/s, burst: 0 }]\n") =>
        "policy.yaml:12:50: error: burst of `rate_limits[0]` in route `helpdesk` is 0: every request would be limited\n  fix: set burst to at least 1 (the number of requests allowed at once)";
    secret_env_and_file: "secret ref with both env and file", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET, file: helpdesk.secret }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:74: error: secret `current` of app `helpdesk` has both `env` and `file`\n  fix: keep exactly one of `env:` or `file:`";
    secret_neither_env_nor_file: "secret ref with neither env nor file", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:29: error: secret `current` of app `helpdesk` has neither `env` nor `file`\n  fix: add `env: VAR_NAME` or `file: /path/to/secret`";
    env_not_set: "env var not set", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: HELPDESK_SECRET }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:43: error: environment variable HELPDESK_SECRET (secret `current` of app `helpdesk`) is not set\n  fix: set HELPDESK_SECRET in the gateway's environment (e.g. from a Kubernetes Secret), or remove this secret";
    env_empty: "env var empty", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: EMPTY_SECRET }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:43: error: environment variable EMPTY_SECRET (secret `current` of app `helpdesk`) is empty\n  fix: put the app's signing secret in EMPTY_SECRET";
    secret_file_missing: "secret file missing or unreadable", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, file: missing.secret }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:44: error: cannot read secret file missing.secret (secret `current` of app `helpdesk`): file not found\n  fix: mount the secret file at this path and make it readable by the gateway, or fix the path (relative paths start at the policy file's directory)";
    secret_file_empty: "secret file empty", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, file: empty.secret }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:44: error: secret file empty.secret (secret `current` of app `helpdesk`) is empty\n  fix: put the app's signing secret in the file";
    all_secrets_expired: "every secret of an app expired", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets:\n      - { id: old, env: HELPDESK_SIGNING_SECRET, expires: 2029-12-31T00:00:00Z }\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:5:7: error: every signing secret of app `helpdesk` has expired\n  fix: add the app's current signing secret (Slack app settings, Basic Information) or move `expires` into the future";
    bad_expires: "bad expires timestamp", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets:\n      - { id: current, env: HELPDESK_SIGNING_SECRET, expires: 31/12/2026 }\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:5:63: error: `expires` of secret `current` in app `helpdesk` is not an RFC 3339 timestamp\n  fix: write a UTC timestamp such as 2026-12-31T00:00:00Z";
    literal_secret: "literal secret in the policy", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets:\n      - { id: current, secret: 8f14e45fceea167a5a36dedd4bea2543 }\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:5:32: error: literal secrets are not allowed in a policy file; reference it with env: or file:\n  fix: move the value into an environment variable or a mounted file, write `env: VAR_NAME` or `file: /path`, and rotate the secret: it has been stored in plain text";
    literal_signing_secret: "literal secret in the policy (signing_secret:)", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets:\n      - id: current\n        signing_secret: 8f14e45fceea167a5a36dedd4bea2543\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:6:25: error: literal secrets are not allowed in a policy file; reference it with env: or file:\n  fix: move the value into an environment variable or a mounted file, write `env: VAR_NAME` or `file: /path`, and rotate the secret: it has been stored in plain text";
    env_looks_like_literal: "env: value that is not a variable name", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: 8f14e45fceea167a5a36dedd4bea2543 }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:43: error: `env` of secret `current` of app `helpdesk` looks like a literal secret, not an environment variable name\n  fix: write the NAME of the variable that holds the secret, e.g. `env: HELPDESK_SIGNING_SECRET` (letters, digits and _); if this was the secret itself, rotate it";
    app_without_secrets: "app with no signing secrets (fail closed)", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: []\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:22: error: app `helpdesk` has no signing secrets: its routes could never verify a request\n  fix: add at least one entry such as `- { id: current, env: MY_APP_SIGNING_SECRET }`";
    empty_allow_list: "empty allow list", Policy,
        concat!(head!(), route!(), "    allow: { teams: [] }\n") =>
        "policy.yaml:12:21: error: `allow.teams` of route `helpdesk` is an empty list, which would deny everything\n  fix: omit the key to allow any, or list at least one entry";
    empty_source_ips_allow: "empty source_ips.allow", Policy,
        concat!(head!(), route!(), "    source_ips: { allow: [] }\n") =>
        "policy.yaml:12:26: error: `source_ips.allow` of route `helpdesk` is an empty list, which would deny everything\n  fix: omit the key to allow any, or list at least one entry";
    bad_scope_id: "scope entry that is not a Slack id", Policy,
        concat!(head!(), route!(), "    allow: { teams: [acme-corp] }\n") =>
        "policy.yaml:12:22: error: entry of `allow.teams` in route `helpdesk` is not a Slack team id\n  fix: write a workspace (team) id such as T0123ABCD";
    path_without_slash: "route path without leading '/'", Policy,
        concat!(head!(), "routes:\n  - { name: helpdesk, path: slack/helpdesk, app: helpdesk, upstream: helpdesk }\n") =>
        "policy.yaml:8:29: error: path of route `helpdesk` must start with '/'\n  fix: write the request path Slack posts to, e.g. /slack/events";
    bad_api_app_id: "api_app_id that is not an app id", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    api_app_id: helpdesk\n    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]\nupstreams:\n  helpdesk: { targets: [127.0.0.1:3000] }\n", route!()) =>
        "policy.yaml:4:17: error: `api_app_id` of app `helpdesk` is not a Slack app id\n  fix: write the app id from the app's Basic Information page, e.g. A0123ABCDEF (starts with A), or omit the key";
    upstream_target_without_port: "upstream target without port", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]\nupstreams:\n  helpdesk: { targets: [bot.internal] }\n", route!()) =>
        "policy.yaml:6:25: error: invalid target in upstream `helpdesk`\n  fix: add the port: host:port, e.g. 127.0.0.1:3000";
    upstream_target_bad_port: "upstream target with invalid port", Policy,
        concat!("version: 1\napps:\n  helpdesk:\n    signing_secrets: [{ id: current, env: HELPDESK_SIGNING_SECRET }]\nupstreams:\n  helpdesk: { targets: [\"127.0.0.1:99999\"] }\n", route!()) =>
        "policy.yaml:6:25: error: invalid target in upstream `helpdesk`\n  fix: use a port between 1 and 65535, e.g. 127.0.0.1:3000";
    unverified_shadow_with_enforce: "allow_unverified_shadow without mode: shadow", Policy,
        concat!(head!(), route!(), "    allow_unverified_shadow: true\n") =>
        "policy.yaml:12:30: error: `allow_unverified_shadow` on route `helpdesk` only applies to `mode: shadow`\n  fix: remove `allow_unverified_shadow`, or set `mode: shadow` on this route";
    config_bad_duration: "bad duration", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\nlimits: { body_read_timeout: 5 }\npolicy: example.yaml\n" =>
        "config.yaml:2:30: error: duration `limits.body_read_timeout` has no unit\n  fix: write a whole number followed by ms, s, m or h, e.g. 5s, 2800ms, 1m or 2h";
    config_zero_duration: "zero duration", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\nlimits: { upstream_timeout: 0s }\npolicy: example.yaml\n" =>
        "config.yaml:2:29: error: `limits.upstream_timeout` is zero\n  fix: set a duration above zero, or omit it for the default 2800ms";
    config_no_listener: "no listener", Config,
        "listen: []\npolicy: example.yaml\n" =>
        "config.yaml:1:9: error: no listeners: the gateway would accept no requests\n  fix: add at least one listener, e.g. `- addr: 0.0.0.0:8443` with `tls: { cert: ..., key: ... }`";
    config_bad_addr: "listener address not IP:port", Config,
        "listen: [{ addr: \"localhost:8080\" }]\npolicy: example.yaml\n" =>
        "config.yaml:1:18: error: `listen.addr` is not an IP:port socket address\n  fix: write an IP address and port, e.g. 0.0.0.0:8443, 127.0.0.1:9090 or [::]:8443 (host names are not resolved)";
    config_unknown_key: "unknown config key", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\nlimits: { max_body_size: 1024 }\npolicy: example.yaml\n" =>
        "config.yaml:2:11: error: unknown key `max_body_size` in `limits`\n  fix: remove it or correct the spelling; allowed keys here: `max_body_bytes`, `body_read_timeout`, `upstream_timeout`, `max_clock_skew`, `max_rate_limit_keys`, `max_replay_entries`, `shutdown_grace`, `max_head_bytes`, `head_read_timeout`, `max_connections`, `max_call_channels`";
    config_missing_policy: "config without policy", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\n" =>
        "config.yaml:1:1: error: missing required key `policy` at the top level\n  fix: add `policy: ...` here";
    config_redis_without_section: "redis backend without settings", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis }\n" =>
        "config.yaml:3:19: error: `state.backend: redis` needs a `redis:` section\n  fix: add `redis: { url: redis://HOST:6379 }`";
    config_redis_bad_url: "redis url not redis://", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"http://r:6379\" } }\n" =>
        "config.yaml:3:40: error: `state.redis.url` must start with redis:// or rediss://\n  fix: write redis://HOST:PORT[/DB], or rediss://HOST:PORT[/DB] for TLS";
    config_redis_credentials: "redis url with a password", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://u:hunter2@r:6379\" } }\n" =>
        "config.yaml:3:40: error: `state.redis.url` contains credentials: a literal secret in the config\n  fix: remove user:password@ from the URL and name environment variables in `username_env` and `password_env`";
    config_redis_credentials_tls: "rediss url with a user and password", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"rediss://app:hunter2@r:6380\" } }\n" =>
        "config.yaml:3:40: error: `state.redis.url` contains credentials: a literal secret in the config\n  fix: remove user:password@ from the URL and name environment variables in `username_env` and `password_env`";
    config_redis_ca_without_tls: "redis ca_file on a redis:// URL", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://r:6379\", ca_file: ca.pem } }\n" =>
        "config.yaml:3:67: error: `state.redis.ca_file` is set but `state.redis.url` is redis:// (no TLS)\n  fix: write rediss:// to talk TLS to Redis, or remove `ca_file`";
    config_redis_user_without_password: "redis username_env without password_env", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"rediss://r:6380\", username_env: REDIS_USER } }\n" =>
        "config.yaml:3:73: error: `state.redis.username_env` is set without `password_env`\n  fix: name the variable that holds the ACL user's password in `password_env` too";
    config_redis_sentinel_without_section: "redis sentinel mode without sentinel settings", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://s1:26379\", mode: sentinel } }\n" =>
        "config.yaml:3:66: error: `state.redis.mode: sentinel` needs a `sentinel:` section\n  fix: add `sentinel: { master: NAME, addrs: [HOST:26379, ...] }` (the URL names one sentinel)";
    config_redis_sentinel_without_mode: "redis sentinel settings without sentinel mode", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://s1:26379\", sentinel: { master: m } } }\n" =>
        "config.yaml:3:80: error: `state.redis.sentinel` is set but `state.redis.mode` is not `sentinel`\n  fix: set `mode: sentinel`, or remove `sentinel:`";
    config_redis_cluster_db: "redis cluster with a database number", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://seed:7000/2\", mode: cluster } }\n" =>
        "config.yaml:3:40: error: `state.redis.url` names a database, but Redis Cluster has only database 0\n  fix: remove /DB from the URL in cluster mode";
    config_redis_prefix_braces: "redis key_prefix with a hash tag", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://r:6379\", key_prefix: \"{sg}:\" } }\n" =>
        "config.yaml:3:70: error: `state.redis.key_prefix` contains { or }\n  fix: remove the braces: the gateway puts its own hash tags into keys, so that a script's keys stay on one cluster slot";
    config_redis_on_local: "redis settings with the local backend", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { redis: { url: \"redis://r:6379\" } }\n" =>
        "config.yaml:3:24: error: `state.redis` is set but `state.backend` is not `redis`\n  fix: set `backend: redis` to share state through Redis, or remove `redis:`";
    config_redis_unknown_key: "unknown key in state.redis", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\nstate: { backend: redis, redis: { url: \"redis://r:6379\", password: x } }\n" =>
        "config.yaml:3:58: error: unknown key `password` in `state.redis`\n  fix: remove it or correct the spelling; allowed keys here: `url`, `ca_file`, `mode`, `sentinel`, `key_prefix`, `timeout`, `username_env`, `password_env`";
    config_egress_pacing_wait: "egress pacing max_wait out of range", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\negress: { listen: { addr: 127.0.0.1:8081 }, pacing: { max_wait: 2m } }\n" =>
        "config.yaml:3:65: error: `egress.pacing.max_wait` is not a duration of at most 30s\n  fix: write how long a call may be held back for Slack's rate tier, e.g. 1s (0s answers slack_rate_limited at once)";
    config_tls_unknown_group: "unknown TLS key-exchange group", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\ntls: { key_exchange: [X25519MLKEM768, X448] }\n" =>
        "config.yaml:3:39: error: `tls.key_exchange` names an unknown key-exchange group\n  fix: use one of: X25519MLKEM768, SecP256r1MLKEM768, X25519, P-256, P-384";
    config_tls_empty_groups: "empty TLS key-exchange list", Config,
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: example.yaml\ntls: { key_exchange: [] }\n" =>
        "config.yaml:3:22: error: `tls.key_exchange` is empty: no TLS handshake could complete\n  fix: list the groups to allow, most preferred first (known: X25519MLKEM768, SecP256r1MLKEM768, X25519, P-256, P-384), or omit it for the default";
    route_bad_state_failure: "bad state_failure value", Policy,
        concat!(head!(), route!(), "    state_failure: maybe\n") =>
        "policy.yaml:12:20: error: invalid value for `routes[0].state_failure`\n  fix: use one of: `fail_open`, `fail_closed`";
}

/// Every error is reported, in file order, not just the first.
#[test]
fn all_errors_are_collected() {
    let input = concat!(
        "version: 2\n",
        "apps:\n",
        "  helpdesk:\n",
        "    signing_secrets: [{ id: current, env: NOT_SET }]\n",
        "  broken:\n",
        "    signing_secret: x\n",
        "upstreams:\n",
        "  helpdesk: { targets: [127.0.0.1] }\n",
        "routes:\n",
        "  - { name: a, path: /a, app: nope, upstream: helpdesk, rate_limits: [{ per: team, rate: 5, burst: 0 }] }\n",
        "  - { name: a, path: b, app: helpdesk, upstream: helpdesk, allow: { teams: [] } }\n",
        "  - { nme: c }\n",
    );
    let got = output(Kind::Policy, input);
    let lines: Vec<&str> = got.lines().filter(|l| !l.starts_with("  fix:")).collect();
    assert_eq!(lines.len(), 11, "{got}");
    assert!(
        got.contains("policy.yaml:6:5: error: literal secrets are not allowed"),
        "{got}"
    );
    let positions: Vec<&str> = lines
        .iter()
        .map(|l| l.split(": error").next().unwrap_or_default())
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_by_key(|p| {
        let mut it = p.split(':').skip(1).map(|n| n.parse::<usize>().unwrap());
        (it.next(), it.next())
    });
    assert_eq!(positions, sorted, "errors are in file order");
}

/// No error output ever contains a secret, wherever it was pasted.
#[test]
fn no_error_output_contains_a_planted_secret() {
    for case in CASES {
        assert!(
            !output(case.kind, case.input).contains(PLANTED),
            "{}",
            case.name
        );
    }
    let p = PLANTED;
    let placements = [
        format!("version: 1\napps:\n  a:\n    signing_secrets: {p}\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{p}]\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, {p}: 1 }}]\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, value: {p} }}]\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, token: {{ v: {p} }} }}]\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, env: \"{p} \" }}]\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, env: [{p}] }}]\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, env: HELPDESK_SIGNING_SECRET, expires: {p} }}]\n"),
        format!("version: 1\napps:\n  a:\n    api_app_id: {p}\n    signing_secrets: [{{ id: x, env: HELPDESK_SIGNING_SECRET }}]\n"),
        format!("version: {p}\n"),
        format!("{p}: 1\n"),
        format!("version: 1\nroutes: [{{ name: {p}, path: {p}, mode: {p}, app: a, upstream: b }}]\n"),
        format!("version: 1\nroutes: [{{ name: r, path: /r, app: a, upstream: b, rate_limits: [{{ per: {p}, rate: {p}, burst: {p} }}] }}]\n"),
        format!("version: 1\nroutes: [{{ name: r, path: /r, app: a, upstream: b, source_ips: {{ allow: [{p}] }}, allow: {{ teams: [{p}] }} }}]\n"),
        format!("version: 1\nroutes: [{{ name: r, path: /r, app: a, upstream: b, allow_unverified_shadow: {p} }}]\n"),
        format!("version: 1\nroutes: [\"{p}\"\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: x, env: HELPDESK_SIGNING_SECRET }}]\n    {p}: 1\n"),
        "version: 1\napps:\n  a:\n    signing_secrets: [{ id: x, env: OTHER_SECRET }, { id: x, file: helpdesk.secret }]\n".to_string(),
        format!("version: 1\napps:\n  {p}:\n    signing_secrets: [{{ id: x, envv: A }}]\n  {p}x:\n    signing_secrets: []\n"),
        format!("version: 1\napps:\n  a:\n    signing_secrets: [{{ id: {p}, env: {} }}, {{ id: {p}, file: {p} }}]\n", p.to_uppercase()),
        format!("version: 1\nupstreams:\n  {p}: {{ targets: [] }}\ngroups:\n  {p}: [\"@{p}\"]\nroutes: [{{ name: {p}, path: /r, host: {p}, app: {p}, upstream: {p}, allow: {{ users: [\"@{p}\"] }} }}]\n"),
        format!("version: 1\nroutes: [{{ name: {p}, path: /r, rate_limits: [{{ per: team, rate: 0/s, burst: 0 }}] }}]\n"),
    ];
    for input in &placements {
        let got = output(Kind::Policy, input);
        assert!(got.contains("error:"), "{input} -> {got}");
        assert!(
            !got.contains(PLANTED),
            "secret echoed for input:\n{input}\noutput:\n{got}"
        );
    }
    let configs = [
        format!("listen: [{{ addr: {p} }}]\npolicy: x\n"),
        format!("listen: [{{ addr: 127.0.0.1:1 }}]\nlimits: {{ max_clock_skew: {p}, max_body_bytes: {p} }}\npolicy: x\n"),
        format!("listen: [{{ addr: 127.0.0.1:1 }}]\ntrusted_proxies: [{p}]\npolicy: x\n{p}: 2\n"),
    ];
    for input in &configs {
        let got = output(Kind::Config, input);
        assert!(got.contains("error:"), "{input} -> {got}");
        assert!(
            !got.contains(PLANTED),
            "secret echoed for input:\n{input}\noutput:\n{got}"
        );
    }
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "&#124;")
        .replace('\n', "<br>")
}

fn error_table() -> String {
    let mut out = String::from(
        "# slackgate check: error messages\n\n\
         Generated from `crates/slackgate-policy/tests/errors.rs` (each row is a test asserting\n\
         the exact output; `UPDATE_DOCS=1 cargo test -p slackgate-policy --test errors` regenerates\n\
         this file). Policy cases are loaded as `policy.yaml`, config cases as `config.yaml`.\n\
         Every error names file:line:column and the fix; `slackgate check` prints all of them,\n\
         in file order, and never a secret value.\n\n\
         | Error class | Exact message printed |\n|---|---|\n",
    );
    for c in CASES {
        out.push_str(&format!(
            "| {} | <code>{}</code> |\n",
            html(c.class),
            html(c.expected)
        ));
    }
    out
}

#[test]
fn error_table_doc_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy-errors.md");
    let table = error_table();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &table).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk, table,
        "docs/policy-errors.md is stale: rerun with UPDATE_DOCS=1"
    );
}

/// Prints every case's actual output (for writing new cases).
#[test]
#[ignore]
fn print_actual() {
    for c in CASES {
        println!("=== {}\n{}", c.name, output(c.kind, c.input));
    }
}
