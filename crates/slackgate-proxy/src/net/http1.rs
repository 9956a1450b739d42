//! The one definition of a valid HTTP/1.x request head, for both paths.
//!
//! Every HTTP/1 request head is read by the front (`front.rs`) and judged here before
//! either path sees it: the fast path serves what this module accepts and calls simple,
//! pingora's HTTP proxy gets the rest of what it accepts, byte for byte as the client
//! sent it (absolute-form targets excepted, which are rewritten to origin-form first).
//! pingora's own parser is lenient in places (bare LF line ends, URI bytes it escapes,
//! `Transfer-Encoding` that overrides `Content-Length`); nothing it would read
//! differently from us ever reaches it. A refused head is answered by the front and the
//! connection closed: after a framing error nothing that follows on the connection can
//! be trusted to start a request.
//!
//! The rules, from RFC 9112 and RFC 9110, as a hardened proxy applies them:
//! - CRLF line ends only; no obsolete line folding; at most [`MAX_HEADERS`] headers and
//!   `limits.max_head_bytes` bytes, refused as soon as either is exceeded.
//! - HTTP/1.1 requires exactly one `Host`; HTTP/1.0 allows at most one.
//! - The target is origin-form (`/path?query`) of visible ASCII, without a fragment;
//!   an absolute-form target (`http://host/path`) whose authority is the `Host` is
//!   normalized to origin-form, any other form is refused. `CONNECT` is refused.
//! - Framing: at most one `Content-Length` of plain digits; `Transfer-Encoding` only
//!   on HTTP/1.1, only without `Content-Length`, and only `chunked` (another coding is
//!   501, a list whose final coding is not `chunked`, or with an empty element, is 400:
//!   pingora refuses those itself, and what pingora refuses we must refuse first).
//! - `Expect` may only be `100-continue` (ignored on HTTP/1.0, as RFC 9110 says).
//! - `Connection` is a list of tokens; `close` and `keep-alive` set persistence, the
//!   others name headers that are removed before forwarding.

use std::ops::Range;

use slackgate_guard::Reason;

use crate::net::wire::{parse_decimal, span_in};

/// The most headers a request may have (431 above).
pub(crate) const MAX_HEADERS: usize = 100;

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` bytes (0 when there was no length and no coding).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A head this module accepted; ranges index the buffer it was parsed from.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    /// Bytes of the head, including leading empty lines and the final empty line.
    pub len: usize,
    /// The method.
    pub method: Range<usize>,
    /// The request target as sent (origin-form, or absolute-form before rewriting).
    pub target: Range<usize>,
    /// The part of an absolute-form target that is its origin-form (`/path?query`;
    /// empty for `http://host`); `None` for an origin-form target.
    pub origin_form: Option<Range<usize>>,
    /// The path of an origin-form target, without the query.
    pub path: Range<usize>,
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// Header names and values, in order.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// How the body is framed.
    pub framing: Framing,
    /// The client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
}

impl RequestHead {
    /// Whether the fast path serves this request itself: a `POST` over HTTP/1.1 with an
    /// origin-form target and a `Content-Length` body, not waiting for `100 Continue`.
    /// Everything else goes to pingora (which answers it through the same pipeline).
    pub(crate) fn is_simple(&self, buf: &[u8]) -> bool {
        self.http11
            && self.origin_form.is_none()
            && !self.expect_continue
            && matches!(self.framing, Framing::Length(_))
            && buf.get(self.method.clone()) == Some(b"POST")
    }
}

/// Why a head was refused: the answer's reason (and so its status) and what was wrong,
/// for the log (never request bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// `bad_request`, `head_too_large` or `unsupported_transfer_coding`.
    pub reason: Reason,
    /// What was wrong, a fixed text.
    pub detail: &'static str,
}

/// What the buffer holds.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A complete head the gateway accepts.
    Complete(RequestHead),
    /// Not complete yet (and within the limits): read more.
    Partial,
    /// A head the gateway refuses.
    Refused(Refusal),
}

fn bad(detail: &'static str) -> Parsed {
    Parsed::Refused(Refusal {
        reason: Reason::BadRequest,
        detail,
    })
}

fn too_large(detail: &'static str) -> Parsed {
    Parsed::Refused(Refusal {
        reason: Reason::HeadTooLarge,
        detail,
    })
}

