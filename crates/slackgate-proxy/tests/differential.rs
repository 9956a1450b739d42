//! The fast path and pingora's path must be one gateway: a generated corpus of request
//! heads and framings (valid, odd and hostile; see `http_corpus/mod.rs`) is sent to two
//! gateways over the same policy, one with the fast path on (the default) and one that
//! hands every request to pingora (`fast_path(false)`), one connection per case. For
//! every case both must give the same answers (status, phrase, headers, body, and so the
//! JSON `reason`; only pingora writes `Date` and an explicit `Connection: keep-alive`,
//! which are left out), the same audit records (all fields but the time ones), the same
//! bytes at the bot (each forwarded head byte for byte, and its body), and end the
//! connection the same way.
//!
//! The corpus is deterministic (a seeded SplitMix64, a fixed clock, bodies made unique
//! by a counter). Each side also checks the corpus model (`Fate`): a request predicted to
//! pass every check reaches the bot once, whole; a refused head gets one 400/431/501 and
//! nothing after it; a gateway answer sends nothing to the bot. A mismatch is reported
//! with the exact input and both outcomes; every case runs before the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_corpus;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use http_corpus::*;
use slackgate_testkit::{wait_until, TestGateway};

// === The two gateways ===

#[derive(Debug)]
struct Side {
    name: &'static str,
    gw: TestGateway,
    bot: RawBot,
    audit_seen: usize,
}

impl Side {
    fn start(name: &'static str, fast_path: bool) -> Self {
        let (gw, bot) = http_corpus::start(fast_path);
        Side {
            name,
            gw,
            bot,
            audit_seen: 0,
        }
    }

    /// Runs one case on a fresh connection and collects everything it caused.
    fn run(&mut self, case: &Case) -> Outcome {
        let (raw, ended) = exchange(self.gw.addr, &case.bytes(), case.hold);
        let (answers, leftover) = parse_answers(&raw, &case.head_flags());
        // A request after the case, on its own connection: its audit record comes after
        // every record of the case (one queue), so the case's records are the ones before.
        let (sentinel, _) = exchange(self.gw.addr, SENTINEL, false);
        assert!(
            sentinel.starts_with(b"HTTP/1.1 401"),
            "{}: sentinel answered {:?}",
            self.name,
            String::from_utf8_lossy(&sentinel)
        );
        let mut lines = Vec::new();
        let found = wait_until(Duration::from_secs(10), || {
            let raw = self.gw.audit_raw();
            let Some(at) = raw[self.audit_seen..]
                .iter()
                .position(|l| l.contains("\"route\":\"sentinel\""))
            else {
                return false;
            };
            lines = raw[self.audit_seen..self.audit_seen + at].to_vec();
            self.audit_seen += at + 1;
            true
        });
        assert!(
            found,
            "{}: the sentinel's audit record never came",
            self.name
        );
        let audit = lines
            .iter()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("ts");
                    o.remove("duration_us");
                }
                v
            })
            .collect();
        Outcome {
            answers,
            leftover,
            ended,
            audit,
            bot: self.bot.take(),
        }
    }
}

const SENTINEL: &[u8] =
    b"POST /slack/sentinel HTTP/1.1\r\nHost: s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[derive(Debug)]
struct Pair {
    fast: Side,
    pingora: Side,
}

impl Pair {
    fn start() -> Self {
        Pair {
            fast: Side::start("fast path", true),
            pingora: Side::start("pingora path", false),
        }
    }

    /// Runs every case on both sides (in parallel) and returns the problems found.
    fn run_all(&mut self, cases: &[Case]) -> Vec<String> {
        let mut problems = Vec::new();
        for case in cases {
            let (fast, pingora) = (&mut self.fast, &mut self.pingora);
            let (a, b) = std::thread::scope(|s| {
                let b = s.spawn(|| pingora.run(case));
                let a = fast.run(case);
                (a, b.join().unwrap())
            });
            if let Some(d) = diverges(&a, &b) {
                problems.push(format!(
                    "DIVERGENCE in {}: {d}\n  input ({} bytes): {}\n  fast path:    {}\n  pingora path: {}",
                    case.name,
                    case.bytes().len(),
                    show(&case.bytes()),
                    a.summary(),
                    b.summary()
                ));
            }
            for (side, o) in [("fast path", &a), ("pingora path", &b)] {
                if let Err(e) = check_model(case, o) {
                    problems.push(format!(
                        "MODEL/INVARIANT in {} on the {side}: {e}\n  input ({} bytes): {}\n  outcome: {}",
                        case.name,
                        case.bytes().len(),
                        show(&case.bytes()),
                        o.summary()
                    ));
                }
            }
        }
        problems
    }
}

