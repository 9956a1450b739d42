//! The keep-alive reload drill of issue 19: load from keep-alive connections around one
//! reload, upgrade or drain of the server, counting what a client pool loses.
//!
//! `--conns` connections (16) each send unique, freshly signed Events API callbacks (the
//! same bodies and signing as `loadgen`), one after another on the same connection, and
//! replace the connection only when an answer says `Connection: close` or the connection
//! fails. After about one request in seven (at random, per connection, so the connections do
//! not pause in step) the connection sits idle for 20-140 ms, as pooled connections do. After `--before` seconds the drill runs `--reload-cmd` (with `sh -c`),
//! then keeps the load on for `--after` seconds more and stops by itself.
//!
//! With `--drain` the clients stop opening connections when the reload command starts
//! (a Kubernetes endpoint removal before SIGTERM): each connection is used until the server
//! closes it or says `Connection: close`, and the run ends when every connection has ended
//! (or `--after` has passed).
//!
//! What is counted, per request:
//! - `lost`: the request was written (or its write failed) and no complete answer came: the
//!   connection was closed or reset under it (`lost_write`, `lost_read`), or no answer in
//!   5 s (`lost_timeout`). This is what a keep-alive race costs a client;
//! - `non200`: a complete answer other than 200;
//! - `connect_errors`: connections that could not be opened (no request written);
//! - latency from the first written byte to the last read byte of the answer, in an
//!   HdrHistogram: for the whole run and for the window from the start of the reload command
//!   to the end of the run (`window_*`, `p999_us` is the window's p99.9).
//!
//! ```text
//! reloaddrill --addr 127.0.0.1:P --reload-cmd 'CMD' [--label NAME] [--run N] [--conns 16]
//!             [--before 2] [--after 7] [--drain] [--body-len 1024] [--path /slack/events]
//! ```
//! Prints one `RELOAD key=value ...` line on stdout (lost requests also on stderr, with
//! their time relative to the start of the reload command). Loopback only. The signing
//! secret is `$BENCH_SIGNING_SECRET` (default: the benchmarks' secret).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use slackgate_benches::http::message_len;
use slackgate_benches::{runtime, start_counter, RequestMaker, ROUTE_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a written request may wait for its answer before it counts as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// "Not yet" for the offsets below.
const UNSET: u64 = u64::MAX;

#[derive(Debug, Clone)]
struct Opts {
    addr: SocketAddr,
    path: String,
    label: String,
    run: String,
    conns: usize,
    before: Duration,
    after: Duration,
    drain: bool,
    body_len: usize,
    reload_cmd: String,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        addr: "127.0.0.1:8080".parse().unwrap(),
        path: ROUTE_PATH.into(),
        label: "target".into(),
        run: "1".into(),
        conns: 16,
        before: Duration::from_secs(2),
        after: Duration::from_secs(7),
        drain: false,
        body_len: 1024,
        reload_cmd: String::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        if k == "--drain" {
            o.drain = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        let secs = |v: &str| Duration::from_secs_f64(v.parse().expect("seconds"));
        match k.as_str() {
            "--addr" => o.addr = v.parse().expect("--addr host:port"),
            "--path" => o.path = v.clone(),
            "--label" => o.label = v.clone(),
            "--run" => o.run = v.clone(),
            "--conns" => o.conns = v.parse().expect("--conns"),
            "--before" => o.before = secs(v),
            "--after" => o.after = secs(v),
            "--body-len" => o.body_len = v.parse().expect("--body-len"),
            "--reload-cmd" => o.reload_cmd = v.clone(),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(
        o.addr.ip().is_loopback(),
        "load goes to 127.0.0.1 only, not {}",
        o.addr
    );
    assert!(!o.reload_cmd.is_empty(), "--reload-cmd CMD is required");
    o
}

/// What a request's exchange came to.
enum Outcome {
    Answer { status: u16, close: bool },
    LostWrite,
    LostRead,
    LostTimeout,
}

struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let sock = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        sock.set_nodelay(true)?;
        Ok(Self {
            sock,
            buf: Vec::with_capacity(4096),
        })
    }

    async fn exchange(&mut self, req: &[u8]) -> Outcome {
        let fut = async {
            if self.sock.write_all(req).await.is_err() {
                return Outcome::LostWrite;
            }
            let mut chunk = [0u8; 8192];
            loop {
                if let Some((head, len)) = message_len(&self.buf) {
                    self.buf.drain(..len);
                    return Outcome::Answer {
                        status: head.status,
                        close: head.close,
                    };
                }
                match self.sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Outcome::LostRead,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, fut)
            .await
            .unwrap_or(Outcome::LostTimeout)
    }
}

/// The clock of one run: offsets in microseconds from its start.
struct Clock {
    start: Instant,
    /// When the reload command started (UNSET before).
    reload_at: AtomicU64,
    /// When the load stops (UNSET until the reload command has ended).
    end_at: AtomicU64,
    /// Set when the reload command starts, with `--drain`: no new connections.
    no_new: AtomicBool,
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(UNSET - 1)
    }
}

#[derive(Default)]
struct Tally {
    requests: u64,
    ok: u64,
    non200: u64,
    lost_write: u64,
    lost_read: u64,
    lost_timeout: u64,
    connect_errors: u64,
    connections: u64,
    server_close: u64,
    /// Offsets (µs from the reload command's start) of lost requests.
    lost_at: Vec<i64>,
    /// First and last `Connection: close` answer after the reload started (µs from it).
    close_first: Option<i64>,
    close_last: Option<i64>,
    window_requests: u64,
}

impl Tally {
    fn lost(&self) -> u64 {
        self.lost_write + self.lost_read + self.lost_timeout
    }

    fn merge(&mut self, o: Tally) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.non200 += o.non200;
        self.lost_write += o.lost_write;
        self.lost_read += o.lost_read;
        self.lost_timeout += o.lost_timeout;
        self.connect_errors += o.connect_errors;
        self.connections += o.connections;
        self.server_close += o.server_close;
        self.lost_at.extend(o.lost_at);
        self.close_first = match (self.close_first, o.close_first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.close_last = self.close_last.max(o.close_last);
        self.window_requests += o.window_requests;
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()
}

struct Hists {
    all: Histogram<u64>,
    window: Histogram<u64>,
}

/// xorshift64*: the pauses of one connection (no need for a real generator).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

async fn worker(
    id: u64,
    o: Arc<Opts>,
    clock: Arc<Clock>,
    counter: Arc<AtomicU64>,
    out: Arc<Mutex<(Tally, Hists)>>,
) {
    let mut t = Tally::default();
    let mut all = histogram();
    let mut window = histogram();
    let mut reqs = RequestMaker::new(&o.path, o.body_len, "slackgate-reloaddrill", counter);
    let mut sig = String::with_capacity(67);
    let mut req = Vec::with_capacity(o.body_len + 512);
    let mut conn: Option<Conn> = None;
    // Requests on the current connection.
    let mut on_conn: u64 = 0;
    let mut rng = Rng((start_counter() ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    while clock.now() < clock.end_at.load(Ordering::SeqCst) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                if clock.no_new.load(Ordering::SeqCst) {
                    break;
                }
                match Conn::open(o.addr).await {
                    Ok(c) => {
                        t.connections += 1;
                        on_conn = 0;
                        conn.insert(c)
                    }
                    Err(_) => {
                        t.connect_errors += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                }
            }
        };
        reqs.next(&mut req, &mut sig);
        on_conn += 1;
        let sent = clock.now();
        let t0 = Instant::now();
        let outcome = c.exchange(&req).await;
        let took = u64::try_from(t0.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let reload_at = clock.reload_at.load(Ordering::SeqCst);
        let in_window = reload_at != UNSET && sent >= reload_at;
        let rel = if reload_at == UNSET {
            sent as i64 - (o.before.as_micros() as i64)
        } else {
            sent as i64 - reload_at as i64
        };
        t.requests += 1;
        if in_window {
            t.window_requests += 1;
        }
        match outcome {
            Outcome::Answer { status, close } => {
                all.saturating_record(took);
                if in_window {
                    window.saturating_record(took);
                }
                if status == 200 {
                    t.ok += 1;
                } else {
                    t.non200 += 1;
                    eprintln!(
                        "{} run {}: answer {status} at {:+.1} ms",
                        o.label,
                        o.run,
                        rel as f64 / 1000.0
                    );
                }
                if close {
                    t.server_close += 1;
                    if reload_at != UNSET {
                        t.close_first = Some(t.close_first.map_or(rel, |f| f.min(rel)));
                        t.close_last = Some(t.close_last.map_or(rel, |l| l.max(rel)));
                    }
                    conn = None;
                }
            }
            lost => {
                let what = match lost {
                    Outcome::LostWrite => {
                        t.lost_write += 1;
                        "write failed"
                    }
                    Outcome::LostTimeout => {
                        t.lost_timeout += 1;
                        "no answer in 5 s"
                    }
                    _ => {
                        t.lost_read += 1;
                        "closed/reset before the answer"
                    }
                };
                eprintln!(
                    "{} run {}: lost request at {:+.1} ms ({what}, request {on_conn} on its connection)",
                    o.label,
                    o.run,
                    rel as f64 / 1000.0,
                );
                t.lost_at.push(rel);
                conn = None;
            }
        }
        // Now and then the connection sits idle, as a pooled one does.
        let r = rng.next();
        if r % 7 < 1 {
            // about one request in seven
            tokio::time::sleep(Duration::from_millis(20 + (r >> 32) % 121)).await;
        }
    }
    let mut g = out.lock();
    g.0.merge(t);
    g.1.all.add(&all).unwrap();
    g.1.window.add(&window).unwrap();
}

fn ms(us: Option<i64>) -> String {
    us.map_or_else(|| "-".into(), |v| format!("{:.0}", v as f64 / 1000.0))
}

fn main() {
    let o = Arc::new(parse_opts());
    let rt = runtime(1);
    let clock = Arc::new(Clock {
        start: Instant::now(),
        reload_at: AtomicU64::new(UNSET),
        end_at: AtomicU64::new(UNSET),
        no_new: AtomicBool::new(false),
    });
    let out = Arc::new(Mutex::new((
        Tally::default(),
        Hists {
            all: histogram(),
            window: histogram(),
        },
    )));
    let (reload_ms, reload_rc) = rt.block_on(async {
        let counter = Arc::new(AtomicU64::new(start_counter()));
        let tasks: Vec<_> = (0..o.conns as u64)
            .map(|id| {
                tokio::spawn(worker(
                    id,
                    o.clone(),
                    clock.clone(),
                    counter.clone(),
                    out.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(o.before).await;
        if o.drain {
            clock.no_new.store(true, Ordering::SeqCst);
        }
        let reload_start = Instant::now();
        clock.reload_at.store(clock.now(), Ordering::SeqCst);
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&o.reload_cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .await;
        let reload_ms = reload_start.elapsed().as_secs_f64() * 1000.0;
        let rc = status.ok().and_then(|s| s.code()).unwrap_or(-1);
        if rc != 0 {
            eprintln!("{} run {}: reload command exited {rc}", o.label, o.run);
        }
        clock.end_at.store(
            clock.now() + u64::try_from(o.after.as_micros()).unwrap_or(0),
            Ordering::SeqCst,
        );
        for t in tasks {
            t.await.expect("worker");
        }
        (reload_ms, rc)
    });
    let elapsed = clock.start.elapsed().as_secs_f64();
    let g = out.lock();
    let (t, h) = (&g.0, &g.1);
    let mut lost_at = t.lost_at.clone();
    lost_at.sort_unstable();
    let lost_at = if lost_at.is_empty() {
        "-".to_owned()
    } else {
        lost_at
            .iter()
            .map(|v| format!("{:.0}", *v as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(",")
    };
    eprintln!(
        "{:<18} run {}: {} requests, {} lost, {} non-200, window {} requests p99.9 {} us max {} us, reload {:.0} ms",
        o.label,
        o.run,
        t.requests,
        t.lost(),
        t.non200,
        t.window_requests,
        h.window.value_at_quantile(0.999),
        h.window.max(),
        reload_ms
    );
    println!(
        "RELOAD label={} run={} requests={} ok={} lost={} lost_write={} lost_read={} lost_timeout={} \
         non200={} connect_errors={} connections={} server_close={} close_first_ms={} close_last_ms={} \
         window_requests={} p50_us={} p99_us={} p999_us={} max_us={} p999_all_us={} reload_ms={:.0} \
         reload_rc={} lost_at_ms={} conns={} drain={} duration_s={:.1}",
        o.label,
        o.run,
        t.requests,
        t.ok,
        t.lost(),
        t.lost_write,
        t.lost_read,
        t.lost_timeout,
        t.non200,
        t.connect_errors,
        t.connections,
        t.server_close,
        ms(t.close_first),
        ms(t.close_last),
        t.window_requests,
        h.window.value_at_quantile(0.5),
        h.window.value_at_quantile(0.99),
        h.window.value_at_quantile(0.999),
        h.window.max(),
        h.all.value_at_quantile(0.999),
        reload_ms,
        reload_rc,
        lost_at,
        o.conns,
        o.drain,
        elapsed
    );
}
