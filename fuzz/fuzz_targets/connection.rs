//! Whole pipelined connections to an in-process gateway (the real front, fast path and
//! pingora's path, guard, upstream client) in front of a bot that records
//! every request byte for byte (`http_corpus::RawBot`).
//!
//! The input describes up to six requests, each a valid signed Slack request to one of
//! the routes of `tests/http_corpus` with up to four mutations of its head or framing
//! (the vocabulary of the differential test: chunked bodies, `Expect`, HTTP/1.0,
//! absolute-form targets, duplicate or conflicting lengths, TE+CL, bare LF, obs-fold,
//! `_` twins, `Connection`-named headers, bad signatures, oversized heads and bodies,
//! broken chunks, requests smuggled inside bodies, ...) or a repeat of the one before;
//! they go out back to back on one connection (written in fuzzed pieces), optionally
//! followed by raw bytes, to the default gateway or to one that sends everything to
//! pingora. Nothing may panic (libFuzzer's panic hook aborts on a panic in any gateway
//! thread), and:
//! - the gateway closes the connection once the client closed its side (no hang);
//! - each request the harness can predict, up to the first it cannot (see
//!   `http_corpus::mutate`), gets exactly one answer, in order: a forwarded one the bot's
//!   echo of its body, a refused head 400/431/501 with `Connection: close`; nothing
//!   after a request that ends the connection is answered; when every request is
//!   predicted, there are exactly as many answers as requests (nothing split, merged or
//!   read twice);
//! - every answer is the bot's or the gateway's own (a JSON reason or an empty 200),
//!   never one of pingora's bare error pages, which bypass the audit record;
//! - the bot receives only requests whose body was signed with the app's secret, each
//!   body at most once, with one `Content-Length` equal to the body, no
//!   `Transfer-Encoding`, `Expect`, client `X-Slackgate-*` or `_` twins, and when every
//!   request is predicted, only bodies the client sent as requests of their own.

#![no_main]

#[path = "../../crates/slackgate-proxy/tests/http_corpus/mod.rs"]
mod http_corpus;
#[path = "common/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http_corpus::*;
use libfuzzer_sys::fuzz_target;
use slackgate_slack::SigningKey;
use wire::{answers, exchange, Input, Rig};

#[derive(Debug, Arbitrary)]
struct Step {
    route: u8,
    body: u8,
    /// Indexes into `Mut::ALL`.
    muts: Vec<u8>,
    /// Seeds the mutations' own choices.
    seed: u64,
    /// Send the previous request again instead.
    repeat: bool,
}

fn rig() -> &'static Rig<RawBot> {
    static RIG: OnceLock<Rig<RawBot>> = OnceLock::new();
    Rig::get(&RIG, http_corpus::start)
}

/// Bodies are unique over the whole run, so no signature is ever a replay of an
/// earlier input's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn build(steps: &[Step]) -> Vec<(Req, Fate)> {
    let mut reqs: Vec<(Req, Fate)> = Vec::new();
    for step in steps.iter().take(6) {
        if step.repeat {
            if let Some((prev, fate)) = reqs.last().cloned() {
                // The same signature again: replayed, unless the head is refused first.
                let kind = match fate.kind {
                    Kind::Forward => Kind::Gateway,
                    k => k,
                };
                reqs.push((prev, Fate { kind, ..fate }));
                continue;
            }
        }
        let route = Route::ALL[usize::from(step.route) % Route::ALL.len()];
        let kind = BodyKind::COMMON[usize::from(step.body) % BodyKind::COMMON.len()];
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut req = Req::signed(route, kind, id);
        let fate = mutate(&mut req, &Mut::picked(&step.muts), &mut SplitMix(step.seed));
        reqs.push((req, fate));
    }
    reqs
}

/// The header names (lowercased) and values of a head the bot received.
fn bot_headers(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
        _ => panic!(
            "the bot got a head it cannot parse: {:?}",
            String::from_utf8_lossy(head)
        ),
    }
}

/// The request smuggled as a body, if the body is one: its timestamp, signature and body.
fn inner_request(body: &[u8]) -> Option<(String, String, Vec<u8>)> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut slots);
    let n = match req.parse(body) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let get = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    Some((
        get("x-slack-request-timestamp")?,
        get("x-slack-signature")?,
        body[n..].to_vec(),
    ))
}

fn verifies(ts: &str, sig: &str, body: &[u8]) -> bool {
    let key = SigningKey::new("fuzz", SECRET.as_bytes()).expect("secret");
    ts.parse::<i64>().is_ok_and(|t| (t - NOW).abs() <= 300) && key.sign(ts, body) == sig
}