// === Cases ===

/// One connection's worth of requests.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    reqs: Vec<(Req, Fate)>,
    /// Bytes after the requests (an unfinished head).
    extra: Vec<u8>,
    /// Keep the connection open after sending (the gateway's timers end it) instead
    /// of closing the write side.
    hold: bool,
}

impl Case {
    fn one(name: String, req: Req, fate: Fate) -> Self {
        Case {
            name,
            reqs: vec![(req, fate)],
            extra: Vec::new(),
            hold: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (r, _) in &self.reqs {
            out.extend_from_slice(&r.to_bytes());
        }
        out.extend_from_slice(&self.extra);
        out
    }

    fn head_flags(&self) -> Vec<bool> {
        self.reqs.iter().map(|(r, _)| r.method == "HEAD").collect()
    }
}

/// Makes cases: base requests with unique bodies, mutated.
struct Corpus {
    rng: SplitMix,
    next_id: u64,
}

impl Corpus {
    fn new(seed: u64) -> Self {
        Corpus {
            rng: SplitMix(seed),
            next_id: seed << 20,
        }
    }

    fn base(&mut self, route: Route, kind: BodyKind) -> Req {
        self.next_id += 1;
        Req::signed(route, kind, self.next_id)
    }

    fn random_base(&mut self) -> Req {
        let route = self.rng.choose(Route::ALL);
        let kind = self.rng.choose(BodyKind::COMMON);
        self.base(route, kind)
    }

