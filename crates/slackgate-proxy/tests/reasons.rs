//! One end-to-end test per reason code: status, headers, the audit record, the
//! counter, and whether the bot received anything (denials: not a single byte).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use slackgate_testkit::{now_unix, SignedRequest};

fn assert_denied(rig: &Rig, resp: &slackgate_testkit::Response, status: u16, reason: &str) {
    assert_eq!(
        resp.status,
        status,
        "status for {reason}: {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.reason().as_deref(), Some(reason));
    assert_eq!(
        rig.bot.bytes_received(),
        0,
        "bot must receive nothing for {reason}"
    );
    let audit = rig.gw.audit_nth(1);
    assert_eq!(audit["reason"], reason);
    assert_eq!(audit["status"], status);
}

/// Metrics are recorded after the response is written, so a scrape is polled until
/// the counter reaches `expected` (or the wait gives up and the assertion shows it).
fn assert_counter(rig: &Rig, route: &str, reason: &str, expected: f64) {
    let sample = format!("slackgate_requests_total{{reason=\"{reason}\",route=\"{route}\"}}");
    slackgate_testkit::wait_until(std::time::Duration::from_secs(5), || {
        rig.gw.metric(&sample) >= expected
    });
    assert_eq!(rig.gw.metric(&sample), expected, "{sample}");
}

#[test]
fn allowed_is_forwarded_byte_for_byte_with_gateway_headers() {
    let rig = rig();
    let req = mention("/slack/events").sign(SECRET);
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(resp.status, 200);
    let got = rig.bot.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.body, req.body);
    assert_eq!(r.target, "/slack/events");
    assert_eq!(r.header("x-slack-signature"), req.signature.as_deref());
    assert_eq!(
        r.header("x-slack-request-timestamp"),
        req.timestamp.as_deref()
    );
    assert_eq!(r.header("x-slackgate-route"), Some("helpdesk"));
    assert_eq!(r.header("x-slackgate-team"), Some("T0ACME"));
    assert_eq!(r.header("x-slackgate-user"), Some("U0333"));
    assert_eq!(r.header("x-slackgate-secret-id"), Some("current"));
    let a = rig.gw.audit_nth(1);
    assert_eq!(a["reason"], "allowed");
    assert_eq!(a["route"], "helpdesk");
    assert_eq!(a["app"], "helpdesk");
    assert_eq!(a["secret_id"], "current");
    assert_eq!(a["kind"], "event_callback");
    assert_eq!(a["event_type"], "app_mention");
    assert_eq!(a["team_id"], "T0ACME");
    assert_eq!(a["user_id"], "U0333");
    assert_eq!(a["channel_id"], "C0HELP");
    assert_eq!(a["event_id"], "Ev0APPMENTION1");
    assert_eq!(a["upstream"], "bot");
    assert_eq!(a["upstream_status"], 200);
    assert_eq!(a["shadow"], false);
    assert_counter(&rig, "helpdesk", "allowed", 1.0);
    assert_eq!(
        rig.gw
            .metric("slackgate_secret_matches_total{app=\"helpdesk\",secret_id=\"current\"}"),
        1.0
    );
}

#[test]
fn client_supplied_gateway_headers_are_replaced() {
    let rig = rig();
    let req = mention("/slack/events")
        .sign(SECRET)
        .header("X-Slackgate-User", "U0ADMIN")
        .header("X-Slackgate-Secret-Id", "forged");
    assert_eq!(rig.gw.client().send(&req).unwrap().status, 200);
    let r = &rig.bot.requests()[0];
    let users: Vec<_> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "x-slackgate-user")
        .collect();
    assert_eq!(users.len(), 1);
    assert_eq!(r.header("x-slackgate-user"), Some("U0333"));
    assert_eq!(r.header("x-slackgate-secret-id"), Some("current"));
}

#[test]
fn previous_secret_still_verifies_and_is_recorded() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/events").sign(OLD_SECRET))
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        rig.bot.requests()[0].header("x-slackgate-secret-id"),
        Some("previous")
    );
    assert_eq!(rig.gw.audit_nth(1)["secret_id"], "previous");
}

