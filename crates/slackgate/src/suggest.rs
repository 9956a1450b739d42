//! `slackgate suggest`: the tightest policy that allows what the audit trail shows.
//!
//! Reads audit files (plain, rotated, gzip: by their magic bytes) line by line, each line
//! folded into per-bot and per-route sets ([`trail`]), so memory follows the number of
//! distinct methods, channels, teams, events and commands, not the size of the files.
//! Then rewrites the policy the config names ([`propose`]) and prints it with comments
//! giving counts and last-seen times, and per bot the minimal scopes as an app-manifest
//! fragment. A progress line goes to stderr, only when stderr is a terminal.

mod propose;
mod trail;
mod yaml;

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};

pub(crate) use trail::{Filter, Trail};

/// The longest audit line read whole; the gateway writes at most 4 KiB. A longer line
/// is skipped (counted unreadable) without being held.
const MAX_LINE: usize = 64 * 1024;

/// How many unreadable lines are named on stderr (the rest are counted).
const SHOWN_ERRORS: u64 = 5;

/// What `slackgate suggest` was asked.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) config: PathBuf,
    pub(crate) audit: Vec<PathBuf>,
    pub(crate) since: Option<String>,
    pub(crate) bots: Vec<String>,
    pub(crate) routes: Vec<String>,
}

/// The policy file `config` is or names (a config's `policy:`, relative to the config's
/// directory), and its text.
fn policy_of(config: &Path) -> anyhow::Result<(PathBuf, String)> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    if slackgate_policy::looks_like_policy(&text) {
        return Ok((config.to_owned(), text));
    }
    let node = marked_yaml::parse_yaml(0, &text)
        .map_err(|e| anyhow::anyhow!("{}: not YAML: {e}", config.display()))?;
    let Some(policy) = node
        .as_mapping()
        .and_then(|m| m.get_scalar("policy"))
        .map(|p| p.as_str().trim().to_owned())
    else {
        bail!(
            "{}: neither a policy nor a config with `policy:` (run `slackgate check {}`)",
            config.display(),
            config.display()
        );
    };
    let base = config.parent().unwrap_or(Path::new("."));
    let path = base.join(policy);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the policy {}", path.display()))?;
    Ok((path, text))
}

/// `--since`: a duration back from now (`7d`, `36h`, `90m`) or an RFC 3339 date or time
/// (`2026-12-01`, `2026-12-01T08:00:00Z`), as the prefix audit `ts` values compare with.
pub(crate) fn since(arg: &str, now: SystemTime) -> anyhow::Result<String> {
    let arg = arg.trim();
    let days = arg
        .strip_suffix('d')
        .and_then(|d| d.parse::<u64>().ok())
        .map(|d| Duration::from_secs(d * 86_400));
    let back = days.or_else(|| slackgate_policy::parse_duration(arg).ok());
    if let Some(back) = back {
        let at = now.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH);
        return Ok(slackgate_proxy::audit::rfc3339(at));
    }
    let b = arg.as_bytes();
    let date = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && (b.len() == 10 || b[10] == b'T');
    if date && arg.is_ascii() && !arg.contains(char::is_whitespace) {
        // `Z` and `+00:00` both end a UTC time; audit times end in `Z`.
        return Ok(arg.trim_end_matches('Z').to_owned());
    }
    bail!("--since {arg:?}: write a duration back from now (7d, 36h, 90m) or a UTC date or time (2026-12-01, 2026-12-01T08:00:00Z)")
}

