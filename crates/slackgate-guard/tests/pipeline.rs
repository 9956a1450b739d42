//! The guard pipeline on compiled policies, with a fake clock: order of checks,
//! shadow semantics, scope dimensions, rate-limit keys and the client-IP walk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use slackgate_fixtures::policy::compiled;
use slackgate_fixtures::{content_type_for, fixture, fixture_with, MapSecrets, Signer};
use slackgate_guard::{
    client_ip, Action, Decision, FakeClock, Guard, GuardSettings, Inbound, Reason,
};
use slackgate_policy::{IpSet, Policy};

const NOW: u64 = 1_800_000_000;
const SECRET: &str = "guard-test-secret-0123456789abcdef";

fn policy(routes: &str) -> Policy {
    let text = format!(
        r#"version: 1
apps:
  app:
    api_app_id: A0HELPDESK
    signing_secrets:
      - {{ id: current, env: S1 }}
upstreams:
  bot: {{ targets: ["127.0.0.1:3000"] }}
groups:
  oncall: [U0333]
routes:
{routes}"#
    );
    let env = MapSecrets::new(&[("S1", SECRET)]);
    compiled(&text, &env, NOW)
}

struct Req {
    body: Vec<u8>,
    ts: String,
    sig: String,
    ct: &'static str,
}

fn signed(body: Vec<u8>, ts: u64) -> Req {
    let ts = ts.to_string();
    let sig = Signer::new(SECRET).sign(&ts, &body);
    let ct = content_type_for(&body);
    Req { body, ts, sig, ct }
}

/// What a test compares of a decision: reason, action, shadow and rule.
type Outcome = (Reason, Action, bool, Option<String>);

fn outcome(d: Decision<'_>) -> Outcome {
    (
        d.reason,
        d.action,
        d.shadow,
        d.rule.map(|r| r.as_str().to_owned()),
    )
}

const SETTINGS: GuardSettings = GuardSettings {
    max_clock_skew: Duration::from_secs(300),
};

fn inbound<'r>(r: &'r Req, client_ip: &str) -> Inbound<'r> {
    Inbound {
        client_ip: client_ip.parse().unwrap(),
        signature: Some(r.sig.as_bytes()),
        timestamp: Some(r.ts.as_bytes()),
        content_type: Some(r.ct),
        body: &r.body,
    }
}

fn decide(guard: &Guard<Arc<FakeClock>>, p: &Policy, path: &str, r: &Req) -> Outcome {
    let route = p.routes.find(None, path).unwrap();
    outcome(guard.decide(route, &inbound(r, "127.0.0.1"), &SETTINGS))
}

fn guard() -> Guard<Arc<FakeClock>> {
    Guard::new(Arc::new(FakeClock::at(NOW)), 10_000, 10_000)
}

#[test]
fn every_fixture_kind_passes_an_open_route() {
    let p = policy("  - { name: r, path: /s, app: app, upstream: bot }\n");
    let g = guard();
    for f in [
        "event_app_mention.json",
        "event_message.json",
        "command_ticket.form",
        "block_actions.form",
        "view_submission.form",
        "shortcut.form",
        "message_action.form",
        "block_suggestion.form",
        "event_enterprise_org_install.json",
    ] {
        let (reason, action, _, _) = decide(&g, &p, "/s", &signed(fixture(f), NOW));
        assert_eq!((reason, action), (Reason::Allowed, Action::Forward), "{f}");
    }
}

#[test]
fn kind_dimensions_apply_only_to_their_kind() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { events: [app_mention], commands: [/ticket], actions: [\"ticket_*\"] }\n");
    let g = guard();
    assert_eq!(
        decide(&g, &p, "/s", &signed(fixture("command_ticket.form"), NOW)).0,
        Reason::Allowed
    );
    assert_eq!(
        decide(&g, &p, "/s", &signed(fixture("block_actions.form"), NOW)).0,
        Reason::Allowed
    );
    assert_eq!(
        decide(
            &g,
            &p,
            "/s",
            &signed(fixture("event_app_mention.json"), NOW)
        )
        .0,
        Reason::Allowed
    );
    let (r, _, _, rule) = decide(&g, &p, "/s", &signed(fixture("event_message.json"), NOW));
    assert_eq!(
        (r, rule.as_deref()),
        (Reason::ScopeDenied, Some("allow.events"))
    );
}

