//! The upstream leg: a small HTTP/1.1 client over pooled TCP connections.
//!
//! The gateway has the whole request (head and body) in memory before it contacts a bot,
//! so a request goes out in one `write` and the bot's whole answer is read back before
//! anything is relayed. pingora's client flushes the head and the body separately (two
//! segments, two wake-ups of the bot) and checks every pooled socket with `getpeername`;
//! on loopback those syscalls were a third of the gateway's CPU time.
//!
//! Response framing follows RFC 9112 section 6.3: no body for `HEAD`, 1xx, 204 and 304;
//! `Transfer-Encoding` ending in `chunked` is decoded; any other transfer coding, or no
//! length at all, reads to the end of the connection; otherwise `Content-Length`, where
//! several differing values are an error. A connection goes back to the pool only when
//! the response ended exactly at its framing and both sides keep it alive, and a pooled
//! connection is used again only when it is clean: nothing unread arrived on it and the
//! bot did not close it while it was idle ([`Conn::is_clean`]).
//!
//! A request is sent at most once: [`ExchangeError::may_have_reached`] is false only
//! when not one byte of it left, and only then may the caller try again (the same rule
//! as nginx's for non-idempotent requests; Slack's requests are all `POST`s, and a slash
//! command that runs twice is worse than one that fails).

use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::wire::{parse_decimal, span_in};

/// Most headers accepted in an upstream response.
const MAX_HEADERS: usize = 100;
/// Largest upstream response head.
const MAX_HEAD: usize = 64 * 1024;
/// Read granularity.
const READ_CHUNK: usize = 8 * 1024;

