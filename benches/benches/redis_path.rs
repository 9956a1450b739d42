//! What sharing state through Redis adds to one guard decision, per Redis set-up.
//!
//! Starts real servers on free loopback ports (`redis-server` from Debian's package, as the
//! tests do): a plain one, a TLS-only one with an ACL user, and a three-master Redis
//! Cluster. Then measures the full guard decision for a fresh signed request (signature,
//! replay, facts, scope, two rate limits) in the same run: local state only (the
//! baseline), and through `RedisState` against each backend (one `EVALSHA` for the replay
//! check and both rate limits: one round trip), and against the standalone one asked one
//! operation at a time (three round trips, as before the questions went in one script);
//! plus the replay check alone (one `EVALSHA` with one key), the floor of the added cost.
//!
//! Besides criterion's means, a fixed run of [`SAMPLES`] decisions per backend prints
//! decisions/s, p50 and p99, and the p99 added to the same run's local baseline.
//!
//! Run: `cargo bench -p slackgate-benches --bench redis_path -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use hdrhistogram::Histogram;
use slackgate_benches::{
    bench_secrets, event_body, large_policy, now_unix, Signer, ROUTE_PATH, SECRET,
};
use slackgate_guard::{Guard, GuardSettings, Inbound, OneAtATime, RemoteState, SystemClock};
use slackgate_policy::{compile_policy, RedisMode, RedisSettings, Route};
use slackgate_proxy::redis::{Credentials, RedisState};
use slackgate_testkit::{Redis, RedisCluster, TestCa};

/// Decisions per backend in the fixed run (after as many to warm up).
const SAMPLES: u64 = 5_000;

/// The ACL user of the TLS backend.
const USER: &str = "bench";
const PASSWORD: &str = "bench-redis-password-1234";

fn settings(addr: String, tls: Option<&TestCa>, mode: RedisMode) -> RedisSettings {
    RedisSettings {
        addr,
        tls: tls.is_some(),
        ca_file: tls.map(|ca| ca.ca.clone()),
        db: 0,
        key_prefix: "bench:".into(),
        timeout: Duration::from_millis(500),
        username_env: tls.map(|_| "REDIS_USER".into()),
        password_env: tls.map(|_| "REDIS_PASSWORD".into()),
        mode,
    }
}

/// A signed JSON request from loopback.
fn inbound<'a>(body: &'a [u8], ts: &'a str, sig: &'a str) -> Inbound<'a> {
    Inbound {
        client_ip: "127.0.0.1".parse().unwrap(),
        signature: Some(sig.as_bytes()),
        timestamp: Some(ts.as_bytes()),
        content_type: Some("application/json"),
        body,
    }
}

/// The backends of one run, started here; kept alive by the caller.
struct Backends {
    _plain: Redis,
    _tls: Redis,
    _ca: TestCa,
    _cluster: RedisCluster,
    states: Vec<(&'static str, RedisState)>,
}

fn backends() -> Backends {
    let plain = Redis::start();
    let ca = TestCa::generate();
    let tls = Redis::builder().tls(&ca).acl_user(USER, PASSWORD).start();
    let cluster = RedisCluster::start();
    let creds = Credentials {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
    };
    let states = vec![
        (
            "standalone",
            RedisState::new(
                settings(plain.addr.to_string(), None, RedisMode::Standalone),
                Credentials::default(),
            )
            .unwrap(),
        ),
        (
            "tls_acl",
            RedisState::new(
                settings(tls.addr.to_string(), Some(&ca), RedisMode::Standalone),
                creds,
            )
            .unwrap(),
        ),
        (
            "cluster",
            RedisState::new(
                settings(cluster.seed().to_string(), None, RedisMode::Cluster),
                Credentials::default(),
            )
            .unwrap(),
        ),
    ];
    Backends {
        _plain: plain,
        _tls: tls,
        _ca: ca,
        _cluster: cluster,
        states,
    }
}

/// One decision on `req` with `remote`, which must be allowed without a fallback.
fn decide_shared<R: RemoteState>(
    rt: &tokio::runtime::Runtime,
    guard: &Guard,
    route: &Route,
    req: &Inbound<'_>,
    remote: &R,
) {
    let settings = GuardSettings {
        max_clock_skew: Duration::from_secs(300),
    };
    let d = rt.block_on(guard.decide_with(Some(remote), route, req, &settings));
    assert_eq!(d.reason.as_str(), "allowed");
    assert!(d.degraded.is_empty(), "redis failed during the benchmark");
}

/// decisions/s, p50 and p99 (µs) of `n` decisions made by `decide`.
fn fixed_run(n: u64, mut decide: impl FnMut()) -> (f64, f64, f64) {
    for _ in 0..n {
        decide();
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        decide();
        h.record(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX))
            .unwrap();
    }
    let per_sec = n as f64 / started.elapsed().as_secs_f64();
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    (per_sec, us(0.5), us(0.99))
}