#[test]
fn identity_dimension_missing_from_the_request_fails_closed() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { channels: [C0HELP] }\n");
    let g = guard();
    // A global shortcut has no channel.
    let (r, _, _, rule) = decide(&g, &p, "/s", &signed(fixture("shortcut.form"), NOW));
    assert_eq!(
        (r, rule.as_deref()),
        (Reason::ScopeDenied, Some("allow.channels"))
    );
}

/// A route that restricts every identity dimension, as operators write them.
const IDENTITY_ROUTE: &str = "  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { teams: [T0ACME], users: [U0333], channels: [C0HELP] }\n    deny: { users: [U0BAD], channels: [C0BAD] }\n";

fn rule_of(guard: &Guard<Arc<FakeClock>>, p: &Policy, body: Vec<u8>) -> (Reason, Option<String>) {
    let (reason, _, _, rule) = decide(guard, p, "/s", &signed(body, NOW));
    (reason, rule)
}

#[test]
fn lifecycle_requests_are_not_subject_to_user_and_channel_rules() {
    let p = policy(IDENTITY_ROUTE);
    let g = guard();
    for f in [
        "event_app_uninstalled.json",
        "event_tokens_revoked.json",
        "app_rate_limited.json",
    ] {
        assert_eq!(rule_of(&g, &p, fixture(f)), (Reason::Allowed, None), "{f}");
    }
    for t in [
        "grid_migration_started",
        "team_rename",
        "team_domain_change",
        "team_access_revoked",
    ] {
        let body = format!(
            r#"{{"type":"event_callback","team_id":"T0ACME","api_app_id":"A0HELPDESK","event_id":"Ev{t}","event":{{"type":"{t}"}}}}"#
        );
        assert_eq!(
            rule_of(&g, &p, body.into_bytes()),
            (Reason::Allowed, None),
            "{t}"
        );
    }
}

#[test]
fn lifecycle_requests_still_meet_team_enterprise_and_event_rules() {
    let g = guard();
    let p = policy(IDENTITY_ROUTE);
    // From a team the route does not allow.
    assert_eq!(
        rule_of(
            &g,
            &p,
            fixture_with("event_app_uninstalled.json", "T0ACME", "T0OTHER")
        ),
        (Reason::ScopeDenied, Some("allow.teams".into()))
    );
    // With no team at all (fail closed).
    let no_team = r#"{"type":"event_callback","team_id":null,"enterprise_id":"E0ACME","api_app_id":"A0HELPDESK","event":{"type":"team_access_granted","team_ids":["T0ACME"]}}"#;
    assert_eq!(
        rule_of(&g, &p, no_team.as_bytes().to_vec()),
        (Reason::ScopeDenied, Some("allow.teams".into()))
    );
    // `enterprises` applies too: these workspaces are in no organization.
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { enterprises: [E0ACME], users: [U0333] }\n");
    assert_eq!(
        rule_of(&g, &p, fixture("event_tokens_revoked.json")),
        (Reason::ScopeDenied, Some("allow.enterprises".into()))
    );
    // So do `deny.teams` and `events`.
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    deny: { teams: [T0ACME] }\n");
    assert_eq!(
        rule_of(&g, &p, fixture("app_rate_limited.json")),
        (Reason::ScopeDenied, Some("deny.teams".into()))
    );
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { users: [U0333], events: [app_mention] }\n");
    assert_eq!(
        rule_of(&g, &p, fixture("event_app_uninstalled.json")),
        (Reason::ScopeDenied, Some("allow.events".into()))
    );
}

#[test]
fn events_that_can_carry_a_user_or_channel_still_fail_closed_without_one() {
    let p = policy(IDENTITY_ROUTE);
    let g = guard();
    // A message from a bot: no user.
    let bot_message = r#"{"type":"event_callback","team_id":"T0ACME","api_app_id":"A0HELPDESK","event_id":"Ev0BOTMSG","event":{"type":"message","subtype":"bot_message","channel":"C0HELP","bot_id":"B1"}}"#;
    assert_eq!(
        rule_of(&g, &p, bot_message.as_bytes().to_vec()),
        (Reason::ScopeDenied, Some("allow.users".into()))
    );
    // An app mention without a channel.
    let no_channel = r#"{"type":"event_callback","team_id":"T0ACME","api_app_id":"A0HELPDESK","event_id":"Ev0NOCHAN","event":{"type":"app_mention","user":"U0333"}}"#;
    assert_eq!(
        rule_of(&g, &p, no_channel.as_bytes().to_vec()),
        (Reason::ScopeDenied, Some("allow.channels".into()))
    );
    // An event type outside the lifecycle table (an admin event naming its actor in
    // `event.user_id`) is judged like any other event.
    let admin = r#"{"type":"event_callback","team_id":"T0ACME","api_app_id":"A0HELPDESK","event_id":"Ev0ADMIN","event":{"type":"app_uninstalled_team","user_id":"U0333","team_id":"T0ACME"}}"#;
    assert_eq!(
        rule_of(&g, &p, admin.as_bytes().to_vec()),
        (Reason::ScopeDenied, Some("allow.channels".into()))
    );
    // And the route's users still decide for everything else.
    assert_eq!(
        rule_of(&g, &p, fixture("event_app_mention.json")),
        (Reason::Allowed, None)
    );
    assert_eq!(
        rule_of(
            &g,
            &p,
            fixture_with("event_app_mention.json", "U0333", "U0BAD")
        ),
        (Reason::ScopeDenied, Some("deny.users".into()))
    );
}

