//! Pure test support for slackgate: the Slack request fixtures (one copy, in
//! `testdata/slack/` at the repository root), requests signed the way Slack signs them,
//! and [`MapSecrets`], the in-memory [`SecretSource`](slackgate_policy::SecretSource)
//! every test uses.
//!
//! It must not depend on pingora, tokio or any gateway crate above `slackgate-policy`,
//! so the pure crates (`slackgate-slack`, `slackgate-policy`, `slackgate-guard`) can use it
//! as a dev-dependency and still build fast. The gateway harness (mock bot, in-process
//! gateway, TLS client) is `slackgate-testkit`, which re-exports everything here.
//!
//! Signatures are computed here with `hmac` directly, not with `slackgate_slack`'s
//! `SigningKey`: a test's signer is independent of the verifier it tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod data;
pub mod policy;
pub mod secrets;
pub mod signing;

pub use data::{all_fixtures, content_type_for, fixture, fixture_with, fixtures_dir};
pub use secrets::MapSecrets;
pub use signing::{now_unix, SignedRequest, Signer};
