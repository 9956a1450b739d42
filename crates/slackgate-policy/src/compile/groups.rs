//! Groups: a list of user ids (expanded into the routes that name it), or a Slack user
//! group read with a bot's token (`{ usergroup, bot, refresh }`, looked up per request).

use std::sync::Arc;

use marked_yaml::Spanned;

use super::routes::Dim;
use super::{names, shown, Compiler, Groups};
use crate::error::span_pos;
use crate::groups::{UserGroup, UserGroups, MIN_GROUP_REFRESH};
use crate::spec::{GroupSpec, UsergroupSpec};
use crate::yaml::NamedMap;

impl Compiler<'_> {
    /// The list groups (name -> user ids) and the user groups of the policy.
    pub(super) fn groups(&mut self, groups: NamedMap<Spanned<GroupSpec>>) -> (Groups, UserGroups) {
        let mut lists = Groups::new();
        let mut usergroups = UserGroups::new();
        for (name, spec) in groups.0 {
            let start = self.errs.len();
            self.check_name("group", &name);
            match &*spec {
                GroupSpec::Members(members) => {
                    self.group_members(&name, &spec, members);
                    if self.errs.len() == start {
                        lists.insert(
                            name.to_string(),
                            members.iter().map(|m| m.to_string()).collect(),
                        );
                    }
                }
                GroupSpec::Usergroup(ug) => {
                    if let Some(g) = self.usergroup(&name, ug) {
                        if self.errs.len() == start {
                            usergroups.insert(Arc::clone(&g.name), Arc::new(g));
                        }
                    }
                }
            }
        }
        (lists, usergroups)
    }

    fn group_members(
        &mut self,
        name: &Spanned<String>,
        spec: &Spanned<GroupSpec>,
        members: &[Spanned<String>],
    ) {
        if members.is_empty() {
            self.errs.at(
                spec.span(),
                format!("group `{}` is empty", shown(name)),
                "add user ids, or remove the group and its references",
            );
        }
        for m in members {
            if m.starts_with('@') {
                self.errs.at(
                    m.span(),
                    format!(
                        "group `{}` contains a group reference; groups cannot be nested",
                        shown(name)
                    ),
                    "list the user ids directly",
                );
            } else if let Err((problem, fix)) = Dim::Users.check(m) {
                self.errs.at(
                    m.span(),
                    format!("member of group `{}` {problem}", shown(name)),
                    fix,
                );
            }
        }
    }

    fn usergroup(&mut self, name: &Spanned<String>, spec: &UsergroupSpec) -> Option<UserGroup> {
        let UsergroupSpec {
            usergroup,
            bot,
            refresh,
        } = spec;
        let label = shown(name);
        let start = self.errs.len();
        if !slackgate_slack::is_usergroup_id(usergroup) {
            self.errs.at(
                usergroup.span(),
                format!("`usergroup` of group `{label}` is not a Slack user group id"),
                "write the user group's id, e.g. S0123ABCD (starts with S; Slack shows it in the group's URL and in usergroups.list), not its @handle or name",
            );
        }
        if !self.declared.bots.contains(bot.as_str()) {
            let mut bots: Vec<&str> = self.declared.bots.iter().map(String::as_str).collect();
            bots.sort_unstable();
            let bots = names(bots.into_iter());
            self.errs.at(
                bot.span(),
                format!(
                    "group `{label}` names bot `{}`, which is not defined",
                    shown(bot)
                ),
                format!(
                    "use one of the bots under `bots:` ({bots}); its token needs the usergroups:read scope"
                ),
            );
        }
        let refresh = match refresh {
            None => {
                self.errs.at(
                    name.span(),
                    format!("group `{label}` has no `refresh`"),
                    "add `refresh: 5m` (how often its members are read from Slack; Slack allows about 20 usergroups.users.list calls a minute)",
                );
                None
            }
            Some(r) => match crate::units::parse_duration(r) {
                Ok(d) if d < MIN_GROUP_REFRESH => {
                    self.errs.at(
                        r.span(),
                        format!("`refresh` of group `{label}` is shorter than 1s"),
                        "write 1s or more, e.g. 5m: Slack allows about 20 usergroups.users.list calls a minute, and a change of members is also picked up at once from subteam_members_changed events",
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(_) => {
                    self.errs.at(
                        r.span(),
                        format!("`refresh` of group `{label}` is not a duration"),
                        "write a whole number and a unit (ms, s, m, h), e.g. 5m",
                    );
                    None
                }
            },
        };
        if self.errs.len() != start {
            return None;
        }
        Some(UserGroup {
            name: Arc::from(name.as_str()),
            usergroup: Arc::from(usergroup.as_str()),
            bot: Arc::from(bot.as_str()),
            refresh: refresh?,
            defined_at: span_pos(name.span()),
        })
    }
}