/// Why an exchange failed. The texts never hold request or response bytes.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The write failed before one byte of the request left: the bot has nothing.
    #[error("write failed before the request left: {0}")]
    NotSent(#[source] std::io::Error),
    /// The write failed part way.
    #[error("write failed: {0}")]
    Write(#[source] std::io::Error),
    /// Reading the answer failed (reset, for one).
    #[error("read failed: {0}")]
    Read(#[source] std::io::Error),
    /// The bot closed the connection before the answer was whole.
    #[error("connection closed {0}")]
    Closed(&'static str),
    /// The answer's framing is broken or ambiguous.
    #[error("bad response framing: {0}")]
    Framing(&'static str),
    /// The answer is over a limit.
    #[error("response too large: {0}")]
    TooLarge(&'static str),
    /// The bot answered 101.
    #[error("upstream switched protocols")]
    Switched,
}

impl ExchangeError {
    /// Whether any byte of the request may have reached the bot; when it may, the
    /// request must not be sent again.
    pub fn may_have_reached(&self) -> bool {
        !matches!(self, ExchangeError::NotSent(_))
    }
}

/// A bot's whole answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent, when it is not the canonical one.
    pub reason: Option<String>,
    /// The response head as received; `headers` index into it.
    pub head: Bytes,
    /// Header name and value ranges in `head`, in order.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// The decoded body.
    pub body: Bytes,
}

impl Response {
    /// Header names (case as sent) and values, in order.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let at = |r: &Range<usize>| self.head.get(r.clone()).unwrap_or_default();
        self.headers.iter().map(move |(n, v)| (at(n), at(v)))
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.header_pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A connection's byte stream: plain TCP (bots) or TLS over TCP (Slack).
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Plain",
            Stream::Tls(_) => "Tls",
        })
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

/// One upstream connection.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    idle_since: Instant,
}

impl Conn {
    /// Connects to `addr` with `TCP_NODELAY` set.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: Stream::Plain(stream),
            idle_since: Instant::now(),
        })
    }

    /// Connects to `addr` with `TCP_NODELAY` set and completes a TLS handshake for
    /// `server_name` with `tls`.
    pub async fn connect_tls(
        addr: SocketAddr,
        tls: &tokio_rustls::TlsConnector,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls.connect(server_name, tcp).await?;
        Ok(Self {
            stream: Stream::Tls(Box::new(stream)),
            idle_since: Instant::now(),
        })
    }

    /// Whether a pooled connection can carry a request: no byte arrived on it while it
    /// was idle (a bot that sends unasked bytes would have them taken as the next
    /// request's answer) and it is not closed or failed. One non-blocking `MSG_PEEK`
    /// read, asked of the kernel itself: tokio's readiness flags may not have seen the
    /// bytes or the FIN yet.
    pub fn is_clean(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(self.stream.tcp()).peek(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Whether the connection, idle since it was last marked, is idle longer than `max`
    /// at `now`.
    pub fn idle_longer_than(&self, max: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.idle_since) > max
    }

    /// Marks the connection idle from `since` on (callers pass a time they already read,
    /// at or before the end of the last exchange, which only makes it expire sooner).
    pub fn mark_idle(&mut self, since: Instant) {
        self.idle_since = since;
    }

    /// Sends `head` and `body` in one write and reads the whole response, at most
    /// `max_response` bytes of body. Returns the response and whether the connection
    /// can carry another request.
    pub async fn exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        is_head_request: bool,
        max_response: usize,
    ) -> Result<(Response, bool), ExchangeError> {
        // One `writev` of head and body: no copy of the body.
        let total = head.len() + body.len();
        let mut out = Buf::chain(head, body);
        let written = match &mut self.stream {
            Stream::Plain(s) => s.write_all_buf(&mut out).await,
            Stream::Tls(s) => match s.write_all_buf(&mut out).await {
                // rustls buffers what it encrypts: flush it onto the socket.
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = written {
            return Err(if out.remaining() == total {
                ExchangeError::NotSent(e)
            } else {
                ExchangeError::Write(e)
            });
        }

        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let head = loop {
            match parse_head(&buf)? {
                Some(h) if h.len > MAX_HEAD => {
                    return Err(ExchangeError::TooLarge("response head over 64 KiB"))
                }
                Some(h) if h.status == 101 => return Err(ExchangeError::Switched),
                Some(h) if (100..200).contains(&h.status) => {
                    // An interim answer (100 Continue, 103 Early Hints): skip it.
                    buf.advance(h.len);
                    continue;
                }
                Some(h) => break h,
                None if buf.len() > MAX_HEAD => {
                    return Err(ExchangeError::TooLarge("response head over 64 KiB"))
                }
                None => {}
            }
            let early = buf.is_empty();
            if self.fill(&mut buf).await? == 0 {
                return Err(ExchangeError::Closed(if early {
                    "before a response"
                } else {
                    "inside the response head"
                }));
            }
        };
        let head_bytes = buf.split_to(head.len).freeze();

        let no_body = is_head_request || head.status == 204 || head.status == 304;
        let (body, framed) = if no_body {
            (Bytes::new(), true)
        } else {
            match head.framing {
                Framing::Length(n) => {
                    if n > max_response as u64 {
                        return Err(ExchangeError::TooLarge("body over the answer limit"));
                    }
                    let n = n as usize;
                    while buf.len() < n {
                        self.more(&mut buf).await?;
                    }
                    (buf.split_to(n).freeze(), true)
                }
                Framing::Chunked => (self.read_chunked(&mut buf, max_response).await?, true),
                Framing::Close => {
                    while self.fill(&mut buf).await? > 0 {
                        if buf.len() > max_response {
                            return Err(ExchangeError::TooLarge("body over the answer limit"));
                        }
                    }
                    (buf.split().freeze(), false)
                }
            }
        };
        // Bytes beyond the response mean the bot and the gateway disagree on framing:
        // never reuse such a connection.
        let reusable = framed && head.keep_alive && buf.is_empty();
        Ok((
            Response {
                status: head.status,
                reason: head.reason,
                head: head_bytes,
                headers: head.headers,
                body,
            },
            reusable,
        ))
    }

    async fn fill(&mut self, buf: &mut BytesMut) -> Result<usize, ExchangeError> {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        match &mut self.stream {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
        }
        .map_err(ExchangeError::Read)
    }

    async fn read_chunked(
        &mut self,
        buf: &mut BytesMut,
        max: usize,
    ) -> Result<Bytes, ExchangeError> {
        let mut body = BytesMut::new();
        loop {
            // chunk-size [; extensions] CRLF
            let (size, used) = loop {
                match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => break (size, used),
                    Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                        return Err(ExchangeError::Framing("chunk size line too long"))
                    }
                    Ok(httparse::Status::Partial) => self.more(buf).await?,
                    Err(_) => return Err(ExchangeError::Framing("bad chunk size line")),
                }
            };
            buf.advance(used);
            if size == 0 {
                break;
            }
            if body.len() as u64 + size > max as u64 {
                return Err(ExchangeError::TooLarge("body over the answer limit"));
            }
            let size = size as usize;
            while buf.len() < size + 2 {
                self.more(buf).await?;
            }
            body.extend_from_slice(&buf[..size]);
            if &buf[size..size + 2] != b"\r\n" {
                return Err(ExchangeError::Framing("chunk not followed by CRLF"));
            }
            buf.advance(size + 2);
        }
        // Trailer section: header lines up to an empty line; trailers are dropped.
        loop {
            match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    buf.advance(2);
                    return Ok(body.freeze());
                }
                Some(i) => buf.advance(i + 2),
                None if buf.len() > MAX_HEAD => {
                    return Err(ExchangeError::TooLarge("trailers over 64 KiB"))
                }
                None => self.more(buf).await?,
            }
        }
    }

    async fn more(&mut self, buf: &mut BytesMut) -> Result<(), ExchangeError> {
        if self.fill(buf).await? == 0 {
            return Err(ExchangeError::Closed("inside the body"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

#[derive(Debug)]
struct Head {
    len: usize,
    status: u16,
    reason: Option<String>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a complete response head at the start of `buf`, or `None` when more bytes
/// are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ExchangeError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ExchangeError::Framing("malformed response head")),
    };
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let reason = resp
        .reason
        .filter(|r| {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                != Some(*r)
        })
        .map(str::to_owned);

    let mut headers = Vec::with_capacity(resp.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = !http11;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(h.value.trim_ascii())
                .ok_or(ExchangeError::Framing("bad Content-Length in the response"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ExchangeError::Framing("conflicting Content-Length values"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // The last coding decides (RFC 9112 6.3 item 4).
            chunked = last_token(h.value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    close = false;
                }
            }
        }
        let (Some(n), Some(v)) = (span_in(buf, name.as_bytes()), span_in(buf, h.value)) else {
            return Err(ExchangeError::Framing("malformed response head"));
        };
        headers.push((n, v));
    }
    let framing = if transfer_encoding {
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    Ok(Some(Head {
        len,
        status,
        reason,
        headers,
        framing,
        keep_alive: !close,
    }))
}

fn last_token(v: &[u8]) -> Option<&[u8]> {
    v.rsplit(|&b| b == b',')
        .next()
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Serves `answers` (raw bytes, one per request read) on one connection and returns
    /// what it received.
    async fn exchange_with(
        answers: Vec<&'static [u8]>,
        head_req: bool,
    ) -> Vec<Result<(Response, bool), String>> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let n = answers.len();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for a in answers {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(a).await.unwrap();
            }
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let r = conn
                .exchange(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
                    b"{}",
                    head_req,
                    1024,
                )
                .await
                .map_err(|e| e.to_string());
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        server.abort();
        out
    }

    #[tokio::test]
    async fn content_length_keep_alive_twice() {
        let r = exchange_with(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok",
                b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
            ],
            false,
        )
        .await;
        let (a, reuse_a) = r[0].as_ref().unwrap();
        assert_eq!((a.status, &a.body[..], *reuse_a), (200, &b"ok"[..], true));
        assert_eq!(a.header_pairs().nth(1), Some((&b"X-A"[..], &b"1"[..])));
        let (b, _) = r[1].as_ref().unwrap();
        assert_eq!((b.status, b.body.len()), (201, 0));
    }

    #[tokio::test]
    async fn chunked_is_decoded_with_trailers() {
        let r = exchange_with(
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"],
            false,
        )
        .await;
        let (a, reuse) = r[0].as_ref().unwrap();
        assert_eq!((&a.body[..], *reuse), (&b"abcde"[..], true));
    }

    #[tokio::test]
    async fn interim_response_is_skipped() {
        let r = exchange_with(
            vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"],
            false,
        )
        .await;
        assert_eq!(r[0].as_ref().unwrap().0.status, 200);
    }

    #[tokio::test]
    async fn close_delimited_body_is_not_reused() {
        let r = exchange_with(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil close"], false).await;
        // The server task is aborted after the answer, closing the connection.
        let (a, reuse) = r[0].as_ref().unwrap();
        assert_eq!((&a.body[..], *reuse), (&b"until close"[..], false));
    }

    #[tokio::test]
    async fn framing_errors() {
        let r = exchange_with(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"],
            false,
        )
        .await;
        assert!(r[0].as_ref().unwrap_err().contains("conflicting"));
        let r = exchange_with(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"],
            false,
        )
        .await;
        assert!(r[0].as_ref().unwrap_err().contains("too large"));
        let r = exchange_with(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"],
            false,
        )
        .await;
        assert!(r[0].as_ref().unwrap_err().contains("Content-Length"));
        let r = exchange_with(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA"],
            false,
        )
        .await;
        assert!(!r[0].as_ref().unwrap().1, "extra bytes: not reused");
    }

    #[tokio::test]
    async fn head_request_reads_no_body() {
        let r = exchange_with(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], true).await;
        let (a, reuse) = r[0].as_ref().unwrap();
        assert_eq!((a.body.len(), *reuse), (0, true));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_response_heads_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(Some(h)) = parse_head(&raw) {
                proptest::prop_assert!(h.len <= raw.len());
                proptest::prop_assert!((100..1000).contains(&h.status));
            }
        }

        #[test]
        fn chunk_and_length_fields_never_panic(v in "[0-9a-fA-F ,;=a-z+-]{0,24}") {
            let _ = parse_decimal(v.as_bytes().trim_ascii());
            let _ = last_token(v.as_bytes());
            let _ = httparse::parse_chunk_size(v.as_bytes());
        }
    }

    #[tokio::test]
    async fn closed_before_response_is_early() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            drop(s);
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        server.await.unwrap();
        let e = conn
            .exchange(b"GET / HTTP/1.1\r\n\r\n", b"", false, 10)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ExchangeError::Closed("before a response")),
            "{e}"
        );
        assert!(
            e.may_have_reached(),
            "the request was written: never sent again"
        );
    }
}