#[test]
fn no_route() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/nope").sign(SECRET))
        .unwrap();
    assert_denied(&rig, &resp, 404, "no_route");
    assert_counter(&rig, "", "no_route", 1.0);
}

#[test]
fn ip_denied() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/office").sign(SECRET))
        .unwrap();
    assert_denied(&rig, &resp, 403, "ip_denied");
    assert_eq!(rig.gw.audit_nth(1)["client_ip"], "127.0.0.1");
    assert_counter(&rig, "office-only", "ip_denied", 1.0);
}

#[test]
fn body_too_large_by_content_length() {
    let rig = rig();
    let req = SignedRequest::new("/slack/events", mention_of_size(1024 * 1024 + 1)).sign(SECRET);
    let resp = rig.gw.client().send(&req).unwrap();
    assert_denied(&rig, &resp, 413, "body_too_large");
    assert_counter(&rig, "helpdesk", "body_too_large", 1.0);
}

#[test]
fn body_too_large_when_chunked() {
    let rig = rig();
    let chunk = vec![b'a'; 600 * 1024];
    let mut raw =
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let resp = rig.gw.client().raw(&raw).unwrap();
    assert_denied(&rig, &resp, 413, "body_too_large");
}

#[test]
fn body_timeout() {
    let rig = rig();
    let mut s = std::net::TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let resp = slackgate_testkit::client::read_response(&mut &buf[..]).unwrap();
    assert_denied(&rig, &resp, 408, "body_timeout");
}

#[test]
fn ssl_check_is_answered_by_the_gateway() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&SignedRequest::fixture("/slack/events", "ssl_check.form"))
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(rig.bot.bytes_received(), 0);
    assert_eq!(rig.gw.audit_nth(1)["reason"], "ssl_check");
    assert_counter(&rig, "helpdesk", "ssl_check", 1.0);
}

#[test]
fn missing_signature() {
    let rig = rig();
    let resp = rig.gw.client().send(&mention("/slack/events")).unwrap();
    assert_denied(&rig, &resp, 401, "missing_signature");
    // Only the timestamp present: still missing.
    let mut req = mention("/slack/events").sign(SECRET);
    req.signature = None;
    assert_eq!(
        rig.gw.client().send(&req).unwrap().reason().as_deref(),
        Some("missing_signature")
    );
    assert_counter(&rig, "helpdesk", "missing_signature", 2.0);
}

#[test]
fn bad_signature() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/events").sign("wrong-secret"))
        .unwrap();
    assert_denied(&rig, &resp, 401, "bad_signature");
    let mut req = mention("/slack/events").sign(SECRET);
    req.body.push(b' ');
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(resp.reason().as_deref(), Some("bad_signature"));
    assert_eq!(rig.bot.bytes_received(), 0);
}

#[test]
fn stale_timestamp_both_directions() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/events").sign_at(SECRET, now_unix() - 301 - 5))
        .unwrap();
    assert_denied(&rig, &resp, 401, "stale_timestamp");
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/events").sign_at(SECRET, now_unix() + 400))
        .unwrap();
    assert_eq!(resp.reason().as_deref(), Some("stale_timestamp"));
    assert_eq!(rig.bot.bytes_received(), 0);
}

#[test]
fn replayed() {
    let rig = rig();
    let req = mention("/slack/open").sign(SECRET);
    assert_eq!(rig.gw.client().send(&req).unwrap().status, 200);
    rig.bot.clear();
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(resp.reason().as_deref(), Some("replayed"));
    assert_eq!(rig.bot.bytes_received(), 0);
    assert_eq!(rig.gw.audit_nth(2)["reason"], "replayed");
    assert_counter(&rig, "open", "replayed", 1.0);
}

#[test]
fn malformed_payload() {
    let rig = rig();
    let req =
        SignedRequest::new("/slack/events", &b"{\"type\": \"event_callback\", "[..]).sign(SECRET);
    let resp = rig.gw.client().send(&req).unwrap();
    assert_denied(&rig, &resp, 400, "malformed_payload");
    let req = SignedRequest::new("/slack/events", &b"payload=not-json"[..]).sign(SECRET);
    assert_eq!(
        rig.gw.client().send(&req).unwrap().reason().as_deref(),
        Some("malformed_payload")
    );
}

