//! What secret custody adds to one forwarded request: re-signing (`resign`) and taking
//! response URLs and workflow tokens into custody (`response_urls`/`workflow_tokens:
//! custody`), through the code the inbound door runs (`slackgate_proxy::inbound::custody`),
//! against the same request forwarded by a plain route, and against the guard's decision
//! for that request (signature, replay, facts, scope), measured in the same run.
//!
//! Shapes: a slash command (one response URL in a form), a block action (one response URL
//! in a `payload`'s JSON), a `function_executed` event (one workflow token in JSON), and the
//! 1 KiB `message` event of the load tests (nothing to take: re-signing alone).
//!
//! Each custody iteration holds into a fresh store (the hold is an insert into an empty
//! map, its table allocated); `resign_custody_full_store` holds into one store kept at
//! its bound ([`MAX_HELD`] of each kind), where every hold first drops the entry held
//! longest ago.
//!
//! Custody reuses what the guard's reading of the body taught (the facts are read once per
//! request, on every route, before custody): the decoded interactivity `payload`, and where
//! custody's fields are in it or in an Events API body. The facts are read outside the
//! timed loop; `rewrite_own_reading` shows the rewrite reading the body itself (decoding
//! the payload again and walking the JSON).
//!
//! Run: `cargo bench -p slackgate-benches --bench custody`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use slackgate_benches::{event_body, Signer, SECRET};
use slackgate_fixtures::{fixture, MapSecrets};
use slackgate_guard::{
    Custody, FakeClock, Guard, GuardSettings, Inbound, ResponseUrl, WorkflowToken, MAX_HELD,
};
use slackgate_policy::{compile_policy, Route};
use slackgate_proxy::core::capability::mint;
use slackgate_proxy::inbound::custody::{Keeper, Prepared};
use slackgate_slack::{parse_facts, take_into_custody_decoded, Wants};

const NOW: u64 = 1_764_377_001;

const POLICY: &str = "version: 1
apps:
  helpdesk:
    api_app_id: A0HELPDESK
    signing_secrets: [{ id: current, env: SLACK_SECRET }]
upstreams:
  bot: { targets: [127.0.0.1:9] }
bots:
  helpdesk:
    app: helpdesk
    key: { env: GATEWAY_KEY }
    token: { env: BOT_TOKEN }
    methods: [chat.postMessage]
routes:
  - { name: plain, path: /plain, app: helpdesk, upstream: bot }
  - { name: resigned, path: /resigned, app: helpdesk, upstream: bot, resign: { env: BOT_SECRET } }
  - name: custody
    path: /custody
    app: helpdesk
    upstream: bot
    resign: { env: BOT_SECRET }
    bot: helpdesk
    response_urls: custody
    workflow_tokens: custody
";

fn routes() -> [Arc<Route>; 3] {
    let secrets = MapSecrets::in_memory(&[
        ("SLACK_SECRET", SECRET),
        ("BOT_SECRET", "b0t-5ecret-for-the-benchmark-only"),
        ("GATEWAY_KEY", "gk_3f9a1c7e5b2d4068a9e1f3c5"),
        ("BOT_TOKEN", "xoxb-1111-2222-bench0token0value"),
    ]);
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let policy = compile_policy(Path::new("bench.yaml"), POLICY, &secrets, now).unwrap();
    ["/plain", "/resigned", "/custody"].map(|p| Arc::clone(policy.routes.find(None, p).unwrap()))
}

/// `body` made unique by `n` (an extra form field, or an extra JSON member first), so the
/// guard's replay cache never refuses it.
fn unique(body: &[u8], n: u64) -> Vec<u8> {
    if body.first() == Some(&b'{') {
        let mut out = format!("{{\"bench\":{n},").into_bytes();
        out.extend_from_slice(&body[1..]);
        out
    } else {
        let mut out = body.to_vec();
        out.extend_from_slice(format!("&bench={n}").as_bytes());
        out
    }
}