    fn mutated(&mut self, mut req: Req, muts: &[Mut]) -> (Req, Fate) {
        let fate = mutate(&mut req, muts, &mut self.rng);
        (req, fate)
    }
}

fn label(req: &Req, muts: &[Mut]) -> String {
    format!("{:?}/{:?} + {:?}", req.route, req.kind, muts)
}

/// Every route with every kind of body, unmutated.
fn base_cases(c: &mut Corpus) -> Vec<Case> {
    let mut cases = Vec::new();
    for &route in Route::ALL {
        for &kind in BodyKind::COMMON.iter().skip(1) {
            let req = c.base(route, kind);
            let fate = base_fate(route, kind);
            cases.push(Case::one(label(&req, &[]), req, fate));
        }
    }
    for size in [0, 1024, 65_536, 65_537] {
        let req = c.base(Route::Open, BodyKind::Sized(size));
        cases.push(Case::one(
            label(&req, &[]),
            req,
            base_fate(Route::Open, BodyKind::Sized(size)),
        ));
    }
    cases
}

/// Each mutation alone, on an allowed request and on `per_mut - 1` random ones.
fn single_mutation_cases(c: &mut Corpus, per_mut: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for &m in Mut::ALL {
        for i in 0..per_mut {
            let base = if i == 0 {
                c.base(Route::Open, BodyKind::Mention)
            } else {
                c.random_base()
            };
            let name = label(&base, &[m]);
            let (req, fate) = c.mutated(base, &[m]);
            cases.push(Case::one(name, req, fate));
        }
    }
    cases
}

/// Two to four mutations at once: every other case one decisive mutation among neutral
/// ones (its outcome predicted), the others mostly of the kinds a request can survive.
fn combination_cases(c: &mut Corpus, n: usize) -> Vec<Case> {
    let of = |class: Option<Class>| -> Vec<Mut> {
        Mut::ALL
            .iter()
            .copied()
            .filter(|m| match class {
                Some(k) => m.class() == k,
                None => m.class() != Class::Refusing,
            })
            .collect()
    };
    let (survivable, neutral, decisive) = (
        of(None),
        of(Some(Class::Neutral)),
        of(Some(Class::Decisive)),
    );
    let mut cases = Vec::new();
    for _ in 0..n {
        let base = if c.rng.coin() {
            let kind = c.rng.choose(&[BodyKind::Mention, BodyKind::Command]);
            c.base(Route::Open, kind)
        } else {
            c.random_base()
        };
        let k = 2 + c.rng.below(3);
        let predicted = c.rng.coin();
        let muts: Vec<Mut> = (0..k)
            .map(|i| {
                if predicted {
                    c.rng.choose(if i == 0 { &decisive } else { &neutral })
                } else if c.rng.below(8) == 0 {
                    c.rng.choose(Mut::ALL)
                } else {
                    c.rng.choose(&survivable)
                }
            })
            .collect();
        let name = label(&base, &muts);
        let (req, fate) = c.mutated(base, &muts);
        cases.push(Case::one(name, req, fate));
    }
    cases
}

/// Mutations a pipelined request is given (one at most).
const PIPELINE_MUTS: &[Mut] = &[
    Mut::Chunked,
    Mut::ChunkedExt,
    Mut::ChunkedTrailers,
    Mut::Expect100,
    Mut::Http10KeepAlive,
    Mut::Http10,
    Mut::AbsoluteMatch,
    Mut::TwinUser,
    Mut::ConnectionNamesHeader,
    Mut::ConnectionClose,
    Mut::ConnectionTwice,
    Mut::SigBad,
    Mut::PathUnknown,
    Mut::XffDenied,
    Mut::ClShort,
    Mut::ClTooBig,
    Mut::ClMissing,
    Mut::Fragment,
    Mut::TeGzipChunked,
    Mut::TeAndCl,
    Mut::HostMissing,
    Mut::MethodGet,
    Mut::MethodHead,
    Mut::SmuggleInBody,
    Mut::SmuggleInChunks,
    Mut::BadChunkSize,
    Mut::BadChunkShortData,
    Mut::QueryAnswer204,
    Mut::QueryAnswerHop,
    Mut::Upgrade,
    Mut::DuplicateApart,
    Mut::HeadAtLimit,
];

/// Sequences of two to five requests on one connection; some repeat the one before
/// (a replay on the same connection).
fn pipeline_cases(c: &mut Corpus, n: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for i in 0..n {
        let len = 2 + c.rng.below(4);
        let mut reqs: Vec<(Req, Fate)> = Vec::new();
        let mut names = Vec::new();
        for _ in 0..len {
            if let Some((prev, fate)) = reqs.last().cloned() {
                if c.rng.below(6) == 0 {
                    let fate = Fate {
                        kind: match fate.kind {
                            Kind::Forward => Kind::Gateway,
                            k => k,
                        },
                        close: fate.close,
                    };
                    names.push("repeat".to_owned());
                    reqs.push((prev, fate));
                    continue;
                }
            }
            let route = c.rng.choose(&[
                Route::Open,
                Route::Open,
                Route::Fenced,
                Route::Scoped,
                Route::Unknown,
            ]);
            let kind = c
                .rng
                .choose(&[BodyKind::Mention, BodyKind::Command, BodyKind::Message]);
            let base = c.base(route, kind);
            let muts: Vec<Mut> = if c.rng.coin() {
                vec![c.rng.choose(PIPELINE_MUTS)]
            } else {
                Vec::new()
            };
            names.push(label(&base, &muts));
            reqs.push(c.mutated(base, &muts));
        }
        cases.push(Case {
            name: format!("pipeline {i}: [{}]", names.join(", ")),
            reqs,
            extra: Vec::new(),
            hold: false,
        });
    }
    cases
}

/// Whether the connection persists after a request, by every way of saying so, on
/// both framings; a second request follows on the connection.
fn persistence_cases(c: &mut Corpus) -> Vec<Case> {
    let variants: &[(&str, &[&str], bool)] = &[
        ("close", &["Connection: close"], true),
        ("Close", &["Connection: Close"], true),
        (
            "keep-alive, close",
            &["Connection: keep-alive, close"],
            true,
        ),
        (
            "close, keep-alive",
            &["Connection: close, keep-alive"],
            true,
        ),
        (
            "two Connection headers",
            &["Connection: X-Drop", "X-Drop: 1", "Connection: close"],
            true,
        ),
        (
            "close on a second Connection line",
            &["Connection: keep-alive", "Connection: close"],
            true,
        ),
        ("keep-alive", &["Connection: keep-alive"], false),
        // pingora reads only the first `Connection` line; the front reads them all.
        (
            "keep-alive on a second Connection line",
            &["Connection: X-Drop", "X-Drop: 1", "Connection: keep-alive"],
            false,
        ),
        (
            "a named header",
            &["Connection: X-Drop", "X-Drop: 1"],
            false,
        ),
    ];
    let mut cases = Vec::new();
    for chunked in [false, true] {
        for http10 in [false, true] {
            for (name, lines, close) in variants {
                if http10 && chunked {
                    continue;
                }
                let mut first = c.base(Route::Open, BodyKind::Mention);
                for l in *lines {
                    first.push_raw(l.as_bytes().to_vec());
                }
                if chunked {
                    first.chunk(&mut c.rng, false, false);
                }
                // HTTP/1.0 persists only when asked to (and not told to close).
                let close = if http10 {
                    first.version = "HTTP/1.0".into();
                    *close || !lines.iter().any(|l| l.contains("keep-alive"))
                } else {
                    *close
                };
                let second = c.base(Route::Open, BodyKind::Command);
                cases.push(Case {
                    name: format!(
                        "persistence: {}{}{name}, then another request",
                        if chunked { "chunked, " } else { "" },
                        if http10 { "HTTP/1.0, " } else { "" }
                    ),
                    reqs: vec![
                        (
                            first,
                            Fate {
                                kind: Kind::Forward,
                                close,
                            },
                        ),
                        (
                            second,
                            Fate {
                                kind: Kind::Forward,
                                close: false,
                            },
                        ),
                    ],
                    extra: Vec::new(),
                    hold: false,
                });
            }
        }
    }
    cases
}

/// Clients that stop sending: the head deadline and the body deadline end them.
fn slow_client_cases(c: &mut Corpus) -> Vec<Case> {
    let mut cases = Vec::new();
    let held = |name: &str, reqs: Vec<(Req, Fate)>, extra: &[u8]| Case {
        name: name.to_owned(),
        reqs,
        extra: extra.to_vec(),
        hold: true,
    };
    // An unfinished first head.
    cases.push(held(
        "unfinished first head",
        Vec::new(),
        b"POST /slack/open HTTP/1.1\r\nHost: gw.example\r\nContent-Le",
    ));
    cases.push(held(
        "only a request line",
        Vec::new(),
        b"POST /slack/open HTTP/1.1\r\n",
    ));
    // An answered request, then an unfinished one.
    let first = c.base(Route::Open, BodyKind::Mention);
    cases.push(held(
        "answered, then an unfinished head",
        vec![(
            first,
            Fate {
                kind: Kind::Forward,
                close: false,
            },
        )],
        b"POST /slack/open HTTP/1.1\r\nHost: gw.example\r\n",
    ));
    // A body that stops short, on both framings.
    for (name, muts) in [
        ("body stops short", vec![]),
        ("chunked body stops short", vec![Mut::Chunked]),
        ("expect 100-continue, body never sent", vec![Mut::Expect100]),
        ("no route, body stops short", vec![Mut::PathUnknown]),
    ] {
        let base = c.base(Route::Open, BodyKind::Mention);
        let (mut req, _) = c.mutated(base, &muts);
        let full = req.to_bytes();
        let head = req.head_bytes();
        let keep = if name.contains("never sent") {
            0
        } else {
            (full.len() - head.len()) / 2
        };
        req.framing = Framing::Wire(full[head.len()..head.len() + keep].to_vec());
        req.tail.clear();
        cases.push(held(
            name,
            vec![(
                req,
                Fate {
                    kind: Kind::Unknown,
                    close: true,
                },
            )],
            b"",
        ));
    }
    cases
}

// === Talking to a gateway ===

/// Sends `bytes` on a new connection (then closes the write side, unless `hold`) and
/// reads until the gateway closes; `false` when it did not close within 15 s.
fn exchange(addr: SocketAddr, bytes: &[u8], hold: bool) -> (Vec<u8>, bool) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = s;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // The gateway may close before it read everything (a refused head).
            let _ = w.write_all(bytes);
            if !hold {
                let _ = w.shutdown(std::net::Shutdown::Write);
            }
        });
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let started = Instant::now();
        loop {
            match r.read(&mut chunk) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (out, false)
                }
                Err(e) if started.elapsed() > Duration::from_secs(15) => panic!("read: {e}"),
                Err(_) => return (out, true),
            }
        }
    })
}