#[test]
fn the_scope_docs_name_every_lifecycle_request() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for doc in ["README.md", "docs/policy.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for l in slackgate_slack::Lifecycle::ALL {
            assert!(
                text.contains(&format!("`{l}`")),
                "{doc} does not name `{l}`"
            );
        }
    }
}

#[test]
fn groups_and_enterprise_installs() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { enterprises: [E0ACME], users: [\"@oncall\"] }\n");
    let g = guard();
    // Org-wide install: team null, enterprise E0ACME, user U0333 (in @oncall).
    assert_eq!(
        decide(
            &g,
            &p,
            "/s",
            &signed(fixture("event_enterprise_org_install.json"), NOW)
        )
        .0,
        Reason::Allowed
    );
    // Not an enterprise request.
    assert_eq!(
        decide(&g, &p, "/s", &signed(fixture("event_message.json"), NOW)).0,
        Reason::ScopeDenied
    );
}

#[test]
fn deny_wins_over_allow() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    allow: { teams: [T0ACME] }\n    deny: { users: [\"@oncall\"] }\n");
    let (r, _, _, rule) = decide(
        &guard(),
        &p,
        "/s",
        &signed(fixture("event_app_mention.json"), NOW),
    );
    assert_eq!(
        (r, rule.as_deref()),
        (Reason::ScopeDenied, Some("deny.users"))
    );
}

#[test]
fn shadow_forwards_denials_but_not_bad_signatures() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    mode: shadow\n    allow: { teams: [T0OTHER] }\n");
    let g = guard();
    let (r, a, shadow, _) = decide(
        &g,
        &p,
        "/s",
        &signed(fixture("event_app_mention.json"), NOW),
    );
    assert_eq!((r, a, shadow), (Reason::ScopeDenied, Action::Forward, true));
    let mut bad = signed(fixture("event_message.json"), NOW);
    bad.body.push(b' ');
    let (r, a, shadow, _) = decide(&g, &p, "/s", &bad);
    assert_eq!(
        (r, a, shadow),
        (Reason::BadSignature, Action::Respond, false)
    );
}

/// Both stages, as the gateway and `explain` run them, from `peer`.
fn run(guard: &Guard<Arc<FakeClock>>, p: &Policy, peer: &str, r: &Req) -> Outcome {
    let route = p.routes.find(None, "/s").unwrap();
    outcome(match guard.admit(route, ip(peer)) {
        Err(d) => *d,
        Ok(admitted) => {
            assert_eq!(admitted.client_ip(), ip(peer));
            // The inbound address is not read: the admitted one is the client's.
            guard.decide_admitted(admitted, route, &inbound(r, "0.0.0.0"), &SETTINGS)
        }
    })
}

#[test]
fn admit_answers_an_enforced_ip_denial_before_the_body() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    source_ips: { deny: [192.0.2.0/24] }\n");
    let g = guard();
    let route = p.routes.find(None, "/s").unwrap();
    let d = g.admit(route, ip("192.0.2.7")).unwrap_err();
    assert_eq!(
        (d.reason, d.action, d.status, d.shadow),
        (Reason::IpDenied, Action::Respond, 403, false)
    );
    assert_eq!(d.rule.as_ref().map(|r| r.as_str()), Some("source_ips"));
    let ok = g.admit(route, ip("198.51.100.1")).unwrap();
    assert!(ok.shadowed().is_none());
    let req = signed(fixture("event_app_mention.json"), NOW);
    assert_eq!(
        run(&g, &p, "198.51.100.1", &req),
        (Reason::Allowed, Action::Forward, false, None)
    );
}

