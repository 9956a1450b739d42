//! Request heads and framings as a desync hunter writes them: valid signed Slack
//! requests, and mutations of their heads and framing (odd, hostile, or merely rare),
//! each with what the gateway must do with it.
//!
//! Shared by `tests/differential.rs` (a seeded corpus sent to the fast path and to
//! pingora's path) and the `connection` fuzz target (`fuzz/fuzz_targets/connection.rs`
//! includes this file with `#[path]`), so that both speak one vocabulary and the fuzz
//! target's model of the gateway is the one the differential test checks. The
//! `egress_connection` fuzz target includes it too, for the mutations alone
//! ([`Req::call`], [`apply_ordered`]): it predicts the egress listener's answers itself.
// Shared by test files (crates without an API), each using some of it: `pub` for them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use parking_lot::Mutex;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use slackgate_guard::FakeClock;
/// The signing secret of the app every route uses.
pub use slackgate_testkit::creds::SIGNING_SECRET as SECRET;
use slackgate_testkit::policy::{helpdesk_policy, helpdesk_route};
use slackgate_testkit::{fixture, SignedRequest, TestGateway, TestGatewayBuilder};

/// The gateways' fixed clock (a `FakeClock`), and so the timestamp of every good signature.
pub const NOW: i64 = 1_800_000_000;
/// `limits.max_body_bytes` of the rigs.
pub const MAX_BODY: usize = 70_000;
/// `limits.max_head_bytes` of the rigs.
pub const MAX_HEAD: usize = 4096;
/// The `Host` of an ordinary request.
pub const HOST: &str = "gw.example";

/// The config lines the rigs add: loopback is a trusted proxy (so `X-Forwarded-For`
/// decides the client address), small limits so that the limit cases stay cheap.
pub const CONFIG: &str = "trusted_proxies: [127.0.0.0/8]\nlimits: { max_body_bytes: 70000, max_head_bytes: 4096, head_read_timeout: 1s, body_read_timeout: 1s, upstream_timeout: 3s }";

/// The policy over one bot: a route per behaviour the corpus needs.
pub fn policy(bot: &str) -> String {
    helpdesk_policy(
        "HELPDESK_SECRET",
        bot,
        &[
            helpdesk_route("open", "/slack/open", ""),
            helpdesk_route(
                "scoped",
                "/slack/events",
                "allow: { teams: [T0ACME], events: [app_mention, message], commands: [/ticket] }\ndeny: { users: [U0BAD] }",
            ),
            helpdesk_route("hosted", "/slack/hosted", "host: bots.example"),
            helpdesk_route("hosted-any", "/slack/hosted", ""),
            helpdesk_route(
                "fenced",
                "/slack/fenced",
                "source_ips: { deny: [203.0.113.0/24] }",
            ),
            helpdesk_route(
                "shadow",
                "/slack/shadow",
                "mode: shadow\nallow: { teams: [T0OTHER] }",
            ),
            helpdesk_route(
                "acked",
                "/slack/ack",
                "on_deny: ack\nallow: { teams: [T0OTHER] }",
            ),
            helpdesk_route("sentinel", "/slack/sentinel", ""),
        ],
    )
}

/// A gateway on [`policy`] and [`CONFIG`], at [`NOW`], in front of a fresh [`RawBot`]; with
/// the fast path or with every request handed to pingora.
pub fn start(fast_path: bool) -> (TestGateway, RawBot) {
    let bot = RawBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot.addr.to_string()))
        .secret("HELPDESK_SECRET", SECRET)
        .clock(Arc::new(FakeClock::at(NOW as u64)))
        .config(CONFIG)
        .fast_path(fast_path)
        .start();
    (gw, bot)
}

// === A bot that records every request byte for byte ===

/// One request as it arrived at the bot: its head exactly as sent, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtBot {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

/// A bot that keeps the raw bytes of every request. It answers 200 with a small JSON
/// body, or, when the target asks for it, `204` or an answer with hop-by-hop headers
/// (to compare how both paths relay them).
#[derive(Debug)]
pub struct RawBot {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<AtBot>>>,
    stop: Arc<AtomicBool>,
}

impl RawBot {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let log = Arc::clone(&log2);
                std::thread::spawn(move || bot_serve(conn, &log));
            }
        });
        RawBot { addr, log, stop }
    }

    /// Every request recorded since the last call.
    pub fn take(&self) -> Vec<AtBot> {
        std::mem::take(&mut *self.log.lock())
    }
}

