//! The audit trail: one JSON line per request, written off the hot path.
//!
//! Requests hand records to a bounded queue; one thread writes them out. When the
//! queue is full the record is dropped, counted in `slackgate_audit_dropped_total`
//! and logged (at most once per second), never silently. A file sink is reopened on
//! request (SIGUSR1) so logrotate can move it away.
//!
//! A record never holds a secret, a signature, a token field or a body: it is built
//! only from the fields listed in docs/audit.md.
//!
//! Nothing a caller (or Slack) names is written unchecked, so that no request can make
//! a line large or write text of its choosing: every record is passed through
//! [`AuditView::bounded`] or [`EgressRecord::bounded`] as it is serialized. Ids must have
//! Slack's id shape, free text is short and free of control characters, anything else is
//! written as [`INVALID`]; a line is at most [`MAX_LINE`] bytes. An egress call from an
//! unknown caller keeps only its method name, reason, fixed rule, status and duration.
//! The queue is bounded in records and in bytes (`audit.max_queue_bytes`).

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde::Serialize;

pub use crate::core::shape::{
    event_id, function_execution_id, method_name, scope_header, scope_list, short_text,
    slack_error_code, slack_id, INVALID, MAX_LINE, MAX_SCOPES_GRANTED, MAX_SCOPES_NEEDED,
};
pub(crate) use crate::core::shape::{short_static, unknown_caller_rule};
pub use crate::core::time::{rfc3339, TsText};

/// How many records may wait for the writer. Records are ~400 bytes and the channel
/// allocates its slots up front, so the queue is sized for bursts, not for hours:
/// at 5 ms per batch it drains far faster than a gateway can fill it.
pub const DEFAULT_QUEUE: usize = 4096;

/// The bytes of records that may wait for the writer when the config does not say
/// (`audit.max_queue_bytes`).
pub const DEFAULT_QUEUE_BYTES: usize = slackgate_policy::DEFAULT_AUDIT_QUEUE_BYTES;

/// Write buffer of a file sink: a 5 ms batch at 40k req/s is ~100 KiB of lines.
const FILE_BUFFER: usize = 256 * 1024;

/// The writer's pause between batches.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Which door a record is about: requests from Slack to a bot, or a bot's Web API calls.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Slack -> bot (the inbound door).
    #[default]
    Inbound,
    /// Bot -> Slack Web API (the egress door).
    Egress,
}

impl Direction {
    /// The audit spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Egress => "egress",
        }
    }
}

/// One audit record, field for field as docs/audit.md lists them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AuditRecord {
    /// RFC 3339 time the request arrived.
    pub ts: String,
    /// Always `inbound` here; egress calls are [`EgressRecord`]s.
    pub direction: Direction,
    /// Route name, if a route matched.
    pub route: Option<String>,
    /// Reason code.
    pub reason: &'static str,
    /// Status sent to the client.
    pub status: u16,
    /// Whether a shadow route let a would-be denial through.
    pub shadow: bool,
    /// Client address after the trusted-proxy walk.
    pub client_ip: Option<String>,
    /// App name of the route.
    pub app: Option<String>,
    /// Id of the secret that verified the signature.
    pub secret_id: Option<String>,
    /// Request kind.
    pub kind: Option<&'static str>,
    /// Payload `api_app_id`.
    pub api_app_id: Option<String>,
    /// Enterprise id.
    pub enterprise_id: Option<String>,
    /// Team id.
    pub team_id: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Channel id.
    pub channel_id: Option<String>,
    /// Event type of an Events API callback.
    pub event_type: Option<String>,
    /// Slash command.
    pub command: Option<String>,
    /// Events API event id.
    pub event_id: Option<String>,
    /// The first action id of an interactivity request, else its callback id.
    pub action_id: Option<String>,
    /// `X-Slack-Retry-Num`, when Slack is retrying.
    pub retry_num: Option<u32>,
    /// The allow/deny/limit rule that decided.
    pub rule: Option<String>,
    /// Upstream name.
    pub upstream: Option<String>,
    /// Status the upstream answered with.
    pub upstream_status: Option<u16>,
    /// Total time in the gateway, upstream included, in microseconds.
    pub duration_us: u64,
    /// Set on lifecycle requests: `app_uninstalled`, `tokens_revoked`, `app_rate_limited`
    /// and the others of `slackgate_slack::Lifecycle`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lifecycle: bool,
    /// `socket` for a request that came over a Socket Mode connection (none over HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
}