/// One answer as the client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    phrase: String,
    /// Names lowercased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn reason(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_else(|| {
                if self.body.starts_with(b"{\"ok\":true") {
                    "(bot)".into()
                } else {
                    "-".into()
                }
            })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits what the gateway wrote into answers (1xx included); what does not parse is
/// left over. `heads[i]` says whether the i-th request was a HEAD (its answer has no body).
fn parse_answers(mut raw: &[u8], heads: &[bool]) -> (Vec<Answer>, Vec<u8>) {
    let mut out = Vec::new();
    let mut finals = 0;
    loop {
        if raw.is_empty() {
            return (out, Vec::new());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = resp.parse(raw) else {
            return (out, raw.to_vec());
        };
        let status = resp.code.unwrap_or(0);
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            // pingora says `Connection: keep-alive` on an HTTP/1.1 answer, the fast path
            // leaves it implied (RFC 9112 9.3): the same answer.
            .filter(|h| {
                !(h.name.eq_ignore_ascii_case("date")
                    || h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"keep-alive"))
            })
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let phrase = resp.reason.unwrap_or_default().to_owned();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.trim().parse::<usize>().ok());
        let bodyless = (100..200).contains(&status)
            || status == 204
            || status == 304
            || heads.get(finals).copied().unwrap_or(false);
        let len = if bodyless {
            0
        } else {
            length.unwrap_or(raw.len() - n)
        };
        if raw.len() < n + len {
            return (out, raw.to_vec());
        }
        out.push(Answer {
            status,
            phrase,
            headers,
            body: raw[n..n + len].to_vec(),
        });
        if status >= 200 {
            finals += 1;
        }
        raw = &raw[n + len..];
    }
}

