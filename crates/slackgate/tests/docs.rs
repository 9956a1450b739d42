//! The reference pages in `docs/` keep up with the code: every reason code is in
//! `docs/reasons.md`, every metric the gateway can export (with its type and its closed
//! label values) in `docs/metrics.md`, every server config key in `docs/config.md` and every
//! policy key in `docs/policy.md`. The lists are read from what the crates expose (the
//! reason enums, the metric registry and a live `/metrics` scrape, the loaders' "allowed
//! keys here" answers), so a new code, metric or key fails here until its page names it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use slackgate_guard::{EgressReason, Reason};
use slackgate_testkit::{wait_until, MapSecrets, SlackApi, TestGatewayBuilder};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn page(name: &str) -> String {
    let path = repo_root().join("docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first cell of every table row of a page, without its backticks: the keys and
/// names the page documents, one row each.
fn rows(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(k, _)| k.to_owned()))
        .collect()
}

/// The table row of `name` (`| \`name\` | ...`), if the page has one.
fn row<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let start = format!("| `{name}` |");
    text.lines().find(|l| l.starts_with(&start))
}

// === reason codes ===

#[test]
fn every_reason_code_is_in_reasons_md() {
    let text = page("reasons.md");
    let documented = rows(&text);
    let mut missing = Vec::new();
    for (door, code, status) in Reason::ALL
        .iter()
        .map(|r| ("inbound", r.as_str(), r.status()))
        .chain(
            EgressReason::ALL
                .iter()
                .map(|r| ("egress", r.as_str(), r.status())),
        )
    {
        if !documented.contains(code) {
            missing.push(format!("{door} `{code}`"));
        }
        // `allowed` is the bot's or Slack's status; every other row starts with its own.
        if code != "allowed" && documented.contains(code) {
            let rows_of_code: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("| `{code}` |")))
                .collect();
            assert!(
                rows_of_code.iter().any(|l| l
                    .split('|')
                    .nth(2)
                    .is_some_and(|c| c.trim().starts_with(&status.to_string()))),
                "docs/reasons.md: the {door} row of `{code}` does not give its status {status}"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "docs/reasons.md has no row for: {}",
        missing.join(", ")
    );
}

// === metrics ===

/// Every `"slackgate_…"` string in the metrics module (`metrics.rs` and its files by door
/// under `metrics/`): the names it registers, whether or not a series exists yet (the
/// registry leaves a family without series out of a scrape).
fn registered_names() -> BTreeSet<String> {
    let module = repo_root().join("crates/slackgate-proxy/src/core/metrics");
    let mut files = vec![module.with_extension("rs")];
    for entry in std::fs::read_dir(&module).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut names = BTreeSet::new();
    for file in files {
        scan_names(&std::fs::read_to_string(file).unwrap(), &mut names);
    }
    assert!(
        names.len() > 20,
        "expected the metric names in metrics.rs and metrics/, found {names:?}"
    );
    names
}

/// Adds the `"slackgate_…"` strings of one source file's code (its tests left out).
fn scan_names(src: &str, names: &mut BTreeSet<String>) {
    let code = src.split("#[cfg(test)]").next().unwrap();
    let mut rest = code;
    while let Some(i) = rest.find("\"slackgate_") {
        let tail = &rest[i + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('"') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
}

/// `# TYPE name kind` of a scrape.
fn types(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_owned(), p.next()?.to_owned()))
        })
        .collect()
}

const BOT_KEY: &str = "gk_docs_test_key_5d1e9a0c7b3f";
const BOT_TOKEN: &str = "xoxb-1111-2222-docs0test0token";
const SECRET: &str = "docs-test-signing-secret";