impl Drop for RawBot {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn bot_serve(mut s: TcpStream, log: &Mutex<Vec<AtBot>>) {
    // No idle timeout of its own: the gateway closes idle pooled connections, so a
    // request is never sent on a connection the bot is closing at that moment.
    let _ = s.set_read_timeout(None);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let (head_len, length, target, head) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 256];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let length = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let target = req.path.unwrap_or_default().to_owned();
                    let head = req.method == Some("HEAD");
                    break (n, length, target, head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => {
                    // Recorded as it is: a head the bot cannot parse is a finding.
                    log.lock().push(AtBot {
                        head: std::mem::take(&mut buf),
                        body: b"<unparsable head>".to_vec(),
                    });
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_len + length {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let rest = buf.split_off(head_len + length);
        let body = buf.split_off(head_len);
        log.lock().push(AtBot {
            head: std::mem::replace(&mut buf, rest),
            body: body.clone(),
        });
        let json = format!("{{\"ok\":true,\"len\":{}}}", body.len());
        let mut out = if target.contains("answer=204") {
            "HTTP/1.1 204 No Content\r\nX-Bot: 1\r\n\r\n".to_owned()
        } else if target.contains("answer=hop") {
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Bot: 1\r\nContent-Length: {}\r\n\r\n", json.len())
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                json.len()
            )
        }
        .into_bytes();
        if !head && !target.contains("answer=204") {
            out.extend_from_slice(json.as_bytes());
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

// === Choices ===

/// Where the corpus' choices come from: a seeded generator in the test, the fuzz
/// input in the fuzz target.
pub trait Choose {
    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize;

    /// A coin flip.
    fn coin(&mut self) -> bool {
        self.below(2) == 1
    }

    /// One of `items`.
    fn choose<T: Copy>(&mut self, items: &[T]) -> T
    where
        Self: Sized,
    {
        items[self.below(items.len())]
    }
}

/// SplitMix64: small, seeded, good enough to spread a corpus.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Choose for SplitMix {
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

// === Requests ===

/// A header line (or any line of the head) and how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: Vec<u8>,
    pub eol: &'static [u8],
}

/// How the body goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// As it is (whatever `Content-Length` says).
    Length,
    /// Chunked: cut at `cuts` (offsets into the body), optionally with chunk
    /// extensions and a trailer section.
    Chunked {
        cuts: Vec<usize>,
        ext: bool,
        trailers: bool,
    },
    /// These bytes instead of the body (broken chunking).
    Wire(Vec<u8>),
}

/// One request, as parts that mutations edit and `to_bytes` puts together.
#[derive(Debug, Clone)]
pub struct Req {
    /// Bytes before the request line (empty lines).
    pub lead: Vec<u8>,
    pub method: String,
    pub target: Vec<u8>,
    pub version: String,
    /// Between the parts of the request line.
    pub sep: &'static [u8],
    pub line_eol: &'static [u8],
    pub lines: Vec<Line>,
    /// The empty line that ends the head.
    pub end: &'static [u8],
    /// The body the signature covers (the content, whatever the framing).
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Bytes sent right after this request's body, as part of it by its framing
    /// (e.g. a request smuggled inside a drained body).
    pub tail: Vec<u8>,
    /// The route the request starts on.
    pub route: Route,
    /// The body it starts with.
    pub kind: BodyKind,
    /// What makes its body unique; mutations that replace the body derive from it, so
    /// that no two requests of a corpus or a fuzz run ever share a signature.
    pub id: u64,
}

impl Req {
    /// A request with body `kind` made unique by `id`, signed with the app's secret at
    /// [`NOW`], the headers in Slack's order.
    pub fn signed(route: Route, kind: BodyKind, id: u64) -> Self {
        let s = SignedRequest::new(route.path(), kind.body(id)).sign_at(SECRET, NOW);
        let mut r = Req {
            lead: Vec::new(),
            method: "POST".into(),
            target: route.path().as_bytes().to_vec(),
            version: "HTTP/1.1".into(),
            sep: b" ",
            line_eol: b"\r\n",
            lines: Vec::new(),
            end: b"\r\n",
            body: s.body.clone(),
            framing: Framing::Length,
            tail: Vec::new(),
            route,
            kind,
            id,
        };
        r.push("Host", HOST);
        r.push("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)");
        r.push("Accept-Encoding", "gzip,deflate");
        r.push("Accept", "*/*");
        r.push("Content-Type", &s.content_type);
        r.push("Content-Length", &s.body.len().to_string());
        r.push("X-Slack-Request-Timestamp", s.timestamp.as_deref().unwrap());
        r.push("X-Slack-Signature", s.signature.as_deref().unwrap());
        r
    }

    /// A `POST` to `target` with `body` framed by `Content-Length` and no other header,
    /// for requests that are not Slack's (the egress listener's calls): the caller adds
    /// its headers. `route` and `kind` are placeholders there, so [`mutate`]'s prediction
    /// means nothing for it (use [`apply_ordered`]); `id` still seeds the bodies that
    /// mutations put in place of this one.
    pub fn call(target: &[u8], body: Vec<u8>, id: u64) -> Self {
        let mut r = Req {
            lead: Vec::new(),
            method: "POST".into(),
            target: target.to_vec(),
            version: "HTTP/1.1".into(),
            sep: b" ",
            line_eol: b"\r\n",
            lines: Vec::new(),
            end: b"\r\n",
            body,
            framing: Framing::Length,
            tail: Vec::new(),
            route: Route::Unknown,
            kind: BodyKind::Malformed,
            id,
        };
        r.push("Content-Length", &r.body.len().to_string());
        r
    }

    /// Appends a header line.
    pub fn push(&mut self, name: &str, value: &str) {
        self.push_raw(format!("{name}: {value}").into_bytes());
    }

    /// Appends a line as it is.
    pub fn push_raw(&mut self, text: Vec<u8>) {
        self.lines.push(Line { text, eol: b"\r\n" });
    }

    fn name_of(line: &Line) -> &[u8] {
        let colon = line
            .text
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(line.text.len());
        &line.text[..colon]
    }

    /// The index of the first header called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| Self::name_of(l).eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The value of the first header called `name`.
    pub fn value(&self, name: &str) -> Option<String> {
        let line = &self.lines[self.find(name)?];
        let v = line.text.get(Self::name_of(line).len() + 1..)?;
        Some(String::from_utf8_lossy(v).trim().to_owned())
    }

    /// The values of every header called `name`, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| Self::name_of(l).eq_ignore_ascii_case(name.as_bytes()))
            .map(|l| {
                let v = l.text.get(Self::name_of(l).len() + 1..).unwrap_or_default();
                String::from_utf8_lossy(v).trim().to_owned()
            })
            .collect()
    }

    /// Sets the first header called `name` (or appends it).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.find(name) {
            Some(i) => self.lines[i].text = format!("{name}: {value}").into_bytes(),
            None => self.push(name, value),
        }
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.lines
            .retain(|l| !Self::name_of(l).eq_ignore_ascii_case(name.as_bytes()));
    }

    /// Re-signs the body (after it changed) with `secret` at `ts`.
    pub fn resign(&mut self, secret: &str, ts: i64) {
        let s = SignedRequest::new("/", self.body.clone()).sign_at(secret, ts);
        self.set("X-Slack-Request-Timestamp", s.timestamp.as_deref().unwrap());
        self.set("X-Slack-Signature", s.signature.as_deref().unwrap());
        if matches!(self.framing, Framing::Length) && self.find("Content-Length").is_some() {
            self.set("Content-Length", &self.body.len().to_string());
        }
    }

    /// The head's bytes.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = self.lead.clone();
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(self.sep);
        out.extend_from_slice(&self.target);
        out.extend_from_slice(self.sep);
        out.extend_from_slice(self.version.as_bytes());
        out.extend_from_slice(self.line_eol);
        for l in &self.lines {
            out.extend_from_slice(&l.text);
            out.extend_from_slice(l.eol);
        }
        out.extend_from_slice(self.end);
        out
    }

    /// The body as framed on the wire.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = match &self.framing {
            Framing::Length => self.body.clone(),
            Framing::Wire(w) => w.clone(),
            Framing::Chunked {
                cuts,
                ext,
                trailers,
            } => {
                let mut out = Vec::new();
                let mut at = 0;
                let mut cuts: Vec<usize> = cuts
                    .iter()
                    .copied()
                    .filter(|&c| c > 0 && c < self.body.len())
                    .collect();
                cuts.sort_unstable();
                cuts.dedup();
                cuts.push(self.body.len());
                for (i, &c) in cuts.iter().enumerate() {
                    if c == at {
                        continue;
                    }
                    out.extend_from_slice(format!("{:x}", c - at).as_bytes());
                    if *ext {
                        out.extend_from_slice(if i % 2 == 0 { b";a=b" } else { b";n" });
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&self.body[at..c]);
                    out.extend_from_slice(b"\r\n");
                    at = c;
                }
                out.extend_from_slice(if *ext { b"0;last\r\n" } else { b"0\r\n" });
                if *trailers {
                    out.extend_from_slice(b"X-Trailer: t\r\nX-Slack-Signature: v0=00\r\n");
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        };
        out.extend_from_slice(&self.tail);
        out
    }

    /// The whole request.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        out.extend_from_slice(&self.body_bytes());
        out
    }

    /// Switches to chunked framing.
    pub fn chunk(&mut self, c: &mut impl Choose, ext: bool, trailers: bool) {
        self.remove("Content-Length");
        self.push("Transfer-Encoding", "chunked");
        let n = self.body.len().max(1);
        let cuts = (0..c.below(4)).map(|_| c.below(n)).collect();
        self.framing = Framing::Chunked {
            cuts,
            ext,
            trailers,
        };
    }
}

