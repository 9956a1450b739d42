//! The Slack request fixtures in `testdata/slack/` (see its README for what they are).

use std::path::{Path, PathBuf};

/// The content type a Slack body is sent with: JSON when it starts with `{`, else a form.
pub fn content_type_for(body: &[u8]) -> &'static str {
    if body.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    }
}

/// The directory holding the fixtures: `testdata/slack/` at the repository root.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/slack")
}

/// The bytes of fixture `name` (for example `event_app_mention.json`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Fixture `name` with every `from` replaced by `to` (another user, team or channel).
pub fn fixture_with(name: &str, from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(fixture(name))
        .unwrap_or_else(|e| panic!("fixture {name} is not UTF-8: {e}"))
        .replace(from, to)
        .into_bytes()
}

/// The fixtures that are not one Slack HTTP request: the signature test vector and the
/// Socket Mode frames.
pub const NOT_REQUESTS: [&str; 2] = ["signature_vector.form", "socket_mode.json"];

/// Every request fixture as (file name, content type, body), sorted by name; those of
/// [`NOT_REQUESTS`] are left out.
pub fn all_fixtures() -> Vec<(String, &'static str, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !NOT_REQUESTS.contains(&n.as_str()))
        .filter(|n| n.ends_with(".json") || n.ends_with(".form"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let body = fixture(&name);
            (name, content_type_for(&body), body)
        })
        .collect()
}
