//! Closed-loop HTTP/1.1 load generator for the end-to-end comparison.
//!
//! Every request is an Events API callback with a unique `event_id`, signed with the
//! current timestamp, so it has a unique signature: slackgate's replay cache stays on
//! and never rejects one. A fixed number of keep-alive connections each send the next
//! request as soon as the previous answer arrived, for a warm-up and then a fixed
//! measured duration; then it stops by itself. Latency is measured per request from
//! the first written byte to the last read byte, into an HdrHistogram.
//!
//! Closed loop means coordinated omission: while the server stalls, no new requests
//! are sent, so tail percentiles are those of the achieved load, not of a fixed rate.
//!
//! ```text
//! loadgen run  --addr 127.0.0.1:P [--path /slack/events] [--conns 64] [--duration 10]
//!              [--warmup 2] [--body-len 1024] [--label NAME] [--threads 1]
//! loadgen run  --addr 127.0.0.1:P --egress-key KEY [--path /api/chat.postMessage] ...
//! loadgen idle --addr 127.0.0.1:P [--path ...] --conns 1000 --watch-pid PID [--hold 2]
//! loadgen partial --addr 127.0.0.1:P --conns 1000 --head-bytes 16000 --watch-pid PID [--hold 2]
//! ```
//! `partial` holds every connection on an unfinished request head of `--head-bytes`
//! (no final empty line), the memory an attacker can pin per connection.
//! With `--egress-key`, every request is instead the same Web API call, the way
//! `slack_sdk` sends `chat.postMessage`: `Authorization: Bearer KEY` and a JSON body
//! (`{"channel":"C0BENCH","text":...}` of about `--body-len` bytes).
//! The signing secret is `$BENCH_SIGNING_SECRET` (default: the benchmarks' secret).
//! `run` prints one `RESULT key=value ...` line on stdout; `idle` prints `IDLE ...`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use slackgate_benches::http::message_len;
use slackgate_benches::{rss_kib, RequestMaker, ROUTE_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Opts {
    addr: SocketAddr,
    path: String,
    conns: usize,
    duration: Duration,
    warmup: Duration,
    body_len: usize,
    label: String,
    threads: usize,
    watch_pid: Option<String>,
    hold: Duration,
    head_bytes: usize,
    egress_key: Option<String>,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        addr: "127.0.0.1:8080".parse().unwrap(),
        path: ROUTE_PATH.into(),
        conns: 64,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        body_len: 1024,
        label: "target".into(),
        threads: 1,
        watch_pid: None,
        hold: Duration::from_secs(2),
        head_bytes: 16_000,
        egress_key: None,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        let secs = |v: &str| Duration::from_secs_f64(v.parse().expect("seconds"));
        match k.as_str() {
            "--addr" => o.addr = v.parse().expect("--addr host:port"),
            "--path" => o.path = v.clone(),
            "--conns" => o.conns = v.parse().expect("--conns"),
            "--duration" => o.duration = secs(v),
            "--warmup" => o.warmup = secs(v),
            "--body-len" => o.body_len = v.parse().expect("--body-len"),
            "--label" => o.label = v.clone(),
            "--threads" => o.threads = v.parse().expect("--threads"),
            "--watch-pid" => o.watch_pid = Some(v.clone()),
            "--hold" => o.hold = secs(v),
            "--head-bytes" => o.head_bytes = v.parse().expect("--head-bytes"),
            "--egress-key" => o.egress_key = Some(v.clone()),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(
        o.addr.ip().is_loopback(),
        "load goes to 127.0.0.1 only, not {}",
        o.addr
    );
    o
}

/// A keep-alive connection with its read buffer.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let sock = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        sock.set_nodelay(true)?;
        Ok(Self {
            sock,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and reads its answer: (status, server closes).
    async fn exchange(&mut self, req: &[u8]) -> std::io::Result<(u16, bool)> {
        let fut = async {
            self.sock.write_all(req).await?;
            let mut chunk = [0u8; 8192];
            loop {
                if let Some((head, len)) = message_len(&self.buf) {
                    self.buf.drain(..len);
                    return Ok((head.status, head.close));
                }
                let n = self.sock.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(IO_TIMEOUT, fut)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    reconnects: u64,
}

async fn worker(
    o: Arc<Opts>,
    counter: Arc<AtomicU64>,
    warm_end: Instant,
    end: Instant,
) -> (Histogram<u64>, Tally) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut tally = Tally::default();
    let mut maker = RequestMaker::new(&o.path, o.body_len, "slackgate-loadgen", counter);
    let mut req = Vec::with_capacity(o.body_len + 512);
    let mut sig = String::with_capacity(67);
    let mut conn: Option<Conn> = None;
    while Instant::now() < end {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(o.addr).await {
                Ok(c) => {
                    tally.reconnects += 1;
                    conn.insert(c)
                }
                Err(_) => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match &o.egress_key {
            Some(key) => {
                if req.is_empty() {
                    web_api_call(&mut req, &o.path, key, o.body_len);
                }
            }
            None => maker.next(&mut req, &mut sig),
        }
        let t0 = Instant::now();
        let result = c.exchange(&req).await;
        let took = t0.elapsed();
        let measured = t0 >= warm_end && Instant::now() <= end;
        match result {
            Ok((status, close)) => {
                if measured {
                    if status == 200 {
                        tally.ok += 1;
                        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                        hist.saturating_record(us);
                    } else {
                        *tally.statuses.entry(status).or_default() += 1;
                    }
                }
                if close {
                    conn = None;
                }
            }
            Err(_) => {
                if measured {
                    tally.errors += 1;
                }
                conn = None;
            }
        }
    }
    (hist, tally)
}

/// One Web API call as `slack_sdk` sends `chat.postMessage`.
fn web_api_call(out: &mut Vec<u8>, path: &str, key: &str, body_len: usize) {
    let text = "x".repeat(body_len.saturating_sub(40).max(1));
    let body = format!("{{\"channel\":\"C0BENCH\",\"text\":\"{text}\"}}");
    out.clear();
    out.extend_from_slice(
        format!(
            "POST {path} HTTP/1.1\r\nHost: slack.com\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json; charset=utf-8\r\nUser-Agent: slackgate-loadgen\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime")
}

fn start_counter() -> u64 {
    // Distinct across runs, so a long-lived gateway never sees an id twice.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        << 8
}

fn run(o: Opts) {
    let o = Arc::new(o);
    let counter = Arc::new(AtomicU64::new(start_counter()));
    let rt = runtime(o.threads);
    let (hist, tally) = rt.block_on(async {
        let start = Instant::now();
        let warm_end = start + o.warmup;
        let end = warm_end + o.duration;
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| tokio::spawn(worker(o.clone(), counter.clone(), warm_end, end)))
            .collect();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut tally = Tally::default();
        for t in tasks {
            let (h, t) = t.await.expect("worker");
            hist.add(&h).unwrap();
            tally.ok += t.ok;
            tally.errors += t.errors;
            tally.reconnects += t.reconnects;
            for (s, n) in t.statuses {
                *tally.statuses.entry(s).or_default() += n;
            }
        }
        (hist, tally)
    });
    let secs = o.duration.as_secs_f64();
    let rps = tally.ok as f64 / secs;
    let non200: u64 = tally.statuses.values().sum();
    eprintln!(
        "{:<12} {:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  (ok {}, non-200 {:?}, errors {}, connections {})",
        o.label,
        rps,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        tally.ok,
        tally.statuses,
        tally.errors,
        tally.reconnects
    );
    println!(
        "RESULT label={} rps={:.0} p50_us={} p99_us={} p999_us={} ok={} non200={} errors={} conns={} duration_s={}",
        o.label,
        rps,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        tally.ok,
        non200,
        tally.errors,
        o.conns,
        secs
    );
}

/// Opens `conns` keep-alive connections, sends one signed request on each, keeps them
/// all open and idle, then reads the watched process's memory.
fn idle(o: Opts) {
    let pid = o.watch_pid.clone().expect("--watch-pid PID");
    let counter = Arc::new(AtomicU64::new(start_counter()));
    let rt = runtime(1);
    rt.block_on(async {
        let before = rss_kib(&pid);
        let mut maker = RequestMaker::new(&o.path, o.body_len, "slackgate-loadgen", counter);
        let mut req = Vec::new();
        let mut sig = String::new();
        let mut open = Vec::with_capacity(o.conns);
        let mut ok = 0u64;
        let mut failed = 0u64;
        for _ in 0..o.conns {
            match Conn::open(o.addr).await {
                Ok(mut c) => {
                    maker.next(&mut req, &mut sig);
                    match c.exchange(&req).await {
                        Ok((200, false)) => ok += 1,
                        _ => failed += 1,
                    }
                    open.push(c);
                }
                Err(_) => failed += 1,
            }
        }
        tokio::time::sleep(o.hold).await;
        let after = rss_kib(&pid);
        let (rss, hwm) = after.unwrap_or((0, 0));
        let (rss0, _) = before.unwrap_or((0, 0));
        eprintln!(
            "{} idle keep-alive connections ({} answered 200, {} failed): VmRSS {:.1} MiB (before {:.1} MiB), VmHWM {:.1} MiB",
            open.len(),
            ok,
            failed,
            rss as f64 / 1024.0,
            rss0 as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        println!(
            "IDLE conns={} ok={} failed={} rss_before_kib={} rss_kib={} hwm_kib={}",
            open.len(),
            ok,
            failed,
            rss0,
            rss,
            hwm
        );
        drop(open);
    });
}

/// Opens `conns` connections, writes an unfinished head of `head_bytes` on each, holds
/// them, then reads the watched process's memory (the head deadline is 10 s by default:
/// the measurement is taken well within it).
fn partial(o: Opts) {
    let pid = o.watch_pid.clone().expect("--watch-pid PID");
    let rt = runtime(1);
    rt.block_on(async {
        let before = rss_kib(&pid);
        let mut head = format!("POST {} HTTP/1.1\r\nHost: bench\r\nX-Pad: ", o.path).into_bytes();
        head.resize(o.head_bytes.max(head.len()), b'a');
        let mut open = Vec::with_capacity(o.conns);
        let mut failed = 0u64;
        for _ in 0..o.conns {
            match Conn::open(o.addr).await {
                Ok(mut c) => {
                    if c.sock.write_all(&head).await.is_err() {
                        failed += 1;
                    }
                    open.push(c);
                }
                Err(_) => failed += 1,
            }
        }
        tokio::time::sleep(o.hold).await;
        let (rss, hwm) = rss_kib(&pid).unwrap_or((0, 0));
        let (rss0, _) = before.unwrap_or((0, 0));
        // Every connection must still be open (no answer yet): a refused or closed one
        // would not be holding its head.
        let mut still_open = 0u64;
        for c in &mut open {
            let mut b = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_millis(1), c.sock.read(&mut b)).await;
            if read.is_err() {
                still_open += 1;
            }
        }
        println!(
            "PARTIAL conns={} head_bytes={} failed={} still_open={} rss_before_kib={} rss_kib={} hwm_kib={}",
            open.len(),
            head.len(),
            failed,
            still_open,
            rss0,
            rss,
            hwm
        );
        drop(open);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = args
        .split_first()
        .expect("usage: loadgen run|idle [options]");
    let o = parse_opts(rest);
    match mode.as_str() {
        "run" => run(o),
        "idle" => idle(o),
        "partial" => partial(o),
        other => panic!("unknown mode {other}; use run, idle or partial"),
    }
}