/// A gateway with both doors, a user group and a rotating bot, so that most families have
/// a series; its `/metrics`.
fn live_scrape() -> String {
    let bot = slackgate_testkit::MockBot::start();
    let slack = SlackApi::builder()
        .plain()
        .token(BOT_TOKEN, "T0ACME", &["chat:write", "usergroups:read"])
        .usergroup("S0ONCALL", &["U0111"])
        .rotation(
            "1234.5678",
            "docs0client0secret",
            "xoxe-1-docs0refresh",
            43_200,
        )
        .start();
    let policy = format!(
        "version: 1
apps:
  helpdesk:
    api_app_id: A0HELPDESK
    signing_secrets:
      - {{ id: current, env: SIGNING_SECRET, expires: \"2099-01-01T00:00:00Z\" }}
upstreams:
  bot: {{ targets: [{}] }}
groups:
  oncall: {{ usergroup: S0ONCALL, bot: helpdesk, refresh: 1m }}
routes:
  - {{ name: events, path: /slack/events, app: helpdesk, upstream: bot }}
bots:
  helpdesk:
    app: helpdesk
    key: {{ env: BOT_KEY }}
    token: {{ env: BOT_TOKEN }}
    methods: [chat.postMessage]
  rotator:
    key: {{ env: ROTATOR_KEY }}
    token:
      rotation:
        client_id: \"1234.5678\"
        client_secret: {{ env: ROTATOR_CLIENT_SECRET }}
        refresh_token: {{ env: ROTATOR_REFRESH_TOKEN }}
    methods: [chat.postMessage]
",
        bot.addr()
    );
    let gw = TestGatewayBuilder::new(&policy)
        .secret("SIGNING_SECRET", SECRET)
        .secret("BOT_KEY", BOT_KEY)
        .secret("BOT_TOKEN", BOT_TOKEN)
        .secret("ROTATOR_KEY", "gk_docs_test_rotator_0f1e2d3c4b")
        .secret("ROTATOR_CLIENT_SECRET", "docs0client0secret")
        .secret("ROTATOR_REFRESH_TOKEN", "xoxe-1-docs0refresh")
        .secret("STATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .config("state: { path: state, encryption_key: { env: STATE_KEY } }")
        .egress(&slack.url(), None)
        .start();
    // One call through each door, so the per-request families have series too.
    let inbound = slackgate_testkit::SignedRequest::new(
        "/slack/events",
        br#"{"type":"event_callback","api_app_id":"A0HELPDESK","team_id":"T0ACME","event_id":"Ev0DOCS","event":{"type":"app_mention","user":"U0111","channel":"C0HELP"}}"#.to_vec(),
    )
    .sign(SECRET);
    let answer = gw.client().send(&inbound).unwrap();
    assert_eq!(answer.status, 200, "the inbound request was not forwarded");
    let auth = format!("Bearer {BOT_KEY}");
    gw.egress_post(
        "/api/chat.postMessage",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Connection", "close"),
        ],
        "channel=C0HELP&text=hi",
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = gw.metrics();
            m.contains("slackgate_egress_duration_seconds_count")
                && m.contains("slackgate_group_members{group=\"oncall\"} 1")
                && m.contains("slackgate_upstream_duration_seconds_count")
        }),
        "the scrape never showed both doors' calls and the group's members:\n{}",
        gw.metrics()
    );
    gw.metrics()
}

