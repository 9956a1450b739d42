//! The request head the gateway sends upstream: the client's request line and headers
//! less what must not travel, with the gateway's own headers. Both paths (the fast path's
//! parsed head and the head handed to pingora) write it here.

use crate::net::http1::{connection_tokens, is_not_forwarded};
use crate::net::wire::{push_decimal, push_header};

/// What the gateway adds to the head it sends upstream.
pub(crate) struct Forwarded<'a> {
    /// Length of the (whole, verified) body.
    pub body_len: usize,
    /// Route name.
    pub route: &'a str,
    /// Verified team (or enterprise) id.
    pub team: Option<&'a str>,
    /// Verified user id.
    pub user: Option<&'a str>,
    /// Id of the secret that verified the signature.
    pub secret_id: Option<&'a str>,
}

/// The request head sent to the bot: the client's request line and headers (names in
/// their original case) minus what [`is_not_forwarded`] names (hop-by-hop headers,
/// headers the client's `Connection` lists, `Expect`, and any `x-slackgate-*` or
/// `x_slackgate_*` a client sent), with the body's `Content-Length` and the gateway's
/// own headers.
pub(crate) fn request_head<'h>(
    method: &[u8],
    target: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    add: &Forwarded<'_>,
) -> Vec<u8> {
    let named = connection_tokens(headers.clone());
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if !is_not_forwarded(name, &named) {
            push_header(&mut out, name, value);
        }
    }
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(&mut out, add.body_len as u64);
    out.extend_from_slice(b"\r\n");
    push_header(&mut out, b"x-slackgate-route", add.route.as_bytes());
    if let Some(team) = add.team.filter(|t| is_header_safe(t)) {
        push_header(&mut out, b"x-slackgate-team", team.as_bytes());
    }
    if let Some(user) = add.user.filter(|u| is_header_safe(u)) {
        push_header(&mut out, b"x-slackgate-user", user.as_bytes());
    }
    if let Some(id) = add.secret_id.filter(|i| is_header_safe(i)) {
        push_header(&mut out, b"x-slackgate-secret-id", id.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Slack ids are short ASCII; anything else is not put into a header.
fn is_header_safe(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}
