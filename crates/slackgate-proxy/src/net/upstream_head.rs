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
    /// On a route with `resign`: Slack's signature headers are not forwarded, and these
    /// are sent in their place (`None` inside when the request was not verified, so that
    /// nothing the bot accepts is sent).
    pub resign: Option<Option<Resigned<'a>>>,
}

/// The gateway's own v0 signature of what it forwards (route key `resign`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resigned<'a> {
    /// `X-Slack-Request-Timestamp`: unix seconds when it was signed.
    pub timestamp: &'a str,
    /// `X-Slack-Signature`: `v0=` and the hex MAC of the forwarded body.
    pub signature: &'a str,
}

/// True for Slack's signature headers (`-` or `_` spelled, any case), which a route with
/// `resign` never forwards.
fn is_slack_signature(name: &[u8]) -> bool {
    let same = |want: &[u8]| {
        name.len() == want.len()
            && name
                .iter()
                .zip(want)
                .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
    };
    same(b"x-slack-signature") || same(b"x-slack-request-timestamp")
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
    let resigned = add.resign.is_some();
    for (name, value) in headers {
        let dropped = is_not_forwarded(name, &named) || (resigned && is_slack_signature(name));
        if !dropped {
            push_header(&mut out, name, value);
        }
    }
    if let Some(Some(r)) = &add.resign {
        push_header(
            &mut out,
            b"X-Slack-Request-Timestamp",
            r.timestamp.as_bytes(),
        );
        push_header(&mut out, b"X-Slack-Signature", r.signature.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(resign: Option<Option<Resigned<'_>>>) -> String {
        let headers: [(&[u8], &[u8]); 4] = [
            (b"Host", b"gw"),
            (b"X-Slack-Signature", b"v0=slack"),
            (b"x_slack_request_timestamp", b"1"),
            (b"Content-Type", b"application/json"),
        ];
        let add = Forwarded {
            body_len: 2,
            route: "r",
            team: None,
            user: None,
            secret_id: None,
            resign,
        };
        String::from_utf8(request_head(b"POST", b"/e", headers.iter().copied(), &add)).unwrap()
    }

    #[test]
    fn resign_replaces_slack_s_signature_headers() {
        let plain = head(None);
        assert!(plain.contains("X-Slack-Signature: v0=slack\r\n"));
        assert!(plain.contains("x_slack_request_timestamp: 1\r\n"));
        let own = Resigned {
            timestamp: "1700000000",
            signature: "v0=own",
        };
        let resigned = head(Some(Some(own)));
        assert!(!resigned.contains("v0=slack") && !resigned.contains("timestamp: 1\r\n"));
        assert!(resigned.contains("X-Slack-Request-Timestamp: 1700000000\r\n"));
        assert!(resigned.contains("X-Slack-Signature: v0=own\r\n"));
        assert!(resigned.contains("Content-Type: application/json\r\n"));
        // Unverified (shadow): Slack's headers go, nothing the bot accepts comes.
        let unverified = head(Some(None));
        assert!(!unverified
            .to_ascii_lowercase()
            .contains("x-slack-signature"));
        assert!(!unverified.to_ascii_lowercase().contains("timestamp"));
    }
}