/// Everything one case caused on one side.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    answers: Vec<Answer>,
    /// Bytes after the last whole answer.
    leftover: Vec<u8>,
    /// The gateway closed the connection (rather than the read timing out).
    ended: bool,
    /// The case's audit records, without `ts` and `duration_us`.
    audit: Vec<serde_json::Value>,
    bot: Vec<AtBot>,
}

impl Outcome {
    fn finals(&self) -> Vec<&Answer> {
        self.answers.iter().filter(|a| a.status >= 200).collect()
    }

    fn summary(&self) -> String {
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|a| format!("{} {}", a.status, a.reason()))
            .collect();
        let audit: Vec<String> = self
            .audit
            .iter()
            .map(|a| {
                format!(
                    "{}/{}/{}",
                    a["reason"].as_str().unwrap_or("?"),
                    a["status"],
                    a["route"].as_str().unwrap_or("-")
                )
            })
            .collect();
        let bot: Vec<String> = self
            .bot
            .iter()
            .map(|b| {
                let line = b.head.split(|&c| c == b'\n').next().unwrap_or_default();
                format!(
                    "{} +{}B",
                    String::from_utf8_lossy(line).trim_end(),
                    b.body.len()
                )
            })
            .collect();
        format!(
            "answers {answers:?}{}; audit {audit:?}; bot {bot:?}; {}",
            if self.leftover.is_empty() {
                String::new()
            } else {
                format!(
                    " + {} unparsed bytes {}",
                    self.leftover.len(),
                    show(&self.leftover)
                )
            },
            if self.ended {
                "closed"
            } else {
                "NOT closed within 15 s"
            }
        )
    }
}

