//! The testkit's Slack Web API stand-in as a process, for `benches/egress.sh`: plain HTTP
//! on 127.0.0.1 (every target of the comparison reaches it the same way), one worker
//! thread, requests counted but not kept.
//!
//! ```text
//! slackstandin TOKEN   # prints `ADDR 127.0.0.1:PORT`, serves until stdin closes
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use slackgate_testkit::SlackApi;

fn main() {
    let token = std::env::args().nth(1).expect("usage: slackstandin TOKEN");
    let slack = SlackApi::builder()
        .token(&token, "T0BENCH", &["chat:write", "channels:read"])
        .plain()
        .unrecorded()
        .threads(1)
        .start();
    println!("ADDR {}", slack.addr());
    // Serve until the script closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    eprintln!("slackstandin: {} calls", slack.count());
}
