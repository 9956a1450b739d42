//! The gateway harness of slackgate's tests: a recording mock bot, a blocking HTTP/1.1
//! client (plain and TLS), temporary certificates, free ports, and an in-process gateway
//! that starts on `127.0.0.1` ports and stops when dropped.
//!
//! It sits on `slackgate-proxy` (so on pingora). The pure part (fixtures, signed requests,
//! the in-memory secret source) is `slackgate-fixtures`, re-exported here so tests of the
//! gateway need one import; the pure crates use `slackgate-fixtures` directly.
//!
//! Tests wait for readiness by polling, never by sleeping a fixed time. Nothing here
//! talks to anything but loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod audit;
pub mod bot;
pub mod certs;
pub mod client;
pub mod creds;
pub mod gateway;
pub mod redis;
pub mod slack_api;
pub mod socket_mode;

pub use bot::{BotBehavior, MockBot, Recorded};
pub use certs::{TestCa, TestCerts};
pub use client::{read_head, read_response, Client, Response};
pub use gateway::{TestGateway, TestGatewayBuilder};
pub use redis::{Redis, RedisBuilder, RedisCluster, Sentinel};
pub use slack_api::{accepted_scopes, Answer, Received, SlackApi, SlackApiBuilder};
pub use slackgate_fixtures::policy;
pub use slackgate_fixtures::{
    self as fixtures, all_fixtures, content_type_for, fixture, fixture_with, fixtures_dir,
    now_unix, MapSecrets, SignedRequest, Signer,
};
pub use socket_mode::SocketModeStandIn;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago, and not handed out before by this
/// process.
///
/// pingora binds its listeners itself, so the port is found by binding `:0` and
/// releasing it; callers poll until the gateway accepts on it. The kernel may give a
/// released port out again at once, so two calls in a row (a gateway's listener and its
/// admin listener) could get the same one: ports already handed out are skipped.
pub fn free_port() -> SocketAddr {
    static GIVEN: parking_lot::Mutex<Vec<u16>> = parking_lot::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = l.local_addr().expect("local addr");
        let mut given = GIVEN.lock();
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
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