/// Judges the request head at the start of `buf`: at most `max_head` bytes of it count.
pub(crate) fn parse(buf: &[u8], max_head: usize) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let window = &buf[..buf.len().min(max_head)];
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return too_large("request head longer than limits.max_head_bytes")
        }
        Ok(httparse::Status::Partial) => {
            // Refuse a bare LF as soon as it is seen, not only once the head is whole.
            return if has_bare_lf(window) {
                bad("bare LF line end")
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return too_large("more than 100 headers"),
        Err(_) => return bad("malformed request line or header"),
    };
    let head = &buf[..len];
    if has_bare_lf(head) {
        return bad("bare LF line end");
    }
    let http11 = match req.version {
        Some(1) => true,
        Some(0) => false,
        _ => return bad("unsupported HTTP version"),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return bad("malformed request line");
    };
    if method == "CONNECT" {
        return bad("CONNECT is not served");
    }

    // The first Host and how many there were (a Vec of them was a malloc per request).
    let mut host: Option<&[u8]> = None;
    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut codings: Vec<&[u8]> = Vec::new();
    let mut transfer_encoding = false;
    let mut expect_continue = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        if name.eq_ignore_ascii_case(b"host") {
            host = host.or(Some(value));
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return bad("more than one Content-Length");
            }
            match parse_decimal(value) {
                Some(n) => content_length = Some(n),
                None => return bad("Content-Length is not a plain number"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            // Empty elements are kept: pingora refuses them, so we must too.
            codings.extend(value.split(|&b| b == b',').map(<[u8]>::trim_ascii));
        } else if name.eq_ignore_ascii_case(b"expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return bad("Expect other than 100-continue");
            }
            // RFC 9110 10.1.1: an HTTP/1.0 expectation is ignored.
            expect_continue = http11;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list(value) {
                if !is_token(token) {
                    return bad("Connection is not a list of tokens");
                }
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        }
        let (Some(n), Some(v)) = (span_in(buf, name), span_in(buf, h.value)) else {
            return bad("malformed header");
        };
        headers.push((n, v));
    }

    match hosts {
        0 if http11 => return bad("HTTP/1.1 request without Host"),
        0 | 1 => {}
        _ => return bad("more than one Host"),
    }
    if host.is_some_and(|h| !is_host(h)) {
        return bad("malformed Host");
    }

    let framing = if transfer_encoding {
        if !http11 {
            return bad("Transfer-Encoding on HTTP/1.0");
        }
        if content_length.is_some() {
            return bad("both Transfer-Encoding and Content-Length");
        }
        match codings.as_slice() {
            [] => return bad("empty Transfer-Encoding"),
            c if c.iter().any(|t| t.is_empty()) => {
                return bad("empty element in Transfer-Encoding")
            }
            [.., last] if !last.eq_ignore_ascii_case(b"chunked") => {
                return bad("final transfer coding is not chunked")
            }
            [_] => Framing::Chunked,
            [init @ .., _] if init.iter().any(|c| c.eq_ignore_ascii_case(b"chunked")) => {
                return bad("chunked applied more than once")
            }
            _ => {
                return Parsed::Refused(Refusal {
                    reason: Reason::UnsupportedTransferCoding,
                    detail: "transfer coding other than chunked",
                })
            }
        }
    } else {
        Framing::Length(content_length.unwrap_or(0))
    };

    let Some(target_range) = span_in(buf, target.as_bytes()) else {
        return bad("malformed request target");
    };
    let t = target.as_bytes();
    if !t.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'#') {
        return bad("request target with a fragment or a byte outside visible ASCII");
    }
    let (origin_form, path) = if t.starts_with(b"/") {
        let path_len = t.iter().position(|&b| b == b'?').unwrap_or(t.len());
        (None, target_range.start..target_range.start + path_len)
    } else {
        let Some((authority, origin)) = split_absolute(t) else {
            return bad("request target is neither origin-form nor absolute-form");
        };
        if !host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
            return bad("absolute-form authority differs from Host");
        }
        let start = target_range.start + (t.len() - origin.len());
        (Some(start..target_range.end), start..start)
    };

    let keep_alive = persists(http11, close, keep_alive_token);
    Parsed::Complete(RequestHead {
        len,
        method: span_in(buf, method.as_bytes()).unwrap_or(0..0),
        target: target_range,
        origin_form,
        path,
        http11,
        headers,
        framing,
        expect_continue,
        keep_alive,
    })
}

/// `buf` with an absolute-form target replaced by its origin-form (`/` when it has no
/// path), so that both paths, and the bot, see the origin-form only.
pub(crate) fn to_origin_form(buf: &[u8], head: &RequestHead) -> Option<Vec<u8>> {
    let origin = head.origin_form.clone()?;
    let mut out = Vec::with_capacity(buf.len() + 1);
    out.extend_from_slice(buf.get(..head.target.start)?);
    match buf.get(origin)? {
        [] => out.push(b'/'),
        o if o.starts_with(b"?") => {
            out.push(b'/');
            out.extend_from_slice(o);
        }
        o => out.extend_from_slice(o),
    }
    out.extend_from_slice(buf.get(head.target.end..)?);
    Some(out)
}

/// Longest chunk-size line (with extensions) and trailer section the scanner follows.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

/// Finds where a chunked request body ends, fed the bytes as they arrive, so that the
/// front hands pingora exactly one request and keeps what follows (a pipelined request)
/// for itself. Chunk-size lines are read by `httparse::parse_chunk_size`, the parser
/// pingora's body reader uses; data must be followed by CRLF; the trailer section ends
/// at an empty line. Anything else is [`ChunkedEnd::broken`]: the caller then lets
/// pingora see the bytes (it refuses them itself) and closes the connection afterwards.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedEnd {
    state: ChunkState,
    /// The current size or trailer line, up to its LF.
    line: Vec<u8>,
    trailers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    Done,
    Broken,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        Self {
            state: ChunkState::Size,
            line: Vec::new(),
            trailers: 0,
        }
    }
}

