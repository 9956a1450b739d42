//! Observability end to end: a live `/metrics` scrape passes `promtool check metrics`,
//! the Prometheus rules pass `promtool check rules` and their unit tests, every metric
//! the dashboard and the rules query is really exported, every reason code yields a
//! complete audit record and its counter, and no secret, signature, token or body
//! ever shows up in the audit trail, `/metrics` or `/status`.
//!
//! promtool comes from Debian's `prometheus` package (`scripts/deps.sh` installs it);
//! without it these tests fail rather than pass vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use slackgate_testkit::{
    audit, now_unix, wait_until, MockBot, SignedRequest, SlackApi, TestGatewayBuilder,
};

/// An expiry far enough away to stay valid, so the expiry gauge is exported.
const EXPIRES: &str = "2099-01-01T00:00:00Z";

/// The shared rig, with an expiry on the previous secret.
fn rig_with_expiry() -> Rig {
    rig_with(None)
}

const BOT_KEY: &str = "gk_observability_0c4e8a1f6b3d5927";
const BOT_TOKEN: &str = "xoxb-1111-2222-observability0t0ken";

/// A bot on the egress door, for the egress metrics.
const BOTS: &str = "bots:
  helpdesk:
    app: helpdesk
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage]
    channels: [C0HELP]
  rotator:
    mode: shadow
    key: { env: ROTATOR_GATEWAY_KEY }
    token:
      rotation:
        client_id: \"1234.5678\"
        client_secret: { env: ROTATOR_CLIENT_SECRET }
        refresh_token: { env: ROTATOR_REFRESH_TOKEN }
    methods: [chat.postMessage]
";

/// The rotating bot's app at the stand-in (the token metrics need one).
const ROTATOR_SECRET: &str = "observability0client0secret";
const ROTATOR_REFRESH: &str = "xoxe-1-observability0refresh";

/// The shared rig with an expiry on the previous secret and, with `slack`, the egress
/// door in front of that Slack stand-in with one bot.
fn rig_with(slack: Option<&SlackApi>) -> Rig {
    let bot = MockBot::start();
    let slow = MockBot::with(slackgate_testkit::BotBehavior::Delay(Duration::from_secs(
        3,
    )));
    let policy = policy(&bot, &slow).replace(
        "{ id: previous, env: HELPDESK_SECRET_OLD }",
        &format!("{{ id: previous, env: HELPDESK_SECRET_OLD, expires: \"{EXPIRES}\" }}"),
    );
    assert!(policy.contains(EXPIRES), "the shared policy changed shape");
    // A bot of app helpdesk (its token is what the scrape's app_uninstalled revokes);
    // with `slack`, the egress door is on for it.
    assert!(
        !policy.contains(
            "
bots:"
        ),
        "the shared policy has bots now"
    );
    let mut policy = format!("{policy}{BOTS}");
    if slack.is_some() {
        // A user group read with the bot's token, for the group metrics.
        let lists = "groups:\n  blocked: [U0BAD]\n";
        assert!(policy.contains(lists), "the shared policy's groups changed");
        policy = policy.replace(
            lists,
            &format!("{lists}  oncall: {{ usergroup: S0ONCALL, bot: helpdesk, refresh: 1m }}\n"),
        );
        // An app on Socket Mode, for the socket metrics (this stand-in has no
        // apps.connections.open: the bridge backs off).
        let other = "  other:\n    api_app_id: A0OTHERAPP\n";
        assert!(
            policy.contains(other),
            "the shared policy's app other changed"
        );
        policy = policy.replace(
            other,
            &format!("{other}    socket_mode: {{ app_token: {{ env: OTHER_APP_TOKEN }}, paths: {{ events_api: /slack/pinned }} }}\n"),
        );
    }
    let mut builder = TestGatewayBuilder::new(&policy)
        .secret("HELPDESK_SECRET", SECRET)
        .secret("HELPDESK_SECRET_OLD", OLD_SECRET)
        .secret("HELPDESK_GATEWAY_KEY", BOT_KEY)
        .secret("HELPDESK_BOT_TOKEN", BOT_TOKEN)
        .secret("ROTATOR_GATEWAY_KEY", "gk_observability_rotator_0f1e2d3c")
        .secret("ROTATOR_CLIENT_SECRET", ROTATOR_SECRET)
        .secret("ROTATOR_REFRESH_TOKEN", ROTATOR_REFRESH)
        .secret("STATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .secret(
            "OTHER_APP_TOKEN",
            "xapp-1-A0OTHERAPP-1-observability0app0token",
        )
        // A TLS listener too: its handshake metrics are exported.
        .tls()
        .config("limits: { upstream_timeout: 500ms, body_read_timeout: 1s }")
        // Relative to the config's directory: the rotator's sealed pair lives there.
        .config("state: { path: state, encryption_key: { env: STATE_KEY } }");
    if let Some(slack) = slack {
        builder = builder.egress(&slack.url(), Some(slack.ca_file()));
    }
    let gw = builder.start();
    Rig { gw, bot, slow }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The promtool binary; a missing one fails the test with the fix.
fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "promtool not found on PATH: run scripts/deps.sh (it installs Debian's `prometheus` \
             package), or `apt-get install prometheus`"
        )
    })
}