fn redis_path(c: &mut Criterion) {
    let backends = backends();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = compile_policy(
        Path::new("bench.yaml"),
        &large_policy(10, 10, "127.0.0.1:9"),
        &bench_secrets(),
        UNIX_EPOCH + Duration::from_secs(now_unix() as u64),
    )
    .unwrap();
    let route = policy.routes.find(None, ROUTE_PATH).unwrap().clone();
    let guard = Guard::new(SystemClock, 1 << 22, 1 << 20);
    let settings = GuardSettings {
        max_clock_skew: Duration::from_secs(300),
    };
    let signer = Signer::new(SECRET);
    let n = AtomicU64::new(0);
    let fresh = || {
        let body = event_body(n.fetch_add(1, Ordering::Relaxed), 1024);
        let ts = now_unix().to_string();
        let sig = signer.sign(&ts, &body);
        (body, ts, sig)
    };
    let local = || {
        let (body, ts, sig) = fresh();
        let d = guard.decide(&route, &inbound(&body, &ts, &sig), &settings);
        assert_eq!(d.reason.as_str(), "allowed");
    };
    let shared = |remote: &RedisState| {
        let (body, ts, sig) = fresh();
        decide_shared(&rt, &guard, &route, &inbound(&body, &ts, &sig), remote);
    };
    let one_by_one = |remote: &RedisState| {
        let (body, ts, sig) = fresh();
        let remote = OneAtATime(remote);
        decide_shared(&rt, &guard, &route, &inbound(&body, &ts, &sig), &remote);
    };

    // The fixed run: every backend against the same run's local baseline.
    let mut table = Vec::new();
    let base = fixed_run(SAMPLES, local);
    table.push(("local", base));
    for (name, remote) in &backends.states {
        table.push((*name, fixed_run(SAMPLES, || shared(remote))));
    }
    let standalone = &backends.states[0].1;
    let before = fixed_run(SAMPLES, || one_by_one(standalone));
    table.push(("standalone, one call per operation", before));
    println!(
        "\nredis_path: {SAMPLES} sequential decisions per backend, one current-thread runtime"
    );
    println!("| backend | decisions/s | p50 µs | p99 µs | added p99 µs vs local |");
    println!("|---|---:|---:|---:|---:|");
    for (name, (per_sec, p50, p99)) in &table {
        println!(
            "| {name} | {per_sec:.0} | {p50:.1} | {p99:.1} | {:.1} |",
            p99 - base.2
        );
    }
    println!();

    let mut g = c.benchmark_group("guard_decision_state");
    g.bench_function("local", |b| b.iter(local));
    for (name, remote) in &backends.states {
        g.bench_function(*name, |b| b.iter(|| shared(remote)));
    }
    g.bench_function("standalone_one_call_per_operation", |b| {
        b.iter(|| one_by_one(standalone))
    });
    let m = AtomicU64::new(0);
    let remote = &backends.states[0].1;
    g.bench_function("standalone_replay_round_trip", |b| {
        b.iter(|| {
            let mut sig = [0u8; 32];
            sig[..8].copy_from_slice(&m.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            rt.block_on(remote.check_replay(&sig, 300)).unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = redis_path
}
criterion_main!(benches);
