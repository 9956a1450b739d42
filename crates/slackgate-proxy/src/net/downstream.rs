//! The client side of one request as the pipeline needs it: pingora's session
//! ([`PingoraDownstream`]) or the fast path's own parsed request (`front.rs`), and the
//! request head the gateway sends upstream.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use slackgate_guard::Reason;

use crate::net::conn::{is_bodyless, KEEPALIVE_IDLE};
use crate::net::handover::{handed_head, HandedHead};
use crate::net::http1::is_hop_by_hop;
use crate::net::upstream_head::{request_head, Forwarded};

/// A header of the bot's answer that is not relayed: hop-by-hop headers,
/// `Content-Length` (the gateway frames the answer itself), and the headers the bot's
/// `Connection` lists.
pub(crate) fn is_not_relayed(name: &[u8], named: &[&[u8]]) -> bool {
    is_hop_by_hop(name) || named.iter().any(|t| name.eq_ignore_ascii_case(t))
}

/// The JSON body of a gateway answer: the reason and its fixed public message.
pub(crate) fn answer_body(reason: Reason) -> Bytes {
    let body = serde_json::json!({
        "ok": false,
        "reason": reason.as_str(),
        "message": reason.public_message(),
    });
    Bytes::from(body.to_string())
}

/// The client side of one request as the pipeline needs it: pingora's session
/// ([`PingoraDownstream`]), or the fast path's own parsed request (`front.rs`).
#[async_trait]
pub(crate) trait Downstream: Send {
    /// The first value of a header.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// Every value of a header, in order.
    fn header_all(&self, name: &str) -> Vec<&[u8]>;
    /// The one value of a header. A repeated signature or timestamp header is ambiguous
    /// (the gateway and the bot could read different ones), so it reads as malformed: an
    /// empty value, which fails verification as `bad_signature`.
    fn single_header(&self, name: &str) -> Option<&[u8]> {
        match self.header_all(name).as_slice() {
            [] => None,
            [one] => Some(one),
            _ => Some(b""),
        }
    }
    /// The `Host` header, else the authority of an absolute-form target.
    fn host(&self) -> Option<&str>;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The request method, as sent.
    fn method(&self) -> &[u8];
    /// The raw query string (after `?`), if any.
    fn query(&self) -> Option<&[u8]>;
    /// Whether the method is `HEAD` (the answer then has no body).
    fn is_head(&self) -> bool;
    /// The connected peer's address.
    fn peer_ip(&self) -> IpAddr;
    /// The body's declared length (`None` for a chunked body).
    fn declared_length(&self) -> Option<u64>;
    /// Whether the client waits for `100 Continue` before it sends the body.
    fn expects_continue(&self) -> bool {
        false
    }
    /// Sends `100 Continue`.
    async fn send_continue(&mut self) -> pingora::Result<()> {
        Ok(())
    }
    /// The head to send upstream (see [`request_head`]).
    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8>;
    /// The whole body within `max` bytes and `timeout`.
    async fn read_body(&mut self, max: usize, timeout: Duration) -> Result<Bytes, BodyError>;
    /// Do not keep the connection after this request.
    fn close_after(&mut self);
    /// Whether this is a Socket Mode envelope read from the gateway's own connection to
    /// Slack (`socket/`), not a request from the network: the guard then skips only
    /// `source_ips` and the signature and replay checks, and the record says
    /// `"source":"socket"`. Only the envelope request says yes.
    fn socket_sourced(&self) -> bool {
        false
    }
    /// Writes the answer; the implementation adds `Content-Length`. An
    /// `InvalidHTTPHeader` error means nothing was written.
    async fn respond(
        &mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&[u8], &[u8])],
        body: Bytes,
    ) -> pingora::Result<()>;
}

/// pingora's downstream session, and whether the connection closes after this request.
pub(crate) struct PingoraDownstream<'s>(pub &'s mut Session, pub bool);

impl PingoraDownstream<'_> {
    /// The head the front judged and handed over with this request (every HTTP/1
    /// request has one).
    fn handed(&self) -> Option<&HandedHead> {
        self.0.stream().and_then(handed_head)
    }
}