impl ChunkedEnd {
    /// Whether the body's last byte was seen.
    pub(crate) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Whether the framing is broken (no end can be found).
    pub(crate) fn broken(&self) -> bool {
        self.state == ChunkState::Broken
    }

    /// Feeds `bytes`; returns how many of them belong to the body (all of them unless
    /// the body ends inside `bytes`, or the framing broke there).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                ChunkState::Done | ChunkState::Broken => return i,
                ChunkState::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataCr | ChunkState::DataLf => {
                    let want = if self.state == ChunkState::DataCr {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if bytes[i] != want {
                        self.state = ChunkState::Broken;
                        return i;
                    }
                    i += 1;
                    self.state = if want == b'\r' {
                        ChunkState::DataLf
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Size | ChunkState::Trailer => {
                    let b = bytes[i];
                    i += 1;
                    self.line.push(b);
                    if self.state == ChunkState::Trailer {
                        self.trailers += 1;
                    }
                    if self.line.len() > MAX_CHUNK_LINE || self.trailers > MAX_TRAILERS {
                        self.state = ChunkState::Broken;
                        return i;
                    }
                    if b == b'\n' {
                        self.end_line();
                        if self.broken() {
                            return i;
                        }
                    }
                }
            }
        }
        i
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        if self.state == ChunkState::Trailer {
            if line == b"\r\n" {
                self.state = ChunkState::Done;
            } else if !line.ends_with(b"\r\n") {
                self.state = ChunkState::Broken;
            }
            return;
        }
        self.state = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((used, 0))) if used == line.len() => ChunkState::Trailer,
            Ok(httparse::Status::Complete((used, n))) if used == line.len() => ChunkState::Data(n),
            _ => ChunkState::Broken,
        };
    }
}

/// `http://authority[/path?query]` (or https): the authority and the rest.
fn split_absolute(t: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = t.iter().position(|&b| b == b':')?;
    let scheme = &t[..colon];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return None;
    }
    let rest = t[colon..].strip_prefix(b"://")?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, origin) = rest.split_at(end);
    if authority.is_empty() || authority.contains(&b'@') || !is_host(authority) {
        return None;
    }
    Some((authority, origin))
}

/// The non-empty elements of a comma-separated list, trimmed.
pub(crate) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// An RFC 9110 token.
fn is_token(t: &[u8]) -> bool {
    !t.is_empty()
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `uri-host [":" port]` characters (reg-name, IPv4, bracketed IPv6); may be empty.
fn is_host(h: &[u8]) -> bool {
    h.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

/// Whether a LF in `b` is not preceded by CR. Every pair of neighbouring bytes is tested,
/// without an early exit, so the compiler tests 16 of them per instruction: cheaper than
/// a `memchr` call per line (and than a test of every byte with an early exit).
fn has_bare_lf(b: &[u8]) -> bool {
    let bare = |prev: u8, byte: u8| u8::from(byte == b'\n') & u8::from(prev != b'\r');
    let first = b.first().map_or(0, |&byte| u8::from(byte == b'\n'));
    let rest = b
        .iter()
        .zip(b.get(1..).unwrap_or_default())
        .fold(0u8, |seen, (&prev, &byte)| seen | bare(prev, byte));
    first | rest != 0
}

/// Whether a header must not be forwarded to the bot: hop-by-hop headers, the headers
/// the gateway sets itself (`Content-Length`, `X-Slackgate-*`, and their `_` twins,
/// which CGI and WSGI bots read as the same variable), `Expect` (answered here), and
/// every header the client's `Connection` names.
pub(crate) fn is_not_forwarded(name: &[u8], connection_tokens: &[&[u8]]) -> bool {
    const OWN: &[u8] = b"x-slackgate-";
    let own = name.len() >= OWN.len()
        && name[..OWN.len()]
            .iter()
            .zip(OWN)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'));
    own || name.eq_ignore_ascii_case(b"expect")
        || is_hop_by_hop(name)
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// Headers that describe one hop, not the message, plus `Content-Length` (the gateway
/// frames what it sends itself): never relayed in either direction.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    // A plain walk of the list: each comparison starts with the lengths, and the compiler
    // keeps them as constants (picking the names of the same length first, by a match or
    // by skip_while, measured slower under callgrind: +300 and +430 instructions per
    // plain request).
    const HOP_BY_HOP: &[&[u8]] = &[
        b"content-length",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether the client lets the connection carry another request (RFC 9112 9.3): `close`
/// (on any `Connection` line) wins; HTTP/1.1 persists by default, HTTP/1.0 only with
/// `keep-alive`.
fn persists(http11: bool, close: bool, keep_alive: bool) -> bool {
    !close && (http11 || keep_alive)
}

/// The header names a message's `Connection` headers list (other than `close` and
/// `keep-alive`, which are hop-by-hop anyway).
pub(crate) fn connection_tokens<'a>(
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<&'a [u8]> {
    headers
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| list(v))
        .collect()
}

#[cfg(test)]
mod tests;
