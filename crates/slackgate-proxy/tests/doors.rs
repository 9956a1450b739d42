//! Both doors, one standard: the egress listener behind the same connection front as the
//! inbound one, tried over raw sockets as an attacker would (a pod that can reach the
//! egress listener with no key at all). Slow heads, floods of connections, bodies written
//! whole before the answer is read, and what Slack (the stand-in) receives. Each test
//! asserts what the stand-in did NOT receive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{mention, policy, SECRET};
use slackgate_testkit::client::read_response;
use slackgate_testkit::creds::{HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN};
use slackgate_testkit::{
    wait_until, BotBehavior, MockBot, Response, SlackApi, TestGateway, TestGatewayBuilder,
};

const PATHS: [bool; 2] = [true, false];

const BOTS: &str = r#"bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    methods: [chat.postMessage, auth.test]
"#;

struct Doors {
    gw: TestGateway,
    slack: SlackApi,
    bot: MockBot,
    _slow: MockBot,
}

/// A gateway with the inbound routes of `common` and one bot behind the egress door;
/// `limits` are more `limits` keys (`, key: value`).
fn doors(fast: bool, limits: &str) -> Doors {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write"])
        .start();
    let bot = MockBot::start();
    let slow = MockBot::with(BotBehavior::Delay(Duration::from_secs(3)));
    let policy = format!("{}{BOTS}", policy(&bot, &slow));
    let gw = TestGatewayBuilder::new(&policy)
        .secret("HELPDESK_SECRET", SECRET)
        .secret("HELPDESK_SECRET_OLD", SECRET)
        .secret("HELPDESK_GATEWAY_KEY", KEY)
        .secret("HELPDESK_BOT_TOKEN", TOKEN)
        .egress(&slack.url(), Some(slack.ca_file()))
        .fast_path(fast)
        .config(&format!(
            "limits: {{ upstream_timeout: 2s, body_read_timeout: 2s{limits} }}"
        ))
        .start();
    Doors {
        gw,
        slack,
        bot,
        _slow: slow,
    }
}

fn egress_addr(d: &Doors) -> SocketAddr {
    d.gw.egress_addr.expect("egress is configured")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A `chat.postMessage` with the bot's key, as raw HTTP; `keep` leaves the connection open.
fn post_message(channel: &str, keep: bool) -> Vec<u8> {
    let body = format!("{{\"channel\":\"{channel}\",\"text\":\"hi\"}}");
    format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: slackgate\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json; charset=utf-8\r\n{}Content-Length: {}\r\n\r\n{body}",
        if keep { "" } else { "Connection: close\r\n" },
        body.len()
    )
    .into_bytes()
}

/// Writes `bytes`, reads one answer.
fn exchange(s: &mut TcpStream, bytes: &[u8]) -> Response {
    s.write_all(bytes).unwrap();
    read_response(&mut BufReader::new(s)).expect("an answer")
}

// === Slow heads: the whole-head deadline holds on the egress listener too ===

