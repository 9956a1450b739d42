//! A Socket Mode envelope (`Guard::admit_socket`): no `source_ips`, no signature, no replay
//! check, secret id `socket`; every other stage as for a signed request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use slackgate_fixtures::{fixture, MapSecrets};
use slackgate_guard::{Action, FakeClock, Guard, GuardSettings, Inbound, Reason, SOCKET_SECRET_ID};
use slackgate_policy::{compile_policy, Policy};

const NOW: u64 = 1_800_000_000;

fn policy() -> Policy {
    let text = r#"version: 1
apps:
  app:
    api_app_id: A0HELPDESK
    signing_secrets: [{ id: current, env: S1 }]
upstreams:
  bot: { targets: ["127.0.0.1:3000"] }
routes:
  - name: events
    path: /events
    app: app
    upstream: bot
    source_ips: { allow: [192.0.2.0/24] }
    dedupe: event_id
  - name: narrow
    path: /narrow
    app: app
    upstream: bot
    allow: { events: [reaction_added] }
"#;
    let env = MapSecrets::new(&[("S1", "guard-socket-test-secret-0123")]);
    compile_policy(
        Path::new("p.yaml"),
        text,
        &env,
        UNIX_EPOCH + Duration::from_secs(NOW),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

const SETTINGS: GuardSettings = GuardSettings {
    max_clock_skew: Duration::from_secs(300),
};

fn unsigned(body: &[u8]) -> Inbound<'_> {
    Inbound {
        client_ip: "0.0.0.0".parse().unwrap(),
        signature: None,
        timestamp: None,
        content_type: Some("application/json"),
        body,
    }
}

#[test]
fn an_envelope_skips_only_the_source_and_signature_checks() {
    let p = policy();
    let guard = Guard::new(Arc::new(FakeClock::at(NOW)), 1000, 1000);
    let events = p.routes.find(None, "/events").unwrap();
    let body = fixture("event_app_mention.json");
    let ip = "0.0.0.0".parse().unwrap();

    // Over HTTP the same request is refused at step 2 and, admitted, at step 5.
    assert!(guard.admit(events, ip).is_err());

    let d = guard.decide_admitted(guard.admit_socket(ip), events, &unsigned(&body), &SETTINGS);
    assert_eq!(d.action, Action::Forward);
    assert_eq!(d.secret_id.as_deref(), Some(SOCKET_SECRET_ID));
    assert!(d.mark_delivered, "dedupe: event_id still runs");

    // No replay check: the same body again is not `replayed` (envelopes are deduped by
    // envelope_id, and events by event_id once delivered).
    let again = guard.decide_admitted(guard.admit_socket(ip), events, &unsigned(&body), &SETTINGS);
    assert_eq!(again.action, Action::Forward);

    // The scope stage still decides.
    let narrow = p.routes.find(None, "/narrow").unwrap();
    let d = guard.decide_admitted(guard.admit_socket(ip), narrow, &unsigned(&body), &SETTINGS);
    assert_eq!((d.action, d.reason), (Action::Respond, Reason::ScopeDenied));
    assert_eq!(d.secret_id.as_deref(), Some(SOCKET_SECRET_ID));

    // And an HTTP request without a signature is still refused.
    let admitted = guard
        .admit(p.routes.find(None, "/narrow").unwrap(), ip)
        .unwrap();
    let d = guard.decide_admitted(admitted, narrow, &unsigned(&body), &SETTINGS);
    assert_eq!(d.action, Action::Respond);
    assert_eq!(d.reason, Reason::MissingSignature);
}
