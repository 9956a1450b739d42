//! Whole pipelined connections to the egress listener of an in-process gateway (the real
//! front, fast path and pingora's path, the egress decision and the Slack client) in
//! front of the testkit's Slack Web API stand-in (plain HTTP), which records every call
//! it receives.
//!
//! The input describes up to six Web API calls, each `chat.postMessage`, `auth.test` or
//! a method the bot may not call, with a JSON or form body, and the bot's gateway key in
//! `Authorization: Bearer`, in a `token` argument of the body, in both, in the query
//! string, wrong, or absent; some bodies sit at or just over `limits.max_body_bytes`,
//! some are a whole call of another bot (its key in its head) smuggled as the body.
//! Each call takes up to four mutations of its head or framing from the inbound
//! `connection` target's vocabulary (`http_corpus::Mut`: chunked bodies, `Expect`,
//! HTTP/1.0, absolute-form targets, conflicting lengths, TE+CL, bare LF, obs-fold,
//! `Connection`-named headers, oversized heads and bodies, broken chunks, ...) or is a
//! repeat of the one before; they go out back to back on one connection (written in
//! fuzzed pieces), optionally followed by raw bytes, to a gateway with the fast path or
//! to one that hands every call to pingora. Nothing may panic, and:
//! - the gateway closes the connection once the client closed its side (no hang);
//! - each call the harness can predict (`predict`), up to the first it cannot, gets
//!   exactly one answer, in order: an allowed call Slack's answer relayed, a refused
//!   one the gateway's `{"ok":false,"error":REASON}` with `X-Slackgate-Reason: REASON`
//!   (the predicted reason where it is known), a refused head 400/431/501 with
//!   `Connection: close`; nothing is answered after a call that ends the connection;
//!   when every call is predicted, there are exactly as many answers as calls;
//! - every answer is Slack's relayed (JSON with `ok`, no `X-Slackgate-Reason`), the
//!   gateway's own, or a refused head's JSON, never one of pingora's bare error pages;
//!   no answer holds a gateway key or a real token;
//! - Slack receives only calls that carried a valid key, each with one
//!   `Authorization: Bearer <that bot's real token>`, never a gateway key in its head
//!   (query included) nor in a body the client did not send as a call body, one
//!   `Content-Length` equal to its body, no `Transfer-Encoding`; each call body arrives
//!   at most as often as it was sent; and when every call is predicted, only the bodies
//!   (less their `token` argument) of calls sent on their own, never a smuggled one.

#![no_main]

#[path = "../../crates/slackgate-proxy/tests/http_corpus/mod.rs"]
mod http_corpus;
#[path = "common/wire.rs"]
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http_corpus::{apply_ordered, Class, Kind, Mut, Req, SplitMix, CONFIG, MAX_BODY};
use libfuzzer_sys::fuzz_target;
use slackgate_slack::{strip_body_token, CallEncoding};
use slackgate_testkit::{policy, Received, SlackApi, TestGateway, TestGatewayBuilder};
use wire::{answers, exchange, Answer, Input, Rig};

/// The gateway key and token of the bot whose calls the input makes (`helpdesk`), and
/// the other bot's (`reporter`): only ever inside a smuggled call.
use slackgate_testkit::creds::{
    HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, REPORTER_KEY as KEY2, REPORTER_TOKEN as TOKEN2,
};
const WRONG: &str = "gk_nobody_00000000000000000000000";

#[derive(Debug, Arbitrary)]
struct Step {
    /// `chat.postMessage`, `auth.test`, or a method the bot may not call.
    method: u8,
    json: bool,
    /// Where the key goes (`Key::ALL`).
    key: u8,
    /// Mostly small; sometimes exactly `MAX_BODY`, or just over it.
    size: u8,
    /// The body is a whole call of the other bot instead.
    smuggle: bool,
    /// Indexes into `Mut::ALL`.
    muts: Vec<u8>,
    /// Seeds the mutations' own choices.
    seed: u64,
    /// Send the previous call again instead.
    repeat: bool,
}