#[test]
fn a_dribbled_head_on_the_egress_listener_is_cut_off_at_the_deadline() {
    for fast in PATHS {
        let d = doors(fast, ", head_read_timeout: 1s");
        let mut s = connect(egress_addr(&d));
        let started = Instant::now();
        s.write_all(b"POST /api/chat.postMessage HTTP/1.1\r\n")
            .unwrap();
        // One header line every 100 ms: a per-read timer would never fire.
        for i in 0..40 {
            if s.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes())
                .is_err()
                || started.elapsed() > Duration::from_millis(1500)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = read_response(&mut BufReader::new(s)).expect("an answer");
        assert_eq!(
            (r.status, r.reason().as_deref()),
            (408, Some("head_timeout"))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let a = d.gw.audit_nth(1);
        assert_eq!(a["direction"], "egress", "{a}");
        assert_eq!(a["reason"], "malformed_call", "{a}");
        assert_eq!(a["rule"], "head_timeout", "{a}");
        assert_eq!(a["status"], 408, "{a}");
        assert_eq!(d.slack.count(), 0, "nothing reaches Slack");
    }
}

#[test]
fn an_oversized_or_broken_head_on_the_egress_listener_is_refused_by_the_same_judge() {
    let d = doors(true, ", max_head_bytes: 2048");
    let big = format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(4096)
    );
    let r = exchange(&mut connect(egress_addr(&d)), big.as_bytes());
    assert_eq!(
        (r.status, r.reason().as_deref()),
        (431, Some("head_too_large"))
    );
    let r = exchange(
        &mut connect(egress_addr(&d)),
        b"POST /api/auth.test HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_eq!(
        (r.status, r.reason().as_deref()),
        (400, Some("bad_request"))
    );
    let records = d.gw.audit_lines(2);
    assert_eq!(records[0]["rule"], "head_too_large");
    assert_eq!(records[1]["rule"], "bad_request");
    assert!(records.iter().all(|r| r["reason"] == "malformed_call"));
    assert_eq!(d.slack.count(), 0, "nothing reaches Slack");
}

// === A flood on one listener leaves every other one serving ===

#[test]
fn a_flood_on_the_egress_listener_leaves_the_other_listeners_and_a_pooled_bot_serving() {
    const CAP: usize = 16;
    const FLOOD: usize = 64;
    let d = doors(
        true,
        &format!(", max_connections: {CAP}, head_read_timeout: 5s"),
    );
    let egress = egress_addr(&d);
    // A bot's pooled keep-alive connection, open before the flood.
    let mut pooled = connect(egress);
    let r = exchange(&mut pooled, &post_message("C0HELP", true));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Slow clients: one byte of a head each, then nothing.
    let flood: Vec<TcpStream> = (0..FLOOD)
        .filter_map(|_| {
            let mut s = TcpStream::connect(egress).ok()?;
            let _ = s.write_all(b"P");
            Some(s)
        })
        .collect();
    let refused = (FLOOD + 1 - CAP) as f64;
    let sample = "slackgate_connections_refused_total{listener=\"egress\"}";
    assert!(
        wait_until(Duration::from_secs(10), || d.gw.metric(sample) >= refused),
        "refused {} of {FLOOD}",
        d.gw.metric(sample)
    );

    // The admin listener, the inbound door and the pooled bot are served meanwhile.
    let health = d.gw.admin_client().get("/healthz").unwrap();
    assert_eq!(health.status, 200);
    let inbound =
        d.gw.client()
            .send(&mention("/slack/open").sign(SECRET))
            .unwrap();
    assert_eq!(
        inbound.status,
        200,
        "{}",
        String::from_utf8_lossy(&inbound.body)
    );
    assert_eq!(d.bot.requests().len(), 1);
    let r = exchange(&mut pooled, &post_message("C0OPS", true));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        d.slack.count(),
        2,
        "the pooled bot's two calls, nothing else"
    );
    assert_eq!(
        d.gw.metric("slackgate_connections_refused_total{listener=\"inbound\"}"),
        0.0
    );

    // Once the flood is gone, new connections are served again.
    drop(flood);
    assert!(
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(egress)
                .ok()
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    s.write_all(&post_message("C0HELP", false)).ok()?;
                    read_response(&mut BufReader::new(s)).ok()
                })
                .is_some_and(|r| r.status == 200)
        }),
        "a new connection after the flood"
    );
}

// === A client that writes its whole body before reading gets the answer ===

/// Writes a head declaring `len` bytes and all of them (like Python's http.client),
/// then reads the answer. `Err`: the write or the read failed (a reset).
fn write_then_read(addr: SocketAddr, head: &str, len: usize) -> std::io::Result<Response> {
    let mut s = connect(addr);
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{head}Content-Length: {len}\r\n\r\n").as_bytes())?;
    // The body follows as a client's uploads do, over a while: the gateway has answered
    // and closed its side before most of it arrives. (Pacing, not waiting for readiness.)
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(&vec![b'a'; len])?;
    s.flush()?;
    let r = read_response(&mut BufReader::new(&mut s))?;
    // Then the gateway closes: the client reads the end, not a reset.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    Ok(r)
}

