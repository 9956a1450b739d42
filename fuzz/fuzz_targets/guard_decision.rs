//! The whole guard decision (`Guard::decide` and `check_source_ip`) over one fixed
//! compiled policy, driven by a sequence of requests with arbitrary bodies, headers,
//! content types, client addresses and clock steps. A step may ask the harness to sign
//! its body correctly (with a live, an expiring or a wrong key, at a chosen timestamp
//! offset) or to replay the previous request, so the stages after the signature —
//! replay, facts, app pin, scope, rate limits, shadow — are reached too.
//!
//! Nothing may panic, and per decision:
//! - nothing unverified is forwarded (except on the `allow_unverified_shadow` route);
//! - `status` is the reason's status (or 200 for an `ack` scope denial), `Forward` means
//!   allowed or shadowed, `retry_after` is set exactly on a rate-limited answer;
//! - a correct signature inside the window verifies, with the right secret id; outside
//!   the window it is stale; a wrong key or an expired secret never verifies;
//! - a verified signature seen before within the window is `replayed`, and only then;
//! - the pinned app id, the `U0BAD` deny and the rate limits (allowed count per key
//!   never above burst + rate * elapsed) hold.

#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slackgate_guard::{Action, FakeClock, Guard, GuardSettings, Inbound, Reason};
use slackgate_policy::{compile_policy, Mode, OnDeny, Policy, Route, SecretSource};
use slackgate_slack::{is_ssl_check, RequestKind, SigningKey};

const NOW: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z
const SKEW: i64 = 300;
const PREVIOUS_EXPIRES: u64 = NOW + 600;
const CURRENT: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const PREVIOUS: &str = "0e5f1a7c3b9d2468ace013579bdf2468";
const OPEN: &str = "open-route-secret-0123456789abcdef";

const POLICY: &str = r#"version: 1
apps:
  pinned:
    api_app_id: A0HELPDESK
    signing_secrets:
      - { id: current, env: CURRENT }
      - { id: previous, env: PREVIOUS, expires: "2027-01-15T08:10:00Z" }
  open:
    signing_secrets:
      - { id: only, env: OPEN }
upstreams:
  bot: { targets: ["127.0.0.1:3000"] }
groups:
  oncall: [U0333, U0111]
routes:
  - name: strict
    path: /strict
    app: pinned
    upstream: bot
    allow:
      teams: [T0ACME]
      users: [U0333, "@oncall"]
      events: [app_mention, message]
      commands: [/ticket]
      actions: ["ticket_*"]
    deny: { users: [U0BAD], channels: [C0SECRET] }
    rate_limits:
      - { per: team, rate: 2/s, burst: 3 }
      - { per: user, rate: 1/min, burst: 2 }
  - name: ack
    path: /ack
    app: pinned
    upstream: bot
    on_deny: ack
    allow: { enterprises: [E0ACME] }
    deny: { users: [U0BAD] }
    rate_limits:
      - { per: ip, rate: 1/s, burst: 2 }
      - { per: channel, rate: 10/min, burst: 1 }
      - { per: enterprise, rate: 5/s, burst: 5 }
      - { per: app, rate: 100/h, burst: 4 }
      - { per: route, rate: 50/s, burst: 50 }
  - name: shadow
    path: /shadow
    app: open
    upstream: bot
    mode: shadow
    deny: { users: [U0BAD] }
    rate_limits:
      - { per: route, rate: 1/s, burst: 1 }
  - name: shadow-unverified
    path: /shadow-unverified
    app: open
    upstream: bot
    mode: shadow
    allow_unverified_shadow: true
    source_ips: { allow: [10.0.0.0/8], deny: [10.9.0.0/16] }
"#;

const FIXTURES: [&[u8]; 15] = [
    include_bytes!("../../testdata/slack/app_rate_limited.json"),
    include_bytes!("../../testdata/slack/block_actions.form"),
    include_bytes!("../../testdata/slack/block_suggestion.form"),
    include_bytes!("../../testdata/slack/command_ticket.form"),
    include_bytes!("../../testdata/slack/event_app_mention.json"),
    include_bytes!("../../testdata/slack/event_app_uninstalled.json"),
    include_bytes!("../../testdata/slack/event_enterprise_org_install.json"),
    include_bytes!("../../testdata/slack/event_message.json"),
    include_bytes!("../../testdata/slack/event_tokens_revoked.json"),
    include_bytes!("../../testdata/slack/message_action.form"),
    include_bytes!("../../testdata/slack/shortcut.form"),
    include_bytes!("../../testdata/slack/signature_vector.form"),
    include_bytes!("../../testdata/slack/ssl_check.form"),
    include_bytes!("../../testdata/slack/url_verification.json"),
    include_bytes!("../../testdata/slack/view_submission.form"),
];

