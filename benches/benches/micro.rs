//! Criterion micro-benchmarks of slackgate's public APIs.
//!
//! Run: `cargo bench -p slackgate-benches --bench micro -- --warm-up-time 1 --measurement-time 3`
//! (a filter such as `verify` narrows it). `benches/README.md` has the latest results.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use slackgate_benches::{
    bench_secrets, event_body, fixtures, large_policy, nth_cidr, nth_user, Signer, ROUTE_PATH,
    SECRET,
};
use slackgate_guard::{BucketKey, FakeClock, Guard, GuardSettings, Inbound, RateLimiter};
use slackgate_policy::{compile_policy, IdSet, IpSet};
use slackgate_slack::{parse_facts, read_call, verify, CallLimits, SigningKey};

const NOW: i64 = 1_764_377_001;

/// HMAC verification of a 1 KiB body against the floor: one SHA-256 over the same bytes.
fn signature(c: &mut Criterion) {
    let body = event_body(1, 1024);
    let ts = NOW.to_string();
    let key = SigningKey::new("current", SECRET.as_bytes()).unwrap();
    let sig = key.sign(&ts, &body);
    let keys = [key];
    let mut basestring = Vec::new();
    basestring.extend_from_slice(b"v0:");
    basestring.extend_from_slice(ts.as_bytes());
    basestring.push(b':');
    basestring.extend_from_slice(&body);

    let mut g = c.benchmark_group("signature_1KiB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("sha256_floor", |b| {
        b.iter(|| Sha256::digest(black_box(&basestring)))
    });
    // The HMAC alone (two SHA-256 passes over one extra block), without header parsing.
    g.bench_function("hmac_only", |b| {
        b.iter(|| keys[0].mac(black_box(ts.as_bytes()), black_box(&body)))
    });
    // Rotation: two live secrets, both always tried (constant time).
    let two = [
        SigningKey::new("previous", b"an-older-secret-still-live").unwrap(),
        keys[0].clone(),
    ];
    for (name, live) in [("verify_one_key", &keys[..]), ("verify_two_keys", &two[..])] {
        g.bench_function(name, |b| {
            b.iter(|| {
                verify(
                    live.iter(),
                    Some(black_box(sig.as_bytes())),
                    Some(ts.as_bytes()),
                    black_box(&body),
                    NOW,
                    300,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// Facts extraction for every request fixture.
fn facts(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_facts");
    for (name, content_type, body) in fixtures() {
        parse_facts(Some(content_type), &body).unwrap();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(&name), &body, |b, body| {
            b.iter(|| parse_facts(Some(content_type), black_box(body)).unwrap())
        });
    }
    g.finish();
}

/// The whole guard decision on the allowed path of a full policy (signature, replay,
/// facts, app pin, scope with 100k users, two rate limits).
///
/// The replay cache rejects a signature it has seen, so every iteration gets a body
/// with a fresh `event_id`, signed in the untimed setup of `iter_batched`. The cache
/// holds the default 1M entries; once full it evicts the oldest entry per insert,
/// which is the steady state of a busy gateway, so that cost is included.
fn guard(c: &mut Criterion) {
    let text = large_policy(100_000, 10, "127.0.0.1:9");
    let now = UNIX_EPOCH + Duration::from_secs(NOW as u64);
    let policy = compile_policy(Path::new("bench.yaml"), &text, &bench_secrets(), now).unwrap();
    let route = policy.routes.find(None, ROUTE_PATH).unwrap().clone();
    let guard = Guard::new(FakeClock::at(NOW as u64), 1_000_000, 1_000_000);
    let settings = GuardSettings {
        max_clock_skew: Duration::from_secs(300),
    };
    let signer = Signer::new(SECRET);
    let ts = NOW.to_string();
    let counter = AtomicU64::new(0);
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);

    let fresh = || {
        let body = event_body(counter.fetch_add(1, Ordering::Relaxed), 1024);
        let sig = signer.sign(&ts, &body);
        (body, sig)
    };
    // Sanity: the path really is `allowed`.
    let (body, sig) = fresh();
    let req = inbound(client, &ts, &sig, &body);
    assert!(guard.check_source_ip(&route, client).is_none());
    let d = guard.decide(&route, &req, &settings);
    assert_eq!(d.reason.as_str(), "allowed", "{d:?}");

    let mut g = c.benchmark_group("guard");
    g.bench_function("decide_allowed_1KiB", |b| {
        b.iter_batched(
            fresh,
            |(body, sig)| {
                let req = inbound(client, &ts, &sig, &body);
                let ip_ok = guard.check_source_ip(&route, client).is_none();
                let d = guard.decide(&route, &req, &settings);
                black_box((ip_ok, d.reason));
            },
            BatchSize::SmallInput,
        )
    });
    // The replay path: the same signature again is rejected right after verification.
    g.bench_function("decide_replayed_1KiB", |b| {
        let req = inbound(client, &ts, &sig, &body);
        b.iter(|| black_box(guard.decide(&route, &req, &settings).reason))
    });
    g.finish();
}

/// A JSON request from `client`, signed `sig` at `ts`.
fn inbound<'a>(client: IpAddr, ts: &'a str, sig: &'a str, body: &'a [u8]) -> Inbound<'a> {
    Inbound {
        client_ip: client,
        signature: Some(sig.as_bytes()),
        timestamp: Some(ts.as_bytes()),
        content_type: Some("application/json"),
        body,
    }
}

/// `IpSet::contains` with 10, 1k and 100k networks, for an address inside and outside.
fn ip_matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipset_contains");
    for n in [10u32, 1_000, 100_000] {
        let set = IpSet::from_cidrs((0..n).map(|i| nth_cidr(i).parse::<ipnet::IpNet>().unwrap()));
        let net: ipnet::IpNet = nth_cidr(n / 2).parse().unwrap();
        let inside = net.hosts().nth(6).unwrap();
        let outside = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        assert!(set.contains(inside) && !set.contains(outside));
        g.bench_with_input(BenchmarkId::new("hit", n), &inside, |b, ip| {
            b.iter(|| set.contains(black_box(*ip)))
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &outside, |b, ip| {
            b.iter(|| set.contains(black_box(*ip)))
        });
    }
    // A mixed list with many prefix lengths: lookups probe one hash set per length.
    let mixed = IpSet::from_cidrs((0..100_000u32).map(|i| {
        let len = 8 + (i % 25) as u8; // /8 .. /32
        ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0B00_0000u32 + (i << 8))), len)
            .unwrap()
            .trunc()
    }));
    let outside = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    g.bench_function(BenchmarkId::new("miss_25_prefix_lengths", 100_000), |b| {
        b.iter(|| mixed.contains(black_box(outside)))
    });
    g.finish();
}

