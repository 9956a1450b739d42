//! Slack v0 request signatures.
//!
//! Slack signs every request with `v0=<hex hmac-sha256(secret, "v0:" + ts + ":" + body)>` in
//! `X-Slack-Signature` and sends the timestamp in `X-Slack-Request-Timestamp`. [`verify`]
//! checks both headers as raw bytes, the timestamp window in both directions, and then every
//! key in constant time.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// The version prefix of the signature header value.
const VERSION_PREFIX: &[u8] = b"v0=";

/// The number of bytes of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;

/// The exact length of a well-formed signature header value: `v0=` and 64 hex digits.
pub const SIGNATURE_HEADER_LEN: usize = VERSION_PREFIX.len() + 2 * MAC_LEN;

/// The most digits a timestamp header may carry; more never fit an `i64`.
const MAX_TIMESTAMP_DIGITS: usize = 19;

type HmacSha256 = Hmac<Sha256>;

// === SigningKey ===

/// A signing secret with its HMAC key state prepared once.
///
/// The keyed `Hmac<Sha256>` is built in [`SigningKey::new`] and cloned for each use, so the
/// secret is hashed into the inner and outer pads only once. `Debug` prints the id only,
/// never the secret.
#[derive(Clone)]
pub struct SigningKey {
    id: Arc<str>,
    mac: HmacSha256,
}

impl SigningKey {
    /// Builds a key named `id` from the raw signing secret.
    ///
    /// An empty secret is rejected with [`SignatureError::EmptySecret`], because anyone can
    /// compute a signature with it.
    pub fn new(id: impl Into<Arc<str>>, secret: &[u8]) -> Result<Self, SignatureError> {
        if secret.is_empty() {
            return Err(SignatureError::EmptySecret);
        }
        // HMAC accepts keys of every length, so this error arm is unreachable in practice.
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::EmptySecret)?;
        Ok(Self { id: id.into(), mac })
    }

    /// Returns the id of this key, as configured by the operator (for example `current`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the shared id of this key, for callers that keep it without copying.
    pub fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// Returns the `X-Slack-Signature` value for `body` sent at `timestamp`:
    /// `v0=` followed by 64 lowercase hex digits of the MAC of `v0:{timestamp}:{body}`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mac = self.mac(timestamp.as_bytes(), body);
        let mut out = String::with_capacity(SIGNATURE_HEADER_LEN);
        out.push_str("v0=");
        out.push_str(&hex::encode(mac));
        out
    }

    /// Returns the raw 32-byte HMAC-SHA256 of the basestring `v0:{timestamp}:{body}`.
    pub fn mac(&self, timestamp: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(b"v0:");
        mac.update(timestamp);
        mac.update(b":");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

// === SignatureError ===

/// The reasons a request signature is not accepted.
///
/// No variant carries header or body bytes, so an error is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The `X-Slack-Signature` header is absent.
    #[error("the X-Slack-Signature header is missing")]
    MissingSignature,
    /// The `X-Slack-Request-Timestamp` header is absent.
    #[error("the X-Slack-Request-Timestamp header is missing")]
    MissingTimestamp,
    /// The signature header is not `v0=` followed by 64 hex digits.
    #[error("the X-Slack-Signature header is not `v0=` followed by 64 hex digits")]
    MalformedSignature,
    /// The timestamp header is not a plain base-10 number of at most 19 digits that fits an `i64`.
    #[error("the X-Slack-Request-Timestamp header is not a plain base-10 unix timestamp")]
    MalformedTimestamp,
    /// The timestamp lies outside the allowed window, in the past or in the future.
    #[error("the request timestamp is {skew_secs} s away from the gateway clock, outside the allowed window")]
    StaleTimestamp {
        /// `now - timestamp` in seconds: positive for old requests, negative for future ones.
        skew_secs: i64,
    },
    /// No key produced the received signature.
    #[error("the signature does not match any signing secret")]
    BadSignature,
    /// No key was offered for verification, so nothing can be accepted.
    #[error("no signing secret is available to verify the request")]
    NoKeys,
    /// A signing key was built from an empty secret.
    #[error("a signing secret is empty")]
    EmptySecret,
}

// === Verified ===