const ROUTES: [&str; 4] = ["/strict", "/ack", "/shadow", "/shadow-unverified"];

struct Secrets;

impl SecretSource for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "CURRENT" => Some(CURRENT.to_owned()),
            "PREVIOUS" => Some(PREVIOUS.to_owned()),
            "OPEN" => Some(OPEN.to_owned()),
            _ => None,
        }
    }

    fn read_file(&self, _: &Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::ErrorKind::NotFound.into())
    }
}

struct Fixed {
    policy: Policy,
    current: SigningKey,
    previous: SigningKey,
    open: SigningKey,
    wrong: SigningKey,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let policy = compile_policy(Path::new("fuzz.yaml"), POLICY, &Secrets, now)
            .unwrap_or_else(|e| panic!("the fixed fuzz policy must compile:\n{e}"));
        let key = |id: &str, s: &str| {
            SigningKey::new(id.to_owned(), s.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
        };
        Fixed {
            policy,
            current: key("current", CURRENT),
            previous: key("previous", PREVIOUS),
            open: key("only", OPEN),
            wrong: key("wrong", "not-the-secret-of-any-app-0000000"),
        }
    })
}

#[derive(Debug, Arbitrary)]
enum Sign {
    /// Send `sig` and `ts` as given.
    Raw,
    /// Sign with the route's app's first secret.
    Live,
    /// Sign with the pinned app's expiring secret.
    Previous,
    /// Sign with a key no app has.
    Wrong,
    /// Resend the previous request's headers and body unchanged.
    Replay,
}