#[test]
fn every_metric_is_in_metrics_md_with_its_type_and_label_values() {
    let text = page("metrics.md");
    let documented = rows(&text);
    let scrape = live_scrape();
    let exported = types(&scrape);
    let registered = registered_names();

    // Every name the registry holds, and every family the live gateway exports.
    let missing: BTreeSet<&str> = registered
        .iter()
        .chain(exported.keys())
        .map(String::as_str)
        .filter(|n| !documented.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/metrics.md has no row for: {}",
        missing.into_iter().collect::<Vec<_>>().join(", ")
    );
    for name in exported.keys() {
        assert!(
            registered.contains(name),
            "`{name}` is exported but not named in metrics.rs or metrics/: the name scan missed it"
        );
    }
    // The documented type is the exported one.
    for (name, kind) in &exported {
        let r = row(&text, name).unwrap();
        let doc_kind = r.split('|').nth(2).unwrap().trim();
        assert_eq!(doc_kind, kind, "docs/metrics.md: type of `{name}`");
    }
    // Each documented label is one the family has, and each closed label set is listed
    // value by value on the metric's row.
    let closed: [(&str, Vec<&str>); 7] = [
        (
            "slackgate_requests_total",
            Reason::ALL.map(Reason::as_str).to_vec(),
        ),
        (
            "slackgate_egress_requests_total",
            EgressReason::ALL.map(EgressReason::as_str).to_vec(),
        ),
        (
            "slackgate_connections_refused_total",
            slackgate_proxy::metrics::LISTENERS.to_vec(),
        ),
        (
            "slackgate_policy_reloads_total",
            slackgate_proxy::state::ReloadResult::ALL
                .map(slackgate_proxy::state::ReloadResult::as_str)
                .to_vec(),
        ),
        (
            "slackgate_state_fallbacks_total",
            slackgate_guard::StateOp::ALL
                .map(slackgate_guard::StateOp::as_str)
                .to_vec(),
        ),
        (
            "slackgate_lifecycle_events_total",
            slackgate_slack::Lifecycle::ALL
                .map(slackgate_slack::Lifecycle::as_str)
                .to_vec(),
        ),
        (
            "slackgate_token_refreshes_total",
            slackgate_proxy::egress::RefreshResult::ALL
                .map(slackgate_proxy::egress::RefreshResult::as_str)
                .to_vec(),
        ),
    ];
    let groups = slackgate_proxy::groups::RefreshResult::ALL
        .map(slackgate_proxy::groups::RefreshResult::as_str)
        .to_vec();
    let closed = closed
        .into_iter()
        .chain([("slackgate_group_refreshes_total", groups)]);
    for (name, values) in closed {
        let r = row(&text, name).unwrap_or_else(|| panic!("docs/metrics.md: no row for `{name}`"));
        // The reason sets are listed on reasons.md, which the row links; the rest inline.
        let listed = if name.ends_with("requests_total") {
            page("reasons.md")
        } else {
            r.to_owned()
        };
        for v in values {
            assert!(
                listed.contains(&format!("`{v}`")),
                "docs/metrics.md: `{name}` does not list its label value `{v}`"
            );
        }
    }
    // The label names of every sample line are on the family's row.
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, _)) = line.split_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| exported.contains_key(*f)))
            .unwrap_or(name);
        let r = row(&text, family).unwrap();
        for label in labels.trim_end_matches('}').split(',') {
            let key = label.split('=').next().unwrap();
            if key == "le" || key.is_empty() {
                continue;
            }
            assert!(
                r.contains(&format!("`{key}`")),
                "docs/metrics.md: the row of `{family}` does not name its label `{key}`"
            );
        }
    }
}

// === config and policy keys ===

const UNKNOWN: &str = "zz_not_a_key";

/// The "allowed keys here" of the unknown key in `errors`.
fn allowed_keys(errors: &str, what: &str) -> Vec<String> {
    let line = errors
        .lines()
        .skip_while(|l| !l.contains(&format!("unknown key `{UNKNOWN}`")))
        .find_map(|l| l.split_once("allowed keys here: ").map(|(_, keys)| keys))
        .unwrap_or_else(|| {
            panic!("{what}: no unknown-key error with its allowed keys in:\n{errors}")
        });
    line.split(", ")
        .map(|k| k.trim().trim_matches('`').to_owned())
        .collect()
}

/// Whether a page documents `key`: a row of it, alone or at the end of a dotted path
/// (`max_body_bytes`, `state.redis.url`, `signing_secrets[].id`).
fn documents(rows: &BTreeSet<String>, key: &str) -> bool {
    rows.iter()
        .any(|r| r == key || r.ends_with(&format!(".{key}")) || r.ends_with(&format!("].{key}")))
}

