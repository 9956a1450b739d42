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

/// A fresh capability: [`CAPABILITY_BYTES`] from the system's random source, in
/// lower-case hex (safe in a URL path, a form and a JSON string as it is). `None` when
/// the system's random source fails, which the caller turns into a refusal: a guessable
/// capability is never handed out.
pub fn mint() -> Option<String> {
    let mut bytes = [0u8; CAPABILITY_BYTES];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// True when `s` has the shape of a capability [`mint`] makes (checked before any
/// lookup, so that nothing else is ever looked up or recorded).
pub fn is_capability(s: &str) -> bool {
    s.len() == 2 * CAPABILITY_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

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