/// Scope lookup: `IdSet::contains` with 100k users, against the same ids in std's
/// `HashSet` (SipHash-1-3, what `IdSet` used before it took the lookup hasher) as the
/// baseline of the same run.
fn scope_lookup(c: &mut Criterion) {
    let set: IdSet = (0..100_000u32).map(nth_user).collect();
    let sip: std::collections::HashSet<Box<str>> =
        (0..100_000u32).map(|n| nth_user(n).into()).collect();
    let hit = nth_user(54_321);
    let miss = "U0NOTTHERE";
    let mut g = c.benchmark_group("idset_contains_100k");
    g.bench_function("hit", |b| b.iter(|| set.contains(black_box(&hit))));
    g.bench_function("miss", |b| b.iter(|| set.contains(black_box(miss))));
    g.bench_function("hit_std_siphash", |b| {
        b.iter(|| sip.contains(black_box(hit.as_str())))
    });
    g.bench_function("miss_std_siphash", |b| {
        b.iter(|| sip.contains(black_box(miss)))
    });
    g.finish();
}

/// Token buckets with 1M live keys: a take on an existing key, and on a new key
/// when the limiter is full (eviction).
fn rate_limiter(c: &mut Criterion) {
    const KEYS: u64 = 1_000_000;
    let limiter = RateLimiter::new(KEYS as usize);
    let names: Vec<String> = (0..KEYS).map(|n| format!("U{n:08X}")).collect();
    for name in &names {
        let key = BucketKey {
            route: "events",
            rule: 1,
            per: "user",
            value: name,
        };
        limiter.take(&key, 1_000_000.0, 1_000_000, 100.0);
    }
    let mut g = c.benchmark_group("rate_limiter_1M_keys");
    let mut i = 0usize;
    g.bench_function("take_existing", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            let key = BucketKey {
                route: "events",
                rule: 1,
                per: "user",
                value: &names[i],
            };
            limiter.take(black_box(&key), 1_000_000.0, 1_000_000, 100.0)
        })
    });
    let mut n = KEYS;
    let mut buf = String::new();
    g.bench_function("take_new_key_full_limiter", |b| {
        b.iter(|| {
            use std::fmt::Write as _;
            n += 1;
            buf.clear();
            let _ = write!(buf, "U{n:08X}");
            let key = BucketKey {
                route: "events",
                rule: 1,
                per: "user",
                value: &buf,
            };
            limiter.take(black_box(&key), 1_000_000.0, 1_000_000, 100.0)
        })
    });
    g.finish();
}

