//! Where signing secrets come from. A policy only names them (an env var or a
//! file, e.g. a Kubernetes Secret mount); the values are read on every load.

use std::path::{Path, PathBuf};

/// Reads secret values for a policy load. Tests substitute an in-memory source.
pub trait SecretSource {
    /// The value of environment variable `name`, or `None` when it is not set.
    fn env(&self, name: &str) -> Option<String>;
    /// The bytes of the file at `path`.
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>>;
}

/// The process environment and the file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSecrets;

impl SecretSource for SystemSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Where a secret was read from: names only, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable name.
    Env(String),
    /// A file path (resolved against the policy file's directory).
    File(PathBuf),
}

/// True for a plausible environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for a value shaped like a credential rather than a name: a Slack token
/// (`xox…`), or a long run of letters and digits (hex or base64 style) without
/// the `_`/`-` separators that names use. Such values are never echoed.
pub(crate) fn looks_secret(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("xox")
        || (s.len() >= 20
            && !s.contains(['_', '-', '.', '/', ' '])
            && s.bytes().filter(u8::is_ascii_digit).count() >= 5)
}

/// Trims ASCII whitespace at both ends: secret files from Kubernetes or
/// `echo` usually end with a newline that is not part of the secret.
pub(crate) fn trim_secret(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// A short description of an I/O error that names no file content.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_string(),
        kind => format!("{kind}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(is_env_name("HELPDESK_SIGNING_SECRET"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("8f14e45fceea167a5a36dedd4bea2543"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name("$VAR"));
    }

    #[test]
    fn secret_shapes() {
        assert!(looks_secret("8f14e45fceea167a5a36dedd4bea2543"));
        assert!(looks_secret("ABCDEF0123456789ABCDEF0123456789"));
        assert!(looks_secret("xoxb-123-456-abc"));
        assert!(!looks_secret("HELPDESK_SIGNING_SECRET"));
        assert!(!looks_secret("SLACK_SIGNING_SECRET_20240101_V2"));
        assert!(!looks_secret("helpdesk2"));
        assert!(!looks_secret("/run/secrets/helpdesk-2024"));
    }

    #[test]
    fn trims() {
        assert_eq!(trim_secret(b"abc\n"), b"abc");
        assert_eq!(trim_secret(b" \r\n"), b"");
    }

    #[test]
    fn system_source_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, b"x\n").unwrap();
        assert_eq!(SystemSecrets.read_file(&p).unwrap(), b"x\n");
        assert!(SystemSecrets
            .read_file(&dir.path().join("missing"))
            .is_err());
    }
}