/// What differs between the two outcomes, said precisely; `None` when they agree.
fn diverges(a: &Outcome, b: &Outcome) -> Option<String> {
    let mut d = String::new();
    if a.answers.len() != b.answers.len() {
        let _ = write!(d, "{} vs {} answers; ", a.answers.len(), b.answers.len());
    }
    for (i, (x, y)) in a.answers.iter().zip(&b.answers).enumerate() {
        if x.status != y.status || x.reason() != y.reason() {
            let _ = write!(
                d,
                "answer {i}: {} {} vs {} {}; ",
                x.status,
                x.reason(),
                y.status,
                y.reason()
            );
        } else if x != y {
            let _ = write!(d, "answer {i} ({} {}) differs: ", x.status, x.reason());
            if x.phrase != y.phrase {
                let _ = write!(d, "phrase {:?} vs {:?}, ", x.phrase, y.phrase);
            }
            if x.headers != y.headers {
                let _ = write!(d, "headers {:?} vs {:?}, ", x.headers, y.headers);
            }
            if x.body != y.body {
                let _ = write!(d, "body {} vs {}, ", show(&x.body), show(&y.body));
            }
            d.push_str("; ");
        }
    }
    if a.leftover != b.leftover {
        let _ = write!(
            d,
            "unparsed {} vs {}; ",
            show(&a.leftover),
            show(&b.leftover)
        );
    }
    if a.ended != b.ended {
        let _ = write!(d, "closed {} vs {}; ", a.ended, b.ended);
    }
    if a.audit != b.audit {
        let _ = write!(
            d,
            "audit {} vs {}; ",
            serde_json::to_string(&a.audit).unwrap(),
            serde_json::to_string(&b.audit).unwrap()
        );
    }
    if a.bot.len() != b.bot.len() {
        let _ = write!(
            d,
            "{} vs {} requests at the bot; ",
            a.bot.len(),
            b.bot.len()
        );
    }
    for (i, (x, y)) in a.bot.iter().zip(&b.bot).enumerate() {
        if x.head != y.head {
            let _ = write!(
                d,
                "bot request {i} head: {} vs {}; ",
                show(&x.head),
                show(&y.head)
            );
        }
        if x.body != y.body {
            let _ = write!(
                d,
                "bot request {i} body: {} vs {}; ",
                show(&x.body),
                show(&y.body)
            );
        }
    }
    (!d.is_empty()).then_some(d)
}

/// The corpus model and the invariants every outcome holds on its own.
fn check_model(case: &Case, o: &Outcome) -> Result<(), String> {
    if !o.ended {
        return Err("the gateway did not close the connection".into());
    }
    let finals = o.finals();
    // Every answer has its audit record, in order, with its status (and the gateway's
    // own answers their reason).
    let answered = finals.len();
    if o.audit.len() < answered {
        return Err(format!(
            "{answered} answers but {} audit records",
            o.audit.len()
        ));
    }
    for (i, a) in finals.iter().enumerate() {
        let rec = &o.audit[i];
        if rec["status"] != a.status {
            return Err(format!(
                "answer {i} is {} but its record says {}",
                a.status, rec["status"]
            ));
        }
        let r = a.reason();
        if r != "-" && r != "(bot)" && rec["reason"] != r.as_str() {
            return Err(format!(
                "answer {i} says {r} but its record says {}",
                rec["reason"]
            ));
        }
    }
    // Only requests whose records say they were forwarded reach the bot.
    let forwarded = o
        .audit
        .iter()
        .filter(|r| !r["upstream_status"].is_null())
        .count();
    if forwarded != o.bot.len() {
        return Err(format!(
            "{forwarded} records with an upstream status, {} requests at the bot",
            o.bot.len()
        ));
    }
    // Every request at the bot is one the client sent, whole, signed, and only once
    // (when the framing of every request is known: a request without a length makes
    // its body the next request, legitimately).
    let mut seen = Vec::new();
    let framed = case.reqs.iter().all(|(_, f)| f.kind != Kind::Unknown);
    for b in o.bot.iter().filter(|_| framed) {
        let Some((req, _)) = case.reqs.iter().find(|(r, _)| r.body == b.body) else {
            return Err(format!(
                "the bot got a body the client never sent as one: {}",
                show(&b.body)
            ));
        };
        if req.value("X-Slack-Signature").is_none() {
            return Err(format!(
                "the bot got an unsigned request: {}",
                show(&b.body)
            ));
        }
        if seen.contains(&b.body) {
            return Err(format!("the bot got a body twice: {}", show(&b.body)));
        }
        seen.push(b.body.clone());
    }

    // The predicted fates, in order, up to the first unknown one.
    let mut next_final = 0;
    let mut bot_next = 0;
    for (i, (req, fate)) in case.reqs.iter().enumerate() {
        match fate.kind {
            Kind::Unknown => return Ok(()),
            Kind::Forward => {
                let Some(a) = finals.get(next_final) else {
                    return Err(format!("request {i} (forward) got no answer"));
                };
                let expected = if req.target.ends_with(b"answer=204") {
                    204
                } else {
                    200
                };
                let head = req.method == "HEAD";
                let bot_body = if head {
                    a.body.is_empty()
                } else {
                    a.reason() != "-"
                };
                if a.status != expected || expected == 200 && !bot_body {
                    return Err(format!(
                        "request {i} (forward) answered {} {}",
                        a.status,
                        a.reason()
                    ));
                }
                match o.bot.get(bot_next) {
                    Some(b) if b.body == req.body => bot_next += 1,
                    _ => return Err(format!("request {i} (forward) did not reach the bot whole")),
                }
            }
            Kind::Gateway => {
                let Some(a) = finals.get(next_final) else {
                    return Err(format!("request {i} (gateway answer) got no answer"));
                };
                if o.bot[bot_next.min(o.bot.len())..]
                    .iter()
                    .any(|b| b.body == req.body)
                {
                    return Err(format!(
                        "request {i} (gateway answer {}) reached the bot",
                        a.status
                    ));
                }
            }
            Kind::Refuse => {
                let Some(a) = finals.get(next_final) else {
                    return Err(format!("request {i} (refused head) got no answer"));
                };
                if ![400, 431, 501].contains(&a.status) {
                    return Err(format!(
                        "request {i} (refused head) answered {} {}",
                        a.status,
                        a.reason()
                    ));
                }
                if a.header("connection") != Some("close") {
                    return Err(format!("request {i} refused without Connection: close"));
                }
            }
        }
        next_final += 1;
        if fate.close || fate.kind == Kind::Refuse {
            if finals.len() > next_final {
                return Err(format!(
                    "{} answers after request {i}, which ends the connection",
                    finals.len() - next_final
                ));
            }
            return Ok(());
        }
    }
    if case.extra.is_empty() && !case.hold && finals.len() != next_final {
        return Err(format!(
            "{} answers for {next_final} requests",
            finals.len()
        ));
    }
    Ok(())
}