#[derive(Debug, Arbitrary)]
enum ContentType {
    None,
    Json,
    Form,
    FormCharset,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Body {
    Raw(Vec<u8>),
    Fixture(u8),
    /// An `event_callback` built from the given ids (reduced to id characters).
    Event {
        app: String,
        team: String,
        enterprise: String,
        user: String,
        channel: String,
        event: String,
    },
    /// A slash command form built from the given ids.
    Command {
        app: String,
        team: String,
        user: String,
        channel: String,
        command: String,
    },
}

#[derive(Debug, Arbitrary)]
struct Step {
    route: u8,
    /// Seconds the clock moves before this request.
    advance: u8,
    sign: Sign,
    /// Timestamp relative to the clock, when the harness signs.
    ts_offset: i16,
    sig: Option<Vec<u8>>,
    ts: Option<Vec<u8>>,
    content_type: ContentType,
    peer: [u8; 4],
    body: Body,
}

fn id(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_/".contains(*c))
        .take(24)
        .collect()
}

fn body_bytes(b: &Body) -> Vec<u8> {
    match b {
        Body::Raw(v) => v.clone(),
        Body::Fixture(i) => FIXTURES[usize::from(*i) % FIXTURES.len()].to_vec(),
        Body::Event {
            app,
            team,
            enterprise,
            user,
            channel,
            event,
        } => format!(
            r#"{{"token":"x","team_id":"{}","enterprise_id":"{}","api_app_id":"{}","event":{{"type":"{}","user":"{}","channel":"{}","ts":"1.2"}},"type":"event_callback","event_id":"Ev1","event_time":1}}"#,
            id(team),
            id(enterprise),
            id(app),
            id(event),
            id(user),
            id(channel)
        )
        .into_bytes(),
        Body::Command {
            app,
            team,
            user,
            channel,
            command,
        } => format!(
            "token=x&team_id={}&channel_id={}&user_id={}&command={}&text=hi&api_app_id={}",
            id(team),
            id(channel),
            id(user),
            id(command).replace('/', "%2F"),
            id(app)
        )
        .into_bytes(),
    }
}

fn content_type(c: &ContentType, body: &[u8]) -> Option<String> {
    match c {
        ContentType::None => None,
        ContentType::Json => Some("application/json".into()),
        ContentType::Form => Some("application/x-www-form-urlencoded".into()),
        ContentType::FormCharset => {
            if body.first() == Some(&b'{') {
                Some("application/json; charset=utf-8".into())
            } else {
                Some("application/x-www-form-urlencoded; charset=utf-8".into())
            }
        }
        ContentType::Raw(s) => Some(s.clone()),
    }
}

/// One request as sent, kept for `Sign::Replay`.
#[derive(Clone)]
struct Sent {
    sig: Option<Vec<u8>>,
    ts: Option<Vec<u8>>,
    ct: Option<String>,
    body: Vec<u8>,
    /// `Some((key id, timestamp))` when the harness signed it with a live-or-expiring key.
    signed: Option<(&'static str, i64)>,
}

/// Per rate-limited key: first time seen and allowed requests since.
type Tally = HashMap<(usize, String), (f64, u32)>;

fn limit_key(rule: usize, f: &slackgate_slack::Facts<'_>) -> String {
    let v = match rule {
        0 => f
            .team_id
            .as_deref()
            .or(f.enterprise_id.as_deref())
            .unwrap_or(""),
        _ => f.user_id.as_deref().unwrap_or(""),
    };
    v.to_owned()
}

fn check_static(route: &Route, d: &slackgate_guard::Decision<'_>) {
    if d.shadow {
        assert_eq!(route.mode, Mode::Shadow, "shadow on an enforce route");
        assert_eq!(d.action, Action::Forward);
        assert!(d.retry_after.is_none() && !d.no_retry);
    } else if d.reason == Reason::ScopeDenied && route.on_deny == OnDeny::Ack {
        assert_eq!((d.status, d.no_retry), (200, true));
    } else {
        assert_eq!(d.status, d.reason.status(), "{:?}", d.reason);
    }
    if d.action == Action::Forward && !d.shadow {
        assert_eq!(d.reason, Reason::Allowed);
        assert!(d.secret_id.is_some() && d.facts.is_some());
    }
    if d.reason == Reason::Allowed {
        assert_eq!(d.action, Action::Forward);
    }
    assert_eq!(
        d.retry_after.is_some(),
        d.reason == Reason::RateLimited && !d.shadow
    );
    if let Some(r) = d.retry_after {
        assert!(r >= 1);
    }
    if d.facts.is_some() {
        assert!(d.secret_id.is_some(), "facts from an unverified body");
    }
    if d.reason.is_verification_failure() {
        assert!(d.facts.is_none());
        if d.action == Action::Forward {
            assert!(route.allow_unverified_shadow && d.shadow);
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let fx = fixed();
    let clock = Arc::new(FakeClock::at(NOW));
    // Large enough that nothing is evicted within one input, so replays and limits are exact.
    let guard = Guard::new(Arc::clone(&clock), 4096, 4096);
    let settings = GuardSettings {
        max_clock_skew: Duration::from_secs(SKEW as u64),
    };
    let mut now = NOW as i64;
    let mut last: Option<Sent> = None;
    // Verified signatures (as header values) and the time they stop being replays.
    let mut seen: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut tally: Tally = HashMap::new();

    for step in steps.iter().take(16) {
        clock.advance(Duration::from_secs(u64::from(step.advance)));
        now += i64::from(step.advance);
        let route = fx
            .policy
            .routes
            .find(None, ROUTES[usize::from(step.route) % ROUTES.len()])
            .unwrap_or_else(|| panic!("route missing"));
        let pinned = route.app.api_app_id.is_some();

        let sent = match (&step.sign, &last) {
            (Sign::Replay, Some(prev)) => prev.clone(),
            (sign, _) => {
                let body = body_bytes(&step.body);
                let ct = content_type(&step.content_type, &body);
                let ts_num = now + i64::from(step.ts_offset);
                let ts = ts_num.to_string();
                let (key, signed) = match sign {
                    Sign::Live if pinned => (Some(&fx.current), Some(("current", ts_num))),
                    Sign::Live => (Some(&fx.open), Some(("only", ts_num))),
                    Sign::Previous => (Some(&fx.previous), Some(("previous", ts_num))),
                    Sign::Wrong => (Some(&fx.wrong), None),
                    Sign::Raw | Sign::Replay => (None, None),
                };
                match key {
                    Some(k) => Sent {
                        sig: Some(k.sign(&ts, &body).into_bytes()),
                        ts: Some(ts.into_bytes()),
                        ct,
                        body,
                        signed,
                    },
                    None => Sent {
                        sig: step.sig.clone(),
                        ts: step.ts.clone(),
                        ct,
                        body,
                        signed: None,
                    },
                }
            }
        };

        let peer = IpAddr::V4(Ipv4Addr::from(step.peer));
        let ip_decision = guard.check_source_ip(route, peer);
        if let Some(d) = &ip_decision {
            assert_eq!(d.reason, Reason::IpDenied);
            assert!(!route.source_ips.permits(peer));
        }

        let inbound = Inbound {
            client_ip: peer,
            signature: sent.sig.as_deref(),
            timestamp: sent.ts.as_deref(),
            content_type: sent.ct.as_deref(),
            body: &sent.body,
        };
        let d = guard.decide(route, &inbound, &settings);
        check_static(route, &d);

        let ssl = is_ssl_check(sent.ct.as_deref(), &sent.body);
        if ssl {
            assert_eq!(d.reason, Reason::SslCheck);
            last = Some(sent);
            continue;
        }

        // Which key, if any, should verify this request, and whether it is in the window.
        // A `previous` signature only verifies on the pinned app, while the secret lives.
        let expect = sent.signed.and_then(|(id, ts)| {
            let belongs = match id {
                "only" => !pinned,
                "current" => pinned,
                _ => pinned && (now as u64) < PREVIOUS_EXPIRES,
            };
            belongs.then_some((id, ts))
        });
        match expect {
            None => {
                assert!(
                    matches!(
                        d.reason,
                        Reason::MissingSignature | Reason::BadSignature | Reason::StaleTimestamp
                    ),
                    "an unverifiable request got {:?}",
                    d.reason
                );
                assert!(d.secret_id.is_none());
                if !route.allow_unverified_shadow {
                    assert_eq!(
                        d.action,
                        Action::Respond,
                        "an unverified request was forwarded"
                    );
                }
            }
            Some((_, ts)) if (now - ts).abs() > SKEW => {
                assert_eq!(d.reason, Reason::StaleTimestamp);
            }
            Some((id, ts)) => {
                let sig = sent.sig.clone().unwrap_or_default();
                match seen.get(&sig) {
                    Some(&until) if now <= until => {
                        assert_eq!(d.reason, Reason::Replayed, "a replay was not caught");
                    }
                    _ => {
                        assert_ne!(
                            d.reason,
                            Reason::Replayed,
                            "a fresh signature read as replayed"
                        );
                        assert!(!d.reason.is_verification_failure(), "{:?}", d.reason);
                        seen.insert(sig, ts + SKEW);
                    }
                }
                assert_eq!(d.secret_id.as_deref(), Some(id));
            }
        }

        if let Some(f) = d.facts.as_ref() {
            if pinned
                && matches!(
                    d.reason,
                    Reason::Allowed | Reason::ScopeDenied | Reason::RateLimited
                )
            {
                let exempt = f.api_app_id.is_none()
                    && matches!(f.kind, RequestKind::Shortcut | RequestKind::MessageAction);
                assert!(exempt || f.api_app_id.as_deref() == Some("A0HELPDESK"));
            }
            if f.user_id.as_deref() == Some("U0BAD")
                && route.mode == Mode::Enforce
                && f.kind != RequestKind::UrlVerification
            {
                assert!(
                    matches!(d.reason, Reason::ScopeDenied | Reason::AppMismatch),
                    "a denied user got {:?}",
                    d.reason
                );
            }
            // The strict route's limits: team 2/s burst 3, user 1/min burst 2.
            if route.name.as_ref() == "strict" && d.reason == Reason::Allowed {
                for (rule, burst, rate) in [(0, 3.0, 2.0), (1, 2.0, 1.0 / 60.0)] {
                    let t = now as f64;
                    let entry = tally.entry((rule, limit_key(rule, f))).or_insert((t, 0));
                    entry.1 += 1;
                    let bound = burst + rate * (t - entry.0) + 1e-6;
                    assert!(
                        f64::from(entry.1) <= bound,
                        "rule {rule} allowed {} requests, bound {bound}",
                        entry.1
                    );
                }
            }
        }
        last = Some(sent);
    }
});
