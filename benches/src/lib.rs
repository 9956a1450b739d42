//! Shared pieces of slackgate's benchmarks: request bodies with unique event ids,
//! signing, generated large policies, and reading the resident set size of a process.
//!
//! The criterion benchmarks live in `benches/micro.rs`; the binaries are the load
//! generator (`loadgen`), the upstream echo bot (`echobot`) and the in-process memory
//! probe (`memprobe`). `compare.sh` drives them against the real gateway, nginx and
//! HAProxy on 127.0.0.1 only. Nothing here is part of the gateway itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod http;
pub mod tls;

use std::fmt::Write as _;

use slackgate_fixtures::MapSecrets;

/// The signing secret used by every benchmark (never a real one).
pub const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The environment variable the generated policies name for [`SECRET`].
pub const SECRET_ENV: &str = "BENCH_SIGNING_SECRET";
/// The route path of the load-test policy.
pub const ROUTE_PATH: &str = "/slack/events";

/// Every request fixture (name, content type, body), the signature vector excluded.
pub use slackgate_fixtures::all_fixtures as fixtures;
pub use slackgate_fixtures::{now_unix, Signer};

/// A tokio runtime with `threads` workers: the current-thread runtime for one (no work
/// stealing, like a gateway pinned to one worker), a multi-thread one otherwise.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime")
}

/// The first of a run's request numbers ([`event_body`]'s `n`): distinct across runs, so
/// a long-lived gateway never sees an event id twice.
pub fn start_counter() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        << 8
}

/// An Events API `message` callback of exactly `len` bytes (at least about 400) whose
/// `event_id` is unique per `n`, so its signature is unique too and the replay cache
/// never rejects it.
///
/// Team `T0ACME`, user `U0444`, channel `C0HELP`, app `A0HELPDESK`.
pub fn event_body(n: u64, len: usize) -> Vec<u8> {
    let head = "{\"token\":\"ZZZZZZWSxiZZZ2yIvs3peJ\",\"team_id\":\"T0ACME\",\"api_app_id\":\"A0HELPDESK\",\
\"event\":{\"type\":\"message\",\"channel\":\"C0HELP\",\"user\":\"U0444\",\"text\":\"";
    let tail = format!(
        "\",\"ts\":\"1764377001.000200\",\"channel_type\":\"channel\"}},\"type\":\"event_callback\",\
\"event_id\":\"Ev{n:016X}\",\"event_time\":1764377001,\"authorizations\":[{{\"enterprise_id\":null,\
\"team_id\":\"T0ACME\",\"user_id\":\"U0BOT\",\"is_bot\":true,\"is_enterprise_install\":false}}]}}"
    );
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(head.len() + pad + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(tail.as_bytes());
    body
}

/// The `n`-th of a sequence of distinct IPv4 /24 networks outside 127/8.
pub fn nth_cidr(n: u32) -> String {
    let x = 0x0B00_0000u32 + (n << 8); // from 11.0.0.0/24 upwards
    let [a, b, c, _] = x.to_be_bytes();
    format!("{a}.{b}.{c}.0/24")
}

/// The `n`-th synthetic user id.
pub fn nth_user(n: u32) -> String {
    format!("U{n:08X}")
}

/// A policy with one app, one upstream and one route whose `allow.users` names
/// `users` users through a group, and whose `source_ips.allow` lists `cidrs` networks
/// (plus 127.0.0.0/8 so the route still accepts loopback clients).
///
/// The secret is referenced as [`SECRET_ENV`]. Ids and networks are distinct.
pub fn large_policy(users: u32, cidrs: u32, upstream: &str) -> String {
    let mut y = String::with_capacity(32 * (users as usize + cidrs as usize) + 1024);
    y.push_str("version: 1\napps:\n  bench:\n    api_app_id: A0HELPDESK\n    signing_secrets:\n");
    let _ = writeln!(y, "      - {{ id: current, env: {SECRET_ENV} }}");
    let _ = writeln!(y, "upstreams:\n  bot: {{ targets: [{upstream}] }}");
    y.push_str("groups:\n  everyone:\n");
    for n in 0..users {
        let _ = writeln!(y, "    - {}", nth_user(n));
    }
    y.push_str("routes:\n  - name: events\n");
    let _ = writeln!(y, "    path: {ROUTE_PATH}");
    y.push_str(
        "    app: bench\n    upstream: bot\n    source_ips:\n      allow:\n        - 127.0.0.0/8\n",
    );
    for n in 0..cidrs {
        let _ = writeln!(y, "        - {}", nth_cidr(n));
    }
    y.push_str("      deny: [192.0.2.0/24]\n    allow:\n      teams: [T0ACME]\n");
    y.push_str("      users: [U0444, \"@everyone\"]\n      events: [message, app_mention]\n");
    y.push_str("    deny: { users: [U0BAD] }\n    rate_limits:\n");
    y.push_str("      - { per: team, rate: 1000000/s, burst: 1000000 }\n");
    y.push_str("      - { per: user, rate: 1000000/s, burst: 1000000 }\n");
    y
}

/// Secrets for compiling generated policies in process: [`SECRET_ENV`] = [`SECRET`].
pub fn bench_secrets() -> MapSecrets {
    MapSecrets::in_memory(&[(SECRET_ENV, SECRET)])
}

/// Resident set size now and its peak (`VmRSS`, `VmHWM`) in KiB for `pid` ("self" works).
pub fn rss_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn event_body_has_the_requested_length_and_parses() {
        let b = event_body(7, 1024);
        assert_eq!(b.len(), 1024);
        let f = slackgate_slack::parse_facts(Some("application/json"), &b).unwrap();
        assert_eq!(f.event_id.as_deref(), Some("Ev0000000000000007"));
        assert_eq!(f.user_id.as_deref(), Some("U0444"));
    }

    #[test]
    fn large_policy_compiles() {
        let text = large_policy(1000, 1000, "127.0.0.1:9");
        let p = slackgate_policy::compile_policy(
            Path::new("bench.yaml"),
            &text,
            &bench_secrets(),
            std::time::SystemTime::now(),
        )
        .unwrap();
        let r = p.routes.find(None, ROUTE_PATH).unwrap();
        assert_eq!(r.source_ips.allow.as_ref().unwrap().len(), 1001);
        assert_eq!(r.allow.users.as_ref().unwrap().ids.len(), 1001);
    }
}

