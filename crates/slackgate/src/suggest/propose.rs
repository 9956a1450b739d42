//! From the aggregated trail to the suggested policy: the policy as it is, with each
//! bot's `methods`, `channels` and `team` and each route's `allow` lists replaced by the
//! tightest that allow every call and request seen, `mode: enforce`, and comments with
//! the counts and last-seen times; per bot, the minimal scopes as an app-manifest
//! fragment and the granted scopes no call needed.

use std::collections::{BTreeMap, BTreeSet};

use slackgate_slack::{canonical_method, is_privileged_method, METHODS};

use super::trail::{BotSeen, RouteSeen, Seen, Tally, Trail};
use super::yaml::{Entry, Y};

/// `N calls, last TS` for a comment.
fn seen(s: &Seen, what: &str) -> String {
    let unit = if s.count == 1 {
        what.trim_end_matches('s')
    } else {
        what
    };
    format!("{} {unit}, last {}", s.count, s.last)
}

/// Whether the policy's methods rules could take this name as an exact entry. A webhook
/// post (`hooks.<name>`) is governed by the webhook's `bots`, an upload through a held
/// URL (`file_upload`) by its capability: neither is a method to list.
fn listable(method: &str) -> bool {
    if method.starts_with("hooks.") {
        return false;
    }
    method == slackgate_policy::RESPONSE_URL_METHOD
        || (!method.is_empty()
            && method.len() <= 100
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.'))
}

/// Documented, non-privileged methods under `prefix.` (what `prefix.*` allows).
fn family(prefix: &str) -> Vec<&'static str> {
    let dotted = format!("{prefix}.");
    METHODS
        .iter()
        .copied()
        .filter(|m| m.starts_with(&dotted) && !is_privileged_method(m))
        .collect()
}

/// The `methods` entries that allow exactly the methods seen: a family as `prefix.*`
/// only when every documented, non-privileged method of it was seen (the shortest such
/// prefix), every other method by its name (privileged ones always by name, as the
/// gateway requires).
pub(crate) fn method_entries(methods: &Tally) -> Vec<(String, Option<String>)> {
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for (m, s) in methods {
        if covered.contains(m.as_str()) || !listable(m) {
            continue;
        }
        let documented = canonical_method(m) == Some(m.as_str());
        if documented && !is_privileged_method(m) {
            let parts: Vec<&str> = m.split('.').collect();
            let glob = (1..parts.len()).find_map(|k| {
                let prefix = parts[..k].join(".");
                let members = family(&prefix);
                let full = members.len() > 1 && members.iter().all(|x| methods.contains_key(*x));
                full.then_some((prefix, members))
            });
            if let Some((prefix, members)) = glob {
                let calls: u64 = members
                    .iter()
                    .filter_map(|x| methods.get(*x))
                    .map(|s| s.count)
                    .sum();
                let last = members
                    .iter()
                    .filter_map(|x| methods.get(*x))
                    .map(|s| s.last.as_str())
                    .max()
                    .unwrap_or_default();
                covered.extend(members.iter().copied());
                out.push((
                    format!("{prefix}.*"),
                    Some(format!(
                        "every method of the family used ({}): {calls} calls, last {last}",
                        members.len()
                    )),
                ));
                // A write Slack places without a named conversation (`chat.unfurl`) passes
                // only when listed by its exact name.
                for x in members.iter().filter(|x| {
                    slackgate_slack::conversation_use(x)
                        .is_some_and(|u| u.writes == slackgate_slack::Writes::EvenUnnamed)
                }) {
                    if let Some(st) = methods.get(*x) {
                        out.push(((*x).to_owned(), Some(seen(st, "calls"))));
                    }
                }
                continue;
            }
        }
        covered.insert(m);
        out.push((m.clone(), Some(seen(s, "calls"))));
    }
    out
}

fn tally_list(t: &Tally, what: &str) -> Y {
    Y::list(
        t.iter()
            .map(|(k, s)| (k.clone(), Some(seen(s, what))))
            .collect(),
    )
}

/// What the suggestion did to one bot or route, for the summary on stderr.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) bots: Vec<String>,
    pub(crate) routes: Vec<String>,
    /// Bots and routes the trail names that the policy does not have.
    pub(crate) unknown: Vec<String>,
}