fn custody(c: &mut Criterion) {
    let [plain, resigned, custodied] = routes();
    // The guard of the baseline, as the gateway builds it (1M replay entries and keys).
    let (guard, signer) = (
        Guard::new(FakeClock::at(NOW), 1_000_000, 1_000_000),
        Signer::new(SECRET),
    );
    let skew = Duration::from_secs(300);
    let settings = GuardSettings {
        max_clock_skew: skew,
    };
    let (ts, counter) = (NOW.to_string(), AtomicU64::new(0));
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let wants = Wants {
        response_urls: true,
        workflow_tokens: true,
    };

    let shapes: [(&str, Vec<u8>, &str); 4] = [
        (
            "command",
            fixture("command_ticket.form"),
            "application/x-www-form-urlencoded",
        ),
        (
            "block_action",
            fixture("block_actions.form"),
            "application/x-www-form-urlencoded",
        ),
        (
            "function_executed",
            fixture("event_function_executed.json"),
            "application/json",
        ),
        ("message_1KiB", event_body(0, 1024), "application/json"),
    ];
    for (name, body, content_type) in &shapes {
        // The guard's facts of the request, read before custody on every route: custody
        // reuses what reading the body taught (the decoded interactivity `payload`, where
        // custody's fields are), as the door does.
        let facts = parse_facts(Some(content_type), body).unwrap();
        let forward = |route: &Route, store: &Custody| -> Prepared {
            let keeper = Keeper {
                custody: store,
                public_url: Some("http://slackgate-egress.bots.svc:8081/"),
                channel: Some("C0HELP"),
                team: Some("T0ACME"),
                execution: None,
                hint: facts.custody.as_ref(),
                share: false,
                now: NOW as f64,
            };
            keeper
                .prepare(route, Some(content_type), black_box(body), true)
                .unwrap()
        };
        // Sanity: plain is untouched, custody rewrites what the shape holds.
        let store = Custody::default();
        assert!(forward(&plain, &store).body.is_none());
        assert!(forward(&resigned, &store).resign.is_some());
        let kept = forward(&custodied, &store);
        assert_eq!(kept.body.is_none(), *name == "message_1KiB", "{name}");

        let mut g = c.benchmark_group(format!("custody_{name}"));
        // The baseline: what the gateway already does for this request on any route.
        g.bench_function("guard_decide", |b| {
            b.iter_batched(
                || {
                    let body = unique(body, counter.fetch_add(1, Ordering::Relaxed));
                    let sig = signer.sign(&ts, &body);
                    (body, sig)
                },
                |(body, sig)| {
                    let req = Inbound {
                        client_ip: client,
                        signature: Some(sig.as_bytes()),
                        timestamp: Some(ts.as_bytes()),
                        content_type: Some(content_type),
                        body: &body,
                    };
                    black_box(guard.decide(&custodied, &req, &settings).reason)
                },
                BatchSize::SmallInput,
            )
        });
        // The rewrite alone: a constant in place of each capability, nothing minted or held,
        // with the facts' hint (as the door does) and reading the body itself (decoding the
        // payload again and walking the JSON: what custody cost before it reused the
        // guard's reading).
        for (label, hint) in [
            ("rewrite_only", facts.custody.as_ref()),
            ("rewrite_own_reading", None),
        ] {
            g.bench_function(label, |b| {
                b.iter(|| {
                    take_into_custody_decoded(
                        Some(content_type),
                        black_box(body),
                        wants,
                        hint,
                        |_| {
                            Some(String::from(
                                "http://slackgate-egress.bots.svc:8081/respond/0",
                            ))
                        },
                    )
                    .unwrap()
                })
            });
        }
        for (label, route) in [
            ("plain", &plain),
            ("resign", &resigned),
            ("resign_custody", &custodied),
        ] {
            g.bench_function(label, |b| {
                b.iter_batched(
                    Custody::default,
                    |store| {
                        black_box(forward(route, &store));
                        store
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        // Custody into a store at its bound (a burst of interactions, or more than the
        // bound held at a steady rate): every hold drops the entry held longest ago.
        if *name != "message_1KiB" {
            let full = full_store();
            g.bench_function("resign_custody_full_store", |b| {
                b.iter(|| black_box(forward(&custodied, &full)))
            });
        }
        g.finish();
    }
    // One capability: 160 random bits from the pool, in hex.
    c.bench_function("custody_mint", |b| b.iter(|| black_box(mint())));
}

/// A store holding as many response URLs and workflow tokens as it holds at most, none
/// ended at the benchmark's clock.
fn full_store() -> Custody {
    let store = Custody::default();
    let now = NOW as f64;
    for i in 0..MAX_HELD {
        let response = ResponseUrl {
            bot: Arc::from("helpdesk"),
            channel: Some(Arc::from("C0HELP")),
            team: Some(Arc::from("T0ACME")),
            url: Arc::from(format!("https://hooks.slack.com/actions/T0ACME/{i}/x").as_str()),
        };
        store.hold_response_url(&format!("{i:040x}"), response, now - (i % 600) as f64);
        let token = WorkflowToken {
            bot: Arc::from("helpdesk"),
            function_execution_id: Arc::from(format!("Fx{i}").as_str()),
            token: Arc::from("xwfp-bench"),
        };
        let key = format!("sgw-{i:040x}");
        store.hold_workflow_token(&key, token, now + 900.0 - (i % 600) as f64);
    }
    assert_eq!(store.held(), (MAX_HELD, 0, MAX_HELD));
    store
}

/// One second of warm-up and three of measurement per benchmark, as the other benches.
fn short() -> Criterion {
    let (warm, measure) = (Duration::from_secs(1), Duration::from_secs(3));
    Criterion::default()
        .warm_up_time(warm)
        .measurement_time(measure)
}

criterion_group!(name = custody_benches; config = short(); targets = custody);
criterion_main!(custody_benches);