#[test]
fn url_verification_is_answered_with_the_challenge() {
    let rig = rig();
    let req = SignedRequest::fixture("/slack/events", "url_verification.json").sign(SECRET);
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert_eq!(rig.bot.bytes_received(), 0);
    assert_eq!(rig.gw.audit_nth(1)["reason"], "url_verification");
}

#[test]
fn app_mismatch() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/pinned").sign(SECRET))
        .unwrap();
    assert_denied(&rig, &resp, 403, "app_mismatch");
    assert_eq!(rig.gw.audit_nth(1)["rule"], "app.api_app_id");
}

#[test]
fn scope_denied_reject_and_ack() {
    let rig = rig();
    let body = String::from_utf8(slackgate_testkit::fixture("event_app_mention.json"))
        .unwrap()
        .replace("U0333", "U0BAD");
    let resp = rig
        .gw
        .client()
        .send(&SignedRequest::new("/slack/events", body).sign(SECRET))
        .unwrap();
    assert_denied(&rig, &resp, 403, "scope_denied");
    assert_eq!(rig.gw.audit_nth(1)["rule"], "deny.users");

    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/ack").sign(SECRET))
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-slack-no-retry"), Some("1"));
    assert_eq!(rig.bot.bytes_received(), 0);
    let a = rig.gw.audit_nth(2);
    assert_eq!(a["reason"], "scope_denied");
    assert_eq!(a["status"], 200);
    assert_eq!(a["rule"], "allow.teams");
}

#[test]
fn command_and_block_actions_pass_scope() {
    let rig = rig();
    let c = SignedRequest::fixture("/slack/events", "command_ticket.form").sign(SECRET);
    assert_eq!(rig.gw.client().send(&c).unwrap().status, 200);
    let b = SignedRequest::fixture("/slack/events", "block_actions.form").sign(SECRET);
    assert_eq!(rig.gw.client().send(&b).unwrap().status, 200);
    assert_eq!(rig.bot.requests().len(), 2);
    assert_eq!(rig.gw.audit_nth(1)["command"], "/ticket");
}

#[test]
fn rate_limited() {
    let rig = rig();
    for i in 0..3 {
        let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
            .unwrap()
            .replace("Ev0MESSAGE01", &format!("Ev0MSG{i}"));
        let r = rig
            .gw
            .client()
            .send(&SignedRequest::new("/slack/events", body).sign(SECRET))
            .unwrap();
        assert_eq!(r.status, 200);
    }
    rig.bot.clear();
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json")).unwrap();
    let resp = rig
        .gw
        .client()
        .send(&SignedRequest::new("/slack/events", body).sign(SECRET))
        .unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.reason().as_deref(), Some("rate_limited"));
    assert_eq!(resp.header("x-slack-no-retry"), Some("1"));
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(rig.bot.bytes_received(), 0);
    // The allowed requests' records are written once their answers are relayed, so the
    // refusal's may come before the third's: the one refusal among the four records.
    let lines = rig.gw.audit_lines(4);
    let refused: Vec<_> = lines.iter().filter(|a| a["reason"] != "allowed").collect();
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert_eq!(refused[0]["reason"], "rate_limited");
    assert!(refused[0]["rule"].as_str().unwrap().contains("user"));
    assert_counter(&rig, "helpdesk", "rate_limited", 1.0);
}

#[test]
fn shadow_route_forwards_would_be_denials() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/shadow").sign(SECRET))
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(rig.bot.requests().len(), 1);
    let a = rig.gw.audit_nth(1);
    assert_eq!(a["shadow"], true);
    assert_eq!(a["reason"], "scope_denied");
    // Signatures are never shadowed without allow_unverified_shadow.
    rig.bot.clear();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/shadow").sign("wrong"))
        .unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(rig.bot.bytes_received(), 0);
}

#[test]
fn upstream_error() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/dead").sign(SECRET))
        .unwrap();
    assert_eq!(resp.status, 502);
    assert_eq!(resp.reason().as_deref(), Some("upstream_error"));
    assert_eq!(rig.gw.audit_nth(1)["reason"], "upstream_error");
    assert_counter(&rig, "dead", "upstream_error", 1.0);
}

