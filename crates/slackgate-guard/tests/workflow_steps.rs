//! Custom workflow steps in route scope: a `function_executed` event's action is its
//! function's `callback_id` (so `allow.actions` / `deny.actions` choose which steps a route
//! serves); interactivity from a function's context keeps its clicked elements as actions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use slackgate_fixtures::{content_type_for, fixture, MapSecrets, Signer};
use slackgate_guard::{FakeClock, Guard, GuardSettings, Inbound, Reason};
use slackgate_policy::compile_policy;

const AT: u64 = 1_800_000_100;
const KEY: &str = "workflow-steps-secret-0123456789";

/// The reason the guard gives `name` on a route with the scope `scope` (YAML flow map
/// entries after the route's required keys).
fn reason(scope: &str, name: &str) -> Reason {
    let text = format!(
        "version: 1\napps:\n  a: {{ api_app_id: A0HELPDESK, signing_secrets: [{{ id: k, env: K }}] }}\nupstreams:\n  u: {{ targets: [\"127.0.0.1:9\"] }}\nroutes:\n  - {{ name: r, path: /w, app: a, upstream: u, {scope} }}\n"
    );
    let secrets = MapSecrets::new(&[("K", KEY)]);
    let at = UNIX_EPOCH + Duration::from_secs(AT);
    let policy = compile_policy(Path::new("w.yaml"), &text, &secrets, at).unwrap();
    let route = policy.routes.find(None, "/w").unwrap();
    let body = fixture(name);
    let ts = AT.to_string();
    let sig = Signer::new(KEY).sign(&ts, &body);
    let req = Inbound {
        client_ip: "127.0.0.1".parse().unwrap(),
        signature: Some(sig.as_bytes()),
        timestamp: Some(ts.as_bytes()),
        content_type: Some(content_type_for(&body)),
        body: &body,
    };
    let guard = Guard::new(FakeClock::at(AT), 100, 100);
    let settings = GuardSettings {
        max_clock_skew: Duration::from_secs(300),
    };
    guard.decide(route, &req, &settings).reason
}

#[test]
fn a_function_executed_event_s_action_is_its_function() {
    let event = "event_function_executed.json";
    let events = "events: [function_executed]";
    assert_eq!(
        reason(
            &format!("allow: {{ {events}, actions: [\"open_*\"] }}"),
            event
        ),
        Reason::Allowed
    );
    assert_eq!(
        reason(
            &format!("allow: {{ {events}, actions: [\"ticket_*\"] }}"),
            event
        ),
        Reason::ScopeDenied
    );
    assert_eq!(
        reason("deny: { actions: [open_ticket] }", event),
        Reason::ScopeDenied
    );
    // Other events are not touched by `actions`.
    assert_eq!(
        reason(
            "allow: { events: [app_mention], actions: [\"ticket_*\"] }",
            "event_app_mention.json"
        ),
        Reason::Allowed
    );
}

#[test]
fn function_context_interactivity_keeps_its_clicked_actions() {
    let click = "block_actions_function.form";
    assert_eq!(
        reason("allow: { actions: [ticket_approve] }", click),
        Reason::Allowed
    );
    assert_eq!(
        reason("allow: { actions: [open_ticket] }", click),
        Reason::ScopeDenied
    );
}