impl AuditRecord {
    /// The record as a borrowed view (what the sink serializes).
    pub fn view(&self) -> AuditView<'_> {
        AuditView {
            ts: &self.ts,
            direction: self.direction,
            route: self.route.as_deref(),
            reason: self.reason,
            status: self.status,
            shadow: self.shadow,
            client_ip: self.client_ip.as_deref(),
            app: self.app.as_deref(),
            secret_id: self.secret_id.as_deref(),
            kind: self.kind,
            api_app_id: self.api_app_id.as_deref(),
            enterprise_id: self.enterprise_id.as_deref(),
            team_id: self.team_id.as_deref(),
            user_id: self.user_id.as_deref(),
            channel_id: self.channel_id.as_deref(),
            event_type: self.event_type.as_deref(),
            command: self.command.as_deref(),
            event_id: self.event_id.as_deref(),
            action_id: self.action_id.as_deref(),
            retry_num: self.retry_num,
            rule: self.rule.as_deref(),
            upstream: self.upstream.as_deref(),
            upstream_status: self.upstream_status,
            duration_us: self.duration_us,
            lifecycle: self.lifecycle,
            source: self.source,
        }
    }
}

/// The audit record of one egress call (`"direction":"egress"`), field for field as
/// docs/audit.md lists them. Never a token, a key, an argument value or message text:
/// `slack_error` is Slack's error code, kept only when it looks like one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EgressRecord<'a> {
    /// RFC 3339 time the call arrived.
    pub ts: &'a str,
    /// Always `egress`.
    pub direction: Direction,
    /// The bot, once identified by its key.
    pub bot: Option<&'a str>,
    /// The Web API method.
    pub method: Option<&'a str>,
    /// The call's `team_id` (`invalid` unless in Slack's id shape; none for an unknown
    /// caller).
    pub team_id: Option<&'a str>,
    /// The channel the method acts on, or the one denied (`invalid` unless in Slack's id
    /// shape; none for an unknown caller).
    pub channel_id: Option<&'a str>,
    /// Reason code.
    pub reason: &'static str,
    /// Status sent to the bot.
    pub status: u16,
    /// The rule that decided.
    pub rule: Option<&'a str>,
    /// Slack's `ok`, when Slack answered with JSON.
    pub slack_ok: Option<bool>,
    /// Slack's `error` code, when it answered `ok: false`.
    pub slack_error: Option<&'a str>,
    /// The status Slack answered with.
    pub upstream_status: Option<u16>,
    /// Total time in the gateway, Slack included, in microseconds.
    pub duration_us: u64,
    /// For a call made with a workflow key (secret custody): the function execution its
    /// token belongs to (`invalid` unless `Fx` and Slack's id characters).
    pub function_execution_id: Option<&'a str>,
    /// A bot in `mode: shadow` broke a rule and the call was forwarded anyway: `reason`
    /// and `rule` are the would-be denial.
    pub shadow: bool,
    /// Slack's `x-accepted-oauth-scopes` on its answer, as [`scope_header`] writes it:
    /// the scopes the method accepts (any one suffices); `""` when it needs none.
    pub scopes_needed: Option<&'a str>,
    /// Slack's `x-oauth-scopes` (the token's grant), written only when it differs from
    /// the last one this gateway saw for the bot since it started.
    pub scopes_granted: Option<&'a str>,
}

