//! The Socket Mode soak of issue 29: envelopes at a steady rate into the bridge through
//! the testkit's Socket Mode stand-in, with a forced reconnect (`disconnect`
//! `refresh_requested` on every connection) at a fixed period, counting what is lost and
//! what reaches the bot twice, and the ack latency (stand-in send to stand-in ack read).
//!
//! ```text
//! socketsoak [--rate 200] [--duration 600] [--reconnect-every 30] [--connections 2]
//! ```
//! In-process (gateway, stand-in and the recording mock bot on 127.0.0.1); stops by itself.
//! An envelope the stand-in cannot place (while every connection is being replaced) waits
//! and is sent as soon as a connection is live, as Slack holds it. Prints one
//! `SOCKETSOAK key=value ...` line; exits 1 when an envelope was lost or delivered twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use slackgate_testkit::{MockBot, SocketModeStandIn, TestGatewayBuilder};

const APP_TOKEN: &str = "xapp-1-A0HELPDESK-1-socket0soak0token";
const SECRET: &str = "socket-soak-signing-secret-0123456789";

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate = arg(&args, "--rate", 200).max(1);
    let duration = Duration::from_secs(arg(&args, "--duration", 600));
    let period = Duration::from_secs(arg(&args, "--reconnect-every", 30).max(1));
    let connections = arg(&args, "--connections", 2).clamp(1, 10);

    let slack = SocketModeStandIn::start(APP_TOKEN);
    let bot = MockBot::start();
    let policy = format!(
        "version: 1
apps:
  helpdesk:
    signing_secrets: [{{ id: current, env: SOAK_SECRET }}]
    socket_mode:
      app_token: {{ env: SOAK_APP_TOKEN }}
      connections: {connections}
      paths: {{ events_api: /slack/events }}
upstreams:
  bot: {{ targets: [\"{}\"] }}
routes:
  - {{ name: events, path: /slack/events, app: helpdesk, upstream: bot }}
",
        bot.addr()
    );
    let gw = TestGatewayBuilder::new(&policy)
        .secret("SOAK_SECRET", SECRET)
        .secret("SOAK_APP_TOKEN", APP_TOKEN)
        .egress(&slack.url(), Some(slack.ca_file()))
        .start();
    let live = usize::try_from(connections).unwrap_or(1);
    let ready = Instant::now();
    while slack.live_connections() < live {
        assert!(ready.elapsed() < Duration::from_secs(30), "no connection");
        std::thread::sleep(Duration::from_millis(5));
    }

    let template: serde_json::Value =
        serde_json::from_slice(&slackgate_testkit::fixture("socket_mode.json")).unwrap();
    let template = template["envelope_events_api"].clone();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut next_swap = start + period;
    let mut swaps = 0u64;
    let mut held = 0u64;
    let mut n = 0u64;
    while start.elapsed() < duration {
        let due = start + gap * u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if Instant::now() >= next_swap {
            slack.disconnect("refresh_requested");
            swaps += 1;
            next_swap += period;
        }
        let id = format!("soak-{n}");
        let mut e = template.clone();
        e["envelope_id"] = id.clone().into();
        e["payload"]["event_id"] = format!("Ev0SOAK{n}").into();
        let mut first = true;
        while slack.send(&e).is_none() {
            if first {
                held += 1;
                first = false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent_at.insert(id, Instant::now());
        n += 1;
    }
    let sent = n;
    let settle = Instant::now();
    while (slack.ack_count() as u64) < sent && settle.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }

    let acks = slack.acks();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut acked: HashSet<String> = HashSet::new();
    let mut double_acks = 0u64;
    for a in &acks {
        if !acked.insert(a.envelope_id.clone()) {
            double_acks += 1;
            continue;
        }
        if let Some(t) = sent_at.get(&a.envelope_id) {
            let us = a.at.saturating_duration_since(*t).as_micros();
            latency
                .record(u64::try_from(us).unwrap_or(u64::MAX).max(1))
                .unwrap();
        }
    }
    let lost = sent_at.keys().filter(|id| !acked.contains(*id)).count();
    let mut at_bot: HashMap<String, u64> = HashMap::new();
    for r in bot.requests() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let id = body["event_id"].as_str().unwrap_or_default().to_owned();
        *at_bot.entry(id).or_default() += 1;
    }
    let duplicated = at_bot.values().filter(|c| **c > 1).count();
    let delivered = at_bot.len();
    println!(
        "SOCKETSOAK rate={rate} duration_s={} reconnect_every_s={} connections={connections} sent={sent} held={held} swaps={swaps} opened={} acked={} lost={lost} double_acks={double_acks} at_bot={delivered} duplicated_at_bot={duplicated} ack_p50_us={} ack_p99_us={} ack_p999_us={} ack_max_us={}",
        duration.as_secs(),
        period.as_secs(),
        slack.connections_opened(),
        acked.len(),
        latency.value_at_quantile(0.50),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999),
        latency.max(),
    );
    drop(gw);
    if lost > 0 || duplicated > 0 {
        std::process::exit(1);
    }
}
