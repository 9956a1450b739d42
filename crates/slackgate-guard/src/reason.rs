//! The closed set of outcomes a request can have.

/// Why the gateway answered or forwarded a request the way it did.
///
/// This enum is the single source of HTTP status codes, metric `reason` labels and
/// audit `reason` strings: nothing else in the gateway spells them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Every check passed and the request was forwarded.
    Allowed,
    /// No route matches the request path (and host).
    NoRoute,
    /// The client address is outside the route's `source_ips`.
    IpDenied,
    /// The body exceeds `limits.max_body_bytes`.
    BodyTooLarge,
    /// The body did not arrive within `limits.body_read_timeout`.
    BodyTimeout,
    /// Slack's `ssl_check=1` probe, answered by the gateway.
    SslCheck,
    /// The signature or timestamp header is absent.
    MissingSignature,
    /// The signature is malformed or matches no live secret.
    BadSignature,
    /// The timestamp is outside the allowed clock skew, in either direction.
    StaleTimestamp,
    /// The same signature was already seen within the window.
    Replayed,
    /// The verified body could not be decoded.
    MalformedPayload,
    /// Slack's `url_verification` challenge, answered by the gateway.
    UrlVerification,
    /// The payload's `api_app_id` differs from the app's pin.
    AppMismatch,
    /// The route's allow/deny scope rejected the request.
    ScopeDenied,
    /// A rate limit of the route is exhausted.
    RateLimited,
    /// The upstream failed (refused, reset, bad response).
    UpstreamError,
    /// The upstream did not answer within `limits.upstream_timeout`.
    UpstreamTimeout,
    /// A Slack retry of an event already delivered with a 2xx, answered 200 and not
    /// forwarded again (`dedupe: event_id`).
    Deduplicated,
    /// The shared-state backend failed on a `state_failure: fail_closed` route.
    StateUnavailable,
    /// The request's HTTP framing or head is invalid or ambiguous (either path).
    BadRequest,
    /// The request head exceeds `limits.max_head_bytes` (or has too many headers).
    HeadTooLarge,
    /// The request head did not arrive within `limits.head_read_timeout`.
    HeadTimeout,
    /// The body uses a transfer coding other than `chunked`.
    UnsupportedTransferCoding,
}

impl Reason {
    /// Every reason, in contract order.
    pub const ALL: [Reason; 23] = [
        Reason::Allowed,
        Reason::NoRoute,
        Reason::IpDenied,
        Reason::BodyTooLarge,
        Reason::BodyTimeout,
        Reason::SslCheck,
        Reason::MissingSignature,
        Reason::BadSignature,
        Reason::StaleTimestamp,
        Reason::Replayed,
        Reason::MalformedPayload,
        Reason::UrlVerification,
        Reason::AppMismatch,
        Reason::ScopeDenied,
        Reason::RateLimited,
        Reason::UpstreamError,
        Reason::UpstreamTimeout,
        Reason::Deduplicated,
        Reason::StateUnavailable,
        Reason::BadRequest,
        Reason::HeadTooLarge,
        Reason::HeadTimeout,
        Reason::UnsupportedTransferCoding,
    ];

    /// The reason code as it appears in audit records and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::NoRoute => "no_route",
            Reason::IpDenied => "ip_denied",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyTimeout => "body_timeout",
            Reason::SslCheck => "ssl_check",
            Reason::MissingSignature => "missing_signature",
            Reason::BadSignature => "bad_signature",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::Replayed => "replayed",
            Reason::MalformedPayload => "malformed_payload",
            Reason::UrlVerification => "url_verification",
            Reason::AppMismatch => "app_mismatch",
            Reason::ScopeDenied => "scope_denied",
            Reason::RateLimited => "rate_limited",
            Reason::UpstreamError => "upstream_error",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::Deduplicated => "deduplicated",
            Reason::StateUnavailable => "state_unavailable",
            Reason::BadRequest => "bad_request",
            Reason::HeadTooLarge => "head_too_large",
            Reason::HeadTimeout => "head_timeout",
            Reason::UnsupportedTransferCoding => "unsupported_transfer_coding",
        }
    }

    /// The HTTP status the gateway answers with when it answers itself.
    ///
    /// `Allowed` is the upstream's own status; 200 is returned here for completeness.
    /// `scope_denied` under `on_deny: ack` is answered 200 instead (see [`crate::Decision`]).
    pub const fn status(self) -> u16 {
        match self {
            Reason::Allowed | Reason::SslCheck | Reason::UrlVerification | Reason::Deduplicated => {
                200
            }
            Reason::StateUnavailable => 503,
            Reason::NoRoute => 404,
            Reason::IpDenied | Reason::AppMismatch | Reason::ScopeDenied => 403,
            Reason::BodyTooLarge => 413,
            Reason::BodyTimeout | Reason::HeadTimeout => 408,
            Reason::BadRequest => 400,
            Reason::HeadTooLarge => 431,
            Reason::UnsupportedTransferCoding => 501,
            Reason::MissingSignature
            | Reason::BadSignature
            | Reason::StaleTimestamp
            | Reason::Replayed => 401,
            Reason::MalformedPayload => 400,
            Reason::RateLimited => 429,
            Reason::UpstreamError => 502,
            Reason::UpstreamTimeout => 504,
        }
    }

    /// Whether this reason is a failure to prove the request came from Slack.
    ///
    /// These are never shadowed unless the route sets `allow_unverified_shadow: true`.
    pub const fn is_verification_failure(self) -> bool {
        matches!(
            self,
            Reason::MissingSignature
                | Reason::BadSignature
                | Reason::StaleTimestamp
                | Reason::Replayed
        )
    }

    /// The fixed public message sent in the response body; details stay in the audit log.
    pub const fn public_message(self) -> &'static str {
        match self {
            Reason::Allowed => "ok",
            Reason::NoRoute => "no route for this path",
            Reason::IpDenied => "source address not allowed",
            Reason::BodyTooLarge => "request body too large",
            Reason::BodyTimeout => "request body not received in time",
            Reason::SslCheck => "ok",
            Reason::MissingSignature => "missing Slack signature headers",
            Reason::BadSignature => "invalid Slack signature",
            Reason::StaleTimestamp => "Slack request timestamp outside the allowed window",
            Reason::Replayed => "request already seen",
            Reason::MalformedPayload => "malformed Slack payload",
            Reason::UrlVerification => "ok",
            Reason::AppMismatch => "payload is for another Slack app",
            Reason::ScopeDenied => "not allowed by policy",
            Reason::RateLimited => "rate limited",
            Reason::UpstreamError => "upstream error",
            Reason::UpstreamTimeout => "upstream timeout",
            Reason::Deduplicated => "ok",
            Reason::StateUnavailable => "shared state unavailable, retry later",
            Reason::BadRequest => "malformed HTTP request",
            Reason::HeadTooLarge => "request head too large",
            Reason::HeadTimeout => "request head not received in time",
            Reason::UnsupportedTransferCoding => "transfer coding not supported",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()));
            assert!(r
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(seen.len(), Reason::ALL.len());
    }

    #[test]
    fn verification_failures_are_401() {
        for r in Reason::ALL {
            if r.is_verification_failure() {
                assert_eq!(r.status(), 401);
            }
        }
    }
}