impl<'a> EgressRecord<'a> {
    /// The record as it may be written: `team_id` and `channel_id` of Slack's id shape,
    /// `slack_error` of an error code's, free text short and plain, anything else
    /// [`INVALID`]. A call whose caller is not a known bot keeps only its method (when it
    /// has a method name's shape), reason, fixed rule, status and duration: what an
    /// unknown caller sent is not the audit's to keep. Its line is at most [`MAX_LINE`]
    /// bytes.
    pub fn bounded(&self) -> EgressRecord<'a> {
        if self.bot.is_none() {
            return EgressRecord {
                ts: short_text(self.ts),
                direction: self.direction,
                bot: None,
                method: self.method.map(method_name),
                team_id: None,
                channel_id: None,
                reason: short_static(self.reason),
                status: self.status,
                rule: self.rule.map(unknown_caller_rule),
                slack_ok: None,
                slack_error: None,
                upstream_status: None,
                duration_us: self.duration_us,
                function_execution_id: None,
                shadow: false,
                scopes_needed: None,
                scopes_granted: None,
            };
        }
        EgressRecord {
            ts: short_text(self.ts),
            direction: self.direction,
            bot: self.bot.map(short_text),
            method: self.method.map(short_text),
            team_id: self.team_id.map(slack_id),
            channel_id: self.channel_id.map(slack_id),
            reason: short_static(self.reason),
            status: self.status,
            rule: self.rule.map(short_text),
            slack_ok: self.slack_ok,
            slack_error: self.slack_error.map(slack_error_code),
            upstream_status: self.upstream_status,
            duration_us: self.duration_us,
            function_execution_id: self.function_execution_id.map(function_execution_id),
            shadow: self.shadow,
            scopes_needed: self.scopes_needed.map(|v| scope_list(v, MAX_SCOPES_NEEDED)),
            scopes_granted: self
                .scopes_granted
                .map(|v| scope_list(v, MAX_SCOPES_GRANTED)),
        }
    }
}

/// An audit record borrowing its strings: the gateway builds one per request without
/// copying a field, and [`AuditView::write_json`] writes exactly the line `serde_json`
/// writes for the equivalent [`AuditRecord`] (same keys, order, escapes).
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct AuditView<'a> {
    pub ts: &'a str,
    pub direction: Direction,
    pub route: Option<&'a str>,
    pub reason: &'static str,
    pub status: u16,
    pub shadow: bool,
    pub client_ip: Option<&'a str>,
    pub app: Option<&'a str>,
    pub secret_id: Option<&'a str>,
    pub kind: Option<&'static str>,
    pub api_app_id: Option<&'a str>,
    pub enterprise_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub channel_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub command: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub action_id: Option<&'a str>,
    pub retry_num: Option<u32>,
    pub rule: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub upstream_status: Option<u16>,
    pub duration_us: u64,
    pub lifecycle: bool,
    pub source: Option<&'static str>,
}