/// Builds signed Events API requests whose bodies differ only in the event id: every
/// request is unique (the replay cache never refuses one) and freshly signed with the
/// current timestamp. Used by `loadgen` and `reloaddrill`.
#[derive(Debug)]
pub struct RequestMaker {
    signer: Signer,
    template: Vec<u8>,
    id_at: usize,
    head_prefix: String,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestMaker {
    /// Requests to `path` with `body_len`-byte bodies, numbered from `counter`, signed with
    /// `$BENCH_SIGNING_SECRET` (default: the benchmarks' secret).
    pub fn new(
        path: &str,
        body_len: usize,
        user_agent: &str,
        counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let secret = std::env::var(SECRET_ENV).unwrap_or_else(|_| SECRET.to_owned());
        let template = event_body(0, body_len);
        let marker = b"\"event_id\":\"Ev";
        let id_at = template
            .windows(marker.len())
            .position(|w| w == marker)
            .expect("event_id in body")
            + marker.len();
        Self {
            signer: Signer::new(&secret),
            template,
            id_at,
            head_prefix: format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nUser-Agent: {user_agent}\r\n"
            ),
            counter,
        }
    }

    /// Writes the next unique, freshly signed request into `out` (`sig` is scratch).
    pub fn next(&mut self, out: &mut Vec<u8>, sig: &mut String) {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for (i, slot) in self.template[self.id_at..self.id_at + 16]
            .iter_mut()
            .enumerate()
        {
            *slot = HEX[((n >> (60 - 4 * i)) & 0xF) as usize];
        }
        let ts = now_unix().to_string();
        self.signer.sign_into(&ts, &self.template, sig);
        out.clear();
        out.extend_from_slice(self.head_prefix.as_bytes());
        out.extend_from_slice(b"X-Slack-Request-Timestamp: ");
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(b"\r\nX-Slack-Signature: ");
        out.extend_from_slice(sig.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(self.template.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.template);
    }
}