/// Runs promtool with `args` (and `stdin`), returning (success, stdout + stderr).
fn run_promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Sends one request and waits for its audit record, so records arrive in order.
fn send_and_audit(rig: &Rig, req: &SignedRequest) -> slackgate_testkit::Response {
    let before = rig.gw.audit_raw().len();
    let resp = rig.gw.client().send(req).unwrap();
    rig.gw.audit_lines(before + 1);
    resp
}

/// One Web API call by the egress bot, waiting for its audit record.
fn egress_call(rig: &Rig, body: &str) -> slackgate_testkit::Response {
    let before = rig.gw.audit_raw().len();
    let auth = format!("Bearer {BOT_KEY}");
    let resp = rig.gw.egress_post(
        "/api/chat.postMessage",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Connection", "close"),
        ],
        body,
    );
    rig.gw.audit_lines(before + 1);
    resp
}

/// Traffic with samples in every histogram and several reasons, inbound and egress
/// (an allowed call, a denied one, a Slack 429 and the call answered for it), then a
/// scrape taken once the health checker has reported every upstream target.
fn exercised_scrape() -> String {
    let slack = SlackApi::builder()
        .token(
            BOT_TOKEN,
            "T0ACME",
            &["chat:write", "users:read", "usergroups:read"],
        )
        .usergroup("S0ONCALL", &["U0333"])
        .rotation("1234.5678", ROTATOR_SECRET, ROTATOR_REFRESH, 43_200)
        .start();
    let rig = rig_with(Some(&slack));
    // The rotator's first token is minted (the token rotation metrics have samples).
    assert!(wait_until(Duration::from_secs(10), || rig.gw.metric(
        "slackgate_token_refreshes_total{bot=\"rotator\",result=\"ok\"}"
    ) == 1.0));
    let ok = egress_call(&rig, "channel=C0HELP&text=hi");
    assert_eq!(ok.json()["ok"], true, "{:?}", ok.json());
    let denied = egress_call(&rig, "channel=C0ELSE&text=hi");
    assert_eq!(denied.header("x-slackgate-reason"), Some("channel_denied"));
    slack.rate_limit("chat.postMessage", 30);
    assert_eq!(egress_call(&rig, "channel=C0HELP&text=hi").status, 429);
    let again = egress_call(&rig, "channel=C0HELP&text=hi");
    assert_eq!(
        again.header("x-slackgate-reason"),
        Some("slack_rate_limited")
    );
    // Every egress record has the contract's fields, and only them.
    let egress: Vec<Value> = rig
        .gw
        .audit_lines(4)
        .into_iter()
        .filter(|a| a["direction"] == "egress")
        .collect();
    let reasons: Vec<&str> = egress
        .iter()
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["allowed", "channel_denied", "allowed", "slack_rate_limited"]
    );
    for a in &egress {
        let keys: BTreeSet<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, audit::EGRESS_KEYS.into_iter().collect(), "{a}");
    }
    assert_eq!(
        (
            &egress[2]["status"],
            &egress[2]["upstream_status"],
            &egress[2]["slack_error"]
        ),
        (&429.into(), &429.into(), &"ratelimited".into()),
        "Slack's 429 is relayed: {}",
        egress[2]
    );
    // The shadow bot's call to a method it does not list goes on, counted as shadowed.
    let before = rig.gw.audit_raw().len();
    let shadowed = rig.gw.egress_post(
        "/api/users.info",
        &[
            ("Authorization", "Bearer gk_observability_rotator_0f1e2d3c"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Connection", "close"),
        ],
        "user=U0333",
    );
    assert_eq!(shadowed.header("x-slackgate-reason"), None, "forwarded");
    let record = rig.gw.audit_lines(before + 1).pop().unwrap();
    assert_eq!(
        (&record["reason"], &record["shadow"]),
        (&"method_denied".into(), &true.into()),
        "{record}"
    );
    let allowed = mention("/slack/open").sign(SECRET);
    for req in [
        allowed.clone(),
        allowed,
        mention("/slack/events").sign(OLD_SECRET),
        mention("/slack/events").sign("wrong-secret"),
        mention("/slack/events"),
        mention("/nope"),
        mention("/slack/dead").sign(SECRET),
        SignedRequest::fixture("/slack/open", "event_app_uninstalled.json").sign(SECRET),
    ] {
        send_and_audit(&rig, &req);
    }
    let mut scrape = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            scrape = rig.gw.metrics();
            scrape.matches("slackgate_upstream_healthy{").count() >= 3
        }),
        "health checks never reported the three upstream targets:\n{scrape}"
    );
    scrape
}

