//! What both connection targets share: their input's shape, their two gateways (one with
//! the fast path, one that hands everything to pingora), and the client side: one
//! connection written in fuzzed pieces and read until the gateway closes it, and the
//! answers it wrote. Each target reads what it needs of an answer (the head is the egress
//! target's).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use slackgate_testkit::TestGateway;

/// A connection target's input: its steps (requests or calls), sent back to back on one
/// connection.
#[derive(Debug, Arbitrary)]
pub struct Input<S> {
    /// Send to the gateway whose every request goes to pingora.
    pub pingora: bool,
    pub steps: Vec<S>,
    /// Where the bytes are cut into separate writes.
    pub cuts: Vec<u16>,
    /// Raw bytes after the last step.
    pub trailer: Vec<u8>,
}

/// The two gateways a target sends to, each with what stands behind it (`P`: the bot or
/// the Slack stand-in), started once per process.
pub struct Rig<P> {
    fast: (TestGateway, P),
    pingora: (TestGateway, P),
}

impl<P> Rig<P> {
    /// The rig in `cell`, started on first use with `start(fast_path)`.
    pub fn get(
        cell: &'static OnceLock<Self>,
        start: fn(bool) -> (TestGateway, P),
    ) -> &'static Self {
        cell.get_or_init(|| {
            // RUST_LOG=warn shows why the gateway answered what it did.
            if std::env::var_os("RUST_LOG").is_some() {
                let _ = env_logger::try_init();
            }
            Rig {
                fast: start(true),
                pingora: start(false),
            }
        })
    }

    /// The gateway (and what stands behind it) the input picks.
    pub fn pick(&self, pingora: bool) -> (&TestGateway, &P) {
        let (gw, peer) = if pingora { &self.pingora } else { &self.fast };
        (gw, peer)
    }
}

/// Sends `bytes` in pieces cut at `cuts`, then closes the write side; everything the
/// gateway wrote until it closed.
pub fn exchange(addr: SocketAddr, bytes: &[u8], cuts: &[u16]) -> Vec<u8> {
    let s = TcpStream::connect(addr).expect("connect to the gateway");
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = s;
    let mut at: Vec<usize> = cuts
        .iter()
        .take(4)
        .map(|&c| usize::from(c) % (bytes.len() + 1))
        .collect();
    at.sort_unstable();
    at.push(bytes.len());
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut from = 0;
            for to in at {
                // The gateway may close before it read everything (a refused head).
                if w.write_all(&bytes[from..to]).is_err() {
                    return;
                }
                let _ = w.flush();
                from = to;
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("the gateway did not close the connection within 20 s after the client closed its side")
                }
                Err(_) => return out,
            }
        }
    })
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The final answers in `raw`, in order (1xx skipped). With `may_head` (a HEAD was
/// sent), an answer with a length but followed by the next status line or by nothing is
/// taken as a HEAD answer (no answer body starts with `HTTP/1.`). Panics on bytes that
/// are no answer.
pub fn answers(mut raw: &[u8], may_head: bool) -> Vec<Answer> {
    let mut out: Vec<Answer> = Vec::new();
    while !raw.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        let n = match resp.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "the gateway wrote something that is not an answer ({other:?}): {:?}",
                String::from_utf8_lossy(raw)
            ),
        };
        let status = resp.code.unwrap_or(0);
        let headers: Vec<(String, Vec<u8>)> = resp
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        let rest = &raw[n..];
        let bodyless = (100..200).contains(&status)
            || status == 204
            || status == 304
            || may_head && (rest.is_empty() || rest.starts_with(b"HTTP/1."));
        let len = if bodyless {
            0
        } else {
            length.expect("an answer without Content-Length")
        };
        assert!(raw.len() >= n + len, "an answer cut short");
        if status >= 200 {
            out.push(Answer {
                status,
                headers,
                head: raw[..n].to_vec(),
                body: raw[n..n + len].to_vec(),
            });
        }
        raw = &raw[n + len..];
    }
    out
}