fn config_errors(yaml: &str) -> String {
    match slackgate_policy::compile_config(Path::new("config.yaml"), yaml) {
        Ok(_) => panic!("a config with an unknown key loaded:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that docs/`name` has a row for every key the loader allows: `top` at the top
/// level, and for each case (where, a file with an unknown key there) the keys that
/// `errors` (the loader's errors for the file) lists as allowed there. The keys, by where.
fn assert_every_key_documented(
    name: &str,
    top: &[&str],
    cases: impl IntoIterator<Item = (&'static str, String)>,
    errors: impl Fn(&str) -> String,
) -> BTreeMap<String, Vec<String>> {
    let documented = rows(&page(name));
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    keys.insert(
        "top level".into(),
        top.iter().map(|k| (*k).to_owned()).collect(),
    );
    for (what, yaml) in cases {
        keys.insert(what.into(), allowed_keys(&errors(&yaml), what));
    }
    let missing: Vec<String> = keys
        .iter()
        .flat_map(|(what, ks)| {
            ks.iter()
                .filter(|k| !documents(&documented, k))
                .map(move |k| format!("`{k}` ({what})"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/{name} has no row for: {}",
        missing.join(", ")
    );
    keys
}

#[test]
fn every_config_key_is_in_config_md() {
    let base = "listen: [{ addr: 127.0.0.1:1 }]\npolicy: p.yaml\n";
    let cases: [(&str, String); 12] = [
        ("listen", format!("listen: [{{ addr: 127.0.0.1:1, {UNKNOWN}: 1 }}]\npolicy: p.yaml\n")),
        (
            "listen.tls",
            format!("listen: [{{ addr: 127.0.0.1:1, tls: {{ cert: c, key: k, {UNKNOWN}: 1 }} }}]\npolicy: p.yaml\n"),
        ),
        ("admin", format!("{base}admin: {{ addr: 127.0.0.1:2, {UNKNOWN}: 1 }}\n")),
        ("limits", format!("{base}limits: {{ {UNKNOWN}: 1 }}\n")),
        ("audit", format!("{base}audit: {{ {UNKNOWN}: 1 }}\n")),
        ("state", format!("{base}state: {{ {UNKNOWN}: 1 }}\n")),
        (
            "state.redis",
            format!("{base}state: {{ backend: redis, redis: {{ url: \"redis://h:1\", {UNKNOWN}: 1 }} }}\n"),
        ),
        ("egress", format!("{base}egress: {{ listen: {{ addr: 127.0.0.1:3 }}, {UNKNOWN}: 1 }}\n")),
        ("egress.listen", format!("{base}egress: {{ listen: {{ addr: 127.0.0.1:3, {UNKNOWN}: 1 }} }}\n")),
        (
            "egress.pacing",
            format!("{base}egress: {{ listen: {{ addr: 127.0.0.1:3 }}, pacing: {{ {UNKNOWN}: 1 }} }}\n"),
        ),
        (
            "state.redis.sentinel",
            format!("{base}state: {{ backend: redis, redis: {{ url: \"redis://h:1\", mode: sentinel, sentinel: {{ master: m, {UNKNOWN}: 1 }} }} }}\n"),
        ),
        ("tls", format!("{base}tls: {{ {UNKNOWN}: 1 }}\n")),
    ];
    let keys = assert_every_key_documented(
        "config.md",
        slackgate_policy::CONFIG_KEYS,
        cases,
        config_errors,
    );
    // The loader's answer is the spec's list (a sanity check of the unknown-key probe).
    assert!(keys["limits"].contains(&"max_connections".to_owned()));
}

#[test]
fn every_policy_key_is_in_policy_md() {
    let secrets = MapSecrets::default();
    let policy_errors = |yaml: &str| -> String {
        match slackgate_policy::compile_policy(
            Path::new("policy.yaml"),
            yaml,
            &secrets,
            SystemTime::now(),
        ) {
            Ok(_) => panic!("a policy with an unknown key loaded:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    };
    let route = "{ name: r, path: /r, app: a, upstream: u";
    let bot = "key: { env: K }, token: { env: T }, methods: [chat.postMessage]";
    let cases: [(&str, String); 15] = [
        ("apps", format!("version: 1\napps:\n  a: {{ signing_secrets: [{{ id: x, env: S }}], {UNKNOWN}: 1 }}\nroutes: []\n")),
        (
            "socket_mode",
            format!("version: 1\napps:\n  a: {{ signing_secrets: [{{ id: x, env: S }}], socket_mode: {{ app_token: {{ env: T }}, paths: {{}}, {UNKNOWN}: 1 }} }}\nroutes: []\n"),
        ),
        (
            "socket_mode.paths",
            format!("version: 1\napps:\n  a: {{ signing_secrets: [{{ id: x, env: S }}], socket_mode: {{ app_token: {{ env: T }}, paths: {{ {UNKNOWN}: 1 }} }} }}\nroutes: []\n"),
        ),
        (
            "signing_secrets",
            format!("version: 1\napps:\n  a: {{ signing_secrets: [{{ id: x, env: S, {UNKNOWN}: 1 }}] }}\nroutes: []\n"),
        ),
        ("upstreams", format!("version: 1\nupstreams:\n  u: {{ targets: [h:1], {UNKNOWN}: 1 }}\nroutes: []\n")),
        (
            "groups",
            format!("version: 1\ngroups:\n  g: {{ usergroup: S0G, bot: b, refresh: 1m, {UNKNOWN}: 1 }}\nroutes: []\n"),
        ),
        ("routes", format!("version: 1\nroutes:\n  - {route}, {UNKNOWN}: 1 }}\n")),
        ("source_ips", format!("version: 1\nroutes:\n  - {route}, source_ips: {{ {UNKNOWN}: 1 }} }}\n")),
        ("allow", format!("version: 1\nroutes:\n  - {route}, allow: {{ {UNKNOWN}: 1 }} }}\n")),
        ("deny", format!("version: 1\nroutes:\n  - {route}, deny: {{ {UNKNOWN}: 1 }} }}\n")),
        (
            "rate_limits (route)",
            format!("version: 1\nroutes:\n  - {route}, rate_limits: [{{ per: team, rate: 1/s, burst: 1, {UNKNOWN}: 1 }}] }}\n"),
        ),
        ("bots", format!("version: 1\nroutes: []\nbots:\n  b: {{ {bot}, {UNKNOWN}: 1 }}\n")),
        (
            "rate_limits (bot)",
            format!("version: 1\nroutes: []\nbots:\n  b: {{ {bot}, rate_limits: [{{ per: bot, rate: 1/s, burst: 1, {UNKNOWN}: 1 }}] }}\n"),
        ),
        (
            "token.rotation",
            format!("version: 1\nroutes: []\nbots:\n  b: {{ key: {{ env: K }}, token: {{ rotation: {{ client_id: \"1.2\", client_secret: {{ env: C }}, refresh_token: {{ env: R }}, {UNKNOWN}: 1 }} }}, methods: [chat.postMessage] }}\n"),
        ),
        (
            "webhooks",
            format!("version: 1\nroutes: []\nwebhooks:\n  w: {{ url: {{ env: W }}, bots: [b], {UNKNOWN}: 1 }}\n"),
        ),
    ];
    assert_every_key_documented(
        "policy.md",
        slackgate_policy::POLICY_KEYS,
        cases,
        policy_errors,
    );
}

// === the index ===

#[test]
fn the_index_links_every_page_and_no_page_cites_a_file_outside_the_repository() {
    let index = page("README.md");
    let dir = repo_root().join("docs");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".md") {
            continue;
        }
        if name != "README.md" {
            assert!(
                index.contains(&format!("]({name})")),
                "docs/README.md does not link {name}"
            );
        }
        let text = page(&name);
        assert!(
            !text.contains("DESIGN.md") && !text.contains("../shared"),
            "docs/{name} cites a file outside the repository"
        );
        // Every relative link to another page points at a page that exists.
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap();
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") {
                continue;
            }
            assert!(
                dir.join(file).exists(),
                "docs/{name} links {target}, which does not exist"
            );
        }
    }
}
