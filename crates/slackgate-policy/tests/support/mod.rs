//! Shared test support: the planted secret and a fixed clock. The secret source is
//! `slackgate_fixtures::MapSecrets`.
// Shared by test files (crates without an API), each using some of it: `pub` for them.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slackgate_fixtures::MapSecrets;

/// A secret value planted in the environment and in policies; it must never
/// appear in any error output.
pub const PLANTED: &str = "8f14e45fceea167a5a36dedd4bea2543";

/// 2030-03-17T17:46:40Z.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_900_000_000)
}

/// The secrets the error tests load policies with: env values and files, all in memory.
pub fn standard_secrets() -> MapSecrets {
    let other = format!("{PLANTED}\n");
    let s = MapSecrets::in_memory(&[
        ("HELPDESK_SIGNING_SECRET", PLANTED),
        ("OTHER_SECRET", &other),
        ("EMPTY_SECRET", " \n"),
        ("HELPDESK_GATEWAY_KEY", "gk_3f9a1c7e5b2d4068a9e1f3c5"),
        ("HELPDESK_BOT_TOKEN", "xoxb-1111-2222-planted0token0value"),
    ]);
    s.set_file("helpdesk.secret", format!("{PLANTED}\n"));
    s.set_file("empty.secret", "\n");
    s
}
