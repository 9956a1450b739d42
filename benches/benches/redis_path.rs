//! What sharing state through Redis adds to one guard decision.
//!
//! Starts a real `redis-server` on a free loopback port, then measures the full guard
//! decision for a fresh signed request (signature, replay, facts, scope, two rate
//! limits) three ways in the same run: local state only; through `RedisState` (one
//! `SET NX` for the replay cache and one `EVALSHA` per rate limit, sequential round
//! trips); and the Redis round trip alone (`SET NX`), the floor of the added cost.
//!
//! Run: `cargo bench -p slackgate-benches --bench redis_path -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use slackgate_benches::{
    bench_secrets, event_body, large_policy, now_unix, Signer, ROUTE_PATH, SECRET,
};
use slackgate_guard::{Guard, GuardSettings, Inbound, RemoteState, SystemClock};
use slackgate_policy::{compile_policy, RedisSettings};
use slackgate_proxy::redis::RedisState;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> (Redis, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/deps.sh installs it)");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (Redis(child), addr)
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

fn redis_path(c: &mut Criterion) {
    let (_redis, addr) = start_redis();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let remote = RedisState::new(
        RedisSettings {
            addr,
            tls: false,
            ca_file: None,
            db: 0,
            key_prefix: "bench:".into(),
            timeout: Duration::from_millis(200),
            username_env: None,
            password_env: None,
            mode: slackgate_policy::RedisMode::Standalone,
        },
        slackgate_proxy::redis::Credentials::default(),
    )
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

    let mut g = c.benchmark_group("guard_decision_state");
    g.bench_function("local", |b| {
        b.iter_batched(
            fresh,
            |(body, ts, sig)| {
                let req = inbound(&body, &ts, &sig);
                let d = guard.decide(&route, &req, &settings);
                assert_eq!(d.reason.as_str(), "allowed");
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("redis", |b| {
        b.iter_batched(
            fresh,
            |(body, ts, sig)| {
                let req = inbound(&body, &ts, &sig);
                let d = rt.block_on(guard.decide_with(Some(&remote), &route, &req, &settings));
                assert_eq!(d.reason.as_str(), "allowed");
                assert!(d.degraded.is_empty(), "redis failed during the benchmark");
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let m = AtomicU64::new(0);
    g.bench_function("redis_set_nx_round_trip", |b| {
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