/// Where a call carries the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Header,
    /// `bearer` in lower case (the scheme is case-insensitive).
    HeaderLower,
    Body,
    HeaderAndBody,
    /// A key no bot has, in the header.
    Wrong,
    /// A key no bot has, in the body.
    WrongBody,
    None,
    /// In the header, and a `token` in the query string.
    Query,
    /// The key in the header, another in the body.
    Differ,
}

impl Key {
    const ALL: [Key; 9] = [
        Key::Header,
        Key::HeaderLower,
        Key::Body,
        Key::HeaderAndBody,
        Key::Wrong,
        Key::WrongBody,
        Key::None,
        Key::Query,
        Key::Differ,
    ];

    fn header(self) -> Option<String> {
        match self {
            Key::Header | Key::HeaderAndBody | Key::Query | Key::Differ => {
                Some(format!("Bearer {KEY}"))
            }
            Key::HeaderLower => Some(format!("bearer {KEY}")),
            Key::Wrong => Some(format!("Bearer {WRONG}")),
            Key::Body | Key::WrongBody | Key::None => None,
        }
    }

    fn body(self) -> Option<&'static str> {
        match self {
            Key::Body | Key::HeaderAndBody => Some(KEY),
            Key::WrongBody | Key::Differ => Some(WRONG),
            _ => None,
        }
    }
}

/// What must become of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Sent to Slack, its answer relayed.
    Forward,
    /// Answered by the gateway itself, with this reason when it is known.
    Gateway(Option<&'static str>),
    /// One answer, Slack's or the gateway's (the decision is not predicted).
    Either,
    /// The head is refused (400, 431 or 501) and the connection closed.
    Refuse,
    /// Not predicted: nor is anything after it.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    No,
    Yes,
    /// Not predicted: the call is checked, nothing after it.
    Maybe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fate {
    expect: Expect,
    close: Close,
}

impl Fate {
    const REFUSE: Fate = Fate {
        expect: Expect::Refuse,
        close: Close::Yes,
    };
    const UNKNOWN: Fate = Fate {
        expect: Expect::Unknown,
        close: Close::Maybe,
    };

    fn with(self, expect: Expect) -> Fate {
        Fate { expect, ..self }
    }

    fn closing(self, close: Close) -> Fate {
        let close = match (self.close, close) {
            (Close::Yes, _) | (_, Close::Yes) => Close::Yes,
            (Close::Maybe, _) | (_, Close::Maybe) => Close::Maybe,
            _ => Close::No,
        };
        Fate { close, ..self }
    }
}

/// One call as sent, with what the harness needs to judge what became of it.
#[derive(Debug, Clone)]
struct Call {
    req: Req,
    fate: Fate,
    /// The whole call smuggled in its body, if any: its own body.
    inner: Option<Vec<u8>>,
}

fn start(fast_path: bool) -> (TestGateway, SlackApi) {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write"])
        .token(TOKEN2, "T0ACME", &["chat:write"])
        .plain()
        .start();
    let policy = format!(
        "{}    methods: [chat.postMessage, auth.test]\n{}    methods: [chat.postMessage]\n",
        policy::bots_from("helpdesk"),
        policy::bot("reporter")
    );
    let gw = TestGatewayBuilder::new(&policy)
        .bot("helpdesk", KEY, TOKEN)
        .bot("reporter", KEY2, TOKEN2)
        .config(CONFIG)
        // The hooks client is built at start even when unused; the stand-in's CA keeps
        // it from depending on the machine's roots.
        .egress(&slack.url(), Some(slack.ca_file()))
        .fast_path(fast_path)
        .start();
    (gw, slack)
}

fn rig() -> &'static Rig<SlackApi> {
    static RIG: OnceLock<Rig<SlackApi>> = OnceLock::new();
    Rig::get(&RIG, start)
}

