//! Test support for slackgate: a signed-request builder, a recording mock bot, a
//! blocking HTTP/1.1 client (plain and TLS), temporary certificates, free ports, and
//! an in-process gateway that starts on `127.0.0.1` ports and stops when dropped.
//!
//! Tests wait for readiness by polling, never by sleeping a fixed time. Nothing here
//! talks to anything but loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bot;
pub mod certs;
pub mod client;
pub mod gateway;
pub mod signing;

pub use bot::{BotBehavior, MockBot, Recorded};
pub use certs::TestCerts;
pub use client::{read_response, Client, Response};
pub use gateway::{MapSecrets, TestGateway, TestGatewayBuilder};
pub use signing::{fixture, now_unix, SignedRequest};

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago.
///
/// pingora binds its listeners itself, so the port is found by binding `:0` and
/// releasing it; callers poll until the gateway accepts on it.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr")
}

/// The first value of header `name` (any case) in a list whose names are lowercased.
fn first_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