/// Proof that a request was signed by one of the keys.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'k> {
    /// The key whose MAC matched the signature.
    pub key: &'k SigningKey,
    /// The request timestamp, in unix seconds.
    pub timestamp: i64,
    /// The decoded signature, usable as a replay-cache key.
    pub signature: [u8; MAC_LEN],
}

// === verify ===

/// Verifies a Slack v0 signature.
///
/// `signature` and `timestamp` are the raw header values as received (`None` when absent);
/// `body` is the raw body exactly as received. The timestamp must lie within `max_skew_secs`
/// of `now_unix` in both directions.
///
/// The checks run in this order: missing signature, missing timestamp, malformed timestamp,
/// malformed signature, stale timestamp, then the keys. Every key is tried and compared in
/// constant time, without stopping at a match; the first matching key is returned. An empty
/// key iterator fails with [`SignatureError::NoKeys`].
pub fn verify<'k, I>(
    keys: I,
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    now_unix: i64,
    max_skew_secs: u64,
) -> Result<Verified<'k>, SignatureError>
where
    I: IntoIterator<Item = &'k SigningKey>,
{
    let signature = signature.ok_or(SignatureError::MissingSignature)?;
    let timestamp_raw = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let timestamp = parse_timestamp(timestamp_raw)?;
    let expected = parse_signature(signature)?;
    check_window(timestamp, now_unix, max_skew_secs)?;

    let mut any_key = false;
    let mut found = Choice::from(0);
    let mut selected: Option<&'k SigningKey> = None;
    for key in keys {
        any_key = true;
        let mac = key.mac(timestamp_raw, body);
        let equal = mac.ct_eq(&expected);
        // Only the first match is kept; the branch depends on whether a key matched, which the
        // response reveals anyway, never on the bytes being compared.
        if bool::from(equal & !found) {
            selected = Some(key);
        }
        found |= equal;
    }
    if !any_key {
        return Err(SignatureError::NoKeys);
    }
    match selected {
        Some(key) => Ok(Verified {
            key,
            timestamp,
            signature: expected,
        }),
        None => Err(SignatureError::BadSignature),
    }
}

