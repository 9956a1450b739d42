//! User group (subteam) change events: which user group a verified Events API body says
//! changed, so the gateway can read that group's members from Slack again.
//!
//! Two events name a change of members: `subteam_members_changed` (`event.subteam_id`,
//! with the added and removed users as a delta) and `subteam_updated` (`event.subteam.id`,
//! sent for a change of the group's name or handle, its members, or when it is disabled)
//! (<https://docs.slack.dev/reference/events/subteam_members_changed>,
//! <https://docs.slack.dev/reference/events/subteam_updated>). Only the id is read: the
//! members themselves always come from `usergroups.users.list`, never from an event.

use serde::Deserialize;

/// The `event.type` of a change of a user group's members.
pub const SUBTEAM_MEMBERS_CHANGED: &str = "subteam_members_changed";
/// The `event.type` of a change of a user group (members included).
pub const SUBTEAM_UPDATED: &str = "subteam_updated";

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Option<Event<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    subteam_id: Option<&'a str>,
    #[serde(borrow)]
    subteam: Option<Subteam<'a>>,
}

#[derive(Deserialize)]
struct Subteam<'a> {
    #[serde(borrow)]
    id: Option<&'a str>,
}

/// Whether `event_type` is one of the two events [`changed_usergroup`] reads.
pub fn is_usergroup_change(event_type: &str) -> bool {
    event_type == SUBTEAM_MEMBERS_CHANGED || event_type == SUBTEAM_UPDATED
}

/// Whether `s` is a user group (subteam) id: `S` and then upper-case letters and digits.
pub fn is_usergroup_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b.len() <= 32
        && b[0] == b'S'
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The user group a (verified) Events API body names as changed: `event.subteam_id` of a
/// `subteam_members_changed`, `event.subteam.id` of a `subteam_updated`. `None` for any
/// other body, one that cannot be read, or an id that is not a user group id.
pub fn changed_usergroup(body: &[u8]) -> Option<&str> {
    let event = serde_json::from_slice::<Envelope<'_>>(body).ok()?.event?;
    let id = match event.kind? {
        SUBTEAM_MEMBERS_CHANGED => event.subteam_id?,
        SUBTEAM_UPDATED => event.subteam?.id?,
        _ => return None,
    };
    is_usergroup_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_group_is_read_from_either_event() {
        let members = br#"{"type":"event_callback","event":{"type":"subteam_members_changed","subteam_id":"S0ONCALL","team_id":"T0ACME","added_users":["U0111"],"removed_users":[]}}"#;
        assert_eq!(changed_usergroup(members), Some("S0ONCALL"));
        let updated =
            br#"{"event":{"type":"subteam_updated","subteam":{"id":"S0SRE","users":["U1"]}}}"#;
        assert_eq!(changed_usergroup(updated), Some("S0SRE"));
    }

    #[test]
    fn other_bodies_name_no_group() {
        // The id of the other event's shape does not count.
        let crossed = br#"{"event":{"type":"subteam_members_changed","subteam":{"id":"S0SRE"}}}"#;
        assert_eq!(changed_usergroup(crossed), None);
        let other = br#"{"event":{"type":"app_mention","subteam_id":"S0ONCALL"}}"#;
        assert_eq!(changed_usergroup(other), None);
        let not_an_id = br#"{"event":{"type":"subteam_members_changed","subteam_id":"s0oncall"}}"#;
        assert_eq!(changed_usergroup(not_an_id), None);
        let escaped = br#"{"event":{"type":"subteam_members_changed","subteam_id":"S0\u004fN"}}"#;
        assert_eq!(changed_usergroup(escaped), None);
        assert_eq!(changed_usergroup(b"not json"), None);
        assert_eq!(changed_usergroup(br#"{"event":null}"#), None);
        assert_eq!(changed_usergroup(br#"{"event":{"type":7}}"#), None);
    }

    #[test]
    fn usergroup_ids() {
        assert!(is_usergroup_id("S0ONCALL"));
        assert!(!is_usergroup_id("S"));
        assert!(!is_usergroup_id("U0ONCALL"));
        assert!(!is_usergroup_id("S0oncall"));
        assert!(is_usergroup_change("subteam_updated"));
        assert!(!is_usergroup_change("subteam_self_added"));
    }
}