/// Compiling (= reloading) a 100k-entry policy: 100k users in a group, or 100k CIDRs.
fn policy_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy_compile");
    g.sample_size(10);
    for (name, users, cidrs) in [
        ("100k_users", 100_000u32, 10u32),
        ("100k_cidrs", 10, 100_000),
        ("100k_users_100k_cidrs", 100_000, 100_000),
    ] {
        let text = large_policy(users, cidrs, "127.0.0.1:9");
        let secrets = bench_secrets();
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                compile_policy(
                    Path::new("bench.yaml"),
                    black_box(&text),
                    &secrets,
                    SystemTime::now(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// The per-request cost of a user group (`groups: { oncall: { usergroup: S… } }`) against
/// the same 100k members as a list group, in one run: `decide` on a route allowing
/// `@everyone` (a list, expanded into the route's `IdSet` at load) and on one allowing
/// `@oncall` (looked up in the guard's member store per request: one `ArcSwap` load and
/// two hash lookups); then the membership lookup alone against `IdSet::contains`.
fn user_groups(c: &mut Criterion) {
    use std::fmt::Write;
    let mut text = String::from(
        "version: 1\napps:\n  bench:\n    signing_secrets: [{ id: current, env: BENCH_SECRET }]\n\
upstreams:\n  bot: { targets: [127.0.0.1:9] }\n\
bots:\n  helpdesk:\n    key: { env: BENCH_KEY }\n    token: { env: BENCH_TOKEN }\n    methods: [chat.postMessage]\n\
groups:\n  oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }\n  everyone:\n    - U0444\n",
    );
    for n in 0..100_000u32 {
        let _ = writeln!(text, "    - {}", nth_user(n));
    }
    text.push_str("routes:\n  - { name: list, path: /list, app: bench, upstream: bot, allow: { users: [\"@everyone\"] } }\n");
    text.push_str("  - { name: usergroup, path: /usergroup, app: bench, upstream: bot, allow: { users: [\"@oncall\"] } }\n");
    let secrets = slackgate_fixtures::MapSecrets::in_memory(&[
        ("BENCH_SECRET", SECRET),
        ("BENCH_KEY", "gk_bench_0123456789abcdef"),
        ("BENCH_TOKEN", "xoxb-bench-token"),
    ]);
    let now = UNIX_EPOCH + Duration::from_secs(NOW as u64);
    let policy = compile_policy(Path::new("bench.yaml"), &text, &secrets, now).unwrap();
    let oncall = &policy.usergroups["oncall"];
    let members: IdSet = (0..100_000u32)
        .map(nth_user)
        .chain(std::iter::once("U0444".to_owned()))
        .collect();
    // A fresh guard per benchmark, so neither runs with the other's replay cache.
    let new_guard = || {
        let guard = Guard::new(FakeClock::at(NOW as u64), 1_000_000, 1_000_000);
        guard.group_members().set(oncall, members.clone(), now);
        guard
    };
    let settings = GuardSettings {
        max_clock_skew: Duration::from_secs(300),
    };
    let signer = Signer::new(SECRET);
    let ts = NOW.to_string();
    let counter = AtomicU64::new(0);
    let fresh = || {
        let body = event_body(counter.fetch_add(1, Ordering::Relaxed), 1024);
        let sig = signer.sign(&ts, &body);
        (body, sig)
    };
    let decide =
        |guard: &Guard<FakeClock>, route: &slackgate_policy::Route, body: &[u8], sig: &str| {
            let req = Inbound {
                client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                signature: Some(sig.as_bytes()),
                timestamp: Some(ts.as_bytes()),
                content_type: Some("application/json"),
                body,
            };
            guard.decide(route, &req, &settings).reason
        };
    let mut g = c.benchmark_group("user_groups");
    for name in ["list", "usergroup"] {
        let route = policy.routes.by_name(name).unwrap().clone();
        let guard = new_guard();
        let (body, sig) = fresh();
        assert_eq!(
            decide(&guard, &route, &body, &sig).as_str(),
            "allowed",
            "{name}"
        );
        g.bench_function(format!("decide_allowed_{name}_100k"), |b| {
            b.iter_batched(
                fresh,
                |(body, sig)| black_box(decide(&guard, &route, &body, &sig)),
                BatchSize::SmallInput,
            )
        });
    }
    let guard = new_guard();
    let store = guard.group_members();
    let groups = [std::sync::Arc::clone(oncall)];
    let hit = nth_user(54_321);
    assert!(members.contains(&hit));
    g.bench_function("idset_contains_hit_100k", |b| {
        b.iter(|| members.contains(black_box(&hit)))
    });
    g.bench_function("membership_hit_100k", |b| {
        b.iter(|| store.membership(&groups, black_box(&hit)))
    });
    g.finish();
}

/// `read_call` on a channel list of 1k, 10k and 100k ids, as a form (`channels=C0,C1,...`)
/// and as a JSON array, with no cap (every id read and deduplicated): the time per id must
/// not grow with the list (issue 26: the old reader was quadratic). `form_capped` reads the
/// 100k list at the default cap of 100, where reading stops.
fn call_channels(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_call_channels");
    let uncapped = CallLimits {
        max_channels: usize::MAX,
    };
    let form_type: Option<&[u8]> = Some(b"application/x-www-form-urlencoded");
    let json_type: Option<&[u8]> = Some(b"application/json");
    for n in [1_000usize, 10_000, 100_000] {
        let ids: Vec<String> = (0..n).map(|i| format!("C{i:08}")).collect();
        let form = format!("channels={}", ids.join(","));
        let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
        let json = format!("{{\"channels\":[{}]}}", quoted.join(","));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("form", n), &form, |b, body| {
            b.iter(|| read_call(None, form_type, black_box(body.as_bytes()), &uncapped).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("json", n), &json, |b, body| {
            b.iter(|| read_call(None, json_type, black_box(body.as_bytes()), &uncapped).unwrap())
        });
        if n == 100_000 {
            let capped = CallLimits { max_channels: 100 };
            g.bench_with_input(BenchmarkId::new("form_capped", n), &form, |b, body| {
                b.iter(|| {
                    read_call(None, form_type, black_box(body.as_bytes()), &capped).unwrap_err()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = signature, facts, guard, ip_matching, scope_lookup, rate_limiter, policy_compile, user_groups, call_channels
}
criterion_main!(benches);
