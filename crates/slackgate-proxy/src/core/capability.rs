//! Capabilities of secret custody: the unguessable strings the gateway hands a bot in
//! place of what Slack gave it (a response URL, an upload URL, a workflow token). Both
//! doors make them here; the guard's [`Custody`](slackgate_guard::Custody) keeps what
//! each one stands for.

use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes in a capability: 160 bits, above the 128 the contract asks for.
const CAPABILITY_BYTES: usize = 20;

/// The prefix of a workflow-token capability key (`sgw-`), so that the egress door
/// tells one from a bot's gateway key without a lookup.
pub const WORKFLOW_KEY_PREFIX: &str = "sgw-";

/// How long a workflow token is held, in seconds. Slack's reference does not state the
/// life of the `bot_access_token` of `function_executed`; Slack's SDK maintainers do
/// (slackapi/bolt-python#1075, 2024): it expires 15 minutes after it was issued, or when
/// the step is completed. So the capability lives 15 minutes from receipt at most, and
/// less once `functions.completeSuccess`/`completeError` answered `ok` (the egress door
/// ends it then).
pub const WORKFLOW_TOKEN_TTL: f64 = 900.0;

/// Capabilities' worth of system randomness read at once, per thread: one `getrandom`
/// call serves this many capabilities (a call per capability was a third of what custody
/// adds to a request).
const POOL_CAPABILITIES: usize = 128;

/// Random bytes read from the system source and not handed out yet (one per thread).
struct Pool {
    bytes: [u8; POOL_CAPABILITIES * CAPABILITY_BYTES],
    /// How many of `bytes` were handed out (and wiped).
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const {
        std::cell::RefCell::new(Pool {
            bytes: [0; POOL_CAPABILITIES * CAPABILITY_BYTES],
            used: POOL_CAPABILITIES * CAPABILITY_BYTES,
        })
    };
}

impl Pool {
    /// The next [`CAPABILITY_BYTES`] unused bytes, refilling from the system source when
    /// none are left; `None` when that fails (nothing is handed out then, and the next
    /// call tries again). Bytes handed out are wiped from the pool.
    fn take(&mut self) -> Option<[u8; CAPABILITY_BYTES]> {
        if self.used + CAPABILITY_BYTES > self.bytes.len() {
            SystemRandom::new().fill(&mut self.bytes).ok()?;
            self.used = 0;
        }
        let range = self.used..self.used + CAPABILITY_BYTES;
        let mut out = [0u8; CAPABILITY_BYTES];
        out.copy_from_slice(self.bytes.get(range.clone())?);
        self.bytes.get_mut(range)?.fill(0);
        self.used += CAPABILITY_BYTES;
        Some(out)
    }
}

/// A fresh capability: [`CAPABILITY_BYTES`] from the system's random source (read in
/// batches, each byte handed out once), in lower-case hex (safe in a URL path, a form and
/// a JSON string as it is). `None` when the system's random source fails, which the
/// caller turns into a refusal: a guessable capability is never handed out.
pub fn mint() -> Option<String> {
    mint_after(&[])
}

/// A fresh capability as [`mint`] makes it, written after `prefix` (its parts in turn) in
/// one string: a capability URL or key is made with one allocation, and the capability
/// is its last [`CAPABILITY_LEN`] bytes.
pub fn mint_after(prefix: &[&str]) -> Option<String> {
    let bytes = POOL.with(|p| p.borrow_mut().take())?;
    let room = prefix.iter().map(|p| p.len()).sum::<usize>() + CAPABILITY_LEN;
    let mut out = String::with_capacity(room);
    for part in prefix {
        out.push_str(part);
    }
    let mut digits = [0u8; CAPABILITY_LEN];
    hex::encode_to_slice(bytes, &mut digits).ok()?;
    out.push_str(std::str::from_utf8(&digits).ok()?);
    Some(out)
}

/// The length of a capability's text: two hex digits per random byte.
pub const CAPABILITY_LEN: usize = 2 * CAPABILITY_BYTES;

/// True when `s` has the shape of a capability [`mint`] makes (checked before any
/// lookup, so that nothing else is ever looked up or recorded).
pub fn is_capability(s: &str) -> bool {
    s.len() == CAPABILITY_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_stay_fresh_across_pool_refills() {
        let caps: std::collections::HashSet<String> = (0..3 * POOL_CAPABILITIES + 7)
            .map(|_| mint().unwrap())
            .collect();
        assert_eq!(caps.len(), 3 * POOL_CAPABILITIES + 7);
        assert!(caps
            .iter()
            .all(|c| is_capability(c) && c != &"0".repeat(40)));
    }

    #[test]
    fn a_capability_after_a_prefix_is_its_last_bytes() {
        let url = mint_after(&["https://gw/", "respond/"]).unwrap();
        let (base, cap) = url.split_at(url.len() - CAPABILITY_LEN);
        assert_eq!(base, "https://gw/respond/");
        assert!(is_capability(cap));
        assert_eq!(url.capacity(), url.len());
    }

    #[test]
    fn capabilities_are_fresh_and_well_shaped() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_ne!(a, b);
        assert!(is_capability(&a) && is_capability(&b));
        assert!(!is_capability(&a[1..]));
        assert!(!is_capability(&a.to_uppercase()));
        assert!(!is_capability(""));
    }
}