// === Routes and bodies ===

/// The routes of [`policy`], plus a path no route has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Open,
    Scoped,
    Hosted,
    Fenced,
    Shadow,
    Acked,
    Unknown,
}

impl Route {
    pub const ALL: &'static [Route] = &[
        Route::Open,
        Route::Scoped,
        Route::Hosted,
        Route::Fenced,
        Route::Shadow,
        Route::Acked,
        Route::Unknown,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Route::Open => "/slack/open",
            Route::Scoped => "/slack/events",
            Route::Hosted => "/slack/hosted",
            Route::Fenced => "/slack/fenced",
            Route::Shadow => "/slack/shadow",
            Route::Acked => "/slack/ack",
            Route::Unknown => "/slack/nope",
        }
    }
}

/// What the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Mention,
    Message,
    Command,
    Action,
    SslCheck,
    UrlVerification,
    Malformed,
    BlockedUser,
    OtherTeam,
    /// An app_mention padded to this many bytes.
    Sized(usize),
}

impl BodyKind {
    /// The kinds a corpus draws from (sizes apart).
    pub const COMMON: &'static [BodyKind] = &[
        BodyKind::Mention,
        BodyKind::Mention,
        BodyKind::Message,
        BodyKind::Command,
        BodyKind::Action,
        BodyKind::SslCheck,
        BodyKind::UrlVerification,
        BodyKind::Malformed,
        BodyKind::BlockedUser,
        BodyKind::OtherTeam,
    ];

    /// The body, made unique by `id` (so that no two requests share a signature).
    pub fn body(self, id: u64) -> Vec<u8> {
        let text = |name: &str| String::from_utf8(fixture(name)).unwrap();
        let eid = format!("Ev{id:010}");
        match self {
            BodyKind::Mention => text("event_app_mention.json")
                .replace("Ev0APPMENTION1", &eid)
                .into_bytes(),
            BodyKind::Message => text("event_message.json")
                .replace("Ev0MESSAGE01", &eid)
                .into_bytes(),
            BodyKind::Command => format!("{}&n={id}", text("command_ticket.form")).into_bytes(),
            BodyKind::Action => format!("{}&n={id}", text("block_actions.form")).into_bytes(),
            BodyKind::SslCheck => format!("{}&n={id}", text("ssl_check.form")).into_bytes(),
            BodyKind::UrlVerification => text("url_verification.json")
                .replace("3eZbrw1aBm2r", &format!("c{id:011}"))
                .into_bytes(),
            BodyKind::Malformed => {
                format!("{{\"type\":\"event_callback\",\"event_id\":\"{eid}\",").into_bytes()
            }
            BodyKind::BlockedUser => text("event_app_mention.json")
                .replace("Ev0APPMENTION1", &eid)
                .replace("U0333", "U0BAD")
                .into_bytes(),
            BodyKind::OtherTeam => text("event_message.json")
                .replace("Ev0MESSAGE01", &eid)
                .replace("T0ACME", "T0OTHER")
                .into_bytes(),
            BodyKind::Sized(size) => {
                let head = format!(
                    r#"{{"team_id":"T0ACME","api_app_id":"A0HELPDESK","type":"event_callback","event_id":"{eid}","event":{{"type":"app_mention","user":"U0333","channel":"C0HELP","text":""#
                );
                let tail = r#""}}"#;
                let pad = size.saturating_sub(head.len() + tail.len());
                let mut b = head.into_bytes();
                b.extend(std::iter::repeat_n(b'a', pad));
                b.extend_from_slice(tail.as_bytes());
                b
            }
        }
    }
}

// === What the gateway must do ===

/// What must become of a request, as far as it can be told without running the
/// gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every check passes: the bot gets it (its answer is relayed).
    Forward,
    /// The gateway answers it itself (a denial, `ssl_check`, a challenge, `ack`).
    Gateway,
    /// The head is refused (400, 431 or 501) and the connection closed.
    Refuse,
    /// Not predicted (framing the next request depends on, or a combination).
    Unknown,
}

/// A request's predicted fate: its kind, and whether the connection ends after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    pub kind: Kind,
    pub close: bool,
}

impl Fate {
    const fn of(kind: Kind) -> Self {
        Fate { kind, close: false }
    }

    const UNKNOWN: Fate = Fate {
        kind: Kind::Unknown,
        close: true,
    };
    const REFUSE: Fate = Fate {
        kind: Kind::Refuse,
        close: true,
    };

    fn closing(self) -> Self {
        Fate {
            close: true,
            ..self
        }
    }
}

/// The fate of an unmutated signed request.
pub fn base_fate(route: Route, kind: BodyKind) -> Fate {
    use BodyKind::*;
    let verified = matches!(kind, Mention | Message | Command | Action | Sized(_));
    let answered = matches!(kind, SslCheck | UrlVerification);
    Fate::of(match route {
        Route::Unknown => Kind::Gateway,
        _ if answered => Kind::Gateway,
        // A shadow route forwards what its checks after the signature would deny.
        Route::Shadow => Kind::Forward,
        Route::Open | Route::Hosted | Route::Fenced if kind != Malformed => Kind::Forward,
        Route::Scoped if verified => Kind::Forward,
        Route::Acked if kind == OtherTeam => Kind::Forward,
        _ => Kind::Gateway,
    })
}

/// How a mutation combines with others (see [`mutate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Changes nothing the gateway decides on.
    Neutral,
    /// Changes the outcome: predicted alone, not in combination.
    Decisive,
    /// Refuses the head whatever else was done (applied last).
    Refusing,
}

// === Mutations ===