/// Rewrites the policy `doc` after `trail`. Bots and routes the trail has nothing for
/// are left as they are.
pub(crate) fn propose(doc: &mut Y, trail: &Trail) -> Changes {
    let mut changes = Changes::default();
    let mut known_bots = BTreeSet::new();
    if let Some(bots) = doc.get_mut("bots").and_then(Y::entries_mut) {
        for entry in bots.iter_mut() {
            known_bots.insert(entry.key.clone());
            if let Some(seen) = trail.bots.get(&entry.key) {
                if seen.calls.count > 0 {
                    bot(entry, seen);
                    changes.bots.push(entry.key.clone());
                }
            }
        }
    }
    let mut known_routes = BTreeSet::new();
    if let Some(routes) = doc.get_mut("routes").and_then(Y::items_mut) {
        for item in routes.iter_mut() {
            let Some(name) = item
                .value
                .get("name")
                .and_then(Y::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            known_routes.insert(name.clone());
            if let Some(seen) = trail.routes.get(&name) {
                route(&mut item.value, seen);
                changes.routes.push(name);
            }
        }
    }
    for b in trail.bots.keys().filter(|b| !known_bots.contains(*b)) {
        changes.unknown.push(format!("bot {b}"));
    }
    for r in trail.routes.keys().filter(|r| !known_routes.contains(*r)) {
        changes.unknown.push(format!("route {r}"));
    }
    changes
}

/// Sets `mode: enforce`, saying what it was.
fn enforce(y: &mut Y) {
    let was = y
        .get("mode")
        .and_then(Y::as_str)
        .unwrap_or("enforce")
        .to_owned();
    let note = (was != "enforce").then(|| format!("was {was}"));
    y.set("mode", Y::s("enforce"), note);
}

/// One bot's entry, rewritten.
fn bot(entry: &mut Entry, s: &BotSeen) {
    let mut head = vec![format!(
        "suggested from {} ({} would-be denials shadowed)",
        seen(&s.calls, "calls"),
        s.shadowed
    )];
    let b = &mut entry.value;
    enforce(b);

    // team: the one team seen, else no pin.
    let teams: Vec<&String> = s.teams.keys().collect();
    match (teams.as_slice(), s.invalid_team.count) {
        ([one], 0) => b.set(
            "team",
            Y::s(one),
            Some(seen(&s.teams[*one], "calls naming it")),
        ),
        ([], 0) => {
            // No call named a team: a pin cannot deny anything seen; keep what was there.
        }
        _ => {
            if b.remove("team") {
                head.push(format!(
                    "team pin removed: calls named {} team(s){}",
                    teams.len(),
                    if s.invalid_team.count > 0 {
                        " (some not Slack ids)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }

    b.set("methods", Y::list(method_entries(&s.methods)), None);
    for (what, st) in &s.refused {
        head.push(format!(
            "refused and not suggested: {what} ({})",
            seen(st, "calls")
        ));
    }

    // channels: those seen, unless a call could not be held to a list.
    let unlistable = s.invalid_channel.count > 0 || !s.unnamed_writes.is_empty();
    if unlistable {
        if b.remove("channels") {
            head.push("channels removed: some calls named no channel or no Slack id".to_owned());
        }
        for (m, st) in &s.unnamed_writes {
            head.push(format!(
                "{m} wrote without naming a channel ({})",
                seen(st, "calls")
            ));
        }
    } else if !s.channels.is_empty() {
        b.set("channels", tally_list(&s.channels, "calls"), None);
    } else if b.remove("channels") {
        head.push("channels removed: no call named a channel".to_owned());
    }

    // deny_args that denied a call seen are dropped; the rest stay.
    if !s.denied_args.is_empty() {
        let kept: Vec<(String, Option<String>)> = b
            .get("deny_args")
            .map(Y::strings)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !s.denied_args.contains_key(*a))
            .map(|a| (a.to_owned(), None))
            .collect();
        for (a, st) in &s.denied_args {
            head.push(format!(
                "deny_args {a} dropped: calls sent it ({})",
                seen(st, "calls")
            ));
        }
        if kept.is_empty() {
            b.remove("deny_args");
        } else {
            b.set("deny_args", Y::list(kept), None);
        }
    }
    if s.reply_scope.count > 0 && b.remove("reply_scope") {
        head.push(format!(
            "reply_scope removed: it would have denied {}",
            seen(&s.reply_scope, "calls")
        ));
    }
    for (rule, st) in &s.rate_limited {
        head.push(format!(
            "over {rule}: {} (kept: review the rate)",
            seen(st, "calls")
        ));
    }
    if let Some(first) = b.entries_mut().and_then(|e| e.first_mut()) {
        let mut before = head;
        before.append(&mut first.before);
        first.before = before;
    }
}

/// Comment lines for a route dimension that is left as it was.
fn route(r: &mut Y, s: &RouteSeen) {
    let mut head = vec![format!(
        "allow suggested from {} ({} would-be denials shadowed)",
        seen(&s.requests, "requests"),
        s.shadowed
    )];
    enforce(r);
    if r.remove("allow_unverified_shadow") {
        head.push("allow_unverified_shadow removed: it applies to shadow mode only".to_owned());
    }
    let old_allow = r.get("allow").cloned().unwrap_or(Y::Map(Vec::new()));
    let mut allow = Y::Map(Vec::new());
    let denied_by = |dim: &str| s.shadow_rules.get(&format!("allow.{dim}"));
    // Identity dimensions seen on every request.
    if s.no_team.count == 0 && !s.teams.is_empty() {
        allow.set("teams", tally_list(&s.teams, "requests"), None);
    } else if s.no_team.count > 0 {
        head.push(format!(
            "teams not restricted: {} without a team id",
            seen(&s.no_team, "requests")
        ));
    }
    if s.no_channel.count == 0 && !s.channels.is_empty() {
        allow.set("channels", tally_list(&s.channels, "requests"), None);
    } else if s.no_channel.count > 0 {
        head.push(format!(
            "channels not restricted: {} without a channel id",
            seen(&s.no_channel, "requests")
        ));
    }
    // Kind dimensions: those seen, else the list as it was (nothing contradicts it).
    for (dim, t) in [("events", &s.events), ("commands", &s.commands)] {
        if !t.is_empty() {
            allow.set(dim, tally_list(t, "requests"), None);
        } else if let Some(v) = old_allow.get(dim) {
            allow.set(dim, v.clone(), Some("none seen; kept as it was".to_owned()));
        }
    }
    // actions: those seen, when every request they apply to named one.
    // (A record without `action_id`, from before the audit had it, keeps the list as
    // written.)
    let mut kept = vec!["enterprises", "users"];
    if !s.actions.is_empty() && s.no_action.count == 0 {
        allow.set("actions", tally_list(&s.actions, "requests"), None);
    } else {
        kept.push("actions");
    }
    // What the audit does not record (users, enterprises): kept, unless it would have
    // denied a request seen.
    for dim in kept {
        match (old_allow.get(dim), denied_by(dim)) {
            (Some(_), Some(st)) => head.push(format!(
                "allow.{dim} removed: it would have denied {}",
                seen(st, "requests")
            )),
            (Some(v), None) => allow.set(
                dim,
                v.clone(),
                Some("kept as it was: the trail does not say".to_owned()),
            ),
            (None, _) => {}
        }
    }
    for (rule, st) in &s.shadow_rules {
        if !rule.starts_with("allow.") {
            head.push(format!(
                "{rule} would have denied {} (kept)",
                seen(st, "requests")
            ));
        }
    }
    if allow.entries().is_empty() {
        r.remove("allow");
    } else {
        r.set("allow", allow, None);
    }
    r.note("allow", head.clone());
    if r.get("allow").is_none() {
        r.note("mode", head);
    }
}

/// One bot's minimal scopes and the granted scopes its calls did not need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scopes {
    pub(crate) minimal: BTreeSet<String>,
    /// `None` when no record carried the grant (`scopes_granted`).
    pub(crate) granted: Option<BTreeSet<String>>,
    pub(crate) unused: Vec<String>,
}

/// Per call, the scopes it accepted that the token held (every one of them: the one
/// that served depends on the conversation's type, which the audit does not say); when
/// the token held none of them, or the grant is unknown, every accepted scope.
pub(crate) fn scopes(s: &BotSeen) -> Scopes {
    let granted: Option<BTreeSet<String>> = s.scopes_granted.as_ref().map(|(_, g)| {
        g.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let mut minimal = BTreeSet::new();
    for needed in s.scopes_needed.keys() {
        let accepted: Vec<&str> = needed.split(',').filter(|x| !x.is_empty()).collect();
        let held: Vec<&str> = match &granted {
            Some(g) => accepted
                .iter()
                .copied()
                .filter(|a| g.contains(*a))
                .collect(),
            None => Vec::new(),
        };
        let take = if held.is_empty() { accepted } else { held };
        minimal.extend(take.into_iter().map(str::to_owned));
    }
    let unused = granted
        .as_ref()
        .map(|g| g.difference(&minimal).cloned().collect())
        .unwrap_or_default();
    Scopes {
        minimal,
        granted,
        unused,
    }
}

/// The app-manifest fragments, as comment lines: per bot `oauth_config.scopes.bot`, and
/// the granted scopes to remove.
pub(crate) fn manifest_comment(trail: &Trail) -> String {
    let mut out = String::new();
    let per_bot: BTreeMap<&String, Scopes> = trail
        .bots
        .iter()
        .filter(|(_, b)| !b.scopes_needed.is_empty() || b.scopes_granted.is_some())
        .map(|(n, b)| (n, scopes(b)))
        .collect();
    if per_bot.is_empty() {
        return out;
    }
    out.push_str("\n# === Minimal bot scopes, from Slack's x-accepted-oauth-scopes (audit scopes_needed) ===\n");
    out.push_str("# Per bot, the app manifest's scopes (uncomment into the app's manifest, reinstall the app):\n");
    for (name, s) in per_bot {
        out.push_str(&format!("#\n# bot {name}:\n"));
        out.push_str("# oauth_config:\n#   scopes:\n#     bot:\n");
        for m in &s.minimal {
            out.push_str(&format!("#       - {m}\n"));
        }
        match &s.granted {
            Some(_) if s.unused.is_empty() => {
                out.push_str("# granted scopes to remove: none\n");
            }
            Some(_) => {
                out.push_str(&format!("# granted scopes to remove: {}\n", s.unused.join(", ")));
            }
            None => out.push_str(
                "# granted scopes to remove: unknown (no record carries scopes_granted: include the trail since the gateway started)\n",
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(names: &[&str]) -> Tally {
        names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    Seen {
                        count: 1,
                        last: "2026-12-01T00:00:00.000000Z".into(),
                    },
                )
            })
            .collect()
    }

    fn names(t: &Tally) -> Vec<String> {
        method_entries(t).into_iter().map(|(m, _)| m).collect()
    }

    #[test]
    fn a_family_becomes_a_glob_only_when_fully_used() {
        assert_eq!(
            names(&tally(&["chat.postMessage", "reactions.add"])),
            ["chat.postMessage", "reactions.add"]
        );
        let reactions = family("reactions");
        assert!(reactions.len() > 1);
        let mut all: Vec<&str> = reactions.clone();
        all.push("chat.postMessage");
        assert_eq!(names(&tally(&all)), ["chat.postMessage", "reactions.*"]);
        // Privileged methods are always listed by name, never folded into a glob.
        let got = names(&tally(&["admin.users.list", "auth.revoke", "x.custom"]));
        assert_eq!(got, ["admin.users.list", "auth.revoke", "x.custom"]);
        // Posts that are no Web API method: a webhook's, an upload's; a response URL's is.
        let got = names(&tally(&["hooks.alerts", "file_upload", "response_url"]));
        assert_eq!(got, ["response_url"]);
    }

    #[test]
    fn minimal_scopes_keep_what_the_token_held_of_each_calls_accepted_scopes() {
        let mut b = BotSeen::default();
        for needed in [
            "chat:write",
            "channels:read,groups:read,im:read,mpim:read",
            "",
        ] {
            b.scopes_needed.insert(needed.to_owned(), Seen::default());
        }
        b.scopes_granted = Some((
            "t".into(),
            "chat:write,channels:read,reactions:write,users:read".into(),
        ));
        let s = scopes(&b);
        assert_eq!(
            s.minimal.iter().map(String::as_str).collect::<Vec<_>>(),
            ["channels:read", "chat:write"]
        );
        assert_eq!(s.unused, ["reactions:write", "users:read"]);
        b.scopes_granted = None;
        let s = scopes(&b);
        assert_eq!(
            s.minimal.len(),
            5,
            "without the grant, every accepted scope"
        );
        assert!(s.unused.is_empty() && s.granted.is_none());
    }
}
