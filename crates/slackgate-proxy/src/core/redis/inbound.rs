//! The inbound door's shared state: every question of one decision ([`Ask`]: the replay
//! check, the dedupe lookup, the rate limits' buckets) answered by one script, in one
//! round trip; the delivered mark after the upstream's 2xx is a command of its own.
//!
//! Every key of one app carries the hash tag `{i:<app>}`, after the key's kind, so that
//! the script finds them all on one cluster slot:
//!
//! - `replay:{i:<app>}:<signature>` = a value unique to the call that set it, expiring
//!   with the signature's window (`SET NX PX GET`: only the first replica to see a
//!   signature wins; a call sent again after a broken connection finds its own value).
//! - `delivered:{i:<app>}:<event_id>` = 1, for [`DEDUPE_TTL`](slackgate_guard::DEDUPE_TTL).
//! - `rl:{i:<app>}:<route>:<rule>:<per>:<value>` = a token bucket (`tokens`, `ts`) that
//!   reads Redis' own clock, so every replica shares one bucket and one notion of time.
//!   A route has one app, so every bucket of a route is on its app's slot.

use std::time::Duration;

use slackgate_guard::{Ask, Asked, BucketKey, RemoteState, ReplayCheck, StateError, Take, Told};

use super::{millis, RedisState};

/// Answers the questions in order (ARGV[1]: one letter per key, `r` replay, `d`
/// delivered, `t` take) up to the first that ends the decision: a replay (ARGV: the call's
/// value, ttl in ms), a delivered event, an empty bucket (ARGV: rate, burst). Returns one
/// integer per answer: replay 1 fresh / 0 replayed; delivered 1 / 0; take 0 allowed, else
/// the seconds until the next token (at least 1).
pub(super) const INBOUND: &str = concat!(
    bucket_lua!(),
    r#"
local kinds = ARGV[1]
local a = 2
local told = {}
local now = nil
for i = 1, #kinds do
  local kind = string.sub(kinds, i, i)
  local key = KEYS[i]
  if kind == 'r' then
    local mine = ARGV[a]
    local before = redis.call('SET', key, mine, 'NX', 'PX', ARGV[a + 1], 'GET')
    a = a + 2
    if before and before ~= mine then
      told[i] = 0
      return told
    end
    told[i] = 1
  elseif kind == 'd' then
    told[i] = redis.call('EXISTS', key)
    if told[i] == 1 then
      return told
    end
  else
    local rate = tonumber(ARGV[a])
    local burst = tonumber(ARGV[a + 1])
    a = a + 2
    if now == nil then
      now = now_secs()
    end
    local tokens = refill(key, rate, burst, now)
    local wait = 0
    if tokens >= 1 then
      tokens = tokens - 1
    else
      wait = math.max(1, math.ceil((1 - tokens) / rate))
    end
    redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
    redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
    told[i] = wait
    if wait > 0 then
      return told
    end
  end
end
return told
"#
);

/// The hash tag of `app`'s inbound keys.
fn inbound_tag(app: &str) -> String {
    format!("{{i:{app}}}")
}

impl RedisState {
    /// The key of `event_id` of `app` delivered with a 2xx (as `mark_delivered` sets it).
    fn delivered_key(&self, app: &str, event_id: &str) -> Vec<u8> {
        self.key(&["delivered", &inbound_tag(app), event_id])
    }

