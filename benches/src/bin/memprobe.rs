//! In-process memory of slackgate's long-lived guard state.
//!
//! `memprobe [KEYS]` (default 1,000,000): drives KEYS unique keys through a
//! `RateLimiter` sized for them (the config default `max_rate_limit_keys`), then KEYS
//! unique signatures through a `ReplayCache` (default `max_replay_entries`), reading
//! `VmRSS`/`VmHWM` from `/proc/self/status` before and after each. Prints `MEM ...`
//! lines on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sha2::{Digest, Sha256};
use slackgate_benches::rss_kib;
use slackgate_guard::{BucketKey, RateLimiter, ReplayCache, ReplayCheck, Take};

fn report(what: &str, keys: u64, before: (u64, u64), took: std::time::Duration, len: usize) {
    let (rss, hwm) = rss_kib("self").unwrap_or((0, 0));
    let delta = rss.saturating_sub(before.0);
    eprintln!(
        "{what}: {keys} unique keys in {:.2} s, {len} held; VmRSS +{:.1} MiB ({:.0} B/key), VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        took.as_secs_f64(),
        delta as f64 / 1024.0,
        delta as f64 * 1024.0 / keys as f64,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "MEM what={what} keys={keys} held={len} secs={:.3} rss_delta_kib={delta} rss_kib={rss} hwm_kib={hwm}",
        took.as_secs_f64()
    );
}

fn main() {
    let keys: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |k| k.parse().expect("KEYS"));
    let cap = usize::try_from(keys).unwrap();

    let before = rss_kib("self").unwrap();
    let t = Instant::now();
    let limiter = RateLimiter::new(cap);
    let mut value = String::new();
    for n in 0..keys {
        use std::fmt::Write as _;
        value.clear();
        let _ = write!(value, "U{n:010X}");
        let key = BucketKey {
            route: "events",
            rule: 1,
            per: "user",
            value: &value,
        };
        let taken = limiter.take(&key, 1.0, 10, 1_000.0);
        assert_eq!(taken, Take::Allowed);
    }
    report("rate_limiter", keys, before, t.elapsed(), limiter.len());
    eprintln!("  evictions while filling: {}", limiter.evictions());

    let before = rss_kib("self").unwrap();
    let t = Instant::now();
    let replay = ReplayCache::new(cap);
    for n in 0..keys {
        let sig: [u8; 32] = Sha256::digest(n.to_le_bytes()).into();
        assert_eq!(
            replay.check_and_insert(&sig, 2_000, 1_000),
            ReplayCheck::Fresh
        );
    }
    report("replay_cache", keys, before, t.elapsed(), replay.len());
    drop(limiter);
}
