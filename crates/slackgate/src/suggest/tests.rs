#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::json;
use slackgate_guard::{EgressCall, EgressReason, EgressSettings, SystemClock};
use slackgate_policy::compile_policy;
use slackgate_testkit::MapSecrets;

use super::*;

const ALPHA_KEY: &str = "gk_alpha_0123456789abcdef0123";
const BETA_KEY: &str = "gk_beta_fedcba9876543210fedc";

/// Two bots: `alpha` in shadow mode with rules the trail breaks, `beta` enforced.
const POLICY: &str = r#"version: 1
routes: []
bots:
  alpha:
    mode: shadow
    key: { env: ALPHA_KEY }
    token: { env: ALPHA_TOKEN }
    team: T0A
    methods: [chat.postMessage]
    channels: [C0A]
  beta:
    key: { env: BETA_KEY }
    token: { env: BETA_TOKEN }
    methods: ["reactions.*", conversations.info]
"#;

fn secrets() -> MapSecrets {
    MapSecrets::in_memory(&[
        ("ALPHA_KEY", ALPHA_KEY),
        ("BETA_KEY", BETA_KEY),
        ("ALPHA_TOKEN", "xoxb-1-alpha"),
        ("BETA_TOKEN", "xoxb-2-beta"),
    ])
}

const METHODS: [&str; 13] = [
    "chat.postMessage",
    "chat.update",
    "chat.delete",
    "chat.unfurl",
    "reactions.add",
    "reactions.remove",
    "reactions.get",
    "reactions.list",
    "conversations.info",
    "users.info",
    "admin.users.list",
    "auth.revoke",
    "x.custom",
];
const CHANNELS: [&str; 4] = ["C0A", "C0B", "G0C", "D0D"];
const TEAMS: [&str; 2] = ["T0A", "T0B"];

/// One generated egress record.
#[derive(Debug, Clone)]
struct Rec {
    bot: usize,
    method: usize,
    channel: Option<usize>,
    team: Option<usize>,
    /// 0: allowed, 1: a shadowed would-be denial, 2: refused (not shadowed).
    outcome: u8,
    day: u8,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0..2usize,
        0..METHODS.len(),
        proptest::option::of(0..CHANNELS.len()),
        proptest::option::of(0..TEAMS.len()),
        0..3u8,
        1..28u8,
    )
        .prop_map(|(bot, method, channel, team, outcome, day)| Rec {
            bot,
            method,
            channel,
            team,
            outcome,
            day,
        })
}

impl Rec {
    fn line(&self) -> String {
        let (reason, shadow) = match self.outcome {
            0 => ("allowed", false),
            1 => ("channel_denied", true),
            _ => ("method_denied", false),
        };
        let bot = ["alpha", "beta"][self.bot];
        json!({
            "ts": format!("2026-11-{:02}T10:00:00.000000Z", self.day),
            "direction": "egress",
            "bot": bot,
            "method": METHODS[self.method],
            "team_id": self.team.map(|t| TEAMS[t]),
            "channel_id": self.channel.map(|c| CHANNELS[c]),
            "reason": reason,
            "status": 200,
            "rule": if shadow { Some("channels") } else { None },
            "shadow": shadow,
            "scopes_needed": "chat:write",
        })
        .to_string()
    }

    /// The call the record stands for: its method, its channel in the argument the
    /// method names its conversation with, its team.
    fn form(&self) -> String {
        let mut form = Vec::new();
        let method = METHODS[self.method];
        if let Some(c) = self.channel {
            let arg = slackgate_slack::conversation_use(method)
                .and_then(|u| u.targets.first().copied())
                .unwrap_or("channel");
            form.push(format!("{arg}={}", CHANNELS[c]));
        }
        if let Some(t) = self.team {
            form.push(format!("team_id={}", TEAMS[t]));
        }
        if method == "chat.unfurl" && self.channel.is_none() {
            form.push("unfurl_id=U1&source=conversations_history".to_owned());
        }
        form.join("&")
    }
}

