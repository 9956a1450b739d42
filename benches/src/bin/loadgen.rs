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
//! loadgen run  --addr 127.0.0.1:P --egress-key KEY [--path /api/chat.postMessage]
//!              [--egress-body json|form] ...
//! loadgen run  --addr 127.0.0.1:P --tls CERT.pem [--new-conn 1] [--resume 0] [--kx hybrid] ...
//!              [--cpu-pids PID,PID]
//! loadgen idle --addr 127.0.0.1:P [--path ...] --conns 1000 --watch-pid PID [--hold 2]
//! loadgen partial --addr 127.0.0.1:P --conns 1000 --head-bytes 16000 --watch-pid PID [--hold 2]
//! ```
//! `partial` holds every connection on an unfinished request head of `--head-bytes`
//! (no final empty line), the memory an attacker can pin per connection.
//! With `--egress-key`, every request is instead the same Web API call, the way
//! `slack_sdk` sends `chat.postMessage`: `Authorization: Bearer KEY` and a JSON body
//! (`{"channel":"C0BENCH","text":...}` of about `--body-len` bytes); with `--egress-body form`
//! the same arguments as `application/x-www-form-urlencoded` (`channel=C0BENCH&text=...`,
//! the text with `+` for its spaces), as `slack_sdk` sends the calls it makes with `data=`.
//! With `--tls CERT.pem` every connection speaks TLS (rustls, trusting only that
//! certificate, see `slackgate_benches::tls`). `--new-conn 1` opens a new connection for
//! every request and closes it after the answer (the latency then includes the connect
//! and the handshake), `--resume 0` turns session resumption off (with it on, every
//! connection shares one client session store, as one client process does), `--kx`
//! picks the key-exchange groups the client offers: `x25519` (default: X25519, P-256,
//! P-384), `hybrid` (X25519MLKEM768 first) or `p384-first` (see `slackgate_benches::tls::Kx`).
//! `--cpu-pids` names the processes of the server under test: the CPU time all their
//! threads spent during the measured window (`/proc/PID/task/*/schedstat`, ns), divided
//! by the answered requests, is printed as `cpu_us` (CPU per request, whatever else the
//! machine runs), and the user-space share of it (`stat` utime/stime) as `user_share`.
//! The signing secret is `$BENCH_SIGNING_SECRET` (default: the benchmarks' secret).
//! `run` prints one `RESULT key=value ...` line on stdout (`ok` counts the 200s of the
//! measured window, `ok_all` every 200 of the run, warm-up and the calls in flight at the
//! end included: what a gateway's audit trail must count); `idle` prints `IDLE ...`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pingora::tls::TlsConnector;
use rustls::pki_types::ServerName;
use slackgate_benches::http::message_len;
use slackgate_benches::tls::TicketCounts;
use slackgate_benches::{rss_kib, runtime, start_counter, RequestMaker, ROUTE_PATH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
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
    /// The egress call's body: form (`application/x-www-form-urlencoded`), else JSON.
    egress_form: bool,
    tls: Option<TlsConnector>,
    new_conn: bool,
    cpu_pids: Vec<String>,
    tickets: Arc<TicketCounts>,
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
        egress_form: false,
        tls: None,
        new_conn: false,
        cpu_pids: Vec::new(),
        tickets: Arc::default(),
    };
    let mut tls_cert = None;
    let mut resume = true;
    let mut kx = slackgate_benches::tls::Kx::X25519;
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
            "--egress-body" => {
                o.egress_form = match v.as_str() {
                    "form" => true,
                    "json" => false,
                    other => panic!("--egress-body json|form, not {other}"),
                }
            }
            "--tls" => tls_cert = Some(v.clone()),
            "--new-conn" => o.new_conn = v != "0",
            "--resume" => resume = v != "0",
            "--kx" => {
                kx = slackgate_benches::tls::Kx::parse(v)
                    .unwrap_or_else(|| panic!("--kx {v}: use x25519, hybrid or p384-first"));
            }
            "--cpu-pids" => {
                o.cpu_pids = v
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            other => panic!("unknown option {other}"),
        }
    }
    assert!(
        o.addr.ip().is_loopback(),
        "load goes to 127.0.0.1 only, not {}",
        o.addr
    );
    if let Some(cert) = tls_cert {
        let config = slackgate_benches::tls::client_config(&cert, resume, o.tickets.clone(), kx)
            .unwrap_or_else(|e| panic!("--tls: {e}"));
        o.tls = Some(TlsConnector::from(config));
    }
    o
}