/// Parses a timestamp header: 1 to 19 ASCII digits, no sign, no whitespace, fitting an `i64`.
pub fn parse_timestamp(raw: &[u8]) -> Result<i64, SignatureError> {
    if raw.is_empty() || raw.len() > MAX_TIMESTAMP_DIGITS {
        return Err(SignatureError::MalformedTimestamp);
    }
    let mut value: i64 = 0;
    for &b in raw {
        if !b.is_ascii_digit() {
            return Err(SignatureError::MalformedTimestamp);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(SignatureError::MalformedTimestamp)?;
    }
    Ok(value)
}

/// Parses a signature header: `v0=` followed by exactly 64 hex digits of either case.
pub fn parse_signature(raw: &[u8]) -> Result<[u8; MAC_LEN], SignatureError> {
    let hex_digits = raw
        .strip_prefix(VERSION_PREFIX)
        .filter(|rest| rest.len() == 2 * MAC_LEN)
        .ok_or(SignatureError::MalformedSignature)?;
    let mut out = [0u8; MAC_LEN];
    // OR-ing every nibble lookup lets one check at the end catch any non-hex digit.
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(hex_digits.chunks_exact(2)) {
        let hi = HEX_VALUE[usize::from(pair[0])];
        let lo = HEX_VALUE[usize::from(pair[1])];
        invalid |= hi | lo;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    if invalid & 0xf0 != 0 {
        return Err(SignatureError::MalformedSignature);
    }
    Ok(out)
}

/// The value of each hex digit of either case; `0xff` for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Fails with [`SignatureError::StaleTimestamp`] when `|now - timestamp| > max_skew_secs`.
pub fn check_window(
    timestamp: i64,
    now_unix: i64,
    max_skew_secs: u64,
) -> Result<(), SignatureError> {
    // i128 holds the difference of any two i64 values without overflow.
    let skew = i128::from(now_unix) - i128::from(timestamp);
    if skew.unsigned_abs() > u128::from(max_skew_secs) {
        let skew_secs = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
        return Err(SignatureError::StaleTimestamp { skew_secs });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const VECTOR_SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const VECTOR_TS: &str = "1531420618";
    const VECTOR_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const VECTOR_BODY: &[u8] = include_bytes!("../tests/data/signature_vector.form");
    const NOW: i64 = 1_531_420_618;

    fn key(id: &str, secret: &[u8]) -> SigningKey {
        SigningKey::new(id, secret).unwrap()
    }

    fn run<'k>(
        keys: &'k [SigningKey],
        sig: Option<&str>,
        ts: Option<&str>,
    ) -> Result<Verified<'k>, SignatureError> {
        verify(
            keys,
            sig.map(str::as_bytes),
            ts.map(str::as_bytes),
            VECTOR_BODY,
            NOW,
            300,
        )
    }

    #[test]
    fn official_vector_signs_and_verifies() {
        let k = key("current", VECTOR_SECRET);
        assert_eq!(k.sign(VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
        let keys = [k];
        let v = run(&keys, Some(VECTOR_SIG), Some(VECTOR_TS)).unwrap();
        assert_eq!(v.key.id(), "current");
        assert_eq!(v.timestamp, NOW);
        assert_eq!(hex::encode(v.signature), &VECTOR_SIG[3..]);
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let keys = [key("current", VECTOR_SECRET)];
        let upper = format!("v0={}", VECTOR_SIG[3..].to_ascii_uppercase());
        assert!(run(&keys, Some(&upper), Some(VECTOR_TS)).is_ok());
    }

    #[test]
    fn rotation_returns_matching_key() {
        let keys = [key("new", b"another-secret"), key("old", VECTOR_SECRET)];
        let v = run(&keys, Some(VECTOR_SIG), Some(VECTOR_TS)).unwrap();
        assert_eq!(v.key.id(), "old");
        assert_eq!(v.key.id_arc().as_ref(), "old");
    }

    #[test]
    fn first_matching_key_wins_when_secrets_repeat() {
        let keys = [key("a", VECTOR_SECRET), key("b", VECTOR_SECRET)];
        let v = run(&keys, Some(VECTOR_SIG), Some(VECTOR_TS)).unwrap();
        assert_eq!(v.key.id(), "a");
    }

    #[test]
    fn wrong_key_is_bad_signature() {
        let keys = [key("a", b"x"), key("b", b"y")];
        assert_eq!(
            run(&keys, Some(VECTOR_SIG), Some(VECTOR_TS)).unwrap_err(),
            SignatureError::BadSignature
        );
    }

    #[test]
    fn no_keys_fails_closed() {
        let keys: [SigningKey; 0] = [];
        assert_eq!(
            run(&keys, Some(VECTOR_SIG), Some(VECTOR_TS)).unwrap_err(),
            SignatureError::NoKeys
        );
    }

    #[test]
    fn empty_secret_is_rejected() {
        assert_eq!(
            SigningKey::new("x", b"").unwrap_err(),
            SignatureError::EmptySecret
        );
    }

    #[test]
    fn debug_hides_secret() {
        let k = key("current", VECTOR_SECRET);
        let shown = format!("{k:?}");
        assert!(shown.contains("current"));
        assert!(!shown.contains("8f742231"));
        assert!(!shown.to_ascii_lowercase().contains("secret"));
    }

    #[test]
    fn missing_headers_in_order() {
        let keys = [key("current", VECTOR_SECRET)];
        assert_eq!(
            run(&keys, None, None).unwrap_err(),
            SignatureError::MissingSignature
        );
        assert_eq!(
            run(&keys, None, Some(VECTOR_TS)).unwrap_err(),
            SignatureError::MissingSignature
        );
        assert_eq!(
            run(&keys, Some(VECTOR_SIG), None).unwrap_err(),
            SignatureError::MissingTimestamp
        );
        // A malformed timestamp is reported before a malformed signature.
        assert_eq!(
            run(&keys, Some("junk"), Some("junk")).unwrap_err(),
            SignatureError::MalformedTimestamp
        );
        // A malformed signature is reported before a stale timestamp.
        assert_eq!(
            run(&keys, Some("junk"), Some("1")).unwrap_err(),
            SignatureError::MalformedSignature
        );
        // Header checks happen before the key list is looked at.
        let none: [SigningKey; 0] = [];
        assert_eq!(
            run(&none, Some("junk"), Some(VECTOR_TS)).unwrap_err(),
            SignatureError::MalformedSignature
        );
    }

    #[test]
    fn malformed_signatures() {
        let keys = [key("current", VECTOR_SECRET)];
        let hex64 = &VECTOR_SIG[3..];
        let cases = [
            String::new(),
            "v0=".to_owned(),
            hex64.to_owned(),
            format!("v1={hex64}"),
            format!("V0={hex64}"),
            format!("v0={}", &hex64[..62]),
            format!("v0={hex64}00"),
            format!("v0={}g", &hex64[..63]),
            format!("v0= {}", &hex64[..63]),
            format!(" v0={hex64}"),
            format!("v0={hex64} "),
            format!("v0={hex64},v0={hex64}"),
            format!("v0=0x{}", &hex64[..62]),
        ];
        for case in &cases {
            assert_eq!(
                run(&keys, Some(case), Some(VECTOR_TS)).unwrap_err(),
                SignatureError::MalformedSignature,
                "{case:?}"
            );
        }
        // Non-UTF-8 header bytes.
        let mut raw = VECTOR_SIG.as_bytes().to_vec();
        raw[10] = 0xff;
        assert_eq!(
            verify(
                &keys,
                Some(&raw),
                Some(VECTOR_TS.as_bytes()),
                VECTOR_BODY,
                NOW,
                300
            )
            .unwrap_err(),
            SignatureError::MalformedSignature
        );
    }

    #[test]
    fn signature_digits_decode_like_the_hex_crate_for_every_byte_at_every_position() {
        let valid = &VECTOR_SIG.as_bytes()[3..];
        for pos in 0..valid.len() {
            for b in 0..=255u8 {
                let mut digits = valid.to_vec();
                digits[pos] = b;
                let mut expected = [0u8; MAC_LEN];
                let expected = hex::decode_to_slice(&digits, &mut expected)
                    .map(|()| expected)
                    .map_err(|_| SignatureError::MalformedSignature);
                let mut raw = b"v0=".to_vec();
                raw.extend_from_slice(&digits);
                assert_eq!(parse_signature(&raw), expected, "byte {b:#04x} at {pos}");
            }
        }
    }

    #[test]
    fn malformed_timestamps() {
        let keys = [key("current", VECTOR_SECRET)];
        for case in [
            "",
            " 1531420618",
            "1531420618 ",
            "+1531420618",
            "-1531420618",
            "1531420618.5",
            "1e9",
            "0x5b47",
            "15314 20618",
            "9223372036854775808",
            "99999999999999999999",
            "00000000000000000001531420618",
            "１５３",
        ] {
            assert_eq!(
                run(&keys, Some(VECTOR_SIG), Some(case)).unwrap_err(),
                SignatureError::MalformedTimestamp,
                "{case:?}"
            );
        }
        assert_eq!(parse_timestamp(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_timestamp(b"0"), Ok(0));
    }

    #[test]
    fn window_applies_in_both_directions() {
        let k = key("current", VECTOR_SECRET);
        let keys = [k.clone()];
        for (ts, ok) in [
            (NOW - 300, true),
            (NOW + 300, true),
            (NOW - 301, false),
            (NOW + 301, false),
        ] {
            let ts_text = ts.to_string();
            let sig = k.sign(&ts_text, VECTOR_BODY);
            let got = run(&keys, Some(&sig), Some(&ts_text));
            if ok {
                assert!(got.is_ok(), "{ts}");
            } else {
                assert_eq!(
                    got.unwrap_err(),
                    SignatureError::StaleTimestamp {
                        skew_secs: NOW - ts
                    }
                );
            }
        }
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        assert_eq!(
            check_window(i64::MAX, i64::MIN, 0),
            Err(SignatureError::StaleTimestamp {
                skew_secs: i64::MIN
            })
        );
        assert_eq!(check_window(0, i64::MAX, u64::MAX), Ok(()));
        assert_eq!(
            check_window(0, i64::MIN, 0),
            Err(SignatureError::StaleTimestamp {
                skew_secs: i64::MIN
            })
        );
    }
}