fuzz_target!(|input: Input<Step>| {
    let (gw, bot) = rig().pick(input.pingora);
    // The audit lines are not needed here; keep memory flat over a long run.
    gw.block_audit().clear();
    bot.take();

    let reqs = build(&input.steps);
    let mut bytes = Vec::new();
    for (r, _) in &reqs {
        bytes.extend_from_slice(&r.to_bytes());
    }
    let trailer = &input.trailer[..input.trailer.len().min(256)];
    bytes.extend_from_slice(trailer);
    // FUZZ_DUMP=1 prints what went out, what the model predicts, and what came back.
    let dump = std::env::var_os("FUZZ_DUMP").is_some();
    if dump {
        let fates: Vec<_> = reqs.iter().map(|(_, f)| f).collect();
        eprintln!("pingora={} fates={fates:?}", input.pingora);
        eprintln!("sent<<{}>>", String::from_utf8_lossy(&bytes));
    }
    let raw = exchange(gw.addr, &bytes, &input.cuts);
    if dump {
        eprintln!("received<<{}>>", String::from_utf8_lossy(&raw));
    }
    let may_head = reqs.iter().any(|(r, _)| r.method == "HEAD");
    let finals = answers(&raw, may_head);
    let at_bot: Vec<(Vec<(String, Vec<u8>)>, Vec<u8>)> = bot
        .take()
        .into_iter()
        .map(|b| (bot_headers(&b.head), b.body))
        .collect();

    // Every answer is the bot's echo or the gateway's own.
    for (i, a) in finals.iter().enumerate() {
        let json: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
        let gateway_json = json.as_ref().is_some_and(|j| j.get("reason").is_some());
        let echo = a.body.starts_with(b"{\"ok\":true,\"len\":");
        let empty_200 = a.status == 200 && a.body.is_empty();
        let challenge = json.as_ref().is_some_and(|j| j.get("challenge").is_some());
        let bot_204 = a.status == 204 && a.header("x-bot").is_some();
        let head_answer = may_head && a.body.is_empty() && a.header("content-length").is_some();
        // What the bot's `Connection` names, and hop-by-hop headers, are not relayed.
        assert!(
            a.header("x-hop").is_none() && a.header("keep-alive").is_none(),
            "answer {i} relays the bot's hop-by-hop headers: {:?}",
            a.headers
        );
        assert!(
            gateway_json || echo || empty_200 || challenge || bot_204 || head_answer,
            "answer {i} is neither the bot's nor the gateway's: {} {:?} {:?}",
            a.status,
            a.headers,
            String::from_utf8_lossy(&a.body)
        );
    }

    // The predicted requests, in order.
    let mut all_known = true;
    let mut next = 0;
    let mut ended = false;
    for (i, (req, fate)) in reqs.iter().enumerate() {
        if fate.kind == Kind::Unknown {
            all_known = false;
            break;
        }
        let a = finals.get(next).unwrap_or_else(|| {
            panic!(
                "request {i} ({fate:?}) got no answer ({} answers)",
                finals.len()
            )
        });
        match fate.kind {
            Kind::Forward => {
                let echo = format!("{{\"ok\":true,\"len\":{}}}", req.body.len());
                let no_content = req.target.ends_with(b"answer=204");
                assert!(
                    if no_content {
                        a.status == 204 && a.body.is_empty()
                    } else if req.method == "HEAD" {
                        a.status == 200 && a.body.is_empty()
                    } else {
                        a.status == 200 && a.body == echo.as_bytes()
                    },
                    "request {i} should have been forwarded, answered {} {:?}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
                assert!(
                    at_bot.iter().any(|(_, body)| *body == req.body),
                    "request {i} answered by the bot but not recorded there"
                );
            }
            Kind::Gateway => {
                assert!(
                    !at_bot.iter().any(|(_, body)| *body == req.body)
                        || reqs[..i]
                            .iter()
                            .any(|(r, f)| r.body == req.body && f.kind == Kind::Forward),
                    "request {i} ({} answered by the gateway) reached the bot",
                    a.status
                );
            }
            Kind::Refuse => {
                assert!(
                    [400, 431, 501].contains(&a.status) && a.header("connection") == Some(b"close"),
                    "request {i}'s head should have been refused, answered {} {:?}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
            }
            Kind::Unknown => unreachable!(),
        }
        next += 1;
        if fate.close || fate.kind == Kind::Refuse {
            assert_eq!(
                finals.len(),
                next,
                "answers after request {i}, which ends the connection"
            );
            ended = true;
            break;
        }
    }
    if all_known && !ended && trailer.is_empty() {
        assert_eq!(finals.len(), reqs.len(), "answers != requests");
    }

    // The bot: only correctly signed bodies, each once, framed by the gateway.
    let mut valid: Vec<Vec<u8>> = Vec::new();
    for (r, _) in &reqs {
        let (ts, sig) = (
            r.values("X-Slack-Request-Timestamp"),
            r.values("X-Slack-Signature"),
        );
        if let ([ts], [sig]) = (ts.as_slice(), sig.as_slice()) {
            if verifies(ts, sig, &r.body) {
                valid.push(r.body.clone());
            }
        }
        if let Some((ts, sig, body)) = inner_request(&r.body) {
            if verifies(&ts, &sig, &body) && !all_known {
                valid.push(body);
            }
        }
    }
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for (headers, body) in &at_bot {
        assert!(
            valid.contains(body),
            "the bot got a body that was not sent signed as a request: {:?}",
            String::from_utf8_lossy(body)
        );
        let n = seen.entry(body).or_default();
        *n += 1;
        assert_eq!(*n, 1, "the bot got one body twice");
        let lengths: Vec<&[u8]> = headers
            .iter()
            .filter(|(k, _)| k == "content-length")
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(
            lengths,
            [body.len().to_string().as_bytes()],
            "forwarded length"
        );
        for (k, _) in headers {
            let dashed = k.replace('_', "-");
            assert!(
                k != "transfer-encoding" && k != "expect" && k != "x-drop",
                "forwarded header {k}"
            );
            assert!(
                !dashed.starts_with("x-slackgate-")
                    || (k == &dashed
                        && [
                            "x-slackgate-route",
                            "x-slackgate-team",
                            "x-slackgate-user",
                            "x-slackgate-secret-id"
                        ]
                        .contains(&k.as_str())),
                "forwarded client header {k}"
            );
        }
        for own in [
            "x-slackgate-route",
            "x-slackgate-user",
            "x-slackgate-secret-id",
        ] {
            assert!(
                headers.iter().filter(|(k, _)| k == own).count() <= 1,
                "{own} twice at the bot"
            );
        }
    }
});
