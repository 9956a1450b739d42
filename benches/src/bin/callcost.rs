//! One egress call naming N channels, read once, for an instruction count that does not
//! depend on how busy the machine is (issue 26: reading must be linear in the channels).
//!
//! `callcost N [form|json]`: builds `channels=C00000000,C00000001,...` (or the JSON array),
//! then reads it with `read_call` and no channel cap inside `read_once`. Count only that
//! function with callgrind:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='callcost::read_once' target/release/callcost 100000 json
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use slackgate_slack::{read_call, CallLimits};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: callcost N [form|json]");
    let json = args.next().as_deref() == Some("json");
    let ids: Vec<String> = (0..n).map(|i| format!("C{i:08}")).collect();
    let (content_type, body): (&[u8], String) = if json {
        let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
        (
            b"application/json",
            format!("{{\"channels\":[{}]}}", quoted.join(",")),
        )
    } else {
        (
            b"application/x-www-form-urlencoded",
            format!("channels={}", ids.join(",")),
        )
    };
    let named = read_once(content_type, body.as_bytes());
    println!("{n} channels read");
    assert_eq!(named, n);
}

/// The measured part: one `read_call`, its result dropped inside.
#[inline(never)]
fn read_once(content_type: &[u8], body: &[u8]) -> usize {
    let limits = CallLimits {
        max_channels: usize::MAX,
    };
    let args = read_call(None, Some(content_type), black_box(body), &limits).unwrap();
    args.channels.len()
}
