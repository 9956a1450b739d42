//! The Slack protocol as slackgate needs it: v0 request signatures, request kinds and the
//! facts (app, enterprise, team, user, channel, event, command, action) that policy decides on;
//! and, for the egress door, bots' Web API calls read the way Slack reads them.
//!
//! This crate is pure. It performs no I/O and never reads the clock: the current time is an
//! argument of [`verify`]. It must not depend on pingora, tokio or any other slackgate crate,
//! so that it builds fast, fuzzes easily and stays reusable. Nothing here panics on network
//! input, and no error carries a secret, a signature or body content.
//!
//! A request is handled in this order: [`is_ssl_check`] on the raw body, [`verify`] with the
//! raw `X-Slack-Signature` and `X-Slack-Request-Timestamp` values and every live
//! [`SigningKey`] of the app, then [`parse_facts`] on the verified body.
//!
//! # Where things are
//!
//! | module | what |
//! |---|---|
//! | `custody` | secret custody, inbound: [`take_into_custody`] replaces response URLs and workflow tokens in place ([`Held`], [`Wants`]; tests in `custody/tests.rs`) |
//! | `headers` | the Slack header names ([`SIGNATURE_HEADER`], [`NO_RETRY_HEADER`], ...) and [`parse_retry_num`] |
//! | `signature` | v0 signatures: [`SigningKey`], [`verify`], [`check_window`] |
//! | `kind` | [`RequestKind`]: what Slack's `type` field or the form shape names |
//! | `lifecycle` | the lifecycle table: [`Lifecycle`] and what each one [`Carries`] |
//! | `facts` | [`Facts`], [`parse_facts`], [`is_ssl_check`], [`BodyEncoding`] (tests in `facts/tests.rs`) |
//! | `wire` | the serde shapes of Slack's JSON bodies, read by `facts` |
//! | `fast` | the quick reader for plain Events API bodies, held to serde's answers (tests in `fast/tests.rs`, which read the same bodies through `facts`) |
//! | `subteam` | user group change events: [`changed_usergroup`], [`is_usergroup_id`] |
//! | `webapi` | bots' Web API calls (egress): [`method_from_path`], [`is_privileged_method`], [`read_call`] into [`CallArgs`] within [`CallLimits`], [`strip_body_token`] (a folder: the reader, `CallError`, `CallEncoding`, forms, the JSON scanner, token stripping; tests in `webapi/tests.rs`) |
//! | `methods` | Slack's method table: [`canonical_method`] (case-insensitive lookup to Slack's spelling), [`conversation_use`] (which argument names the conversation a method acts on, and whether it writes there), [`CHANNEL_ARGUMENTS`]; [`is_slack_id`] |

#![warn(missing_docs)]

mod custody;
mod facts;
mod fast;
mod headers;
mod kind;
mod lifecycle;
mod methods;
mod signature;
mod subteam;
mod tiers;
mod webapi;
mod wire;

pub use custody::{
    take_into_custody, take_into_custody_decoded, CustodyError, CustodyHint, DecodedPayload,
    EventSpots, Held, Wants,
};
pub use facts::{
    is_ssl_check, parse_facts, parse_facts_with_serde_only, BodyEncoding, Facts, FactsError,
    FUNCTION_EXECUTED,
};
pub use headers::{
    parse_retry_num, NO_RETRY_HEADER, RETRY_NUM_HEADER, RETRY_REASON_HEADER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
pub use kind::RequestKind;
pub use lifecycle::{Carries, Lifecycle};
pub use methods::{
    canonical_method, conversation_use, is_slack_id, ConversationUse, Writes, CHANNEL_ARGUMENTS,
    METHODS,
};
pub use signature::{
    check_window, parse_signature, parse_timestamp, verify, SignatureError, SigningKey, Verified,
    MAC_LEN, SIGNATURE_HEADER_LEN,
};
pub use subteam::{
    changed_usergroup, is_usergroup_change, is_usergroup_id, SUBTEAM_MEMBERS_CHANGED,
    SUBTEAM_UPDATED,
};
pub use tiers::{slack_pace, Pace};
pub use webapi::{
    is_privileged_method, method_from_path, read_call, strip_body_token, CallArgs, CallEncoding,
    CallError, CallLimits,
};