fn suggested(lines: &[String]) -> (String, Trail) {
    let mut trail = Trail::default();
    for l in lines {
        trail.add_line(l.as_bytes(), &Filter::default()).unwrap();
    }
    let args = Args {
        config: "policy.yaml".into(),
        audit: vec!["audit.log".into()],
        since: None,
        bots: vec![],
        routes: vec![],
    };
    let (text, _) = render(Path::new("policy.yaml"), POLICY, &trail, &args).unwrap();
    (text, trail)
}

fn compiled(text: &str) -> slackgate_policy::Policy {
    compile_policy(
        Path::new("suggested.yaml"),
        text,
        &secrets(),
        UNIX_EPOCH + Duration::from_secs(1_900_000_000),
    )
    .unwrap_or_else(|e| panic!("the suggestion does not load:\n{e}\n{text}"))
}

fn decide(policy: &slackgate_policy::Policy, key: &str, method: &str, form: &str) -> EgressReason {
    let guard = crate::probe::offline_guard(SystemClock);
    let auth = format!("Bearer {key}");
    let call = EgressCall {
        path: &format!("/api/{method}"),
        query: None,
        authorization: Some(auth.as_bytes()),
        content_type: Some(b"application/x-www-form-urlencoded"),
        body: form.as_bytes(),
    };
    guard
        .decide_egress(
            policy,
            &call,
            &EgressSettings {
                max_call_channels: 100,
            },
        )
        .reason
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// For any trail, the suggested policy loads, is enforced, and allows every call
    /// the trail shows reaching Slack (allowed or shadowed); what was refused and not
    /// shadowed is not what it is built from.
    #[test]
    fn the_suggestion_allows_every_recorded_call(recs in proptest::collection::vec(rec(), 1..40)) {
        let lines: Vec<String> = recs.iter().map(Rec::line).collect();
        let (text, _) = suggested(&lines);
        let policy = compiled(&text);
        for (i, name) in ["alpha", "beta"].iter().enumerate() {
            let used = recs.iter().any(|r| r.bot == i && r.outcome < 2);
            let mode = policy.bots.by_name(name).map(|b| b.mode);
            if used {
                prop_assert_eq!(mode, Some(slackgate_policy::Mode::Enforce), "{}", text);
            }
        }
        for r in recs.iter().filter(|r| r.outcome < 2) {
            let key = [ALPHA_KEY, BETA_KEY][r.bot];
            let got = decide(&policy, key, METHODS[r.method], &r.form());
            prop_assert_eq!(got, EgressReason::Allowed, "{:?} ({}) under\n{}", r, r.form(), text);
        }
    }
}

#[test]
fn the_suggestion_is_tight_and_commented() {
    let line = |bot: &str, method: &str, channel: &str, shadow: bool, day: u8| {
        json!({
            "ts": format!("2026-11-{day:02}T10:00:00.000000Z"), "direction": "egress", "bot": bot,
            "method": method, "team_id": "T0A", "channel_id": channel,
            "reason": if shadow { "method_denied" } else { "allowed" }, "status": 200,
            "rule": if shadow { Some("methods") } else { None }, "shadow": shadow,
            "scopes_needed": "chat:write", "scopes_granted": if day == 1 { Some("chat:write,users:read") } else { None },
        })
        .to_string()
    };
    let lines = vec![
        line("alpha", "chat.postMessage", "C0A", false, 1),
        line("alpha", "chat.postMessage", "C0A", false, 3),
        line("alpha", "chat.update", "C0A", true, 2),
    ];
    let (text, trail) = suggested(&lines);
    let policy = compiled(&text);
    let alpha = policy.bots.by_name("alpha").unwrap();
    assert_eq!(alpha.mode, slackgate_policy::Mode::Enforce);
    assert!(alpha.methods.exact.contains("chat.update"));
    assert_eq!(
        decide(&policy, ALPHA_KEY, "chat.delete", "channel=C0A"),
        EgressReason::MethodDenied
    );
    assert_eq!(
        decide(&policy, ALPHA_KEY, "chat.postMessage", "channel=C0B"),
        EgressReason::ChannelDenied
    );
    assert_eq!(
        decide(&policy, ALPHA_KEY, "chat.update", "channel=C0A&ts=1.2"),
        EgressReason::Allowed
    );
    assert!(
        text.contains("- chat.postMessage  # 2 calls, last 2026-11-03T10:00:00.000000Z"),
        "{text}"
    );
    assert!(text.contains("mode: enforce  # was shadow"), "{text}");
    assert!(text.contains("team: T0A"), "{text}");
    // beta had no calls: as it was.
    let beta = policy.bots.by_name("beta").unwrap();
    assert_eq!(beta.mode, slackgate_policy::Mode::Enforce);
    assert!(beta.methods.patterns.matches("reactions.add"));
    // Scopes.
    assert!(
        text.contains("#     bot:\n#       - chat:write\n# granted scopes to remove: users:read\n"),
        "{text}"
    );
    assert_eq!(trail.used, 3);
}

