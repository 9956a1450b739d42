//! `verify` with arbitrary header bytes, body and clock. It may not panic, and it may only
//! succeed for a signature that the key itself produces.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slackgate_slack::{verify, SigningKey};

fuzz_target!(|data: &[u8]| {
    // Layout: [sig_len, ts_len, now (8 bytes), skew (2 bytes)] then sig, ts, body.
    let Some((header, rest)) = data.split_first_chunk::<12>() else {
        return;
    };
    let sig_len = usize::from(header[0]).min(rest.len());
    let (sig, rest) = rest.split_at(sig_len);
    let ts_len = usize::from(header[1]).min(rest.len());
    let (ts, body) = rest.split_at(ts_len);
    let mut now = [0u8; 8];
    now.copy_from_slice(&header[2..10]);
    let now = i64::from_le_bytes(now);
    let skew = u64::from(u16::from_le_bytes([header[10], header[11]]));

    let Ok(key) = SigningKey::new("fuzz", b"8f742231b10e8888abcd99yyyzzz85a5") else {
        return;
    };
    let keys = [key];
    let sig_opt = (header[0] != 0xff).then_some(sig);
    let ts_opt = (header[1] != 0xff).then_some(ts);
    if let Ok(verified) = verify(&keys, sig_opt, ts_opt, body, now, skew) {
        assert_eq!(verified.signature, keys[0].mac(ts, body));
    }
});