/// Bodies are unique over the whole run, so that each call's body names it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A call's body: its arguments (a unique `text` or `n`), the key as `token` when
/// given, padded to `size` bytes with an argument the stand-in does not keep.
fn call_body(
    method: &str,
    json: bool,
    token: Option<&str>,
    id: u64,
    size: Option<usize>,
) -> Vec<u8> {
    let mut args: Vec<(&str, String)> = Vec::new();
    if let Some(t) = token {
        args.push(("token", t.to_owned()));
    }
    if method == "auth.test" {
        args.push(("n", id.to_string()));
    } else {
        args.push(("channel", "C0HELP".to_owned()));
        args.push(("text", format!("m{id}")));
    }
    let render = |args: &[(&str, String)]| -> Vec<u8> {
        if json {
            let members: Vec<String> = args
                .iter()
                .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        } else {
            let pieces: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            pieces.join("&").into_bytes()
        }
    };
    let Some(size) = size else {
        return render(&args);
    };
    let bare = {
        let mut a = args.clone();
        a.push(("pad", String::new()));
        render(&a).len()
    };
    args.push(("pad", "a".repeat(size.saturating_sub(bare))));
    render(&args)
}

/// A call of the other bot, as raw bytes: smuggled as a body, never to be read as a
/// call of its own.
fn inner_call(id: u64) -> (Vec<u8>, Vec<u8>) {
    let body = format!("channel=C0HELP&text=s{id}").into_bytes();
    let mut r = Req::call(b"/api/chat.postMessage", body.clone(), id);
    r.push("Host", "gw.example");
    r.push("Content-Type", "application/x-www-form-urlencoded");
    r.push("Authorization", &format!("Bearer {KEY2}"));
    (r.to_bytes(), body)
}

/// What a mutation alone makes of a call whose fate was `base` (`None`: nothing, and it
/// combines with anything). The front judges heads and framing for both listeners, so
/// what it refuses for the inbound one it refuses here; what the inbound model predicts
/// from Slack's signature or the routes means nothing here.
fn effect(m: Mut, base: Fate, header_key_only: bool) -> Option<Fate> {
    use Mut::*;
    if m.class() == Class::Refusing {
        return Some(Fate::REFUSE);
    }
    let inbound = m.fate(
        http_corpus::base_fate(http_corpus::Route::Open, http_corpus::BodyKind::Mention),
        http_corpus::Route::Open,
    );
    if m.class() == Class::Decisive && inbound.kind == Kind::Refuse {
        return Some(Fate::REFUSE);
    }
    Some(match m {
        // Headers the egress door never reads, which touch neither framing nor body.
        m if m.is_unread_header() => return None,
        XffDenied | XffChain | XffTwice | XffGarbage | SigBad | SigMissing | TsMissing
        | SigTwice | TsTwice | SigV1 => return None,
        // Framing and head shapes the front reads as the request it is, which the
        // decision does not look at; they are counted so that they are not combined
        // (e.g. chunked with HTTP/1.0).
        Chunked | ChunkedExt | ChunkedTrailers | ChunkedCase | ClLeadingZeros | ClLowercase
        | Http10KeepAlive | AbsoluteMatch | AbsoluteHttps | AbsoluteCase | AbsolutePort
        | HostEmpty | HostPort | HostRouted | HostRoutedUpper | NamesLowercase | NamesUppercase
        | HeadAtLimit | ConnectionKeepAlive => base,
        // Re-signing resets `Content-Length` after a length mutation: counted.
        SigStale | SigFuture | SigWrongSecret => base,
        // After a `100 Continue` pingora may or may not keep the connection.
        Expect100 | Expect100Case => base.closing(Close::Maybe),
        Http10 | Http10NoHost | Http10Expect | ConnectionClose | ConnectionTwice => {
            base.closing(Close::Yes)
        }
        // The body is over `limits.max_body_bytes`: refused, and the connection closed
        // (what follows it cannot be trusted to start a call).
        ClTooBig | BodyOversize | ChunkedOversize => Fate {
            expect: Expect::Gateway(Some("malformed_call")),
            close: Close::Yes,
        },
        // `Content-Type` twice: the call cannot be read.
        ContentTypeTwice => base.with(Expect::Gateway(Some("malformed_call"))),
        // No Web API method in the path.
        AbsoluteNoPath | AbsoluteQueryOnly | PathUnknown => base.with(Expect::Gateway(None)),
        // The call is read otherwise (method, path, query, body, a `Content-Type` the
        // connection names), the decision is not predicted; the framing still is.
        PathVariant
        | Query
        | QueryAnswer204
        | QueryAnswerHop
        | MethodGet
        | MethodPut
        | MethodLowercase
        | MethodOptions
        | MethodHead
        | BodyAltered
        | ConnectionNamesContentType => base.with(Expect::Either),
        // A 64 KiB JSON body in place of the call's: read as JSON, and only a key in the
        // head still names the bot.
        BodyAt64KiB if header_key_only && base.expect == Expect::Forward => Fate {
            expect: Expect::Forward,
            close: Close::No,
        },
        BodyAt64KiB | SmuggleInBody | SmuggleInChunks => Fate {
            expect: Expect::Either,
            close: Close::No,
        },
        _ => Fate::UNKNOWN,
    })
}