#[test]
fn since_takes_a_duration_or_a_utc_date() {
    let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    assert_eq!(
        since("1d", now).unwrap(),
        slackgate_proxy::audit::rfc3339(now - Duration::from_secs(86_400))
    );
    assert_eq!(
        since("90m", now).unwrap(),
        slackgate_proxy::audit::rfc3339(now - Duration::from_secs(5_400))
    );
    assert_eq!(since("2026-12-01", now).unwrap(), "2026-12-01");
    assert_eq!(
        since("2026-12-01T08:00:00Z", now).unwrap(),
        "2026-12-01T08:00:00"
    );
    for bad in ["yesterday", "2026-1-01", "12/01/2026", "1w"] {
        assert!(since(bad, now).is_err(), "{bad}");
    }
}

#[test]
fn plain_rotated_and_gzip_files_are_read_and_bad_lines_named() {
    let dir = tempfile::tempdir().unwrap();
    let record = |day: u8| {
        json!({"ts": format!("2026-11-{day:02}T10:00:00.000000Z"), "direction": "egress", "bot": "alpha",
               "method": "chat.postMessage", "channel_id": "C0A", "reason": "allowed", "status": 200, "shadow": false})
        .to_string()
    };
    let plain = dir.path().join("audit.log");
    std::fs::write(&plain, format!("{}\n{{broken\n\n{}", record(3), record(4))).unwrap();
    let gz = dir.path().join("audit.log.1.gz");
    // Two gzip members, as `cat a.gz b.gz` makes.
    let mut bytes = Vec::new();
    for day in [1, 2] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(format!("{}\n", record(day)).as_bytes())
            .unwrap();
        bytes.extend(enc.finish().unwrap());
    }
    std::fs::write(&gz, bytes).unwrap();
    let long = dir.path().join("audit.log.2");
    std::fs::write(
        &long,
        format!("{}\n{}\n", "x".repeat(MAX_LINE + 10), record(5)),
    )
    .unwrap();
    // A gzip file cut short counts up to where it breaks.
    let cut = dir.path().join("audit.log.3.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for day in 6..9 {
        enc.write_all(format!("{}\n", record(day)).as_bytes())
            .unwrap();
    }
    let whole = enc.finish().unwrap();
    std::fs::write(&cut, &whole[..whole.len() - 12]).unwrap();
    let trail = read_trail(&[cut], &Filter::default()).unwrap();
    assert!(trail.bots.get("alpha").map_or(0, |b| b.calls.count) <= 3);
    let trail = read_trail(&[gz, plain, long], &Filter::default()).unwrap();
    let b = &trail.bots["alpha"];
    assert_eq!(b.calls.count, 5);
    assert_eq!(b.calls.last, "2026-11-05T10:00:00.000000Z");
    assert_eq!(trail.unreadable, 2, "the broken line and the overlong one");
    assert_eq!(trail.first.as_deref(), Some("2026-11-01T10:00:00.000000Z"));
}