/// A change to a valid signed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mut {
    // Framing.
    Chunked,
    ChunkedExt,
    ChunkedTrailers,
    ChunkedCase,
    ChunkedOversize,
    TeAndCl,
    TeGzipChunked,
    TeChunkedGzip,
    TeIdentity,
    TeSplitHeaders,
    TeChunkedTwice,
    TeEmpty,
    TeTrailingComma,
    TeEmptySecond,
    TeOnHttp10,
    ClDuplicateSame,
    ClDuplicateDifferent,
    ClPlus,
    ClList,
    ClLeadingZeros,
    ClPadded,
    ClHex,
    ClNegative,
    ClEmpty,
    ClOverflow,
    ClTooBig,
    ClShort,
    ClLong,
    ClMissing,
    ClLowercase,
    ClSigned,
    BodyOversize,
    BodyAt64KiB,
    BadChunkSize,
    BadChunkNegative,
    BadChunkPrefixed,
    BadChunkHuge,
    BadChunkSpace,
    BadChunkNoCrlf,
    BadChunkShortData,
    BadChunkNoLast,
    BadChunkBareLf,
    // Expectations and versions.
    Expect100,
    Expect100Case,
    ExpectOther,
    Http10,
    Http10KeepAlive,
    Http10NoHost,
    Http10Expect,
    VersionOdd,
    // Targets.
    AbsoluteMatch,
    AbsoluteHttps,
    AbsoluteCase,
    AbsolutePort,
    AbsoluteMismatch,
    AbsoluteNoPath,
    AbsoluteQueryOnly,
    AbsoluteUserinfo,
    AbsoluteNoHost,
    Fragment,
    FragmentEmpty,
    Query,
    QueryAnswer204,
    QueryAnswerHop,
    TargetStar,
    TargetNoSlash,
    TargetNonAscii,
    PathUnknown,
    PathVariant,
    // Host.
    HostMissing,
    HostDuplicateSame,
    HostDuplicateDifferent,
    HostEmpty,
    HostPort,
    HostRouted,
    HostRoutedUpper,
    HostSpace,
    HostSlash,
    // Line ends and header syntax.
    BareLfHeader,
    BareLfEnd,
    BareLfRequestLine,
    LeadingCrlf,
    LeadingLf,
    ObsFold,
    ObsFoldTab,
    NameSpace,
    NameSpaceOther,
    NameTab,
    NameOdd,
    ValueCtl,
    ValueObsText,
    ValueOws,
    ValueEmpty,
    NamesLowercase,
    NamesUppercase,
    DuplicateApart,
    ContentTypeTwice,
    ManyHeaders,
    HeadOversize,
    HeadAtLimit,
    RequestLineDoubleSpace,
    RequestLineTab,
    // Headers the gateway owns or strips.
    TwinUser,
    TwinRoute,
    TwinMixed,
    OwnHeaders,
    ConnectionNamesHeader,
    ConnectionNamesSignature,
    ConnectionNamesContentType,
    ConnectionNamesHost,
    ConnectionNamesOwn,
    ConnectionClose,
    ConnectionKeepAlive,
    ConnectionTwice,
    ConnectionBadToken,
    HopHeaders,
    Upgrade,
    UpgradeConnection,
    // Client address.
    XffDenied,
    XffAllowed,
    XffChain,
    XffTwice,
    XffGarbage,
    // Methods.
    MethodGet,
    MethodPut,
    MethodLowercase,
    MethodHead,
    MethodConnect,
    MethodOptions,
    // Signatures.
    SigBad,
    SigMissing,
    TsMissing,
    SigStale,
    SigFuture,
    SigWrongSecret,
    SigTwice,
    TsTwice,
    SigV1,
    BodyAltered,
    RetryHeaders,
    // Smuggling.
    SmuggleInBody,
    SmuggleInChunks,
}