#[test]
fn a_shadowed_ip_denial_is_the_first_denial_and_wins() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    mode: shadow\n    source_ips: { deny: [192.0.2.0/24] }\n    allow: { users: [U0NOBODY] }\n    rate_limits: [{ per: ip, rate: 1/min, burst: 1 }]\n");
    let g = guard();
    let route = p.routes.find(None, "/s").unwrap();
    let admitted = g.admit(route, ip("192.0.2.7")).unwrap();
    assert_eq!(
        admitted.shadowed().map(|d| d.reason),
        Some(Reason::IpDenied)
    );
    let ip_first = (
        Reason::IpDenied,
        Action::Forward,
        true,
        Some("source_ips".to_owned()),
    );
    // Denied by source IP and by scope: the source IP is reported, as the gateway does.
    let mention = |n: u64| signed(fixture("event_app_mention.json"), NOW - n);
    assert_eq!(run(&g, &p, "192.0.2.7", &mention(0)), ip_first);
    // Also over a rate limit, and with an allowed user.
    assert_eq!(run(&g, &p, "192.0.2.7", &mention(1)), ip_first);
    let allowed_user = fixture_with("event_app_mention.json", "U0333", "U0NOBODY");
    assert_eq!(
        run(&g, &p, "192.0.2.8", &signed(allowed_user, NOW)).0,
        Reason::IpDenied
    );
    // From an address that is not denied, the scope denial is the first.
    assert_eq!(
        run(&g, &p, "198.51.100.1", &mention(2)),
        (
            Reason::ScopeDenied,
            Action::Forward,
            true,
            Some("allow.users".to_owned())
        )
    );
    // A step that answers still answers: a bad signature (enforced), ssl_check,
    // url_verification.
    let mut bad = mention(3);
    bad.body.push(b' ');
    assert_eq!(
        run(&g, &p, "192.0.2.7", &bad),
        (
            Reason::BadSignature,
            Action::Respond,
            false,
            Some("signature".to_owned())
        )
    );
    let (r, a, shadow, _) = run(&g, &p, "192.0.2.7", &signed(fixture("ssl_check.form"), NOW));
    assert_eq!((r, a, shadow), (Reason::SslCheck, Action::Respond, false));
    let (r, a, _, _) = run(
        &g,
        &p,
        "192.0.2.7",
        &signed(fixture("url_verification.json"), NOW),
    );
    assert_eq!((r, a), (Reason::UrlVerification, Action::Respond));
    // With allow_unverified_shadow the bad signature is forwarded, and the IP denial,
    // first, is reported.
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    mode: shadow\n    allow_unverified_shadow: true\n    source_ips: { deny: [192.0.2.0/24] }\n");
    let mut bad = mention(4);
    bad.body.push(b' ');
    assert_eq!(run(&guard(), &p, "192.0.2.7", &bad), ip_first);
}

#[test]
fn unverified_shadow_forwards_bad_signatures_when_allowed() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    mode: shadow\n    allow_unverified_shadow: true\n");
    let mut bad = signed(fixture("event_message.json"), NOW);
    bad.body.push(b' ');
    let (r, a, shadow, _) = decide(&guard(), &p, "/s", &bad);
    assert_eq!(
        (r, a, shadow),
        (Reason::BadSignature, Action::Forward, true)
    );
}

#[test]
fn window_replay_and_expiry_with_a_fake_clock() {
    let p = policy("  - { name: r, path: /s, app: app, upstream: bot }\n");
    let clock = Arc::new(FakeClock::at(NOW));
    let g = Guard::new(clock.clone(), 10_000, 10_000);
    let req = signed(fixture("event_message.json"), NOW);
    assert_eq!(decide(&g, &p, "/s", &req).0, Reason::Allowed);
    assert_eq!(decide(&g, &p, "/s", &req).0, Reason::Replayed);
    clock.advance(Duration::from_secs(301));
    assert_eq!(decide(&g, &p, "/s", &req).0, Reason::StaleTimestamp);
    // From the future, too.
    assert_eq!(
        decide(
            &g,
            &p,
            "/s",
            &signed(fixture("event_message.json"), NOW + 301 + 301)
        )
        .0,
        Reason::StaleTimestamp
    );
}