#[test]
fn a_body_over_the_limit_written_whole_still_gets_its_answer_on_both_doors() {
    const MAX: usize = 1024 * 1024;
    for fast in PATHS {
        let d = doors(fast, "");
        let inbound = write_then_read(
            d.gw.addr,
            "POST /slack/open HTTP/1.1\r\nHost: x\r\n",
            MAX + 1,
        )
        .unwrap_or_else(|e| panic!("inbound (fast path {fast}): {e}"));
        assert_eq!(
            (inbound.status, inbound.reason().as_deref()),
            (413, Some("body_too_large"))
        );
        let egress = write_then_read(
            egress_addr(&d),
            &format!(
                "POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n"
            ),
            MAX + 1,
        )
        .unwrap_or_else(|e| panic!("egress (fast path {fast}): {e}"));
        assert_eq!(egress.status, 200);
        assert_eq!(egress.json()["error"], "malformed_call");
        let records = d.gw.audit_lines(2);
        assert_eq!(records[0]["reason"], "body_too_large");
        assert_eq!(records[1]["reason"], "malformed_call");
        assert_eq!(records[1]["rule"], "body over limits.max_body_bytes");
        assert!(d.bot.requests().is_empty(), "nothing reaches the bot");
        assert_eq!(d.slack.count(), 0, "nothing reaches Slack");
    }
}

// === Slack receives the Content-Type the gateway read the body as ===

#[test]
fn slack_receives_the_content_type_the_body_was_read_as() {
    for fast in PATHS {
        let d = doors(fast, "");
        let json = r#"{"channel":"C0HELP","text":"hi"}"#;
        let form = "channel=C0HELP&text=hi";
        let cases: [(Option<&[u8]>, &str, &str); 4] = [
            // Parameters the gateway ignores, and a byte a strict reader refuses.
            (
                Some("application/json; charset=utf-8; x=\u{e9}".as_bytes()),
                json,
                "application/json; charset=utf-8",
            ),
            (
                Some(b"APPLICATION/JSON"),
                json,
                "application/json; charset=utf-8",
            ),
            // No Content-Type: read as a form, as Slack does; said so.
            (None, form, "application/x-www-form-urlencoded"),
            (
                Some(b"application/x-www-form-urlencoded; charset=latin1"),
                form,
                "application/x-www-form-urlencoded",
            ),
        ];
        for (sent, body, expected) in cases {
            let mut req = format!(
                "POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            )
            .into_bytes();
            if let Some(ct) = sent {
                req.extend_from_slice(b"Content-Type: ");
                req.extend_from_slice(ct);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(
                format!(
                    "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            let r = exchange(&mut connect(egress_addr(&d)), &req);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let got = d.slack.take();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].header("content-type"), Some(expected));
            assert_eq!(got[0].arg("channel").as_deref(), Some("C0HELP"));
        }
    }
}

// === pingora's path of the egress door: the same pipeline ===

#[test]
fn chunked_and_continue_calls_run_the_same_pipeline() {
    let d = doors(true, "");
    let body = r#"{"channel":"C0HELP","text":"hi"}"#;
    let chunked = format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let r = exchange(&mut connect(egress_addr(&d)), chunked.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = d.slack.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body.as_bytes());
    assert!(!got[0].chunked, "the gateway frames what it sends itself");

    // Expect: 100-continue: the interim answer, then the call's.
    let mut s = connect(egress_addr(&d));
    s.write_all(
        format!(
            "POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let interim = read_response(&mut reader).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(body.as_bytes()).unwrap();
    let r = read_response(&mut reader).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(d.slack.take().len(), 1);
    let records = d.gw.audit_lines(2);
    assert!(records
        .iter()
        .all(|r| r["reason"] == "allowed" && r["method"] == "chat.postMessage"));
}
