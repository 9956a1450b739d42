//! Shared test support: an in-memory secret source and a fixed clock.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slackgate_policy::SecretSource;

/// A secret value planted in the environment and in policies; it must never
/// appear in any error output.
pub const PLANTED: &str = "8f14e45fceea167a5a36dedd4bea2543";

/// 2030-03-17T17:46:40Z.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_900_000_000)
}

/// An in-memory [`SecretSource`].
#[derive(Debug, Default)]
pub struct FakeSecrets {
    pub env: HashMap<String, String>,
    pub files: HashMap<PathBuf, Vec<u8>>,
    /// When set, every env var name is answered with a value derived from it.
    pub any_env: bool,
}

impl FakeSecrets {
    pub fn standard() -> Self {
        let mut s = FakeSecrets::default();
        s.env
            .insert("HELPDESK_SIGNING_SECRET".into(), PLANTED.into());
        s.env.insert("OTHER_SECRET".into(), format!("{PLANTED}\n"));
        s.env.insert("EMPTY_SECRET".into(), " \n".into());
        s.files.insert(
            "helpdesk.secret".into(),
            format!("{PLANTED}\n").into_bytes(),
        );
        s.files.insert("empty.secret".into(), b"\n".to_vec());
        s
    }

    pub fn any() -> Self {
        FakeSecrets {
            any_env: true,
            ..FakeSecrets::default()
        }
    }
}

impl SecretSource for FakeSecrets {
    fn env(&self, name: &str) -> Option<String> {
        if self.any_env {
            return Some(format!("secret-for-{name}"));
        }
        self.env.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}