impl<'a> AuditView<'a> {
    /// The record as it may be written: ids of Slack's id shape, free text short and
    /// plain, anything else [`INVALID`] (see the module doc). Its line is at most
    /// [`MAX_LINE`] bytes.
    pub fn bounded(&self) -> AuditView<'a> {
        let id = |v: Option<&'a str>| v.map(slack_id);
        let text = |v: Option<&'a str>| v.map(short_text);
        AuditView {
            ts: short_text(self.ts),
            direction: self.direction,
            route: text(self.route),
            reason: short_static(self.reason),
            status: self.status,
            shadow: self.shadow,
            client_ip: text(self.client_ip),
            app: text(self.app),
            secret_id: text(self.secret_id),
            kind: self.kind.map(short_static),
            api_app_id: id(self.api_app_id),
            enterprise_id: id(self.enterprise_id),
            team_id: id(self.team_id),
            user_id: id(self.user_id),
            channel_id: id(self.channel_id),
            event_type: text(self.event_type),
            command: text(self.command),
            event_id: self.event_id.map(event_id),
            action_id: text(self.action_id),
            retry_num: self.retry_num,
            rule: text(self.rule),
            upstream: text(self.upstream),
            upstream_status: self.upstream_status,
            duration_us: self.duration_us,
            lifecycle: self.lifecycle,
            source: self.source.map(short_static),
        }
    }

    /// Appends the record as one JSON object (no newline), as it is: callers that write
    /// a request's record pass it through [`AuditView::bounded`] first.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Each key is written with its comma, quotes and colon as one literal.
        fn text(out: &mut Vec<u8>, key: &[u8], v: Option<&str>) {
            out.extend_from_slice(key);
            match v {
                Some(v) => json_string(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        fn number(out: &mut Vec<u8>, key: &[u8], v: Option<u64>) {
            out.extend_from_slice(key);
            match v {
                Some(v) => crate::net::wire::push_decimal(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"{\"ts\":");
        json_string(out, self.ts);
        out.extend_from_slice(b",\"direction\":\"");
        out.extend_from_slice(self.direction.as_str().as_bytes());
        out.push(b'"');
        text(out, b",\"route\":", self.route);
        text(out, b",\"reason\":", Some(self.reason));
        number(out, b",\"status\":", Some(u64::from(self.status)));
        out.extend_from_slice(if self.shadow {
            b",\"shadow\":true"
        } else {
            b",\"shadow\":false"
        });
        let texts: [(&[u8], Option<&str>); 13] = [
            (b",\"client_ip\":", self.client_ip),
            (b",\"app\":", self.app),
            (b",\"secret_id\":", self.secret_id),
            (b",\"kind\":", self.kind),
            (b",\"api_app_id\":", self.api_app_id),
            (b",\"enterprise_id\":", self.enterprise_id),
            (b",\"team_id\":", self.team_id),
            (b",\"user_id\":", self.user_id),
            (b",\"channel_id\":", self.channel_id),
            (b",\"event_type\":", self.event_type),
            (b",\"command\":", self.command),
            (b",\"event_id\":", self.event_id),
            (b",\"action_id\":", self.action_id),
        ];
        for (key, value) in texts {
            text(out, key, value);
        }
        number(out, b",\"retry_num\":", self.retry_num.map(u64::from));
        text(out, b",\"rule\":", self.rule);
        text(out, b",\"upstream\":", self.upstream);
        number(
            out,
            b",\"upstream_status\":",
            self.upstream_status.map(u64::from),
        );
        number(out, b",\"duration_us\":", Some(self.duration_us));
        if self.lifecycle {
            out.extend_from_slice(b",\"lifecycle\":true");
        }
        if let Some(source) = self.source {
            text(out, b",\"source\":", Some(source));
        }
        out.push(b'}');
    }
}

/// A JSON string with `serde_json`'s escapes: `\"`, `\\`, the short forms of
/// `\b \f \n \r \t`, `\u00XX` for other control bytes; everything else verbatim.
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Almost every value (ids, names, timestamps) needs no escape: one check over all its
    // bytes (a fold without early exit, which the compiler turns into wide compares), one copy.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

mod spare;
use spare::Spare;

/// Where audit lines go.
#[derive(Debug, Clone)]
pub enum AuditTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to and reopened on request.
    File(PathBuf),
    /// Memory; for tests.
    Memory(Arc<Mutex<Vec<String>>>),
}

/// The sending side of the audit queue.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: SyncSender<Vec<u8>>,
    dropped: IntCounter,
    reopen: Arc<AtomicBool>,
    last_drop_log: Arc<AtomicU64>,
    started: Instant,
    /// Records accepted into the queue, and records the writer has written (or failed to
    /// write) and flushed: [`AuditSink::drain`] waits for the second to catch up.
    queued: Arc<AtomicU64>,
    settled: Arc<AtomicU64>,
    /// Bytes of the records accepted and not yet written (the writer's record in hand
    /// included), and the most there may be.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    /// Buffers the writer has written, for the next lines.
    spare: Arc<Spare>,
}

impl AuditSink {
    /// Starts the writer thread for `target` with a queue of `capacity` records and
    /// [`DEFAULT_QUEUE_BYTES`] bytes.
    pub fn start(target: AuditTarget, capacity: usize, dropped: IntCounter) -> io::Result<Self> {
        Self::start_bounded(target, capacity, DEFAULT_QUEUE_BYTES, dropped)
    }

    /// Starts the writer thread for `target` with a queue of at most `capacity` records
    /// and `max_bytes` bytes of them: a record past either bound is dropped and counted
    /// in `dropped`. Records are small, but a writer stalled on a slow reader (stdout
    /// into a pipe) holds every record queued: bounded in records alone, the queue's
    /// memory would follow their size.
    pub fn start_bounded(
        target: AuditTarget,
        capacity: usize,
        max_bytes: usize,
        dropped: IntCounter,
    ) -> io::Result<Self> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer::open(target)?;
        let counters = WriterCounters {
            reopen: Arc::clone(&reopen),
            dropped: dropped.clone(),
            settled: Arc::new(AtomicU64::new(0)),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            spare: Arc::default(),
        };
        let spare = Arc::clone(&counters.spare);
        let settled = Arc::clone(&counters.settled);
        let queued_bytes = Arc::clone(&counters.queued_bytes);
        std::thread::Builder::new()
            .name("slackgate-audit".into())
            .spawn(move || writer.run(rx, &counters))?;
        Ok(Self {
            tx,
            dropped,
            reopen,
            last_drop_log: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            queued: Arc::new(AtomicU64::new(0)),
            settled,
            queued_bytes,
            max_bytes,
            spare,
        })
    }

    /// Bytes of records waiting for the writer (or being written) now.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until every record queued so far is written and flushed:
    /// a gateway that stops calls it so that its last records are not lost with the
    /// process. Returns whether the queue drained in time.
    pub fn drain(&self, limit: Duration) -> bool {
        let target = self.queued.load(Ordering::SeqCst);
        let deadline = Instant::now() + limit;
        while self.settled.load(Ordering::SeqCst) < target {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Queues a record; a full queue drops it, counts it and logs.
    pub fn record(&self, record: &AuditRecord) {
        self.record_view(&record.view());
    }

    /// Queues a record given as a view: bounded and serialized here, written by the
    /// writer thread.
    pub fn record_view(&self, record: &AuditView<'_>) {
        let mut line = self.spare.take(INBOUND_LINE);
        record.bounded().write_json(&mut line);
        self.queue(line);
    }

    fn queue(&self, line: Vec<u8>) {
        // What the line holds in memory until written, as the writer will give it back.
        let cost = line_cost(&line);
        let reserved = self
            .queued_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                q.checked_add(cost).filter(|&n| n <= self.max_bytes)
            })
            .is_ok();
        if !reserved {
            self.note_drop("audit queue over audit.max_queue_bytes");
            return;
        }
        // Counted before the send, so the writer can never settle a record not yet counted.
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                self.queued_bytes.fetch_sub(cost, Ordering::SeqCst);
                self.note_drop("audit queue full or writer gone");
            }
        }
    }

    /// Counts a dropped record, and logs it at most once a second.
    fn note_drop(&self, why: &str) {
        self.dropped.inc();
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_drop_log.load(Ordering::Relaxed);
        if now > last
            && self
                .last_drop_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::error!(
                "{why}: records are being dropped (see slackgate_audit_dropped_total={})",
                self.dropped.get()
            );
        }
    }

    /// Queues the record of one egress call: bounded and serialized here.
    pub fn record_egress(&self, record: &EgressRecord<'_>) {
        let mut line = self.spare.take(EGRESS_LINE);
        if serde_json::to_writer(&mut line, &record.bounded()).is_ok() {
            self.queue(line);
        }
    }

    /// Asks the writer to reopen its file before the next record (logrotate).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
    }
}

