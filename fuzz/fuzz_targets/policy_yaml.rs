//! `compile_policy` and `compile_config` on arbitrary UTF-8 text, with an in-memory
//! secret source. Neither may panic, and:
//! - a value the secret source returns never appears in an error or in the `Debug` of a
//!   compiled policy, unless the text itself contains it;
//! - a secret-shaped value pasted into the text is never echoed as a token of its own
//!   (it may appear inside a longer name the operator chose, e.g. `bot_<hex>`);
//! - an `Err` is never empty, and every positioned error points inside the file;
//! - line endings (`\r\n`, lone `\r`, `\n`) never change the outcome or positions.

#![no_main]

use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use slackgate_policy::{compile_config, compile_policy, LoadErrors, SecretSource};

/// Returned for environment variables; shaped like a Slack signing secret.
const ENV_SECRET: &str = "5c1a4b7e9d20f3a68b4c0e2d7f9a1b3c";
/// Returned for files (followed by a newline, as Kubernetes mounts often are).
const FILE_SECRET: &str = "Zq81x7LmN02pW4rT9vB6yK3sD5fG8hJ1";
/// Returned for `SHORT*` variables: a value that does not look like a secret.
const SHORT_SECRET: &str = "s3cr3t!#";
const NOW: u64 = 1_800_000_000;

/// Answers by name, so the text picks the case: `MISSING*` unset, `EMPTY*` empty,
/// `BLANK*` whitespace, `SHORT*` a short value, anything else the padded env secret.
/// Files: `missing`, `denied`, `dir`, `empty`, `binary` in the path pick an error or an
/// odd content; anything else is the file secret.
struct PlantedSecrets;

impl SecretSource for PlantedSecrets {
    fn env(&self, name: &str) -> Option<String> {
        if name.starts_with("MISSING") {
            None
        } else if name.starts_with("EMPTY") {
            Some(String::new())
        } else if name.starts_with("BLANK") {
            Some(" \r\n".to_owned())
        } else if name.starts_with("SHORT") {
            Some(SHORT_SECRET.to_owned())
        } else {
            Some(format!(" {ENV_SECRET}\n"))
        }
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let p = path.to_string_lossy();
        if p.contains("missing") {
            Err(io::ErrorKind::NotFound.into())
        } else if p.contains("denied") {
            Err(io::ErrorKind::PermissionDenied.into())
        } else if p.contains("dir") {
            Err(io::ErrorKind::IsADirectory.into())
        } else if p.contains("empty") {
            Ok(b"\n".to_vec())
        } else if p.contains("binary") {
            let mut v = vec![0xff, 0xfe, 0x00];
            v.extend_from_slice(FILE_SECRET.as_bytes());
            Ok(v)
        } else {
            Ok(format!("{FILE_SECRET}\n").into_bytes())
        }
    }
}

/// The same rule as the policy crate's `looks_secret`, restated so a change there is
/// caught here rather than silently weakening this check.
fn looks_secret(s: &str) -> bool {
    s.starts_with("xox")
        || (s.len() >= 20
            && !s.contains(['_', '-', '.', '/', ' '])
            && s.bytes().filter(u8::is_ascii_digit).count() >= 5)
}

fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_-./".contains(&c)
}

/// Panics when `needle` occurs in `out` as (part of) a secret-shaped token.
fn assert_not_echoed(out: &str, needle: &str, what: &str) {
    let bytes = out.as_bytes();
    let mut from = 0;
    while let Some(i) = out[from..].find(needle).map(|i| i + from) {
        let mut start = i;
        while start > 0 && token_char(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = i + needle.len();
        while end < bytes.len() && token_char(bytes[end]) {
            end += 1;
        }
        let token = &out[start..end];
        assert!(
            !looks_secret(token),
            "{what} echoed a pasted secret as `{token}`:\n{out}"
        );
        from = i + 1;
    }
}

/// Lines as YAML counts them (`\r\n`, `\n` and a lone `\r` end a line), plus one for
/// the end-of-stream position the parser reports after a final line break.
fn yaml_line_bound(text: &str) -> usize {
    text.replace("\r\n", "\n").matches(['\r', '\n']).count() + 2
}

fn check_errors(text: &str, errs: &LoadErrors, what: &str) {
    assert!(!errs.is_empty(), "{what}: an Err with no errors");
    let bound = yaml_line_bound(text);
    for e in errs.iter() {
        assert!(
            e.line <= bound,
            "{what}: error past the end of the text: {e}"
        );
    }
}

/// What a load said, positions included, for comparing two spellings of one file.
fn outcome<T>(r: &Result<T, LoadErrors>) -> Option<Vec<(usize, usize, String)>> {
    r.as_ref().err().map(|errs| {
        errs.iter()
            .map(|e| (e.line, e.column, e.message.clone()))
            .collect()
    })
}

fn check_output(text: &str, out: &str, what: &str) {
    for secret in [ENV_SECRET, FILE_SECRET, SHORT_SECRET] {
        if !text.contains(secret) {
            assert!(
                !out.contains(secret),
                "{what} leaked a value read from the secret source:\n{out}"
            );
        }
    }
    for secret in [ENV_SECRET, FILE_SECRET] {
        assert_not_echoed(out, secret, what);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let policy = compile_policy(Path::new("policy.yaml"), text, &PlantedSecrets, now);
    match &policy {
        Ok(policy) => check_output(text, &format!("{policy:?}"), "policy Debug"),
        Err(errs) => {
            check_errors(text, errs, "policy");
            check_output(text, &errs.to_string(), "policy errors");
        }
    }
    let config = compile_config(Path::new("config.yaml"), text);
    match &config {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(errs) => {
            check_errors(text, errs, "config");
            check_output(text, &errs.to_string(), "config errors");
        }
    }

    // YAML reads `\r\n`, `\r` and `\n` alike (line breaks in scalars are normalized
    // too), so the line endings a file was saved with never change what it means.
    if text.contains('\r') {
        let unix = text.replace("\r\n", "\n").replace('\r', "\n");
        let again = compile_policy(Path::new("policy.yaml"), &unix, &PlantedSecrets, now);
        assert_eq!(
            outcome(&policy),
            outcome(&again),
            "policy: line endings changed the outcome"
        );
        let again = compile_config(Path::new("config.yaml"), &unix);
        assert_eq!(
            outcome(&config),
            outcome(&again),
            "config: line endings changed the outcome"
        );
    }
});
