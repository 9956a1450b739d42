//! Pieces of policy YAML that many tests share, so each test's policy names only what
//! is its own. Each piece is whole lines, ending in a newline.

use std::fmt::Display;

/// App `helpdesk` (`api_app_id: A0HELPDESK`) with one signing secret, `current`, read
/// from env `secret_env`: the `apps:` section.
pub fn helpdesk_app(secret_env: &str) -> String {
    format!(
        "apps:\n  helpdesk:\n    api_app_id: A0HELPDESK\n    signing_secrets:\n      - {{ id: current, env: {secret_env} }}\n"
    )
}

/// One upstream, `name`, with one target: the `upstreams:` section.
pub fn upstream(name: &str, target: impl Display) -> String {
    format!("upstreams:\n  {name}: {{ targets: [\"{target}\"] }}\n")
}

/// [`helpdesk_app`] and [`upstream`]: an inbound policy's head, before `routes:`.
pub fn helpdesk_to(secret_env: &str, upstream_name: &str, target: impl Display) -> String {
    format!(
        "{}{}",
        helpdesk_app(secret_env),
        upstream(upstream_name, target)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_the_yaml_they_stand_for() {
        assert_eq!(
            helpdesk_to("HELPDESK_SECRET", "bot", "127.0.0.1:9"),
            r#"apps:
  helpdesk:
    api_app_id: A0HELPDESK
    signing_secrets:
      - { id: current, env: HELPDESK_SECRET }
upstreams:
  bot: { targets: ["127.0.0.1:9"] }
"#
        );
    }
}
