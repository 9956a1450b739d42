//! The HTTP header names of Slack's request protocol, and the parser of the one header
//! value the gateway reads as a number.
//!
//! Names are lowercase, as HTTP/2 sends them and as header maps compare them.

/// The header carrying Slack's request signature, `v0=<64 hex digits>` (lowercase, as HTTP/2 sends it).
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

/// The header carrying the unix time, in seconds, at which Slack signed the request.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// The header carrying the delivery attempt of a retried Events API request (1, 2, 3).
pub const RETRY_NUM_HEADER: &str = "x-slack-retry-num";

/// The header carrying why Slack retried an Events API request (for example `http_timeout`).
pub const RETRY_REASON_HEADER: &str = "x-slack-retry-reason";

/// The response header that tells Slack not to retry an event delivery.
pub const NO_RETRY_HEADER: &str = "x-slack-no-retry";

/// Parses the value of an `X-Slack-Retry-Num` header ([`RETRY_NUM_HEADER`]): a plain
/// base-10 `u32`, digits only (no sign, no spaces). The one parser of it: the gateway's
/// audit `retry_num` comes from here.
pub fn parse_retry_num(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || raw.len() > 10 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_num() {
        assert_eq!(parse_retry_num(b"1"), Some(1));
        assert_eq!(parse_retry_num(b"4294967295"), Some(u32::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"4294967296",
            b"99999999999",
            b"1a",
        ] {
            assert_eq!(parse_retry_num(bad), None);
        }
    }
}