/// The room a line is written into at first: most inbound and egress lines fit.
const INBOUND_LINE: usize = 512;
const EGRESS_LINE: usize = 320;

/// What a queued line costs against `audit.max_queue_bytes`: its allocation, not only
/// its length, since that is what it holds while it waits.
fn line_cost(line: &Vec<u8>) -> usize {
    line.capacity() + 1
}

/// The state the writer thread shares with the sink.
struct WriterCounters {
    reopen: Arc<AtomicBool>,
    dropped: IntCounter,
    settled: Arc<AtomicU64>,
    queued_bytes: Arc<AtomicUsize>,
    spare: Arc<Spare>,
}

enum Out {
    Stdout(io::Stdout),
    File(PathBuf, BufWriter<File>),
    Memory(Arc<Mutex<Vec<String>>>),
}

struct Writer {
    out: Out,
    /// Whether the last flush failed, so a failing sink is logged once, not per batch.
    flush_failing: bool,
}

impl Writer {
    fn open(target: AuditTarget) -> io::Result<Self> {
        let out = match target {
            AuditTarget::Stdout => Out::Stdout(io::stdout()),
            AuditTarget::File(path) => {
                let f = open_append(&path)?;
                Out::File(path, BufWriter::with_capacity(FILE_BUFFER, f))
            }
            AuditTarget::Memory(buf) => Out::Memory(buf),
        };
        Ok(Self {
            out,
            flush_failing: false,
        })
    }