impl Mut {
    pub const ALL: &'static [Mut] = &[
        Mut::Chunked,
        Mut::ChunkedExt,
        Mut::ChunkedTrailers,
        Mut::ChunkedCase,
        Mut::ChunkedOversize,
        Mut::TeAndCl,
        Mut::TeGzipChunked,
        Mut::TeChunkedGzip,
        Mut::TeIdentity,
        Mut::TeSplitHeaders,
        Mut::TeChunkedTwice,
        Mut::TeEmpty,
        Mut::TeTrailingComma,
        Mut::TeEmptySecond,
        Mut::TeOnHttp10,
        Mut::ClDuplicateSame,
        Mut::ClDuplicateDifferent,
        Mut::ClPlus,
        Mut::ClList,
        Mut::ClLeadingZeros,
        Mut::ClPadded,
        Mut::ClHex,
        Mut::ClNegative,
        Mut::ClEmpty,
        Mut::ClOverflow,
        Mut::ClTooBig,
        Mut::ClShort,
        Mut::ClLong,
        Mut::ClMissing,
        Mut::ClLowercase,
        Mut::ClSigned,
        Mut::BodyOversize,
        Mut::BodyAt64KiB,
        Mut::BadChunkSize,
        Mut::BadChunkNegative,
        Mut::BadChunkPrefixed,
        Mut::BadChunkHuge,
        Mut::BadChunkSpace,
        Mut::BadChunkNoCrlf,
        Mut::BadChunkShortData,
        Mut::BadChunkNoLast,
        Mut::BadChunkBareLf,
        Mut::Expect100,
        Mut::Expect100Case,
        Mut::ExpectOther,
        Mut::Http10,
        Mut::Http10KeepAlive,
        Mut::Http10NoHost,
        Mut::Http10Expect,
        Mut::VersionOdd,
        Mut::AbsoluteMatch,
        Mut::AbsoluteHttps,
        Mut::AbsoluteCase,
        Mut::AbsolutePort,
        Mut::AbsoluteMismatch,
        Mut::AbsoluteNoPath,
        Mut::AbsoluteQueryOnly,
        Mut::AbsoluteUserinfo,
        Mut::AbsoluteNoHost,
        Mut::Fragment,
        Mut::FragmentEmpty,
        Mut::Query,
        Mut::QueryAnswer204,
        Mut::QueryAnswerHop,
        Mut::TargetStar,
        Mut::TargetNoSlash,
        Mut::TargetNonAscii,
        Mut::PathUnknown,
        Mut::PathVariant,
        Mut::HostMissing,
        Mut::HostDuplicateSame,
        Mut::HostDuplicateDifferent,
        Mut::HostEmpty,
        Mut::HostPort,
        Mut::HostRouted,
        Mut::HostRoutedUpper,
        Mut::HostSpace,
        Mut::HostSlash,
        Mut::BareLfHeader,
        Mut::BareLfEnd,
        Mut::BareLfRequestLine,
        Mut::LeadingCrlf,
        Mut::LeadingLf,
        Mut::ObsFold,
        Mut::ObsFoldTab,
        Mut::NameSpace,
        Mut::NameSpaceOther,
        Mut::NameTab,
        Mut::NameOdd,
        Mut::ValueCtl,
        Mut::ValueObsText,
        Mut::ValueOws,
        Mut::ValueEmpty,
        Mut::NamesLowercase,
        Mut::NamesUppercase,
        Mut::DuplicateApart,
        Mut::ContentTypeTwice,
        Mut::ManyHeaders,
        Mut::HeadOversize,
        Mut::HeadAtLimit,
        Mut::RequestLineDoubleSpace,
        Mut::RequestLineTab,
        Mut::TwinUser,
        Mut::TwinRoute,
        Mut::TwinMixed,
        Mut::OwnHeaders,
        Mut::ConnectionNamesHeader,
        Mut::ConnectionNamesSignature,
        Mut::ConnectionNamesContentType,
        Mut::ConnectionNamesHost,
        Mut::ConnectionNamesOwn,
        Mut::ConnectionClose,
        Mut::ConnectionKeepAlive,
        Mut::ConnectionTwice,
        Mut::ConnectionBadToken,
        Mut::HopHeaders,
        Mut::Upgrade,
        Mut::UpgradeConnection,
        Mut::XffDenied,
        Mut::XffAllowed,
        Mut::XffChain,
        Mut::XffTwice,
        Mut::XffGarbage,
        Mut::MethodGet,
        Mut::MethodPut,
        Mut::MethodLowercase,
        Mut::MethodHead,
        Mut::MethodConnect,
        Mut::MethodOptions,
        Mut::SigBad,
        Mut::SigMissing,
        Mut::TsMissing,
        Mut::SigStale,
        Mut::SigFuture,
        Mut::SigWrongSecret,
        Mut::SigTwice,
        Mut::TsTwice,
        Mut::SigV1,
        Mut::BodyAltered,
        Mut::RetryHeaders,
        Mut::SmuggleInBody,
        Mut::SmuggleInChunks,
    ];

    /// The mutations a fuzz input's `indexes` name (at most four, each taken modulo
    /// [`Mut::ALL`]'s length).
    pub fn picked(indexes: &[u8]) -> Vec<Mut> {
        indexes
            .iter()
            .take(4)
            .map(|&m| Mut::ALL[usize::from(m) % Mut::ALL.len()])
            .collect()
    }

    /// Whether this mutation only adds or reshapes headers that neither door's decision
    /// reads, leaving the target, the body and the framing as they were: `_` twins, the
    /// client's own `X-Slackgate-*`, headers a `Connection` line names, hop-by-hop
    /// headers, odd whitespace or empty values, repeats, retry headers, a leading CRLF,
    /// an allowed `X-Forwarded-For`.
    pub fn is_unread_header(self) -> bool {
        use Mut::*;
        matches!(
            self,
            TwinUser
                | TwinRoute
                | TwinMixed
                | OwnHeaders
                | ConnectionNamesHeader
                | ConnectionNamesSignature
                | ConnectionNamesOwn
                | ConnectionNamesHost
                | HopHeaders
                | ValueOws
                | ValueEmpty
                | ValueObsText
                | DuplicateApart
                | RetryHeaders
                | LeadingCrlf
                | XffAllowed
        )
    }

    /// How this mutation combines with others.
    pub fn class(self) -> Class {
        use Mut::*;
        match self {
            m if m.is_unread_header() => Class::Neutral,
            Query | QueryAnswerHop | ContentTypeTwice => Class::Neutral,
            Fragment | FragmentEmpty | BareLfHeader | BareLfEnd | BareLfRequestLine | LeadingLf
            | ObsFold | ObsFoldTab | NameSpace | NameSpaceOther | NameTab | NameOdd | ValueCtl
            | ManyHeaders | HeadOversize | ConnectionBadToken | TargetNonAscii | ExpectOther => {
                Class::Refusing
            }
            _ => Class::Decisive,
        }
    }

    /// What this mutation alone makes of a request whose fate was `base`.
    pub fn fate(self, base: Fate, route: Route) -> Fate {
        use Mut::*;
        match self.class() {
            Class::Neutral => return base,
            Class::Refusing => return Fate::REFUSE,
            Class::Decisive => {}
        }
        match self {
            Chunked | ChunkedExt | ChunkedTrailers | ChunkedCase | ClLeadingZeros | ClLowercase
            | Http10KeepAlive | AbsoluteMatch | AbsoluteHttps | AbsoluteCase | AbsolutePort
            | HostEmpty | HostPort | HostRouted | HostRoutedUpper | NamesLowercase
            | NamesUppercase | HeadAtLimit | MethodGet | MethodPut | MethodLowercase
            | MethodOptions | BodyAt64KiB => base,
            // Answered without a body (and forwarded as HEAD, body and all).
            MethodHead => base,
            // `keep-alive` changes nothing on HTTP/1.1 (but keeps an HTTP/1.0 connection,
            // hence not neutral).
            ConnectionKeepAlive | ConnectionNamesContentType => base,
            // pingora ends the connection after any request it wrote `100 Continue` to
            // (its close_on_response_before_downstream_finish fires on the 100, the body
            // being unread then); before a pre-body denial no 100 is sent and the
            // unsent body cannot be skipped: closed too.
            Expect100 | Expect100Case => base.closing(),
            Http10 | Http10NoHost | Http10Expect => base.closing(),
            ConnectionClose => base.closing(),
            ConnectionTwice => base.closing(),
            TeAndCl
            | TeGzipChunked
            | TeChunkedGzip
            | TeIdentity
            | TeSplitHeaders
            | TeChunkedTwice
            | TeEmpty
            | TeOnHttp10
            | ClDuplicateSame
            | ClDuplicateDifferent
            | ClPlus
            | ClList
            | ClHex
            | ClNegative
            | ClEmpty
            | ClOverflow
            | VersionOdd
            | AbsoluteMismatch
            | AbsoluteUserinfo
            | AbsoluteNoHost
            | TargetStar
            | TargetNoSlash
            | HostMissing
            | HostDuplicateSame
            | HostDuplicateDifferent
            | HostSpace
            | HostSlash
            | MethodConnect
            | RequestLineDoubleSpace
            | RequestLineTab
            | ClSigned => Fate::REFUSE,
            ClTooBig | BodyOversize | ChunkedOversize => Fate {
                kind: Kind::Gateway,
                close: true,
            },
            AbsoluteNoPath | AbsoluteQueryOnly | PathUnknown | PathVariant => {
                Fate::of(Kind::Gateway)
            }
            // Walked right to left, the trusted loopback hop skipped: the denied address.
            XffDenied | XffTwice | XffChain if route == Route::Fenced => Fate::of(Kind::Gateway),
            XffDenied | XffTwice | XffChain | XffGarbage => base,
            SigBad | SigMissing | TsMissing | SigStale | SigFuture | SigWrongSecret | SigTwice
            | TsTwice | SigV1 | BodyAltered => Fate::of(Kind::Gateway),
            // The body is a request, not a payload: malformed (forwarded in shadow).
            SmuggleInBody | SmuggleInChunks if route == Route::Shadow => Fate::of(Kind::Forward),
            SmuggleInBody | SmuggleInChunks => Fate::of(Kind::Gateway),
            QueryAnswer204 => base,
            // `chunked` followed by an empty list element: refused by the front (pingora
            // would refuse it itself, without the gateway's record).
            TeTrailingComma | TeEmptySecond => Fate::REFUSE,
            _ => Fate::UNKNOWN,
        }
    }

    /// Applies the mutation.
    pub fn apply(self, r: &mut Req, c: &mut impl Choose) {
        use Mut::*;
        let len = r.body.len();
        match self {
            Chunked => r.chunk(c, false, false),
            ChunkedExt => r.chunk(c, true, false),
            ChunkedTrailers => r.chunk(c, false, true),
            ChunkedCase => {
                r.chunk(c, false, false);
                r.set(
                    "Transfer-Encoding",
                    c.choose(&["Chunked", "CHUNKED", " chunked "]),
                );
            }
            ChunkedOversize => {
                r.body = BodyKind::Sized(MAX_BODY + 1 + c.below(50)).body(r.id);
                r.resign(SECRET, NOW);
                r.chunk(c, false, false);
            }
            TeAndCl => r.push("Transfer-Encoding", "chunked"),
            TeGzipChunked => {
                r.chunk(c, false, false);
                r.set(
                    "Transfer-Encoding",
                    c.choose(&["gzip, chunked", "deflate,chunked"]),
                );
            }
            TeChunkedGzip => {
                r.chunk(c, false, false);
                r.set("Transfer-Encoding", "chunked, gzip");
            }
            TeIdentity => {
                r.remove("Content-Length");
                r.push("Transfer-Encoding", "identity");
            }
            TeSplitHeaders => {
                r.chunk(c, false, false);
                r.remove("Transfer-Encoding");
                r.push("Transfer-Encoding", "gzip");
                r.push("Transfer-Encoding", "chunked");
            }
            TeChunkedTwice => {
                r.chunk(c, false, false);
                r.set("Transfer-Encoding", "chunked, chunked");
            }
            TeEmpty => {
                r.remove("Content-Length");
                r.push("Transfer-Encoding", c.choose(&["", ","]));
            }
            TeTrailingComma => {
                r.chunk(c, false, false);
                r.set(
                    "Transfer-Encoding",
                    c.choose(&["chunked,", "chunked , ", "chunked,,"]),
                );
            }
            TeEmptySecond => {
                r.chunk(c, false, false);
                r.push("Transfer-Encoding", c.choose(&["", ","]));
            }
            TeOnHttp10 => {
                r.chunk(c, false, false);
                r.version = "HTTP/1.0".into();
            }
            ClDuplicateSame => r.push("Content-Length", &len.to_string()),
            ClDuplicateDifferent => r.push("Content-Length", &(len + 1).to_string()),
            ClPlus => r.set("Content-Length", &format!("+{len}")),
            ClList => r.set("Content-Length", &format!("{len}, {len}")),
            ClLeadingZeros => r.set("Content-Length", &format!("000{len}")),
            ClPadded => r.set("Content-Length", &format!("{len} \t")),
            ClHex => r.set("Content-Length", &format!("0x{len:x}")),
            ClNegative => r.set("Content-Length", "-1"),
            ClEmpty => r.set("Content-Length", ""),
            ClOverflow => r.set("Content-Length", "99999999999999999999999"),
            ClTooBig => r.set("Content-Length", &(MAX_BODY + 1).to_string()),
            ClShort => {
                let k = 1 + c.below(len.clamp(1, 40));
                r.set("Content-Length", &len.saturating_sub(k).to_string());
            }
            ClLong => r.set("Content-Length", &(len + 1 + c.below(20)).to_string()),
            ClMissing => r.remove("Content-Length"),
            ClLowercase => {
                r.remove("Content-Length");
                r.push(
                    c.choose(&["content-length", "CONTENT-LENGTH"]),
                    &len.to_string(),
                );
            }
            ClSigned => r.set("Content-Length", &format!("{len};v0=ab")),
            BodyOversize => {
                r.body = BodyKind::Sized(MAX_BODY + 1 + c.below(50)).body(r.id);
                r.resign(SECRET, NOW);
            }
            BodyAt64KiB => {
                let size = c.choose(&[65_535, 65_536, 65_537, MAX_BODY]);
                r.body = BodyKind::Sized(size).body(r.id);
                r.kind = BodyKind::Sized(size);
                r.set("Content-Type", "application/json");
                r.resign(SECRET, NOW);
            }
            BadChunkSize | BadChunkNegative | BadChunkPrefixed | BadChunkHuge | BadChunkSpace
            | BadChunkNoCrlf | BadChunkShortData | BadChunkNoLast | BadChunkBareLf => {
                r.remove("Content-Length");
                r.push("Transfer-Encoding", "chunked");
                let b = r.body.clone();
                let size = format!("{:x}", b.len());
                let mut w = Vec::new();
                let chunk = |w: &mut Vec<u8>, size: &str, data: &[u8], eol: &[u8]| {
                    w.extend_from_slice(size.as_bytes());
                    w.extend_from_slice(eol);
                    w.extend_from_slice(data);
                    w.extend_from_slice(eol);
                };
                match self {
                    BadChunkSize => chunk(&mut w, "zz", &b, b"\r\n"),
                    BadChunkNegative => chunk(&mut w, "-1", &b, b"\r\n"),
                    BadChunkPrefixed => chunk(&mut w, &format!("0x{size}"), &b, b"\r\n"),
                    BadChunkHuge => chunk(&mut w, "fffffffffffffffffff", &b, b"\r\n"),
                    BadChunkSpace => chunk(&mut w, &format!(" {size}"), &b, b"\r\n"),
                    BadChunkNoCrlf => {
                        w.extend_from_slice(format!("{size}\r\n").as_bytes());
                        w.extend_from_slice(&b);
                    }
                    BadChunkShortData => {
                        let short = format!("{:x}", b.len().saturating_sub(3).max(1));
                        chunk(&mut w, &short, &b, b"\r\n");
                    }
                    BadChunkNoLast => {
                        chunk(&mut w, &size, &b, b"\r\n");
                        r.framing = Framing::Wire(w);
                        return;
                    }
                    _ => chunk(&mut w, &size, &b, b"\n"),
                }
                w.extend_from_slice(b"0\r\n\r\n");
                r.framing = Framing::Wire(w);
            }
            Expect100 => r.push("Expect", "100-continue"),
            Expect100Case => r.push("Expect", "100-Continue"),
            ExpectOther => r.push("Expect", c.choose(&["200-ok", "100-continue, foo", ""])),
            Http10 => r.version = "HTTP/1.0".into(),
            Http10KeepAlive => {
                r.version = "HTTP/1.0".into();
                r.push("Connection", "keep-alive");
            }
            Http10NoHost => {
                r.version = "HTTP/1.0".into();
                r.remove("Host");
            }
            Http10Expect => {
                r.version = "HTTP/1.0".into();
                r.push("Expect", "100-continue");
            }
            VersionOdd => {
                r.version = (c.choose(&[
                    "HTTP/1.2",
                    "HTTP/2.0",
                    "http/1.1",
                    "HTTP/1.10",
                    "HTTP/0.9",
                    "HTTP/1",
                ]))
                .into();
            }
            AbsoluteMatch | AbsoluteHttps | AbsoluteCase | AbsolutePort | AbsoluteMismatch
            | AbsoluteNoPath | AbsoluteQueryOnly | AbsoluteUserinfo | AbsoluteNoHost => {
                let host = r.value("Host").unwrap_or_else(|| HOST.into());
                let path = String::from_utf8_lossy(&r.target).into_owned();
                let t = match self {
                    AbsoluteMatch => format!("http://{host}{path}"),
                    AbsoluteHttps => format!("https://{host}{path}"),
                    AbsoluteCase => format!("HTTP://{}{path}", host.to_ascii_uppercase()),
                    AbsolutePort => {
                        r.set("Host", &format!("{host}:8080"));
                        format!("http://{host}:8080{path}")
                    }
                    AbsoluteMismatch => match c.below(3) {
                        0 => format!("http://other.example{path}"),
                        1 => format!("http://{host}:81{path}"),
                        _ => format!("http://{host}.{path}"),
                    },
                    AbsoluteNoPath => format!("http://{host}"),
                    AbsoluteQueryOnly => format!("http://{host}?x=1"),
                    AbsoluteUserinfo => format!("http://u:p@{host}{path}"),
                    _ => format!("http://{path}"),
                };
                r.target = t.into_bytes();
            }
            Fragment => r.target.extend_from_slice(b"#frag"),
            FragmentEmpty => r.target.push(b'#'),
            Query => {
                let q = c.choose(&["?x=1", "?", "?a=%20b&c", "?ssl_check=1", "?a=b?c"]);
                r.target.extend_from_slice(q.as_bytes());
            }
            QueryAnswer204 => r.target.extend_from_slice(b"?answer=204"),
            QueryAnswerHop => r.target.extend_from_slice(b"?answer=hop"),
            TargetStar => r.target = b"*".to_vec(),
            TargetNoSlash => r.target = r.target.get(1..).unwrap_or_default().to_vec(),
            TargetNonAscii => {
                r.target
                    .extend_from_slice(c.choose(&[&b"?x=\xff"[..], b"?x=\x7f", b"\xc3\xa9"]))
            }
            PathUnknown => r.target = b"/slack/nope".to_vec(),
            PathVariant => {
                let p = String::from_utf8_lossy(&r.target).into_owned();
                r.target = match c.below(5) {
                    0 => format!("{p}/"),
                    1 => format!("/{p}"),
                    2 => p.to_ascii_uppercase(),
                    3 => p.replacen("/slack/", "/slack/./", 1),
                    _ => p.replacen('s', "%73", 1),
                }
                .into_bytes();
            }
            HostMissing => r.remove("Host"),
            HostDuplicateSame => r.push("Host", HOST),
            HostDuplicateDifferent => r.push("Host", "other.example"),
            HostEmpty => r.set("Host", ""),
            HostPort => r.set("Host", &format!("{HOST}:8443")),
            HostRouted => r.set("Host", "bots.example"),
            HostRoutedUpper => r.set("Host", c.choose(&["BOTS.EXAMPLE", "bots.example:80"])),
            HostSpace => r.set("Host", "gw example"),
            HostSlash => r.set("Host", "gw.example/x"),
            BareLfHeader => match r.lines.len() {
                0 => r.end = b"\n",
                n => r.lines[c.below(n)].eol = b"\n",
            },
            BareLfEnd => r.end = b"\n",
            BareLfRequestLine => r.line_eol = b"\n",
            LeadingCrlf => {
                r.lead = if c.coin() {
                    b"\r\n".to_vec()
                } else {
                    b"\r\n\r\n".to_vec()
                }
            }
            LeadingLf => r.lead = b"\n".to_vec(),
            ObsFold | ObsFoldTab => {
                if r.lines.is_empty() {
                    r.push("X-Foo", "bar");
                }
                let i = c.below(r.lines.len());
                let fold: &[u8] = if self == ObsFold {
                    b" folded"
                } else {
                    b"\tfolded"
                };
                r.lines.insert(
                    i + 1,
                    Line {
                        text: fold.to_vec(),
                        eol: b"\r\n",
                    },
                );
            }
            NameSpace => {
                let name = c.choose(&["Content-Length", "Host", "Transfer-Encoding"]);
                let value = if name == "Content-Length" {
                    len.to_string()
                } else if name == "Host" {
                    HOST.to_owned()
                } else {
                    "chunked".to_owned()
                };
                r.push_raw(format!("{name} : {value}").into_bytes());
            }
            NameSpaceOther => r.push_raw(b"X-Foo : bar".to_vec()),
            NameTab => r.push_raw(b"X-Foo\t: bar".to_vec()),
            NameOdd => r.push_raw(
                (c.choose(&[&b"X@Y: 1"[..], b"X Y: 1", b": novalue", b"X\"Y: 1"])).to_vec(),
            ),
            ValueCtl => r.push_raw(
                (c.choose(&[&b"X-Foo: a\x01b"[..], b"X-Foo: a\x00b", b"X-Foo: a\rb"])).to_vec(),
            ),
            ValueObsText => r.push_raw(b"X-Foo: caf\xc3\xa9 \xff".to_vec()),
            ValueOws => {
                if r.find("Content-Type").is_none() {
                    r.push("Content-Type", "application/json");
                }
                let i = r.find("Content-Type").unwrap_or(0);
                let name = String::from_utf8_lossy(Req::name_of(&r.lines[i])).into_owned();
                let v = r.value(&name).unwrap_or_default();
                r.lines[i].text = format!("{name}:\t  {v} \t").into_bytes();
            }
            ValueEmpty => {
                r.push_raw((c.choose(&[&b"X-Empty:"[..], b"X-Empty: ", b"X-Empty:\t"])).to_vec())
            }
            NamesLowercase | NamesUppercase => {
                for l in &mut r.lines {
                    let n = Req::name_of(l).len();
                    for b in &mut l.text[..n] {
                        *b = if self == NamesLowercase {
                            b.to_ascii_lowercase()
                        } else {
                            b.to_ascii_uppercase()
                        };
                    }
                }
            }
            DuplicateApart => {
                r.push("Accept", "text/plain");
                r.lines.insert(
                    0,
                    Line {
                        text: b"X-Dup: 1".to_vec(),
                        eol: b"\r\n",
                    },
                );
                r.push("x-dup", "2");
            }
            ContentTypeTwice => r.push("Content-Type", "text/plain"),
            ManyHeaders => {
                for i in 0..101 {
                    r.push(&format!("X-H{i}"), "v");
                }
            }
            HeadOversize => {
                let head = r.head_bytes().len();
                let pad = MAX_HEAD.saturating_sub(head) + 1 + c.below(3000);
                r.push("X-Pad", &"a".repeat(pad));
            }
            HeadAtLimit => {
                let head = r.head_bytes().len() + "X-Pad: \r\n".len();
                r.push("X-Pad", &"a".repeat(MAX_HEAD.saturating_sub(head)));
            }
            RequestLineDoubleSpace => r.sep = b"  ",
            RequestLineTab => r.sep = b"\t",
            TwinUser => r.push(
                c.choose(&["X_Slackgate_User", "x_slackgate_user", "X-SLACKGATE-USER"]),
                "U0ADMIN",
            ),
            TwinRoute => r.push(
                c.choose(&[
                    "X_Slackgate_Route",
                    "X-Slackgate_Route",
                    "x_slackgate-route",
                ]),
                "admin",
            ),
            TwinMixed => {
                r.push("X-Slackgate_Team", "T0EVIL");
                r.push("X_SLACKGATE_SECRET_ID", "forged");
                r.push("X-Slackgate", "kept");
                r.push("X_Slackgatex", "kept");
            }
            OwnHeaders => {
                r.push("X-Slackgate-User", "U0ADMIN");
                r.push("X-Slackgate-Secret-Id", "forged");
            }
            ConnectionNamesHeader => {
                r.push("Connection", "X-Drop");
                r.push("X-Drop", "secret");
            }
            ConnectionNamesSignature => r.push("Connection", "x-slack-signature"),
            ConnectionNamesContentType => r.push("Connection", "Content-Type, keep-alive"),
            ConnectionNamesHost => r.push("Connection", "Host"),
            ConnectionNamesOwn => r.push("Connection", "X-Slackgate-User"),
            ConnectionClose => r.push(
                "Connection",
                c.choose(&["close", "Close", "keep-alive, close"]),
            ),
            ConnectionKeepAlive => r.push("Connection", "keep-alive"),
            ConnectionTwice => {
                r.push("Connection", "X-Drop");
                r.push("X-Drop", "1");
                r.push("Connection", "close");
            }
            ConnectionBadToken => r.push("Connection", c.choose(&["a b", "x/y", "close;"])),
            HopHeaders => {
                r.push("Keep-Alive", "timeout=5");
                r.push("TE", "trailers");
                r.push("Trailer", "X-T");
                r.push("Proxy-Connection", "keep-alive");
                r.push("Proxy-Authorization", "Basic Zm9vOmJhcg==");
            }
            Upgrade => r.push("Upgrade", c.choose(&["h2c", "websocket"])),
            UpgradeConnection => {
                r.push("Connection", "Upgrade");
                r.push("Upgrade", c.choose(&["h2c", "websocket"]));
            }
            XffDenied => r.push(
                "X-Forwarded-For",
                c.choose(&["203.0.113.7", "203.0.113.7:80", "198.51.100.1, 203.0.113.7"]),
            ),
            XffAllowed => r.push("X-Forwarded-For", "198.51.100.1"),
            XffChain => r.push("X-Forwarded-For", "203.0.113.7, 127.0.0.1"),
            XffTwice => {
                r.push("X-Forwarded-For", "198.51.100.1");
                r.push("X-Forwarded-For", "203.0.113.8");
            }
            XffGarbage => r.push(
                "X-Forwarded-For",
                c.choose(&["not-an-ip", "", "[::1]", "198.51.100.1:x"]),
            ),
            MethodGet => r.method = "GET".into(),
            MethodPut => r.method = (c.choose(&["PUT", "PATCH", "DELETE"])).into(),
            MethodLowercase => r.method = "post".into(),
            MethodHead => r.method = "HEAD".into(),
            MethodConnect => r.method = "CONNECT".into(),
            MethodOptions => r.method = "OPTIONS".into(),
            SigBad => {
                let mut sig = r
                    .value("X-Slack-Signature")
                    .unwrap_or_default()
                    .into_bytes();
                let i = 3 + c.below(sig.len().saturating_sub(3).max(1));
                if let Some(b) = sig.get_mut(i) {
                    *b = if *b == b'0' { b'1' } else { b'0' };
                }
                r.set("X-Slack-Signature", &String::from_utf8_lossy(&sig));
            }
            SigMissing => r.remove("X-Slack-Signature"),
            TsMissing => r.remove("X-Slack-Request-Timestamp"),
            SigStale => r.resign(SECRET, NOW - 301 - c.below(10_000) as i64),
            SigFuture => r.resign(SECRET, NOW + 301 + c.below(10_000) as i64),
            SigWrongSecret => r.resign("not-the-secret-at-all-0123456789", NOW),
            SigTwice => {
                let sig = r.value("X-Slack-Signature").unwrap_or_default();
                if c.coin() {
                    r.push("X-Slack-Signature", "v0=00");
                } else {
                    r.set("X-Slack-Signature", "v0=00");
                    r.push("X-Slack-Signature", &sig);
                }
            }
            TsTwice => r.push("X-Slack-Request-Timestamp", &NOW.to_string()),
            SigV1 => {
                let sig = r.value("X-Slack-Signature").unwrap_or_default();
                r.set("X-Slack-Signature", &sig.replacen("v0=", "v1=", 1));
            }
            BodyAltered => {
                if let Some(b) = r.body.last_mut() {
                    *b ^= 0x20;
                } else {
                    r.body.push(b' ');
                    r.set("Content-Length", "1");
                }
            }
            RetryHeaders => {
                r.push("X-Slack-Retry-Num", "1");
                r.push("X-Slack-Retry-Reason", "http_timeout");
            }
            SmuggleInBody => {
                // A complete signed request as the (signed) body of this one: it must
                // never be read as a request of its own.
                let inner = Req::signed(Route::Open, BodyKind::Mention, r.id + (1 << 50));
                r.body = inner.to_bytes();
                r.resign(SECRET, NOW);
            }
            SmuggleInChunks => {
                let inner = Req::signed(Route::Open, BodyKind::Mention, r.id + (1 << 51));
                r.body = inner.to_bytes();
                r.resign(SECRET, NOW);
                let ext = c.coin();
                r.chunk(c, ext, false);
            }
        }
    }
}

