//! Custody capabilities in Redis, so that a response URL or a workflow key minted by one
//! replica works on every replica (`crate::core::held` says what is written):
//!
//! - `cap:<capability>` = the record (its bot, channel, team or execution, Slack's URL or
//!   token, its end), expiring with it; looked up by the capability alone.
//! - `{e:<bot>}:uses:<capability>` = a response URL's uses left, on the bot's slot: the
//!   egress gate spends them in the script that takes from the bot's buckets.
//! - `{e:<bot>}:ended:<execution>` = a function execution whose `complete*` was answered
//!   `ok` on some replica: the gate refuses its workflow keys.

use std::time::Duration;

use slackgate_guard::StateError;

use super::{egress, millis, RedisState};

impl RedisState {
    /// Writes the record of `cap` for `ttl` and, for a response URL, `bot`'s count of its
    /// `uses`: both sent at once (one round trip), on whichever slots they live.
    pub(crate) async fn share_capability(
        &self,
        cap: &str,
        record: &[u8],
        ttl: Duration,
        uses: Option<(&str, u8)>,
    ) -> Result<(), StateError> {
        let px = millis(ttl);
        let mut set = redis::cmd("SET");
        set.arg(self.key(&["cap", cap]))
            .arg(record)
            .arg("PX")
            .arg(px);
        let count = uses.map(|(bot, n)| {
            let mut c = redis::cmd("SET");
            c.arg(self.key(&[&egress::egress_tag(bot), "uses", cap]))
                .arg(n)
                .arg("PX")
                .arg(px);
            c
        });
        let (set, count) = (&set, &count);
        self.bounded(|conn| async move {
            let mut first = conn.clone();
            let mut second = conn;
            let record = set.query_async::<()>(&mut first);
            let count = async {
                match count {
                    Some(c) => c.query_async::<()>(&mut second).await,
                    None => Ok(()),
                }
            };
            futures_util::future::try_join(record, count)
                .await
                .map(|_| ())
        })
        .await
    }

    /// The record of `cap`, if some replica shared it and it has not ended.
    pub(crate) async fn shared_capability(&self, cap: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.get(&["cap", cap]).await
    }

    /// Marks `bot`'s function execution `id` ended, for `ttl` (the life of its tokens).
    pub(crate) async fn end_execution(
        &self,
        bot: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<(), StateError> {
        self.set_px(&[&egress::egress_tag(bot), "ended", id], b"1", ttl)
            .await
    }
}
