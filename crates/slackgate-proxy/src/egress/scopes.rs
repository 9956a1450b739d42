//! Minimal scopes made measurable: per bot, the scopes its token was granted
//! (`x-oauth-scopes` on Slack's answers) and those its calls needed
//! (`x-accepted-oauth-scopes`: the scopes the method accepts, of which the token must
//! hold one). A granted scope that no call needed so far is a candidate to remove from
//! the app's manifest.
//!
//! "Needed" errs on the side of keeping scopes: when a method accepts several scopes
//! (`conversations.info` accepts `channels:read`, `groups:read`, `im:read` and
//! `mpim:read`), every accepted scope the token holds counts as needed, so a scope is
//! reported unused only when no call could have depended on it.

use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};

/// What one bot's calls showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotScopes {
    /// The scopes on the last answer's `x-oauth-scopes`.
    pub granted: BTreeSet<String>,
    /// The granted scopes some call accepted.
    pub needed: BTreeSet<String>,
    /// Answers that carried scope headers.
    pub calls: u64,
    /// The last `x-oauth-scopes` as sent: an equal header (the usual case) is not parsed
    /// again.
    granted_raw: Vec<u8>,
}

impl BotScopes {
    /// Granted scopes no call needed, sorted.
    pub fn unused(&self) -> Vec<&str> {
        self.granted
            .difference(&self.needed)
            .map(String::as_str)
            .collect()
    }
}

/// The scope use of every bot, kept across policy reloads.
#[derive(Debug, Default)]
pub struct ScopeLedger {
    bots: Mutex<BTreeMap<String, BotScopes>>,
}

/// A comma-separated scope list, trimmed, empty entries dropped. Only scope-shaped
/// entries are kept (`chat:write`, `channels:read`, `users.profile:read`, ...).
fn scope_list(header: &[u8]) -> impl Iterator<Item = &str> {
    header
        .split(|&b| b == b',')
        .filter_map(|s| std::str::from_utf8(s).ok())
        .map(str::trim)
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
        })
}

/// The scopes of `accepted` that `granted` holds: those the call needed.
pub(crate) fn accepted_granted(granted: &[u8], accepted: Option<&[u8]>) -> Vec<String> {
    let granted: BTreeSet<&str> = scope_list(granted).collect();
    let mut needed: Vec<String> = accepted
        .into_iter()
        .flat_map(scope_list)
        .filter(|s| granted.contains(s))
        .map(str::to_owned)
        .collect();
    needed.sort();
    needed.dedup();
    needed
}

impl ScopeLedger {
    /// Takes what every replica's calls showed of `bot` (the shared state): their last
    /// grant, the union of what they needed, their count of answers. Returns how many
    /// granted scopes are unused.
    pub(crate) fn adopt(&self, bot: &str, view: &crate::core::redis::SharedScopes) -> usize {
        let mut bots = self.bots.lock();
        let entry = bots.entry(bot.to_owned()).or_default();
        if entry.granted_raw != view.granted {
            entry.granted = scope_list(&view.granted).map(str::to_owned).collect();
            entry.granted_raw = view.granted.clone();
        }
        for s in &view.needed {
            if entry.granted.contains(s) {
                entry.needed.insert(s.clone());
            }
        }
        entry.calls = entry.calls.max(view.calls);
        entry.granted.difference(&entry.needed).count()
    }

    /// Notes the scope headers of one answer to `bot`'s call and returns how many of its
    /// granted scopes are unused so far (0 for a bot not seen yet). Either header may be
    /// absent (Slack omits them on some errors); an answer without `x-oauth-scopes`
    /// changes nothing.
    pub fn note(&self, bot: &str, granted: Option<&[u8]>, accepted: Option<&[u8]>) -> usize {
        self.note_grant(bot, granted, accepted).0
    }

    /// [`Self::note`], and whether the answer's `x-oauth-scopes` differs from the last one
    /// noted for `bot` (or is its first): the audit writes the grant only then.
    pub fn note_grant(
        &self,
        bot: &str,
        granted: Option<&[u8]>,
        accepted: Option<&[u8]>,
    ) -> (usize, bool) {
        let mut bots = self.bots.lock();
        let Some(granted) = granted else {
            return (bots.get(bot).map_or(0, |s| s.unused().len()), false);
        };
        let first = !bots.contains_key(bot);
        if first {
            bots.insert(bot.to_owned(), BotScopes::default());
        }
        let Some(entry) = bots.get_mut(bot) else {
            return (0, false);
        };
        entry.calls += 1;
        let changed = first || entry.granted_raw != granted;
        if entry.granted_raw != granted {
            entry.granted = scope_list(granted).map(str::to_owned).collect();
            entry.granted_raw = granted.to_vec();
        }
        for s in accepted.into_iter().flat_map(scope_list) {
            if entry.granted.contains(s) && !entry.needed.contains(s) {
                entry.needed.insert(s.to_owned());
            }
        }
        (entry.granted.difference(&entry.needed).count(), changed)
    }

    /// What `bot`'s calls showed so far.
    pub fn get(&self, bot: &str) -> Option<BotScopes> {
        let bots = self.bots.lock();
        bots.get(bot).cloned()
    }

    /// Every bot seen, by name.
    pub fn all(&self) -> BTreeMap<String, BotScopes> {
        self.bots.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_scopes_are_granted_minus_accepted() {
        let l = ScopeLedger::default();
        let granted = b"chat:write,channels:read, reactions:write,users:read";
        l.note("b", Some(granted), Some(b"chat:write"));
        l.note(
            "b",
            Some(granted),
            Some(b"channels:read,groups:read,im:read"),
        );
        l.note("b", Some(granted), None);
        let s = l.get("b").unwrap_or_default();
        assert_eq!(s.unused(), ["reactions:write", "users:read"]);
        // A new grant replaces the old one.
        assert_eq!(l.note("b", Some(b"chat:write,users:read"), None), 1);
        assert_eq!(l.note("b", Some(granted), None), 2);
        assert_eq!(s.calls, 3);
        assert_eq!(l.get("b").unwrap_or_default().calls, 5);
        // An answer without the granted header changes nothing.
        assert_eq!(l.note("b", None, Some(b"users:read")), 2);
        assert_eq!(l.note("other", None, None), 0);
        assert_eq!(l.get("b").unwrap_or_default().unused().len(), 2);
        assert!(l.get("other").is_none());
    }

    #[test]
    fn a_grant_is_new_on_the_first_answer_and_on_a_change() {
        let l = ScopeLedger::default();
        assert_eq!(l.note_grant("b", Some(b"a:b"), None), (1, true));
        assert_eq!(l.note_grant("b", Some(b"a:b"), Some(b"a:b")), (0, false));
        assert_eq!(l.note_grant("b", Some(b"a:b,c:d"), None), (1, true));
        assert_eq!(l.note_grant("b", None, None), (1, false));
        assert_eq!(l.note_grant("other", Some(b"a:b,c:d"), None), (2, true));
    }

    #[test]
    fn odd_entries_are_dropped() {
        let got: Vec<&str> = scope_list(b" a:b ,,c d, \xff,e.f:g").collect();
        assert_eq!(got, ["a:b", "e.f:g"]);
    }
}