// === promtool ===

#[test]
fn live_scrape_passes_promtool_check_metrics() {
    let scrape = exercised_scrape();
    for sample in [
        "slackgate_request_duration_seconds_bucket{",
        "slackgate_upstream_duration_seconds_bucket{",
        "slackgate_secret_expiry_timestamp_seconds{",
        "slackgate_secret_matches_total{",
        "slackgate_egress_requests_total{",
        "slackgate_egress_duration_seconds_bucket{",
        "slackgate_egress_unused_scopes{",
        "slackgate_egress_slack_rate_limits_total{",
    ] {
        assert!(scrape.contains(sample), "scrape lacks {sample}");
    }
    let (ok, out) = run_promtool(&["check", "metrics"], Some(&scrape));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let (ok, out) = run_promtool(&["check", "rules", "deploy/prometheus/rules.yaml"], None);
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool check rules:\n{out}"
    );
    let (ok, out) = run_promtool(
        &["test", "rules", "deploy/prometheus/rules_test.yaml"],
        None,
    );
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
}

// === dashboard and rules refer to real metrics ===

/// Every `expr` (and template `query`/`definition`) string in the dashboard.
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) if s.contains('(') => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = workspace_root().join("deploy/grafana/slackgate.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let json: Value = serde_json::from_str(&text).expect("dashboard is valid JSON");
    let mut out = Vec::new();
    walk(&json, &mut out);
    out
}

/// The `expr:` values of the rules file (single-line or `|` block), and the names the
/// file records.
fn rule_exprs() -> (Vec<String>, BTreeSet<String>) {
    let text =
        std::fs::read_to_string(workspace_root().join("deploy/prometheus/rules.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut exprs = Vec::new();
    let mut recorded = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start().trim_start_matches("- ");
        if let Some(name) = t.strip_prefix("record:") {
            recorded.insert(name.trim().to_owned());
        }
        let Some(value) = t.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                .copied()
                .collect();
            exprs.push(body.join("\n"));
        } else {
            exprs.push(value.to_owned());
        }
    }
    (exprs, recorded)
}