/// Bytes as an escaped string literal, the middle of long ones elided.
fn show(b: &[u8]) -> String {
    let esc = |b: &[u8]| -> String { b.escape_ascii().to_string() };
    if b.len() <= 900 {
        format!("b\"{}\"", esc(b))
    } else {
        format!(
            "b\"{}\" ...({} bytes)... b\"{}\"",
            esc(&b[..600]),
            b.len() - 800,
            esc(&b[b.len() - 200..])
        )
    }
}

fn report(what: &str, cases: &[Case], started: Instant, problems: &[String]) {
    let mut kinds = std::collections::BTreeMap::new();
    for (_, f) in cases.iter().flat_map(|c| &c.reqs) {
        *kinds.entry(format!("{:?}", f.kind)).or_insert(0) += 1;
    }
    eprintln!(
        "{what}: {} cases ({} requests, predicted {kinds:?}) on both paths in {:.1?}, {} problems",
        cases.len(),
        cases.iter().map(|c| c.reqs.len()).sum::<usize>(),
        started.elapsed(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{what}: {} problems\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

// === Tests ===

#[test]
fn single_requests_agree_on_both_paths() {
    let started = Instant::now();
    let mut c = Corpus::new(1);
    let mut cases = base_cases(&mut c);
    cases.extend(single_mutation_cases(&mut c, 3));
    let mut pair = Pair::start();
    let problems = pair.run_all(&cases);
    report("single requests", &cases, started, &problems);
}

#[test]
fn combined_mutations_agree_on_both_paths() {
    let started = Instant::now();
    let mut c = Corpus::new(2);
    let cases = combination_cases(&mut c, 300);
    let mut pair = Pair::start();
    let problems = pair.run_all(&cases);
    report("combined mutations", &cases, started, &problems);
}

#[test]
fn pipelined_connections_agree_on_both_paths() {
    let started = Instant::now();
    let mut c = Corpus::new(3);
    let mut cases = persistence_cases(&mut c);
    cases.extend(pipeline_cases(&mut c, 120));
    let mut pair = Pair::start();
    let problems = pair.run_all(&cases);
    report("pipelines", &cases, started, &problems);
}

#[test]
fn slow_clients_agree_on_both_paths() {
    let started = Instant::now();
    let mut c = Corpus::new(4);
    let cases = slow_client_cases(&mut c);
    let mut pair = Pair::start();
    let problems = pair.run_all(&cases);
    report("slow clients", &cases, started, &problems);
}
