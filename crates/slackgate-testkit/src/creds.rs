//! The made-up credentials the integration tests share: a signing secret, the gateway
//! keys and bot tokens of bots `helpdesk` and `reporter`, and a fixed clock reading. None
//! is real; tests plant them to show they never leak.

/// A Slack app signing secret (env `HELPDESK_SECRET` in most test policies).
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The gateway key of bot `helpdesk`.
pub const HELPDESK_KEY: &str = "gk_helpdesk_5f1c9a7e3b2d40681e9f";
/// The bot token of bot `helpdesk`.
pub const HELPDESK_TOKEN: &str = "xoxb-1111-2222-realhelpdesktoken";
/// The gateway key of bot `reporter`.
pub const REPORTER_KEY: &str = "gk_reporter_0a1b2c3d4e5f60718293";
/// The bot token of bot `reporter`.
pub const REPORTER_TOKEN: &str = "xoxb-1111-3333-realreportertoken";
/// A fixed Unix time for tests on a fake clock.
pub const NOW: u64 = 1_900_000_000;