#[test]
fn rate_limit_per_user_with_refill() {
    let p = policy("  - name: r\n    path: /s\n    app: app\n    upstream: bot\n    rate_limits: [{ per: user, rate: 1/s, burst: 2 }]\n");
    let clock = Arc::new(FakeClock::at(NOW));
    let g = Guard::new(clock.clone(), 10_000, 10_000);
    let mk = |i: u32, ts: u64| {
        let body = String::from_utf8(fixture("event_message.json"))
            .unwrap()
            .replace("Ev0MESSAGE01", &format!("Ev{i}"));
        signed(body.into_bytes(), ts)
    };
    assert_eq!(decide(&g, &p, "/s", &mk(1, NOW)).0, Reason::Allowed);
    assert_eq!(decide(&g, &p, "/s", &mk(2, NOW)).0, Reason::Allowed);
    let (r, _, _, rule) = decide(&g, &p, "/s", &mk(3, NOW));
    assert_eq!(r, Reason::RateLimited);
    assert!(rule.unwrap().contains("user"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(decide(&g, &p, "/s", &mk(4, NOW + 1)).0, Reason::Allowed);
    // Another user has a bucket of its own.
    assert_eq!(
        decide(
            &g,
            &p,
            "/s",
            &signed(fixture("event_app_mention.json"), NOW + 1)
        )
        .0,
        Reason::Allowed
    );
}

#[test]
fn app_pin_and_url_verification() {
    let p = policy("  - { name: r, path: /s, app: app, upstream: bot }\n");
    let g = guard();
    let other = String::from_utf8(fixture("event_message.json"))
        .unwrap()
        .replace("A0HELPDESK", "A0EVIL");
    assert_eq!(
        decide(&g, &p, "/s", &signed(other.into_bytes(), NOW)).0,
        Reason::AppMismatch
    );
    // url_verification carries no api_app_id and is answered, not pinned.
    let (r, a, _, _) = decide(&g, &p, "/s", &signed(fixture("url_verification.json"), NOW));
    assert_eq!((r, a), (Reason::UrlVerification, Action::Respond));
}

fn ipset(cidrs: &[&str]) -> IpSet {
    IpSet::from_cidrs(cidrs.iter().map(|c| c.parse().unwrap()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn forwarded_for_walk() {
    let trusted = ipset(&["10.0.0.0/8", "127.0.0.0/8"]);
    let xff = |v: &'static str| vec![v.as_bytes()];
    // Untrusted peer: header ignored.
    assert_eq!(
        client_ip(ip("198.51.100.1"), xff("1.2.3.4"), &trusted),
        ip("198.51.100.1")
    );
    // Trusted peer: rightmost untrusted entry wins; trusted hops are skipped.
    assert_eq!(
        client_ip(ip("10.0.0.1"), xff("6.6.6.6, 1.2.3.4, 10.0.0.9"), &trusted),
        ip("1.2.3.4")
    );
    // Several headers are one list in arrival order.
    assert_eq!(
        client_ip(
            ip("10.0.0.1"),
            vec![&b"1.2.3.4"[..], &b"10.1.1.1"[..]],
            &trusted
        ),
        ip("1.2.3.4")
    );
    // Ports and brackets.
    assert_eq!(
        client_ip(ip("10.0.0.1"), xff("[2001:db8::1]:443"), &trusted),
        ip("2001:db8::1")
    );
    assert_eq!(
        client_ip(ip("10.0.0.1"), xff("1.2.3.4:5678"), &trusted),
        ip("1.2.3.4")
    );
    // Garbage stops the walk at the last address seen.
    assert_eq!(
        client_ip(ip("10.0.0.1"), xff("1.2.3.4, garbage, 10.0.0.2"), &trusted),
        ip("10.0.0.2")
    );
    // All trusted: the leftmost.
    assert_eq!(
        client_ip(ip("10.0.0.1"), xff("10.0.0.3, 10.0.0.2"), &trusted),
        ip("10.0.0.3")
    );
    // IPv4-mapped peers count as IPv4.
    assert_eq!(
        client_ip(ip("::ffff:10.0.0.1"), xff("1.2.3.4"), &trusted),
        ip("1.2.3.4")
    );
}

proptest! {
    #[test]
    fn forwarded_for_never_panics_and_untrusted_peers_win(header in proptest::collection::vec(any::<u8>(), 0..200), a in any::<u32>()) {
        let trusted = ipset(&["10.0.0.0/8"]);
        let peer = IpAddr::V4(std::net::Ipv4Addr::from(a | 0x0100_0000).to_owned());
        let got = client_ip(peer, vec![&header[..]], &trusted);
        if !trusted.contains(peer) {
            prop_assert_eq!(got, peer);
        }
        let _ = client_ip(ip("10.0.0.1"), vec![&header[..]], &trusted);
    }
}