/// Reads the next line into `buf` (without its newline), at most [`MAX_LINE`] bytes of
/// it; `Ok(None)` at the end. A longer line is read through and reported as `Some(false)`
/// with `buf` cleared, so no line, however long, is held whole.
fn next_line(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut over = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any.then_some(!over));
        }
        any = true;
        let (take, done) = match memchr_newline(chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !over {
            if buf.len() + take > MAX_LINE {
                over = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(!over));
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Progress on stderr, at most a few times a second, only when stderr is a terminal.
struct Progress {
    on: bool,
    last: Instant,
    started: Instant,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        let now = Instant::now();
        Progress {
            on: std::io::stderr().is_terminal(),
            last: now,
            started: now,
            total,
        }
    }

    fn tick(&mut self, file: &Path, read: u64, lines: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mb = read as f64 / 1e6;
        let pct = if self.total > 0 {
            format!(" {:>3.0}%", 100.0 * read as f64 / self.total as f64)
        } else {
            String::new()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Ksuggest:{pct} {mb:.0} MB, {lines} lines, {:.0} MB/s ({})",
            mb / secs,
            file.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let _ = err.flush();
    }

    fn done(&self) {
        if self.on {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// A reader that counts the bytes read from the file (before decompression).
struct Counted<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Folds every file into `trail`; unreadable lines are named (`file:line:column`, never
/// their content) up to [`SHOWN_ERRORS`], then counted.
pub(crate) fn read_trail(files: &[PathBuf], filter: &Filter) -> anyhow::Result<Trail> {
    let mut trail = Trail::default();
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut progress = Progress::new(total);
    let mut done_bytes = 0u64;
    let mut shown = 0u64;
    let mut buf = Vec::with_capacity(8 * 1024);
    for path in files {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted {
            inner: File::open(path).with_context(|| format!("opening {}", path.display()))?,
            read: std::sync::Arc::clone(&read),
        };
        let mut reader = reader_of(counted, path)?;
        let mut line_no = 0u64;
        loop {
            // A file that breaks off (a gzip member cut short, a disk error) ends there: what
            // was read counts, the rest is missing, and the suggestion can only be tighter.
            let got = match next_line(reader.as_mut(), &mut buf) {
                Ok(got) => got,
                Err(e) => {
                    progress.done();
                    eprintln!(
                        "warning: {}:{}: reading stopped ({}); the rest of the file is skipped",
                        path.display(),
                        line_no + 1,
                        e.kind()
                    );
                    break;
                }
            };
            let Some(whole) = got else { break };
            line_no += 1;
            if buf.iter().all(u8::is_ascii_whitespace) && whole {
                continue;
            }
            let result = if whole {
                trail.add_line(&buf, filter).map_err(|e| {
                    let col = e.column();
                    format!(
                        "{}:{line_no}:{col}: not an audit record ({})",
                        path.display(),
                        e.classify_text()
                    )
                })
            } else {
                trail.lines += 1;
                trail.unreadable += 1;
                Err(format!(
                    "{}:{line_no}:1: a line over {MAX_LINE} bytes is no audit record",
                    path.display()
                ))
            };
            if let Err(msg) = result {
                shown += 1;
                if shown <= SHOWN_ERRORS {
                    progress.done();
                    eprintln!("warning: {msg}; skipped");
                }
            }
            if line_no.is_multiple_of(4096) {
                progress.tick(
                    path,
                    done_bytes + read.load(std::sync::atomic::Ordering::Relaxed),
                    trail.lines,
                );
            }
        }
        done_bytes += size;
    }
    progress.done();
    if shown > SHOWN_ERRORS {
        eprintln!(
            "warning: {} more unreadable lines skipped",
            shown - SHOWN_ERRORS
        );
    }
    Ok(trail)
}

/// [`open`]'s choice over a counting reader.
fn reader_of<R: Read + 'static>(mut inner: R, path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match inner.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(inner);
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, chained)),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, chained))
    })
}

/// A serde_json error's kind, without the text it read.
trait Classify {
    fn classify_text(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "a field of the wrong type",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// The suggestion as text: the header, the rewritten policy, the scope fragments.
pub(crate) fn render(
    policy_path: &Path,
    policy_text: &str,
    trail: &Trail,
    args: &Args,
) -> anyhow::Result<(String, propose::Changes)> {
    let node = marked_yaml::parse_yaml(0, policy_text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not YAML ({e}); run `slackgate check` on it",
            policy_path.display()
        )
    })?;
    let mut doc = yaml::Y::of(&node);
    if doc.entries().is_empty() {
        bail!(
            "{}: not a policy (no top-level mapping)",
            policy_path.display()
        );
    }
    let changes = propose::propose(&mut doc, trail);
    let mut out = String::new();
    out.push_str(&format!(
        "# slackgate suggest: {} from {} audit record(s) of {} line(s) in {}\n",
        policy_path.display(),
        trail.used,
        trail.lines,
        args.audit
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "# records from {} to {}{}\n",
        trail.first.as_deref().unwrap_or("-"),
        if trail.last.is_empty() {
            "-"
        } else {
            &trail.last
        },
        args.since
            .as_deref()
            .map(|s| format!(" (since {s})"))
            .unwrap_or_default()
    ));
    out.push_str("# Bots and routes with records are rewritten to allow exactly what was seen, with mode: enforce;\n");
    out.push_str(
        "# the others are as they were. Review, `slackgate check` it, then put it in place.\n",
    );
    yaml::write_map(&mut out, doc.entries(), 0);
    out.push_str(&propose::manifest_comment(trail));
    Ok((out, changes))
}

/// `slackgate suggest`.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (policy_path, policy_text) = policy_of(&args.config)?;
    let filter = Filter {
        since: args
            .since
            .as_deref()
            .map(|s| since(s, SystemTime::now()))
            .transpose()?,
        bots: args.bots.clone(),
        routes: args.routes.clone(),
    };
    let trail = read_trail(&args.audit, &filter)?;
    let (text, changes) = render(&policy_path, &policy_text, &trail, args)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    eprintln!(
        "suggest: {} record(s) used of {} line(s) ({} unreadable, {} skipped); rewrote bots [{}], routes [{}]",
        trail.used,
        trail.lines,
        trail.unreadable,
        trail.skipped,
        changes.bots.join(", "),
        changes.routes.join(", ")
    );
    for u in &changes.unknown {
        eprintln!(
            "note: the trail names {u}, which the policy does not have; nothing suggested for it"
        );
    }
    for b in &args.bots {
        if !trail.bots.contains_key(b) {
            eprintln!("note: no call of bot {b} in the trail");
        }
    }
    for r in &args.routes {
        if !trail.routes.contains_key(r) {
            eprintln!("note: no request of route {r} in the trail");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