    /// The script's keys and arguments for `asks`.
    fn inbound_call(&self, asks: &[Ask<'_>]) -> (Vec<Vec<u8>>, Vec<String>) {
        let mut keys = Vec::with_capacity(asks.len());
        let mut kinds = String::with_capacity(asks.len());
        let mut args = Vec::with_capacity(1 + asks.len() * 2);
        args.push(String::new());
        for ask in asks {
            match *ask {
                Ask::Replay {
                    app,
                    signature,
                    ttl_secs,
                } => {
                    let tag = inbound_tag(app);
                    keys.push(self.key(&["replay", &tag, &hex::encode(signature)]));
                    kinds.push('r');
                    args.push(self.mark());
                    args.push(millis(Duration::from_secs(ttl_secs.max(1))).to_string());
                }
                Ask::Delivered { app, event_id } => {
                    keys.push(self.delivered_key(app, event_id));
                    kinds.push('d');
                }
                Ask::Take {
                    app,
                    ref key,
                    rate_per_sec,
                    burst,
                } => {
                    let rule = key.rule.to_string();
                    let tag = inbound_tag(app);
                    keys.push(self.key(&["rl", &tag, key.route, &rule, key.per, key.value]));
                    kinds.push('t');
                    args.push(format!("{rate_per_sec}"));
                    args.push(burst.max(1).to_string());
                }
            }
        }
        if let Some(first) = args.first_mut() {
            *first = kinds;
        }
        (keys, args)
    }

    /// Every question of one inbound decision in one script (see [`INBOUND`]).
    async fn inbound(&self, asks: &[Ask<'_>]) -> Result<Vec<Told>, StateError> {
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        let (keys, args) = self.inbound_call(asks);
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply: Vec<i64> = self.run_script(&self.inbound, &keys, &args).await?;
        let mut told = Vec::with_capacity(reply.len());
        for (ask, &v) in asks.iter().zip(&reply) {
            let answer = match (ask, v) {
                (Ask::Replay { .. }, 1) => Told::Replay(ReplayCheck::Fresh),
                (Ask::Replay { .. }, 0) => Told::Replay(ReplayCheck::Replayed),
                (Ask::Delivered { .. }, 0 | 1) => Told::Delivered(v == 1),
                (Ask::Take { .. }, 0) => Told::Take(Take::Allowed),
                (Ask::Take { .. }, secs) if secs > 0 => Told::Take(Take::Limited {
                    retry_after_secs: u32::try_from(secs).unwrap_or(u32::MAX),
                }),
                _ => return Err(StateError::Failed),
            };
            told.push(answer);
        }
        // Every question is answered up to the first answer that ends the decision.
        let (last, before) = told.split_last().ok_or(StateError::Failed)?;
        let whole = told.len() == asks.len() || last.ends();
        if reply.len() > asks.len() || before.iter().any(Told::ends) || !whole {
            return Err(StateError::Failed);
        }
        Ok(told)
    }

    /// One question by itself.
    async fn ask_one(&self, ask: Ask<'_>) -> Result<Told, StateError> {
        self.inbound(&[ask])
            .await?
            .into_iter()
            .next()
            .ok_or(StateError::Failed)
    }
}

/// The guard asks [`RemoteState::ask_all`], with the route's app. Asked by themselves,
/// `check_replay` and `take` know no app: their keys are under the tag of the app "".
impl RemoteState for RedisState {
    async fn check_replay(
        &self,
        signature: &[u8; 32],
        ttl_secs: u64,
    ) -> Result<ReplayCheck, StateError> {
        let ask = Ask::Replay {
            app: "",
            signature,
            ttl_secs,
        };
        match self.ask_one(ask).await? {
            Told::Replay(check) => Ok(check),
            _ => Err(StateError::Failed),
        }
    }

    async fn take(
        &self,
        key: &BucketKey<'_>,
        rate_per_sec: f64,
        burst: u32,
    ) -> Result<Take, StateError> {
        let ask = Ask::Take {
            app: "",
            key: *key,
            rate_per_sec,
            burst,
        };
        match self.ask_one(ask).await? {
            Told::Take(taken) => Ok(taken),
            _ => Err(StateError::Failed),
        }
    }

    async fn was_delivered(&self, app: &str, event_id: &str) -> Result<bool, StateError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.delivered_key(app, event_id));
        Ok(self.query::<i64>(cmd).await? > 0)
    }

    async fn mark_delivered(
        &self,
        app: &str,
        event_id: &str,
        ttl_secs: u64,
    ) -> Result<(), StateError> {
        let tag = inbound_tag(app);
        let ttl = Duration::from_secs(ttl_secs.max(1));
        self.set_px(&["delivered", &tag, event_id], b"1", ttl).await
    }

    async fn ask_all(&self, asks: &[Ask<'_>]) -> Asked {
        match self.inbound(asks).await {
            Ok(told) => Asked { told, failed: None },
            Err(e) => Asked {
                told: Vec::new(),
                failed: Some(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apps_keys_share_its_tag_after_their_kind() {
        let state = super::super::tests::state("p:");
        let sig = [0xab; 32];
        let key = BucketKey {
            route: "r",
            rule: 1,
            per: "team",
            value: "T1",
        };
        let asks = [
            Ask::Replay {
                app: "helpdesk",
                signature: &sig,
                ttl_secs: 300,
            },
            Ask::Delivered {
                app: "helpdesk",
                event_id: "Ev1",
            },
            Ask::Take {
                app: "helpdesk",
                key,
                rate_per_sec: 0.5,
                burst: 3,
            },
        ];
        let (keys, args) = state.inbound_call(&asks);
        let keys: Vec<String> = keys
            .into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                format!("p:replay:{{i:helpdesk}}:{}", "ab".repeat(32)),
                "p:delivered:{i:helpdesk}:Ev1".to_owned(),
                "p:rl:{i:helpdesk}:r:1:team:T1".to_owned(),
            ]
        );
        assert_eq!(args[0], "rdt");
        assert_eq!(args[2], "300000");
        assert_eq!(args[3..], ["0.5", "3"]);
    }
}