/// A client connection: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a TLS handshake was (for the counts and the printed suite).
#[derive(Debug, Clone, Copy, Default)]
struct HandshakeInfo {
    resumed: bool,
    /// Whether the server asked for another key share (HelloRetryRequest).
    retried: bool,
    /// e.g. `TLSv1_3/TLS13_AES_256_GCM_SHA384` (Debug names, no spaces).
    suite: Option<(rustls::ProtocolVersion, rustls::CipherSuite)>,
    /// The key-exchange group, e.g. `X25519MLKEM768`.
    group: Option<rustls::NamedGroup>,
}

/// A keep-alive connection with its read buffer.
struct Conn {
    sock: Box<dyn Io>,
    buf: Vec<u8>,
    handshake: HandshakeInfo,
}

fn timed_out() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::TimedOut)
}

impl Conn {
    async fn open(addr: SocketAddr, tls: Option<&TlsConnector>) -> std::io::Result<Self> {
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())??;
        tcp.set_nodelay(true)?;
        let mut handshake = HandshakeInfo::default();
        let sock: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = ServerName::try_from("localhost").expect("server name");
                let s = tokio::time::timeout(IO_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| timed_out())??;
                let session = s.get_ref().1;
                handshake.resumed =
                    session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                handshake.retried = session.handshake_kind()
                    == Some(rustls::HandshakeKind::FullWithHelloRetryRequest);
                handshake.group = session.negotiated_key_exchange_group().map(|g| g.name());
                handshake.suite = session
                    .protocol_version()
                    .zip(session.negotiated_cipher_suite().map(|c| c.suite()));
                Box::new(s)
            }
        };
        Ok(Self {
            sock,
            buf: Vec::with_capacity(4096),
            handshake,
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
            .map_err(|_| timed_out())?
    }

    /// Closes the connection from this side (TLS: close_notify, then FIN).
    async fn close(mut self) {
        let _ = tokio::time::timeout(IO_TIMEOUT, self.sock.shutdown()).await;
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    /// Every 200, warm-up and the calls in flight at the end included.
    ok_all: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    reconnects: u64,
    /// Handshakes begun in the measured window, and how many of them resumed a session.
    handshakes: u64,
    resumed: u64,
    retried: u64,
    suite: Option<(rustls::ProtocolVersion, rustls::CipherSuite)>,
    group: Option<rustls::NamedGroup>,
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
    loop {
        // With a new connection per request, the latency includes connect and handshake.
        let t_open = Instant::now();
        if t_open >= end {
            break;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(o.addr, o.tls.as_ref()).await {
                Ok(c) => {
                    tally.reconnects += 1;
                    if t_open >= warm_end && o.tls.is_some() {
                        tally.handshakes += 1;
                        tally.resumed += u64::from(c.handshake.resumed);
                        tally.retried += u64::from(c.handshake.retried);
                        tally.group = tally.group.or(c.handshake.group);
                    }
                    tally.suite = tally.suite.or(c.handshake.suite);
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
                    web_api_call(&mut req, &o.path, key, o.body_len, o.egress_form);
                }
            }
            None => maker.next(&mut req, &mut sig),
        }
        let t0 = if o.new_conn { t_open } else { Instant::now() };
        let result = c.exchange(&req).await;
        let took = t0.elapsed();
        let measured = t0 >= warm_end && Instant::now() <= end;
        match result {
            Ok((status, close)) => {
                tally.ok_all += u64::from(status == 200);
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
                } else if o.new_conn {
                    if let Some(c) = conn.take() {
                        c.close().await;
                    }
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

/// One Web API call as `slack_sdk` sends `chat.postMessage`: a JSON body, or with
/// `form` the same arguments form-encoded (words of `x` between `+`, a space's encoding).
fn web_api_call(out: &mut Vec<u8>, path: &str, key: &str, body_len: usize, form: bool) {
    let n = body_len.saturating_sub(40).max(1);
    let (content_type, body) = if form {
        let text: String = (0..n).map(|i| if i % 8 == 7 { '+' } else { 'x' }).collect();
        (
            "application/x-www-form-urlencoded",
            format!("channel=C0BENCH&text={text}"),
        )
    } else {
        let text = "x".repeat(n);
        (
            "application/json; charset=utf-8",
            format!("{{\"channel\":\"C0BENCH\",\"text\":\"{text}\"}}"),
        )
    };
    out.clear();
    out.extend_from_slice(
        format!(
            "POST {path} HTTP/1.1\r\nHost: slack.com\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\nUser-Agent: slackgate-loadgen\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

fn run(o: Opts) {
    let o = Arc::new(o);
    let counter = Arc::new(AtomicU64::new(start_counter()));
    let rt = runtime(o.threads);
    let (hist, tally, cpu) = rt.block_on(async {
        let start = Instant::now();
        let warm_end = start + o.warmup;
        let end = warm_end + o.duration;
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| tokio::spawn(worker(o.clone(), counter.clone(), warm_end, end)))
            .collect();
        // The server's CPU time over the measured window.
        let pids = o.cpu_pids.clone();
        let sampler = tokio::spawn(async move {
            if pids.is_empty() {
                return None;
            }
            tokio::time::sleep_until(warm_end.into()).await;
            let before = cpu_times(&pids)?;
            tokio::time::sleep_until(end.into()).await;
            let after = cpu_times(&pids)?;
            Some((
                after.ns.saturating_sub(before.ns),
                after.user_ticks.saturating_sub(before.user_ticks),
                after.sys_ticks.saturating_sub(before.sys_ticks),
            ))
        });
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut tally = Tally::default();
        for t in tasks {
            let (h, t) = t.await.expect("worker");
            hist.add(&h).unwrap();
            tally.ok += t.ok;
            tally.ok_all += t.ok_all;
            tally.errors += t.errors;
            tally.reconnects += t.reconnects;
            tally.handshakes += t.handshakes;
            tally.resumed += t.resumed;
            tally.retried += t.retried;
            tally.suite = tally.suite.or(t.suite);
            tally.group = tally.group.or(t.group);
            for (s, n) in t.statuses {
                *tally.statuses.entry(s).or_default() += n;
            }
        }
        let cpu = sampler.await.ok().flatten();
        (hist, tally, cpu)
    });
    let secs = o.duration.as_secs_f64();
    let rps = tally.ok as f64 / secs;
    let non200: u64 = tally.statuses.values().sum();
    let (cpu_us, user_share) = match cpu {
        Some((ns, user, sys)) if tally.ok > 0 => (
            format!("{:.2}", ns as f64 / 1000.0 / tally.ok as f64),
            // Ticks are coarse (10 ms); their ratio splits the precise total.
            if user + sys > 0 {
                format!("{:.2}", user as f64 / (user + sys) as f64)
            } else {
                "-".to_owned()
            },
        ),
        _ => ("-".to_owned(), "-".to_owned()),
    };
    let tickets = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let tickets = format!(
        "tickets_in={} ticket_offered={} ticket_missing={}",
        tickets(&o.tickets.inserted),
        tickets(&o.tickets.offered),
        tickets(&o.tickets.missing)
    );
    let tls = match (tally.suite, tally.group) {
        (Some((v, c)), Some(g)) => format!("{v:?}/{c:?}/{g:?}"),
        (Some((v, c)), None) => format!("{v:?}/{c:?}"),
        _ => "-".to_owned(),
    };
    eprintln!(
        "{:<12} {:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  cpu/req {} us (user share {})  (ok {}, non-200 {:?}, errors {}, connections {}, handshakes {} of which resumed {}, {})",
        o.label,
        rps,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        cpu_us,
        user_share,
        tally.ok,
        tally.statuses,
        tally.errors,
        tally.reconnects,
        tally.handshakes,
        tally.resumed,
        tls
    );
    println!(
        "RESULT label={} rps={:.0} p50_us={} p99_us={} p999_us={} ok={} ok_all={} non200={} errors={} conns={} duration_s={} cpu_us={} user_share={} handshakes={} hs_per_s={:.0} resumed={} hrr={} tls={} {}",
        o.label,
        rps,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        tally.ok,
        tally.ok_all,
        non200,
        tally.errors,
        o.conns,
        secs,
        cpu_us,
        user_share,
        tally.handshakes,
        tally.handshakes as f64 / secs,
        tally.resumed,
        tally.retried,
        tls,
        tickets
    );
}

/// What all threads of the server's processes have used so far.
#[derive(Default)]
struct CpuTimes {
    /// CPU time, ns (`schedstat`, first field): precise.
    ns: u64,
    /// User and system time, clock ticks (`stat`, fields 14 and 15): coarse, for the split.
    user_ticks: u64,
    sys_ticks: u64,
}

/// The CPU times of all threads of `pids` (`/proc/PID/task/*`); `None` when a process is
/// gone.
fn cpu_times(pids: &[String]) -> Option<CpuTimes> {
    let mut total = CpuTimes::default();
    for pid in pids {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let dir = task.ok()?.path();
            // A thread may end between the listing and the reads: it no longer counts.
            let (Ok(schedstat), Ok(stat)) = (
                std::fs::read_to_string(dir.join("schedstat")),
                std::fs::read_to_string(dir.join("stat")),
            ) else {
                continue;
            };
            total.ns += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
            // The command name (field 2) may hold spaces; count from after its `)`.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut f = rest.split_whitespace().skip(11);
            total.user_ticks += f.next()?.parse::<u64>().ok()?;
            total.sys_ticks += f.next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
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
            match Conn::open(o.addr, o.tls.as_ref()).await {
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
            match Conn::open(o.addr, o.tls.as_ref()).await {
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