/// A route in shadow mode: the suggestion lists the teams, channels, events and commands
/// its forwarded requests carried, keeps what the audit does not record, and enforces.
#[test]
fn a_route_gets_the_allow_lists_its_requests_carried() {
    let policy = r#"version: 1
apps:
  helpdesk: { signing_secrets: [{ id: current, env: SIGNING }] }
upstreams:
  bot: { targets: ["127.0.0.1:3000"] }
routes:
  - name: helpdesk
    path: /slack/events
    app: helpdesk
    upstream: bot
    mode: shadow
    allow_unverified_shadow: true
    allow:
      users: [U0KEEP]
      actions: ["ticket_*"]
      commands: [/old]
  - name: quiet
    path: /slack/quiet
    app: helpdesk
    upstream: bot
    allow: { teams: [T0QUIET] }
"#;
    let rec = |kind: &str,
               team: &str,
               channel: Option<&str>,
               event: Option<&str>,
               command: Option<&str>,
               reason: &str,
               shadow: bool,
               rule: Option<&str>| {
        json!({"ts": "2026-12-01T10:00:00.000000Z", "direction": "inbound", "route": "helpdesk",
               "reason": reason, "status": 200, "shadow": shadow, "kind": kind, "team_id": team,
               "channel_id": channel, "event_type": event, "command": command, "rule": rule})
        .to_string()
    };
    let lines = [
        rec(
            "event_callback",
            "T0A",
            Some("C0A"),
            Some("app_mention"),
            None,
            "allowed",
            false,
            None,
        ),
        rec(
            "event_callback",
            "T0B",
            Some("C0B"),
            Some("message"),
            None,
            "scope_denied",
            true,
            Some("allow.users"),
        ),
        rec(
            "slash_command",
            "T0A",
            Some("C0A"),
            None,
            Some("/ticket"),
            "allowed",
            false,
            None,
        ),
        rec(
            "block_actions",
            "T0A",
            Some("C0A"),
            None,
            None,
            "allowed",
            false,
            None,
        )
        .replacen("\"kind\"", "\"action_id\":\"ticket_open\",\"kind\"", 1),
        // An enforced denial is not a request to allow.
        rec(
            "event_callback",
            "T0EVIL",
            Some("C0EVIL"),
            Some("reaction_added"),
            None,
            "scope_denied",
            false,
            Some("allow.teams"),
        ),
    ];
    let mut trail = Trail::default();
    for l in &lines {
        trail.add_line(l.as_bytes(), &Filter::default()).unwrap();
    }
    let args = Args {
        config: "policy.yaml".into(),
        audit: vec![],
        since: None,
        bots: vec![],
        routes: vec![],
    };
    let (text, changes) = render(Path::new("policy.yaml"), policy, &trail, &args).unwrap();
    assert_eq!(changes.routes, ["helpdesk"]);
    let secrets = MapSecrets::in_memory(&[("SIGNING", "8f742231b10e8888abcd99yyyzzz85a5")]);
    let compiled = compile_policy(
        Path::new("suggested.yaml"),
        &text,
        &secrets,
        UNIX_EPOCH + Duration::from_secs(1_900_000_000),
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let route = compiled
        .routes
        .iter()
        .find(|r| &*r.name == "helpdesk")
        .unwrap();
    assert_eq!(route.mode, slackgate_policy::Mode::Enforce, "{text}");
    assert!(!route.allow_unverified_shadow);
    let allow = &route.allow;
    let has = |set: &Option<slackgate_policy::IdSet>, v: &str| {
        set.as_ref().is_some_and(|s| s.contains(v))
    };
    for (set, yes, no) in [
        (&allow.teams, ["T0A", "T0B"], "T0EVIL"),
        (&allow.channels, ["C0A", "C0B"], "C0EVIL"),
        (&allow.events, ["app_mention", "message"], "reaction_added"),
    ] {
        for v in yes {
            assert!(has(set, v), "{v}:\n{text}");
        }
        assert!(!has(set, no), "{no}:\n{text}");
    }
    assert!(
        has(&allow.commands, "/ticket") && !has(&allow.commands, "/old"),
        "{text}"
    );
    // users denied a request seen: dropped; actions: exactly the one seen.
    assert!(allow.users.is_none(), "{text}");
    let actions = allow.actions.as_ref().unwrap();
    assert!(
        actions.matches("ticket_open") && !actions.matches("ticket_close"),
        "{text}"
    );
    assert!(text.contains("allow.users removed"), "{text}");
    // The route without records is as it was.
    let quiet = compiled
        .routes
        .iter()
        .find(|r| &*r.name == "quiet")
        .unwrap();
    assert!(has(&quiet.allow.teams, "T0QUIET"));
}