/// Metric-name tokens (`[a-zA-Z_:][a-zA-Z0-9_:]*`) of a PromQL expression that name
/// slackgate series or slackgate recording rules; label values inside quotes are skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token = String::new();
    let mut quote: Option<char> = None;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
            continue;
        }
        if token.starts_with("slackgate_") || token.contains(":slackgate_") {
            names.insert(std::mem::take(&mut token));
        }
        token.clear();
        if c == '"' || c == '\'' || c == '`' {
            quote = Some(c);
        }
    }
    names
}

/// Metric families and their types, from `# TYPE` lines that have samples.
fn exported(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| {
            scrape
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(name))
        })
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// Whether `name` is a series of an exported family (histograms add three suffixes).
fn is_exported(families: &BTreeMap<String, String>, name: &str) -> bool {
    if families.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|t| t == "histogram" || t == "summary")
    })
}

#[test]
fn every_metric_in_the_dashboard_and_rules_is_exported() {
    let families = exported(&exercised_scrape());
    let (rule_exprs, recorded) = rule_exprs();
    let dash_exprs = dashboard_exprs();
    assert!(
        dash_exprs.len() >= 20,
        "only {} dashboard expressions",
        dash_exprs.len()
    );
    assert!(
        rule_exprs.len() >= 12,
        "only {} rule expressions",
        rule_exprs.len()
    );

    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for (source, exprs) in [("dashboard", &dash_exprs), ("rules", &rule_exprs)] {
        for expr in exprs.iter() {
            for name in metric_names(expr) {
                let ok = if name.contains(':') {
                    recorded.contains(&name)
                } else {
                    is_exported(&families, &name)
                };
                if !ok {
                    missing.push(format!("{source}: {name} in {expr}"));
                }
                used.insert(name);
            }
        }
    }
    assert!(missing.is_empty(), "not exported:\n{}", missing.join("\n"));

    // And the other way round: the dashboard shows every family the gateway exports.
    let dash_names: BTreeSet<String> = dash_exprs.iter().flat_map(|e| metric_names(e)).collect();
    let unshown: Vec<_> = families
        .keys()
        .filter(|f| {
            !dash_names
                .iter()
                .any(|n| n == *f || n.strip_prefix(f.as_str()).is_some_and(|s| s == "_bucket"))
        })
        .collect();
    assert!(
        unshown.is_empty(),
        "exported but not on the dashboard: {unshown:?}"
    );
}

#[test]
fn metric_name_extraction() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(slackgate_request_duration_seconds_bucket{route=~"slackgate_x"}[5m]))) / route:slackgate_upstream_errors:ratio_rate5m"#,
    );
    let want: BTreeSet<String> = [
        "slackgate_request_duration_seconds_bucket",
        "route:slackgate_upstream_errors:ratio_rate5m",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, want);
}

// === every reason code: a complete audit record and its counter ===

fn assert_complete(a: &Value) {
    let obj = a.as_object().expect("audit record is an object");
    let mut keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    if a["lifecycle"] == true {
        keys.remove("lifecycle");
    }
    let want: BTreeSet<&str> = audit::inbound_keys().collect();
    assert_eq!(keys, want, "audit keys of {a}");
    assert_eq!(a["direction"], "inbound", "{a}");
    let ts = a["ts"].as_str().unwrap();
    let t =
        humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("ts {ts:?} is not RFC 3339: {e}"));
    let age = std::time::SystemTime::now().duration_since(t).unwrap();
    assert!(age < Duration::from_secs(120), "ts {ts} is not now");
    assert!(a["duration_us"].as_u64().unwrap() > 0, "duration_us of {a}");
    assert!(a["status"]
        .as_u64()
        .is_some_and(|s| (200..600).contains(&s)));
    assert!(a["shadow"].is_boolean());
    assert_eq!(a["client_ip"], "127.0.0.1");
}

struct Case {
    reason: &'static str,
    route: &'static str,
    status: u16,
    /// Whether payload facts (and a secret id) may be present.
    verified: bool,
    send: Box<dyn Fn(&Rig)>,
}

fn case(
    reason: &'static str,
    route: &'static str,
    status: u16,
    verified: bool,
    send: impl Fn(&Rig) + 'static,
) -> Case {
    Case {
        reason,
        route,
        status,
        verified,
        send: Box::new(send),
    }
}