fn predict(base: Fate, muts: &[Mut], header_key_only: bool) -> Fate {
    let effects: Vec<Fate> = muts
        .iter()
        .filter_map(|&m| effect(m, base, header_key_only))
        .collect();
    if effects.contains(&Fate::REFUSE) && muts.iter().any(|m| m.class() == Class::Refusing) {
        return Fate::REFUSE;
    }
    match effects.as_slice() {
        [] => base,
        [one] => *one,
        _ => Fate::UNKNOWN,
    }
}

fn build(steps: &[Step]) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    for step in steps.iter().take(6) {
        if step.repeat {
            if let Some(prev) = calls.last().cloned() {
                // No replay protection on egress: the same call, the same fate.
                calls.push(prev);
                continue;
            }
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let method = ["chat.postMessage", "auth.test", "chat.delete"][usize::from(step.method) % 3];
        let key = Key::ALL[usize::from(step.key) % Key::ALL.len()];
        let size = match step.size % 8 {
            6 => Some(MAX_BODY),
            7 => Some(MAX_BODY + 1 + usize::from(step.size / 8)),
            _ => None,
        };
        let (body, inner) = if step.smuggle {
            let (bytes, inner_body) = inner_call(id + (1 << 52));
            (bytes, Some(inner_body))
        } else {
            (call_body(method, step.json, key.body(), id, size), None)
        };
        let target = if key == Key::Query {
            format!("/api/{method}?token={KEY}")
        } else {
            format!("/api/{method}")
        };
        let mut req = Req::call(target.as_bytes(), body, id);
        req.lines.clear();
        req.push("Host", "slackgate");
        req.push("User-Agent", "fuzz-bot/1.0");
        req.push(
            "Content-Type",
            if step.json {
                "application/json; charset=utf-8"
            } else {
                "application/x-www-form-urlencoded"
            },
        );
        if let Some(h) = key.header() {
            req.push("Authorization", &h);
        }
        req.push("Content-Length", &req.body.len().to_string());

        let oversize = req.body.len() > MAX_BODY;
        let expect = match key {
            _ if oversize => Expect::Gateway(Some("malformed_call")),
            // Not a JSON object: not readable, whoever sent it.
            _ if inner.is_some() && step.json => Expect::Gateway(Some("malformed_call")),
            // A smuggled call read as a form: readable or not (malformed_call, before the
            // key is looked at); only a key in the head may name the bot.
            Key::Header | Key::HeaderLower | Key::HeaderAndBody | Key::Differ
                if inner.is_some() =>
            {
                Expect::Either
            }
            _ if inner.is_some() => Expect::Gateway(None),
            Key::Wrong | Key::WrongBody | Key::None => Expect::Gateway(Some("unknown_bot")),
            Key::Query => Expect::Gateway(Some("token_in_url")),
            Key::Differ => Expect::Gateway(Some("malformed_call")),
            _ if method == "chat.delete" => Expect::Gateway(Some("method_denied")),
            _ => Expect::Forward,
        };
        let base = Fate {
            expect,
            close: if oversize { Close::Yes } else { Close::No },
        };
        let applied = apply_ordered(&mut req, &Mut::picked(&step.muts), &mut SplitMix(step.seed));
        let header_key_only = matches!(key, Key::Header | Key::HeaderLower);
        let fate = predict(base, &applied, header_key_only);
        calls.push(Call { req, fate, inner });
    }
    calls
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The gateway's own answer for a refused call: its reason. `may_head`: an empty body
/// may be the answer to a HEAD.
fn own_reason(a: &Answer, may_head: bool) -> Option<String> {
    let reason = String::from_utf8_lossy(a.header("x-slackgate-reason")?).into_owned();
    assert!(
        a.body == format!("{{\"ok\":false,\"error\":\"{reason}\"}}").as_bytes()
            || may_head && a.body.is_empty(),
        "the gateway's answer for {reason} has another body: {:?}",
        String::from_utf8_lossy(&a.body)
    );
    Some(reason)
}

/// What Slack may receive for a call body: the body, or the body less its `token`.
fn forwarded_forms(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![body.to_vec()];
    for enc in [CallEncoding::Form, CallEncoding::Json] {
        if let Ok(b) = strip_body_token(enc, body) {
            if !out.iter().any(|o| *o == *b) {
                out.push(b.into_owned());
            }
        }
    }
    out
}

fn arrived(at_slack: &[Received], body: &[u8]) -> bool {
    let forms = forwarded_forms(body);
    at_slack.iter().any(|g| forms.contains(&g.body))
}

fuzz_target!(|input: Input<Step>| {
    let (gw, slack) = rig().pick(input.pingora);
    // The audit lines are not needed here; keep memory flat over a long run.
    gw.block_audit().clear();
    slack.take();
    let addr = gw.egress_addr.expect("the egress listener");

    let calls = build(&input.steps);
    let mut bytes = Vec::new();
    for c in &calls {
        bytes.extend_from_slice(&c.req.to_bytes());
    }
    let trailer = &input.trailer[..input.trailer.len().min(256)];
    bytes.extend_from_slice(trailer);
    // FUZZ_DUMP=1 prints what went out, what the model predicts, and what came back.
    let dump = std::env::var_os("FUZZ_DUMP").is_some();
    if dump {
        let fates: Vec<_> = calls.iter().map(|c| c.fate).collect();
        eprintln!("pingora={} fates={fates:?}", input.pingora);
        eprintln!("sent<<{}>>", String::from_utf8_lossy(&bytes));
    }
    let raw = exchange(addr, &bytes, &input.cuts);
    if dump {
        eprintln!("received<<{}>>", String::from_utf8_lossy(&raw));
    }
    let may_head = calls.iter().any(|c| c.req.method == "HEAD");
    let finals = answers(&raw, may_head);
    // Every call Slack got was answered before the gateway answered the client, and the
    // client read every answer before the gateway closed: nothing is still in flight.
    let at_slack = slack.take();
    if dump {
        for g in &at_slack {
            eprintln!(
                "at slack<<{}{}>>",
                String::from_utf8_lossy(&g.head),
                String::from_utf8_lossy(&g.body)
            );
        }
    }

    // Every answer is Slack's relayed, or the gateway's own.
    for (i, a) in finals.iter().enumerate() {
        for secret in [KEY, KEY2, TOKEN, TOKEN2] {
            assert!(
                !contains(&a.head, secret) && !contains(&a.body, secret),
                "answer {i} holds a credential"
            );
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
        let own = own_reason(a, may_head).is_some();
        let refused_head = json.as_ref().is_some_and(|j| j.get("reason").is_some())
            && a.header("connection") == Some(b"close");
        let relayed = !own && json.as_ref().is_some_and(|j| j.get("ok").is_some());
        let head_answer = may_head && a.body.is_empty() && a.header("content-length").is_some();
        assert!(
            own || refused_head || relayed || head_answer,
            "answer {i} is neither Slack's nor the gateway's: {} {:?} {:?}",
            a.status,
            a.headers,
            String::from_utf8_lossy(&a.body)
        );
    }

    // The predicted calls, in order.
    let mut all_known = !contains(trailer, KEY) && !contains(trailer, KEY2);
    let mut next = 0;
    let mut ended = false;
    for (i, c) in calls.iter().enumerate() {
        let fate = c.fate;
        if fate.expect == Expect::Unknown {
            all_known = false;
            break;
        }
        let a = finals.get(next).unwrap_or_else(|| {
            panic!(
                "call {i} ({fate:?}) got no answer ({} answers)",
                finals.len()
            )
        });
        let reason = a
            .header("x-slackgate-reason")
            .map(|r| String::from_utf8_lossy(r).into_owned());
        // Slack echoes a posted message's text, unique to its call: a relayed answer that
        // names another call's text was paired with the wrong call.
        let echoed = serde_json::from_slice::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|j| j["message"]["text"].as_str().map(str::to_owned));
        if let (None, Some(text)) = (&reason, &echoed) {
            assert!(
                text.is_empty() || contains(&c.req.body, text),
                "call {i} got the answer to another call (text {text:?})"
            );
        }
        match fate.expect {
            Expect::Forward => {
                assert!(
                    reason.is_none() && (c.req.method == "HEAD" || !a.body.is_empty()),
                    "call {i} should have been relayed from Slack, answered {} {:?}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
                assert!(
                    arrived(&at_slack, &c.req.body),
                    "call {i} answered as Slack's but not received there"
                );
            }
            Expect::Gateway(want) => {
                assert!(
                    reason.is_some() && want.is_none_or(|w| reason.as_deref() == Some(w)),
                    "call {i} should have been refused with {want:?}, answered {} {:?}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
                assert!(
                    !arrived(&at_slack, &c.req.body)
                        || calls[..i].iter().any(|p| p.req.body == c.req.body
                            && matches!(p.fate.expect, Expect::Forward | Expect::Either)),
                    "call {i} ({reason:?}) reached Slack"
                );
            }
            Expect::Either => {}
            Expect::Refuse => {
                assert!(
                    [400, 431, 501].contains(&a.status) && a.header("connection") == Some(b"close"),
                    "call {i}'s head should have been refused, answered {} {:?}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
            }
            Expect::Unknown => unreachable!(),
        }
        next += 1;
        match fate.close {
            Close::No => {}
            Close::Yes => {
                assert_eq!(
                    finals.len(),
                    next,
                    "answers after call {i}, which ends the connection"
                );
                ended = true;
                break;
            }
            Close::Maybe => {
                all_known = false;
                break;
            }
        }
    }
    if all_known && !ended && trailer.is_empty() {
        assert_eq!(finals.len(), calls.len(), "answers != calls");
    }

    // Slack: only keyed calls, with the real token, framed by the gateway, each body at
    // most as often as it was sent.
    let mut quota: Vec<(Vec<Vec<u8>>, usize, bool)> = Vec::new();
    for c in &calls {
        // A call that never carried the key has no quota: it must not reach Slack. Its
        // content, not its wire bytes: chunking may cut the key in two.
        if !contains(&c.req.head_bytes(), KEY) && !contains(&c.req.body, KEY) {
            continue;
        }
        let forms = forwarded_forms(&c.req.body);
        match quota.iter_mut().find(|(f, _, _)| *f == forms) {
            Some(q) => q.1 += 1,
            None => quota.push((forms, 1, false)),
        }
        if let Some(inner) = &c.inner {
            quota.push((vec![inner.clone()], 1, true));
        }
    }
    for g in &at_slack {
        let auths: Vec<&str> = g
            .headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        let bearer1 = format!("Bearer {TOKEN}");
        let bearer2 = format!("Bearer {TOKEN2}");
        assert!(
            auths == [bearer1.as_str()] || auths == [bearer2.as_str()] && !all_known,
            "Slack got a call without the real token: {auths:?}"
        );
        for key in [KEY, KEY2, WRONG] {
            assert!(
                !contains(&g.head, key),
                "Slack got a gateway key in the head"
            );
        }
        // The bot's key travels in the head or as `token`, which is removed; the other
        // bot's only ever inside a smuggled call, a body of its own.
        assert!(
            !contains(&g.body, KEY),
            "Slack got the gateway key in a body"
        );
        let lengths: Vec<&str> = g
            .headers
            .iter()
            .filter(|(k, _)| k == "content-length")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(lengths, [g.body.len().to_string()], "forwarded length");
        assert!(
            !g.chunked && g.header("transfer-encoding").is_none(),
            "forwarded Transfer-Encoding"
        );
        match quota.iter_mut().find(|(forms, n, smuggled)| {
            *n > 0 && forms.contains(&g.body) && !(*smuggled && all_known)
        }) {
            Some(q) => q.1 -= 1,
            None => {
                assert!(
                    !all_known,
                    "Slack got a body that was not sent as a call of its own (or more often than sent): {:?}",
                    String::from_utf8_lossy(&g.body)
                );
            }
        }
    }
});