#[async_trait]
impl Downstream for PingoraDownstream<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.req_header().headers.get(name).map(|v| v.as_bytes())
    }

    fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .req_header()
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    }

    fn host(&self) -> Option<&str> {
        let req = self.0.req_header();
        req.headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host())
    }

    fn path(&self) -> &str {
        self.0.req_header().uri.path()
    }

    fn method(&self) -> &[u8] {
        self.0.req_header().method.as_str().as_bytes()
    }

    fn query(&self) -> Option<&[u8]> {
        self.0.req_header().uri.query().map(str::as_bytes)
    }

    fn is_head(&self) -> bool {
        self.0.req_header().method == http::Method::HEAD
    }

    fn peer_ip(&self) -> IpAddr {
        self.0
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn declared_length(&self) -> Option<u64> {
        if let Some(h) = self.handed() {
            return h.declared_length();
        }
        if self.0.req_header().headers.contains_key(TRANSFER_ENCODING) {
            return None;
        }
        // The head checks allowed one plain decimal Content-Length at most.
        Some(
            self.0
                .req_header()
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| crate::net::wire::parse_decimal(v.as_bytes().trim_ascii()))
                .unwrap_or(0),
        )
    }

    fn expects_continue(&self) -> bool {
        if let Some(h) = self.handed() {
            return h.expects_continue();
        }
        let req = self.0.req_header();
        // The head checks allowed no other expectation; HTTP/1.0 ones are ignored.
        req.version == http::Version::HTTP_11 && req.headers.contains_key(http::header::EXPECT)
    }

    async fn send_continue(&mut self) -> pingora::Result<()> {
        self.0.write_continue_response().await
    }

    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8> {
        if let Some(h) = self.handed() {
            return h.upstream_head(add);
        }
        let req = self.0.req_header();
        let method = req.method.as_str().as_bytes();
        // Not the hot path: the pairs are collected so the head can be read twice.
        let headers: Vec<(&[u8], &[u8])> = if req.has_case() {
            req.case_header_iter()
                .map(|(n, v)| (n.as_slice(), v.as_bytes()))
                .collect()
        } else {
            req.headers
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
                .collect()
        };
        request_head(method, req.raw_path(), headers.iter().copied(), add)
    }

    async fn read_body(&mut self, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
        read_body(self.0, max, timeout).await
    }

    fn close_after(&mut self) {
        self.1 = true;
        self.0.set_keepalive(None);
    }

    async fn respond(
        &mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&[u8], &[u8])],
        body: Bytes,
    ) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
        for (name, value) in headers {
            resp.append_header(Bytes::copy_from_slice(name), *value)?;
        }
        // Persistence as the front judged it (every `Connection` line counts, and a
        // drain closes), said to the client as the fast path says it: pingora reads
        // only the first line.
        match self.handed() {
            Some(h) if !h.keep_alive() => self.close_after(),
            Some(h) if !self.1 && h.keep_alive_missed_by_pingora() => {
                self.0.set_keepalive(Some(KEEPALIVE_IDLE.as_secs()));
            }
            _ => {}
        }
        let bodyless = is_bodyless(status);
        let body = if bodyless { Bytes::new() } else { body };
        if !bodyless {
            resp.insert_header(CONTENT_LENGTH, body.len().to_string())?;
        }
        if self.1 {
            resp.insert_header(http::header::CONNECTION, "close")?;
        }
        if let Some(reason) = reason {
            resp.set_reason_phrase(Some(reason))?;
        }
        let empty = body.is_empty();
        self.0.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            self.0.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}

/// Why a request body could not be read.
pub(crate) enum BodyError {
    /// Over `max_body_bytes`.
    TooLarge,
    /// Not complete within `body_read_timeout`.
    Timeout,
    /// The client closed (or reset) the connection inside the body.
    Closed,
    /// The chunked framing is broken.
    Framing,
}

impl BodyError {
    /// The answer: 413; 408 for a body that did not arrive whole, in time or at all
    /// (nobody may read the answer to a closed one, but its record says why); 400 for
    /// broken chunked framing.
    pub(crate) fn reason(&self) -> Reason {
        match self {
            BodyError::TooLarge => Reason::BodyTooLarge,
            BodyError::Timeout | BodyError::Closed => Reason::BodyTimeout,
            BodyError::Framing => Reason::BadRequest,
        }
    }
}

/// Reads the whole request body within `max` bytes and `timeout`.
pub(crate) async fn read_body(
    session: &mut Session,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = session
        .req_header()
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    let mut buf = BytesMut::with_capacity(capacity);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(Err(e)) => {
                return Err(match e.etype() {
                    pingora::ErrorType::ConnectionClosed | pingora::ErrorType::ReadError => {
                        BodyError::Closed
                    }
                    pingora::ErrorType::ReadTimedout => BodyError::Timeout,
                    _ => BodyError::Framing,
                })
            }
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}
