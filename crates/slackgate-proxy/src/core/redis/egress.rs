//! The egress door's state shared by every replica: per bot, Slack's 429 deadlines per
//! method, the bot's own rate-limit buckets and Slack's pacing buckets (one script, one
//! round trip per call), and the scope ledger.
//!
//! The scripts and the types; `RedisState`'s methods for them are in `redis.rs`.
//!
//! Every key of one bot carries the hash tag `{e:<bot>}` (the ledger's `{s:<bot>}`), so
//! that the script that reads a bot's deadline and takes from its buckets finds all of
//! them on one cluster slot.

use std::time::Duration;

/// Checks a held capability (KEYS[2], when ARGV[1] is not 0), then the 429 deadline
/// (KEYS[1]) and then every bucket (the keys after them), all or nothing: ARGV[1] is what
/// KEYS[2] is ([`HeldKey`]: 0 none, 1 a response URL's uses left, 2 the mark of an ended
/// function execution); then rate, burst and most wait in ms of each bucket (0 for a hard
/// limit). A bucket may go below zero by at most its most wait: the call is then let
/// through after that wait (pacing), never refused for it.
///
/// A response URL's uses are spent here, with the buckets: no count is ever spent by a
/// call the buckets refuse, and none goes below zero across replicas. A count that is not
/// there (never shared, or gone) leaves the count to the replica.
///
/// Returns `{0, wait_ms, counted}` (go, after waiting; counted 1 when a use was spent
/// here), `{1, secs}` (Slack's 429 holds), `{2, secs, index}` (bucket `index`, from 1,
/// is empty), `{3}` (the capability is used up or its execution ended).
pub(super) const EGRESS_GATE: &str = concat!(
    bucket_lua!(),
    r#"
local held = tonumber(ARGV[1])
local first = 2
local left = false
if held ~= 0 then
  first = 3
  if held == 1 then
    left = redis.call('GET', KEYS[2])
    if left and tonumber(left) < 1 then
      return {3}
    end
  elseif redis.call('EXISTS', KEYS[2]) == 1 then
    return {3}
  end
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  return {1, math.ceil(pttl / 1000)}
end
local now = now_secs()
local n = #KEYS - first + 1
local tokens = {}
local wait = 0
for i = 1, n do
  local rate = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  local max_wait = tonumber(ARGV[3 * i + 1]) / 1000
  local tk = refill(KEYS[first + i - 1], rate, burst, now)
  local need = (1 - tk) / rate
  if tk < 1 and need > max_wait then
    return {2, math.max(1, math.ceil(need - max_wait)), i}
  end
  if need > wait then wait = need end
  tokens[i] = tk - 1
end
for i = 1, n do
  local rate = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  redis.call('HSET', KEYS[first + i - 1], 'tokens', tostring(tokens[i]), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[first + i - 1], math.ceil(burst / rate * 1000) + 60000)
end
local counted = 0
if left then
  redis.call('DECR', KEYS[2])
  counted = 1
end
return {0, math.ceil(wait * 1000), counted}
"#
);

/// Notes one answer's scopes: KEYS = granted (the raw header), needed (a set), calls;
/// ARGV[1] = the granted header, ARGV[2..] = the granted scopes the call accepted.
pub(super) const SCOPES_NOTE: &str = r#"
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
end
return redis.call('INCR', KEYS[3])
"#;

/// One bucket of a call: the bot's own `rate_limits` (no wait) or Slack's pacing.
#[derive(Debug, Clone)]
pub struct GateBucket {
    /// The key's parts after the bot's tag.
    pub parts: Vec<String>,
    /// Tokens per second.
    pub rate: f64,
    /// The bucket's size.
    pub burst: u32,
    /// How long a call may be held back for this bucket (zero: refused at once).
    pub max_wait: Duration,
}

/// A held capability a call goes with, checked in the same script as the bot's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldKey<'a> {
    /// A response URL (its capability): one of its uses is spent when the call goes.
    Response(&'a str),
    /// A workflow key's function execution: refused once it ended on any replica.
    Execution(&'a str),
}

/// What the shared egress state says of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go, after waiting this long (zero but for pacing); `true` when a response URL's
    /// use was spent in Redis (else the replica's own count decides).
    Go(Duration, bool),
    /// The capability the call goes with is used up, or its execution ended.
    Spent,
    /// Slack's 429 for this bot and method holds for this many seconds more.
    SlackLimited(u32),
    /// Bucket `index` (of the call's buckets) is empty for this many seconds.
    Limited {
        /// Which bucket.
        index: usize,
        /// Seconds until it has a token for this call.
        retry_after_secs: u32,
    },
}

/// The ledger's shared view of one bot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedScopes {
    /// The last `x-oauth-scopes` any replica saw, as sent.
    pub granted: Vec<u8>,
    /// The granted scopes some call on any replica accepted.
    pub needed: Vec<String>,
    /// Answers with scope headers, on every replica.
    pub calls: u64,
}

pub(super) fn egress_tag(bot: &str) -> String {
    format!("{{e:{bot}}}")
}

pub(super) fn scopes_tag(bot: &str) -> String {
    format!("{{s:{bot}}}")
}
