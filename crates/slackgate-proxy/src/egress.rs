//! The egress door: bots call the Slack Web API here with a gateway key; allowed calls
//! go to Slack with the bot's real token.
//!
//! Per call: the front (`front.rs`, the same as the inbound door's) reads and judges the
//! head within `limits.max_head_bytes` and `limits.head_read_timeout`, the body is
//! read whole (within `limits.max_body_bytes` and `limits.body_read_timeout`), the guard
//! decides ([`slackgate_guard::Guard::decide_egress`]), and then either the gateway
//! answers itself the way Slack answers a failed call (`200 {"ok":false,"error":REASON}`
//! with `X-Slackgate-Reason`; 429 with `Retry-After` for rate limits), or the call goes
//! to `egress.slack_api` with a head the gateway writes itself: the method's path, the
//! bot's query, `Authorization: Bearer TOKEN`, the bot's `Content-Type` and
//! `User-Agent`, and the body byte for byte (minus a `token` argument). Nothing else of
//! the bot's head travels: no cookie, no proxy header, no second credential. Slack's
//! answer is relayed unchanged but for its framing and hop-by-hop headers.
//!
//! A bot posts to an incoming webhook the gateway holds with `POST /hooks/<name>` and
//! its key ([`slackgate_guard::Guard::decide_hook`]): an allowed post goes to the webhook's URL
//! (under `egress.hooks_base`, over its own pooled client) with the bot's `Content-Type`
//! and `User-Agent` and the body byte for byte, and the answer is relayed. The URL is
//! never written anywhere else: audit and metrics name the post `hooks.<name>`.
//!
//! Secret custody (`custody.rs`, [`slackgate_guard::Custody`]): a bot posts to the
//! response and upload URLs the gateway holds for it at `/respond/<capability>` and
//! `/upload/<capability>`; an allowed `files.getUploadURLExternal` answer's `upload_url` is
//! replaced by such a URL; a workflow key (`sgw-…`) is sent on with the workflow token
//! held for it. Held URLs and tokens are never logged, audited or answered.
//!
//! Every call gets one audit record (`"direction":"egress"`) and one count in
//! `slackgate_egress_requests_total`; Slack's 429s are remembered per bot and method
//! (`slack_rate_limited`), and its scope headers feed the [`ScopeLedger`].

mod call;
mod custody;
mod door;
mod pacing;
mod rotation;
mod scopes;
mod seal;
mod shared;
mod store;
mod vault;

pub(crate) use door::EgressDoor;
pub use door::{EgressApp, EgressCtx};
pub use rotation::RefreshResult;
pub(crate) use rotation::{check_stored, Refresher};
pub use scopes::{BotScopes, ScopeLedger};
pub(crate) use seal::Sealer;
pub(crate) use shared::ScopeSync;
pub(crate) use store::Store;
pub(crate) use vault::CallToken;
pub use vault::{RotationStatus, TokenState, TokenVault};
