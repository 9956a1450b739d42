//! The Slack protocol as slackgate needs it: v0 request signatures, request kinds and the
//! facts (app, enterprise, team, user, channel, event, command, action) that policy decides on.
//!
//! This crate is pure. It performs no I/O and never reads the clock: the current time is an
//! argument of [`verify`]. It must not depend on pingora, tokio or any other slackgate crate,
//! so that it builds fast, fuzzes easily and stays reusable. Nothing here panics on network
//! input, and no error carries a secret, a signature or body content.
//!
//! A request is handled in this order: [`is_ssl_check`] on the raw body, [`verify`] with the
//! raw `X-Slack-Signature` and `X-Slack-Request-Timestamp` values and every live
//! [`SigningKey`] of the app, then [`parse_facts`] on the verified body.

mod facts;
mod fast;
mod signature;
mod wire;

pub use facts::{
    is_ssl_check, parse_facts, parse_facts_with_serde_only, parse_retry_num, BodyEncoding, Carries,
    Facts, FactsError, Lifecycle, RequestKind,
};
pub use signature::{
    check_window, parse_signature, parse_timestamp, verify, SignatureError, SigningKey, Verified,
    MAC_LEN, SIGNATURE_HEADER_LEN,
};

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