    fn run(mut self, rx: Receiver<Vec<u8>>, shared: &WriterCounters) {
        let WriterCounters {
            reopen,
            dropped,
            settled,
            queued_bytes,
            spare,
        } = shared;
        let mut written = Vec::new();
        loop {
            let record = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => Some(r),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            };
            if reopen.swap(false, Ordering::SeqCst) {
                self.reopen();
            }
            let Some(first) = record else {
                self.flush();
                continue;
            };
            // Write what is queued in one batch, then flush once: lines appear promptly
            // without a syscall per record under load.
            written.push(self.write_record(first, dropped, queued_bytes));
            let mut batch = 1;
            for _ in 0..4096 {
                match rx.try_recv() {
                    Ok(r) => {
                        written.push(self.write_record(r, dropped, queued_bytes));
                        batch += 1;
                    }
                    Err(_) => break,
                }
            }
            self.flush();
            spare.give_back(&mut written);
            settled.fetch_add(batch, Ordering::SeqCst);
            // Let records collect for a moment before the next batch: waking this thread
            // for every request costs two context switches per request on a busy core
            // (measured: 18.6 % of samples, 19.3k -> 24.8k req/s once batched). Lines
            // appear at most BATCH_PAUSE later; the queue absorbs the pause.
            std::thread::sleep(BATCH_PAUSE);
        }
    }

    /// Writes a line and gives its buffer back (for [`Spare`]).
    fn write_record(
        &mut self,
        line: Vec<u8>,
        dropped: &IntCounter,
        queued_bytes: &AtomicUsize,
    ) -> Vec<u8> {
        if self.write_line(&line).is_err() {
            dropped.inc();
        }
        // Released once written: a writer blocked on its output keeps its record counted.
        queued_bytes.fetch_sub(line_cost(&line), Ordering::SeqCst);
        line
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Out::Stdout(s) => {
                let mut lock = s.lock();
                lock.write_all(line)?;
                lock.write_all(b"\n")
            }
            Out::File(_, w) => {
                w.write_all(line)?;
                w.write_all(b"\n")
            }
            Out::Memory(buf) => {
                let line = String::from_utf8_lossy(line).into_owned();
                buf.lock().push(line);
                Ok(())
            }
        }
    }

    fn flush(&mut self) {
        let result = match &mut self.out {
            Out::Stdout(s) => s.flush(),
            Out::File(_, w) => w.flush(),
            Out::Memory(_) => Ok(()),
        };
        // Unflushed lines stay buffered and are retried; once the buffer is full, new
        // records fail to write and are counted as dropped. Say so now, once per episode.
        match result {
            Ok(()) => self.flush_failing = false,
            Err(e) if !self.flush_failing => {
                self.flush_failing = true;
                log::error!("audit: cannot write audit records ({e}); they are held, then dropped and counted in slackgate_audit_dropped_total");
            }
            Err(_) => {}
        }
    }

    fn reopen(&mut self) {
        if let Out::File(path, w) = &mut self.out {
            let _ = w.flush();
            match open_append(path) {
                Ok(f) => *w = BufWriter::with_capacity(FILE_BUFFER, f),
                Err(e) => log::error!("audit: cannot reopen {}: {e}", path.display()),
            }
        }
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests;