/// Applies `muts` to `r` (neutral ones first, refusing ones last, so that a refusal
/// is never undone by a later edit) and predicts the outcome: the base fate through one
/// decisive mutation; a refusal when any refusing mutation was applied; unknown when two
/// or more decisive mutations were combined.
pub fn mutate(r: &mut Req, muts: &[Mut], c: &mut impl Choose) -> Fate {
    let ordered = apply_ordered(r, muts, c);
    // After the edits: some replace the body (and so its kind).
    let base = base_fate(r.route, r.kind);
    if ordered.iter().any(|m| m.class() == Class::Refusing) {
        return Fate::REFUSE;
    }
    let decisive: Vec<Mut> = ordered
        .iter()
        .copied()
        .filter(|m| m.class() == Class::Decisive)
        .collect();
    match decisive.as_slice() {
        [] => base,
        [one] => one.fate(base, r.route),
        _ => Fate::UNKNOWN,
    }
}

/// Applies `muts` to `r` in the order [`mutate`] does (neutral, decisive, refusing) and
/// returns them in that order, without predicting anything: for requests that are not
/// signed Slack requests (the egress listener's Web API calls, see [`Req::call`]), whose
/// fate depends on other things than [`base_fate`] and which the caller predicts itself.
pub fn apply_ordered(r: &mut Req, muts: &[Mut], c: &mut impl Choose) -> Vec<Mut> {
    let mut ordered: Vec<Mut> = muts.to_vec();
    ordered.sort_by_key(|m| match m.class() {
        Class::Neutral => 0,
        Class::Decisive => 1,
        Class::Refusing => 2,
    });
    for m in &ordered {
        m.apply(r, c);
    }
    ordered
}