fn send(req: SignedRequest) -> impl Fn(&Rig) {
    move |rig: &Rig| {
        rig.gw.client().send(&req).unwrap();
    }
}

fn message(event_id: &str) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", event_id);
    SignedRequest::new("/slack/events", body).sign(SECRET)
}

/// An app_mention to `path` with its own event id, so no two cases share a signature
/// (the replay cache spans routes).
fn fresh(path: &str, event_id: &str) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_app_mention.json"))
        .unwrap()
        .replace("Ev0APPMENTION1", event_id);
    SignedRequest::new(path, body)
}

fn cases() -> Vec<Case> {
    let replay = fresh("/slack/open", "Ev0REPLAYED").sign(SECRET);
    vec![
        case(
            "allowed",
            "helpdesk",
            200,
            true,
            send(fresh("/slack/events", "Ev0CASE1").sign(SECRET)),
        ),
        case(
            "no_route",
            "",
            404,
            false,
            send(fresh("/nope", "Ev0CASE2").sign(SECRET)),
        ),
        case(
            "ip_denied",
            "office-only",
            403,
            false,
            send(fresh("/slack/office", "Ev0CASE3").sign(SECRET)),
        ),
        case(
            "body_too_large",
            "helpdesk",
            413,
            false,
            send(
                SignedRequest::new("/slack/events", mention_of_size(1024 * 1024 + 1)).sign(SECRET),
            ),
        ),
        case("body_timeout", "helpdesk", 408, false, |rig: &Rig| {
            let mut s = std::net::TcpStream::connect(rig.gw.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(
                b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..",
            )
            .unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        }),
        case(
            "ssl_check",
            "helpdesk",
            200,
            false,
            send(SignedRequest::fixture("/slack/events", "ssl_check.form")),
        ),
        case(
            "missing_signature",
            "helpdesk",
            401,
            false,
            send(fresh("/slack/events", "Ev0CASE4")),
        ),
        case(
            "bad_signature",
            "helpdesk",
            401,
            false,
            send(fresh("/slack/events", "Ev0CASE5").sign("wrong")),
        ),
        case(
            "stale_timestamp",
            "helpdesk",
            401,
            false,
            send(fresh("/slack/events", "Ev0CASE6").sign_at(SECRET, now_unix() - 400)),
        ),
        case("allowed", "open", 200, true, send(replay.clone())),
        case("replayed", "open", 401, false, send(replay)),
        case(
            "malformed_payload",
            "helpdesk",
            400,
            true,
            send(
                SignedRequest::new("/slack/events", &b"{\"type\": \"event_callback\", "[..])
                    .sign(SECRET),
            ),
        ),
        case(
            "url_verification",
            "helpdesk",
            200,
            true,
            send(SignedRequest::fixture("/slack/events", "url_verification.json").sign(SECRET)),
        ),
        case(
            "app_mismatch",
            "pinned",
            403,
            true,
            send(fresh("/slack/pinned", "Ev0CASE7").sign(SECRET)),
        ),
        case(
            "scope_denied",
            "acked",
            200,
            true,
            send(fresh("/slack/ack", "Ev0CASE8").sign(SECRET)),
        ),
        case("allowed", "helpdesk", 200, true, send(message("Ev0MSGA"))),
        case("allowed", "helpdesk", 200, true, send(message("Ev0MSGB"))),
        // The route allows a user a burst of 3.
        case("allowed", "helpdesk", 200, true, send(message("Ev0MSGC"))),
        case(
            "rate_limited",
            "helpdesk",
            429,
            true,
            send(message("Ev0MSGD")),
        ),
        case(
            "upstream_error",
            "dead",
            502,
            true,
            send(fresh("/slack/dead", "Ev0CASE9").sign(SECRET)),
        ),
        case(
            "upstream_timeout",
            "slow",
            504,
            true,
            send(fresh("/slack/slow", "Ev0CASE10").sign(SECRET)),
        ),
    ]
}

#[test]
fn every_reason_code_has_a_complete_audit_record_and_its_counter() {
    let rig = rig_with_expiry();
    let cases = cases();
    let all: BTreeSet<&str> = cases.iter().map(|c| c.reason).collect();
    assert_eq!(
        all.len(),
        17,
        "every contract reason code of docs/reasons.md is exercised: {all:?}"
    );

    let mut expected: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        (c.send)(&rig);
        let lines = rig.gw.audit_lines(i + 1);
        assert_eq!(
            lines.len(),
            i + 1,
            "one audit record per request (at {})",
            c.reason
        );
        let a = &lines[i];
        assert_complete(a);
        assert_eq!(a["reason"], c.reason, "{a}");
        assert_eq!(a["status"], c.status, "{a}");
        if c.route.is_empty() {
            for k in ["route", "app", "upstream"] {
                assert!(a[k].is_null(), "{k} of {a}");
            }
        } else {
            assert_eq!(a["route"], c.route, "{a}");
            assert!(a["app"].is_string() && a["upstream"].is_string(), "{a}");
        }
        // Only a matching signature names a secret: a replay did match one.
        let matched = c.verified || c.reason == "replayed";
        assert_eq!(a["secret_id"].is_string(), matched, "secret_id of {a}");
        if !c.verified {
            for k in audit::FACT_KEYS {
                assert!(a[k].is_null(), "unverified request carries {k}: {a}");
            }
        } else if c.reason != "malformed_payload" {
            assert!(a["kind"].is_string(), "{a}");
        }
        let forwarded = matches!(c.reason, "allowed" | "upstream_timeout" | "upstream_error");
        if c.reason == "allowed" {
            assert_eq!(a["upstream_status"], 200, "{a}");
        } else {
            assert!(a["upstream_status"].is_null(), "{a}");
        }
        if !forwarded {
            assert!(a["upstream_status"].is_null(), "{a}");
        }
        match c.reason {
            "app_mismatch" | "scope_denied" | "rate_limited" => {
                assert!(a["rule"].is_string(), "{a}")
            }
            "allowed" => assert!(a["rule"].is_null(), "{a}"),
            _ => {}
        }
        *expected.entry((c.route, c.reason)).or_default() += 1;
    }

    let scrape = rig.gw.metrics();
    for ((route, reason), n) in &expected {
        let sample = format!("slackgate_requests_total{{reason=\"{reason}\",route=\"{route}\"}}");
        assert_eq!(
            slackgate_testkit::gateway::metric_value(&scrape, &sample),
            *n as f64,
            "{sample}"
        );
    }
    let total: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("slackgate_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(total, cases.len() as f64, "one count per request, no more");
    let durations: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("slackgate_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(
        durations,
        cases.len() as f64,
        "one gateway-time sample per request"
    );
}

// === secrets never leak ===

#[test]
fn secrets_signatures_tokens_and_bodies_never_leak() {
    let rig = rig_with_expiry();
    let marker = "BODYMARKER-5f1c9e0d";
    let token = "tOkEnPlAnTeD4c0ffee";
    let body = String::from_utf8(slackgate_testkit::fixture("event_app_mention.json"))
        .unwrap()
        .replace("ZZZZZZWSxiZZZ2yIvs3peJ", token)
        .replace("printer on fire", &format!("{marker} {SECRET}"));
    assert!(body.contains(token) && body.contains(marker));
    let form = format!(
        "token={token}&team_id=T0ACME&channel_id=C0HELP&user_id=U0333&command=%2Fticket&text={marker}&api_app_id=A0HELPDESK"
    );

    let allowed = SignedRequest::new("/slack/events", body.clone()).sign(SECRET);
    let reqs = vec![
        allowed.clone(),
        allowed.clone(),                                                  // replayed
        SignedRequest::new("/slack/events", body.clone()).sign("forged"), // bad_signature
        SignedRequest::new("/slack/events", body.clone()).sign_at(SECRET, now_unix() - 900),
        SignedRequest::new("/slack/events", body.clone()),
        SignedRequest::new("/slack/events", form.clone()).sign(SECRET),
        SignedRequest::new("/slack/events", format!("{{\"token\":\"{token}\",{marker}"))
            .sign(SECRET),
        SignedRequest::new("/slack/events", format!("ssl_check=1&token={token}")),
        SignedRequest::new("/slack/ack", body.clone()).sign(SECRET),
        SignedRequest::new("/slack/shadow", body.clone()).sign(SECRET),
        SignedRequest::new("/slack/pinned", body.clone()).sign(SECRET),
        SignedRequest::new("/nope", body.clone()).sign(SECRET),
        SignedRequest::new("/slack/office", body.clone()).sign(SECRET),
        SignedRequest::new("/slack/dead", body.clone()).sign(SECRET),
    ];
    let mut signatures = Vec::new();
    let mut responses = Vec::new();
    for req in &reqs {
        let req = req
            .clone()
            .header("X-Planted", SECRET)
            .header("Authorization", &format!("Bearer {token}"));
        if let Some(sig) = &req.signature {
            signatures.push(sig.trim_start_matches("v0=").to_owned());
        }
        responses.push(send_and_audit(&rig, &req));
    }
    // The planted values really went through the gateway: the bot saw them.
    let seen = rig.bot.requests();
    assert!(seen
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains(marker)));
    assert!(seen.iter().any(|r| r.header("x-slack-signature").is_some()));

    let audit = rig.gw.audit_raw();
    assert_eq!(audit.len(), reqs.len());
    let reasons: BTreeSet<String> = rig
        .gw
        .audit_lines(reqs.len())
        .iter()
        .map(|a| a["reason"].as_str().unwrap().to_owned())
        .collect();
    for r in [
        "allowed",
        "replayed",
        "bad_signature",
        "stale_timestamp",
        "missing_signature",
        "malformed_payload",
        "ssl_check",
    ] {
        assert!(reasons.contains(r), "{r} not exercised: {reasons:?}");
    }

    // A policy with the secret pasted in is rejected without echoing it, in the reload
    // answer and in /status's last_reload_error.
    let pasted = std::fs::read_to_string(rig.gw.policy_path())
        .unwrap()
        .replace(
            &format!("{{ id: previous, env: HELPDESK_SECRET_OLD, expires: \"{EXPIRES}\" }}"),
            &format!("{{ id: previous, secret: \"{OLD_SECRET}\" }}"),
        );
    assert!(pasted.contains(OLD_SECRET));
    rig.gw.write_policy(&pasted);
    let reload = rig.gw.admin_client().post("/reload").unwrap();
    assert_eq!(
        reload.status,
        422,
        "{}",
        String::from_utf8_lossy(&reload.body)
    );
    let status = rig.gw.admin_client().get("/status").unwrap();
    assert_eq!(status.status, 200);
    let status = String::from_utf8(status.body).unwrap();
    assert!(
        status.contains("last_reload_error") && status.contains("literal"),
        "{status}"
    );
    let outputs = [
        ("audit", audit.join("\n")),
        ("/metrics", rig.gw.metrics()),
        ("/status", status),
        ("/reload", String::from_utf8(reload.body).unwrap()),
    ];
    let mut needles: Vec<(&str, String)> = vec![
        ("signing secret", SECRET.to_owned()),
        ("old signing secret", OLD_SECRET.to_owned()),
        ("token", token.to_owned()),
        ("body marker", marker.to_owned()),
        ("message text", "open a ticket".to_owned()),
    ];
    for s in &signatures {
        needles.push(("signature", s.clone()));
    }
    for (what, haystack) in &outputs {
        for (kind, needle) in &needles {
            assert!(!haystack.contains(needle.as_str()), "{what} leaks a {kind}");
        }
    }
    // Denials answer with a fixed reason, never an echo of the request.
    for r in responses.iter().filter(|r| r.status >= 400) {
        let text = String::from_utf8_lossy(&r.body);
        for (kind, needle) in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "a {} response leaks a {kind}",
                r.status
            );
        }
    }
}
