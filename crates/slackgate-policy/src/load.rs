//! The one loader: [`load`] is what `run`, every reload, `check`, `explain` and `test`
//! call, so a config that one of them accepts is accepted by all of them, with the same
//! errors when it is not.
//!
//! ```text
//! file ──(top-level keys)──> server config ──> Config ──> policy file ──> Policy
//!                       └──> policy alone ────────────────────────────> Policy
//! Config + secrets -> the state key
//! Config + Policy  -> where they meet (`joins.rs`): webhook URLs under egress.hooks_base, rotating bots'
//!                     state, user groups' egress
//! -> Loaded, or every error of every step (file:line:column and the fix, never a secret)
//! ```
//!
//! The steps that can run side by side all run before anything is reported: a broken
//! state key does not hide a broken policy, and two broken joins are both listed. Only a
//! config that does not load stops the rest, since the policy's path comes from it.

use std::path::Path;
use std::time::SystemTime;

use crate::compile::{compile_config, read_state_key, POLICY_KEYS};
use crate::config::{Config, Egress, Limits, StateKey, CONFIG_KEYS};
use crate::error::{LoadError, LoadErrors};
use crate::joins::JOINS;
use crate::model::Policy;
use crate::secrets::SecretSource;

/// A config and policy that passed every check: what the gateway serves with.
#[derive(Debug)]
pub struct Loaded {
    /// The server config; `None` when a policy file was loaded alone (`check`, `explain`
    /// and `test` accept one; `run` does not).
    pub config: Option<Config>,
    /// The compiled policy, its secrets read.
    pub policy: Policy,
    /// The key `state.encryption_key` names, read and checked; `None` when the config
    /// names none.
    pub state_key: Option<StateKey>,
}

impl Loaded {
    /// Finishes a load from a config and a policy compiled elsewhere (from text, in
    /// tests and tools): reads the state key and runs every check where the two meet,
    /// exactly as [`load`] does.
    pub fn join(
        config: Option<Config>,
        policy: Policy,
        secrets: &dyn SecretSource,
    ) -> Result<Loaded, LoadErrors> {
        finish(config, Ok(policy), secrets)
    }

    /// The server limits: the config's, or the defaults for a policy alone.
    pub fn limits(&self) -> Limits {
        self.config
            .as_ref()
            .map_or_else(Limits::default, |c| c.limits.clone())
    }

    /// The egress door of the config, if it has one.
    pub fn egress(&self) -> Option<&Egress> {
        self.config.as_ref().and_then(|c| c.egress.as_ref())
    }

    /// What loads but does something an operator may not expect; printed by `check` and
    /// logged by `run`. Never contains a secret.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(config) = &self.config {
            if config.egress.is_none() && !self.policy.bots.is_empty() {
                notes.push(format!(
                    "the policy has bots but {} has no `egress:` section; `run` opens no egress door",
                    config.source.display()
                ));
            }
        }
        notes
    }
}

/// Loads `path` as the gateway serves it: a server config with the policy it names (or,
/// when the file's top-level keys are a policy's, that policy alone), secrets read
/// through `secrets` at `now`, the state key read, and every check where config and
/// policy meet run. Relative paths are resolved against the file that names them.
///
/// Every error of every step is returned, config-file errors first, each group in file
/// order.
pub fn load(
    path: &Path,
    secrets: &dyn SecretSource,
    now: SystemTime,
) -> Result<Loaded, LoadErrors> {
    let text = crate::read_text(path)?;
    if looks_like_policy(&text) {
        let policy = crate::compile::compile_policy(path, &text, secrets, now)?;
        return Ok(Loaded {
            config: None,
            policy,
            state_key: None,
        });
    }
    let config = compile_config(path, &text)?;
    let policy = crate::compile::load_policy(&config.policy_path, secrets, now);
    finish(Some(config), policy, secrets)
}

/// The steps after the config loaded: state key, policy, joins; all errors collected.
fn finish(
    config: Option<Config>,
    policy: Result<Policy, LoadErrors>,
    secrets: &dyn SecretSource,
) -> Result<Loaded, LoadErrors> {
    let Some(config) = config else {
        return policy.map(|policy| Loaded {
            config: None,
            policy,
            state_key: None,
        });
    };
    let mut errors: Vec<LoadError> = Vec::new();
    let state_key = read_state_key(&config, secrets).unwrap_or_else(|e| {
        errors.extend(e.0);
        None
    });
    let policy = match policy {
        Ok(p) => {
            for join in JOINS {
                if let Err(e) = join(&config, &p) {
                    errors.extend(e.0);
                }
            }
            Some(p)
        }
        Err(e) => {
            errors.extend(e.0);
            None
        }
    };
    match policy {
        Some(policy) if errors.is_empty() => Ok(Loaded {
            config: Some(config),
            policy,
            state_key,
        }),
        _ => {
            // Stable: errors at one position keep the order their steps found them in.
            errors.sort_by(|a, b| {
                (a.file != config.source, &a.file, a.line, a.column).cmp(&(
                    b.file != config.source,
                    &b.file,
                    b.line,
                    b.column,
                ))
            });
            errors.dedup();
            if errors.is_empty() {
                // Unreachable by construction (a failed step carries errors); fail closed.
                errors.push(LoadError::whole_file(
                    &config.source,
                    "the config and policy could not be validated",
                    "check both files against the documented schema",
                ));
            }
            Err(LoadErrors(errors))
        }
    }
}

/// Whether a YAML text is a policy rather than a server config: judged by its top-level
/// keys (`version`, `apps`, `routes`, ... versus `listen`, `policy`, ...), without parsing
/// values, so a broken file is still routed to the compiler that reports its errors. One
/// config key makes it a config.
pub fn looks_like_policy(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut policy_keys = 0;
    for line in text.lines() {
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if CONFIG_KEYS.contains(&key) {
            return false;
        }
        if POLICY_KEYS.contains(&key) {
            policy_keys += 1;
        }
    }
    policy_keys > 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_told_from_a_config_by_its_top_level_keys() {
        assert!(looks_like_policy("version: 1\nroutes: []\n"));
        assert!(!looks_like_policy("listen: []\npolicy: p.yaml\n"));
        assert!(!looks_like_policy("# only a comment\n"));
    }

    #[test]
    fn every_config_key_marks_a_config() {
        // `state:` was once missing from a second copy of this list in the binary.
        for key in CONFIG_KEYS {
            assert!(
                !looks_like_policy(&format!("{key}: x\nroutes: []\n")),
                "{key}"
            );
        }
        for key in POLICY_KEYS {
            assert!(looks_like_policy(&format!("{key}: x\n")), "{key}");
        }
    }
}