#[test]
fn upstream_timeout() {
    let rig = rig();
    let resp = rig
        .gw
        .client()
        .send(&mention("/slack/slow").sign(SECRET))
        .unwrap();
    assert_eq!(resp.status, 504);
    assert_eq!(resp.reason().as_deref(), Some("upstream_timeout"));
    assert_eq!(rig.slow.requests().len(), 1);
    assert_eq!(rig.gw.audit_nth(1)["reason"], "upstream_timeout");
    assert_counter(&rig, "slow", "upstream_timeout", 1.0);
}

#[test]
fn lifecycle_events_are_flagged_and_counted() {
    let rig = rig();
    let req = SignedRequest::fixture("/slack/open", "event_app_uninstalled.json").sign(SECRET);
    assert_eq!(rig.gw.client().send(&req).unwrap().status, 200);
    let a = rig.gw.audit_nth(1);
    assert_eq!(a["lifecycle"], true);
    assert_eq!(
        rig.gw
            .metric("slackgate_lifecycle_events_total{type=\"app_uninstalled\"}"),
        1.0
    );
}

/// Lifecycle requests carry no user and no channel, so a route's `users` and `channels` do
/// not apply to them; its `teams` still do, and a request that could carry a user but does
/// not is still denied.
#[test]
fn lifecycle_events_reach_a_bot_whose_route_restricts_users_and_channels() {
    let rig = rig();
    let mut n = 0;
    for (i, fixture) in ["event_app_uninstalled.json", "event_tokens_revoked.json"]
        .into_iter()
        .enumerate()
    {
        let req = SignedRequest::fixture("/slack/identity", fixture).sign(SECRET);
        let resp = rig.gw.client().send(&req).unwrap();
        assert_eq!(resp.status, 200, "{fixture}");
        let got = rig.bot.requests();
        assert_eq!(got.len(), i + 1, "{fixture} reached the bot");
        assert_eq!(got[i].body, req.body, "{fixture} byte for byte");
        n += 1;
        let a = rig.gw.audit_nth(n);
        assert_eq!(a["reason"], "allowed", "{fixture}: {a}");
        assert_eq!(a["rule"], serde_json::Value::Null, "{fixture}");
        assert_eq!(a["lifecycle"], true, "{fixture}");
        assert_eq!(a["route"], "identity");
    }
    assert_counter(&rig, "identity", "allowed", 2.0);

    // Sends `body` to the route and returns its audit record, which must be a 403 denial.
    let denied = |n: usize, body: String| {
        let resp = rig
            .gw
            .client()
            .send(&SignedRequest::new("/slack/identity", body).sign(SECRET))
            .unwrap();
        assert_eq!(resp.status, 403);
        assert_eq!(resp.reason().as_deref(), Some("scope_denied"));
        let a = rig.gw.audit_nth(n);
        assert_eq!(a["reason"], "scope_denied");
        a
    };
    let before = rig.bot.bytes_received();

    // From a team the route does not allow: still denied.
    let other = String::from_utf8(slackgate_testkit::fixture("event_app_uninstalled.json"))
        .unwrap()
        .replace("T0ACME", "T0OTHER");
    let a = denied(n + 1, other);
    assert_eq!(a["rule"], "allow.teams");
    assert_eq!(a["lifecycle"], true);

    // A message without a user (posted by a bot) can carry one, so it still fails closed.
    let bot_message = r#"{"type":"event_callback","team_id":"T0ACME","api_app_id":"A0HELPDESK","event_id":"Ev0BOTMSG","event":{"type":"message","subtype":"bot_message","bot_id":"B0BOT","channel":"C0HELP","text":"done"}}"#;
    let a = denied(n + 2, bot_message.to_owned());
    assert_eq!(a["rule"], "allow.users");
    assert_eq!(a.get("lifecycle"), None);
    assert_eq!(rig.bot.bytes_received(), before, "denials reach no bot");
    assert_eq!(
        rig.gw
            .metric("slackgate_lifecycle_events_total{type=\"tokens_revoked\"}"),
        1.0
    );
}
