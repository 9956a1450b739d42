//! YAML front end shared by the config and policy loaders.
//!
//! `marked-yaml` parses the text into position-carrying nodes; serde then
//! deserializes the nodes into the raw `*Spec` structs. Serde stops at the first
//! error, so when the whole document fails we deserialize it again piece by
//! piece (each top-level key, each app, each route...) to report every
//! structural error at once, each at its own position.

use std::fmt;
use std::marker::PhantomData;

use marked_yaml::{LoadError as YamlLoadError, LoaderOptions, Node, Spanned};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::error::Errors;

/// Keys whose presence in a secret reference means somebody pasted a secret.
pub(crate) const LITERAL_SECRET_KEYS: &[&str] = &[
    "secret",
    "value",
    "signing_secret",
    "token",
    "password",
    "key",
];

// === parse ===

/// Parses `text` into nodes. Duplicate keys are errors: YAML would otherwise
/// keep only the last one, silently dropping the first (for example a route's
/// first `allow`). A byte order mark is skipped; a second document (`---`), a YAML
/// syntax error, an anchor or a tag is recorded in `errs` with its position and fix,
/// and gives `None`.
pub fn parse(text: &str, errs: &mut Errors) -> Option<Node> {
    // Editors on Windows may save a byte order mark; it is not part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(line) = second_document_line(text) {
        errs.at_mark(
            Some(&marked_yaml::Marker::new(0, 0, line, 1)),
            "a second YAML document starts here; only one document per file is read",
            "remove this `---` line and merge the documents, or split them into separate files",
        );
        return None;
    }
    let opts = LoaderOptions::default().error_on_duplicate_keys(true);
    match marked_yaml::parse_yaml_with_options(0, text, opts) {
        Ok(node) => Some(node),
        Err(e) => {
            report_yaml_error(&e, errs);
            None
        }
    }
}

/// The 1-based line of a `---` (or `...`) document marker that follows content,
/// which would start a second document that the loader silently ignores.
fn second_document_line(text: &str) -> Option<usize> {
    let mut seen_content = false;
    for (i, line) in yaml_lines(text).enumerate() {
        let marker = line.trim_end();
        let is_marker = marker == "---"
            || marker == "..."
            || marker.starts_with("--- ")
            || marker.starts_with("---\t");
        if is_marker {
            if seen_content {
                return Some(i + 1);
            }
            continue;
        }
        let t = line.trim_start();
        if !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') {
            seen_content = true;
        }
    }
    None
}

/// The lines of `text` as YAML counts them: a line ends at `\r\n`, `\n` or a lone
/// `\r`. `str::lines` does not split on a lone `\r`, so a file saved with old Mac
/// line endings would hide its `---` markers from the check above while the YAML
/// parser still saw them and dropped every document after the first.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text).filter(|t| !t.is_empty());
    std::iter::from_fn(move || {
        let t = rest?;
        match t.find(['\r', '\n']) {
            Some(i) => {
                let next = if t[i..].starts_with("\r\n") {
                    i + 2
                } else {
                    i + 1
                };
                rest = Some(&t[next..]).filter(|r| !r.is_empty());
                Some(&t[..i])
            }
            None => {
                rest = None;
                Some(t)
            }
        }
    })
}

fn report_yaml_error(e: &YamlLoadError, errs: &mut Errors) {
    match e {
        YamlLoadError::ScanError(mark, scan) => errs.at_mark(
            Some(mark),
            format!("YAML syntax error: {}", scan.info()),
            "fix the YAML syntax here (check indentation, `key: value` colons, quotes and brackets)",
        ),
        YamlLoadError::TopLevelMustBeMapping(mark) => errs.at_mark(
            Some(mark),
            "the file must be a YAML mapping of `key: value` pairs at the top level",
            "start the file with the documented top-level keys",
        ),
        YamlLoadError::TopLevelMustBeSequence(mark) => errs.at_mark(
            Some(mark),
            "the file must be a YAML mapping of `key: value` pairs at the top level",
            "start the file with the documented top-level keys",
        ),
        YamlLoadError::UnexpectedAnchor(mark) => errs.at_mark(
            Some(mark),
            "YAML anchors and aliases (&name, *name) are not supported",
            "write the value out in full; for shared user lists use `groups` and \"@group\"",
        ),
        YamlLoadError::MappingKeyMustBeScalar(mark) => errs.at_mark(
            Some(mark),
            "a mapping key must be a plain string",
            "use a plain `name:` key",
        ),
        YamlLoadError::UnexpectedTag(mark) => errs.at_mark(
            Some(mark),
            "YAML tags (!tag) are not supported",
            "remove the tag",
        ),
        YamlLoadError::DuplicateKey(inner) => {
            let prev_line = inner.prev_key.span().start().map_or(0, |m| m.line());
            errs.at_mark(
                inner.key.span().start(),
                format!(
                    "duplicate key {} (first defined on line {prev_line})",
                    show_key(inner.key.as_str())
                ),
                "remove or rename one of them; YAML would silently keep only the last one",
            );
        }
    }
}

// === structural errors ===

/// Reports a serde error from `marked_yaml::from_node` with its position, the
/// key path (`prefix` is the path of the node that was deserialized) and a fix.
///
/// Values are described by kind, never quoted; an unknown key lists the keys allowed
/// there. Under `apps.`, `bots.`, `webhooks.` and `state.encryption_key` a value written
/// where a secret reference belongs gets the literal-secret message instead.
pub fn report_from_node(err: &marked_yaml::FromNodeError, prefix: &str, errs: &mut Errors) {
    let rel = err.path().map(sanitize_path).unwrap_or_default();
    let path = join_path(prefix, &rel);
    let mark = err.start_mark();
    let inner: &marked_yaml::Error = err;
    let shown = if path.is_empty() {
        "the top-level document".to_string()
    } else {
        format!("`{path}`")
    };
    match inner {
        marked_yaml::Error::UnknownFieldError(field, expected, _) => {
            let parent = parent_path(&path, field);
            let where_ = if parent.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{parent}`")
            };
            // A secret reference (it has `env`) lists the literal-value keys only to
            // give a pasted secret its own message; they are not offered as keys.
            let secret_ref = expected.contains(&"env");
            if LITERAL_SECRET_KEYS.contains(&field.as_str())
                && (parent.starts_with("apps.")
                    || parent.starts_with("bots.")
                    || parent.starts_with("webhooks."))
            {
                errs.at_mark(mark.as_ref(), LITERAL_SECRET_MESSAGE, LITERAL_SECRET_FIX);
                return;
            }
            let allowed: Vec<String> = expected
                .iter()
                .filter(|k| !secret_ref || !LITERAL_SECRET_KEYS.contains(k))
                .map(|k| format!("`{k}`"))
                .collect();
            errs.at_mark(
                mark.as_ref(),
                format!("unknown key {} {where_}", show_key(field)),
                format!(
                    "remove it or correct the spelling; allowed keys here: {}",
                    allowed.join(", ")
                ),
            );
        }
        marked_yaml::Error::NotBoolean(_) => errs.at_mark(
            mark.as_ref(),
            format!("wrong type for {shown}: expected true or false"),
            "write true or false",
        ),
        marked_yaml::Error::IntegerParseFailure(_, _) => errs.at_mark(
            mark.as_ref(),
            format!("wrong type for {shown}: expected a whole number"),
            "write a whole number without quotes, units or sign, e.g. 40",
        ),
        marked_yaml::Error::FloatParseFailure(_, _) => errs.at_mark(
            mark.as_ref(),
            format!("wrong type for {shown}: expected a number"),
            "write a number without quotes or units",
        ),
        marked_yaml::Error::Other(msg, _) => {
            if let Some(field) = between(msg, "missing field `", "`") {
                errs.at_mark(
                    mark.as_ref(),
                    format!("missing required key `{field}` in {shown}"),
                    format!("add `{field}: ...` here"),
                );
            } else if msg.starts_with("invalid type: string")
                && ((path.starts_with("bots.")
                    && [".key", ".token", ".client_secret", ".refresh_token"]
                        .iter()
                        .any(|end| path.ends_with(end)))
                    || (path.starts_with("webhooks.") && path.ends_with(".url"))
                    || path == "state.encryption_key")
            {
                // `key: xoxb-...`: a credential written into the policy.
                errs.at_mark(mark.as_ref(), LITERAL_SECRET_MESSAGE, LITERAL_SECRET_FIX);
            } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
                let (found, expected) = split_expected(rest);
                let expected = describe_expected(expected);
                errs.at_mark(
                    mark.as_ref(),
                    format!(
                        "wrong type for {shown}: expected {expected}, found {}",
                        describe_found(found)
                    ),
                    format!("write {expected} here{}", example_of(&expected)),
                );
            } else if msg.starts_with("unknown variant `") {
                let (_, expected) = split_expected(msg);
                errs.at_mark(
                    mark.as_ref(),
                    format!("invalid value for {shown}"),
                    format!("use one of: {}", expected.replace(" or ", ", ")),
                );
            } else if let Some(rest) = msg.strip_prefix("invalid length ") {
                let (_, expected) = split_expected(rest);
                errs.at_mark(
                    mark.as_ref(),
                    format!("wrong number of items for {shown}"),
                    format!("write {}", describe_expected(expected)),
                );
            } else {
                let expected = msg
                    .rfind(", expected ")
                    .map(|i| describe_expected(&msg[i + ", expected ".len()..]));
                errs.at_mark(
                    mark.as_ref(),
                    format!("invalid value for {shown}"),
                    match expected {
                        Some(e) => format!("write {e} here"),
                        None => "check the documented format of this key".to_string(),
                    },
                );
            }
        }
    }
}

/// The message for a secret value written into a policy.
pub(crate) const LITERAL_SECRET_MESSAGE: &str =
    "literal secrets are not allowed in a policy file; reference it with env: or file:";
/// The fix for a secret value written into a policy.
pub(crate) const LITERAL_SECRET_FIX: &str =
    "move the value into an environment variable or a mounted file, write `env: VAR_NAME` or `file: /path`, and rotate the secret: it has been stored in plain text";

fn split_expected(s: &str) -> (&str, &str) {
    match s.rfind(", expected ") {
        Some(i) => (&s[..i], &s[i + ", expected ".len()..]),
        None => (s, "a different value"),
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(start)?;
    let stop = rest.find(end)?;
    Some(&rest[..stop])
}

fn describe_found(unexp: &str) -> &'static str {
    let first = unexp.split([' ', '"', '`']).next().unwrap_or_default();
    match first {
        "string" | "char" => "a string",
        "map" => "a mapping",
        "sequence" => "a list",
        "integer" | "floating" => "a number",
        "boolean" => "true/false",
        "unit" | "null" | "none" => "an empty value",
        _ => "a value of another type",
    }
}

fn example_of(expected: &str) -> &'static str {
    match expected {
        "a list" => ", e.g. [a, b] or one `- item` per line",
        "a mapping" => ", e.g. { key: value } or one `key: value` per line",
        _ => "",
    }
}

fn describe_expected(expected: &str) -> String {
    let e = expected.trim();
    if e.starts_with("struct ") || e == "a map" || e == "map" || e.starts_with("a mapping") {
        return "a mapping".to_string();
    }
    match e {
        "a sequence" => "a list".to_string(),
        "a string" => "a string".to_string(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number".to_string(),
        "a boolean" => "true or false".to_string(),
        other => other.to_string(),
    }
}

/// Shows a key name only when it looks like a key a human typed; anything else
/// could be a pasted secret.
pub(crate) fn show_key(key: &str) -> String {
    if !key.is_empty()
        && key.len() <= 40
        && key
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
    {
        format!("`{key}`")
    } else {
        "(name not shown)".to_string()
    }
}

/// Keeps a serde path only when it is made of plain names and indices.
fn sanitize_path(path: &str) -> String {
    if path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
    {
        path.to_string()
    } else {
        String::new()
    }
}

fn join_path(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if rel.starts_with('[') => format!("{prefix}{rel}"),
        (false, false) => format!("{prefix}.{rel}"),
    }
}

fn parent_path(path: &str, field: &str) -> String {
    if let Some(p) = path.strip_suffix(field) {
        p.strip_suffix('.').unwrap_or(p).to_string()
    } else {
        path.to_string()
    }
}

/// Formats a child path for messages: `apps.helpdesk`, `routes[2]`.
pub(crate) fn child_path(prefix: &str, key: &str) -> String {
    let key = if sanitize_path(key).is_empty()
        || key.contains(['.', '[', ']'])
        || crate::secrets::looks_secret(key)
    {
        "?"
    } else {
        key
    };
    join_path(prefix, key)
}

// === probing ===

/// Deserializes one node; on failure reports the error and returns `None`.
pub(crate) fn probe<'a, T: Deserialize<'a>>(
    node: &'a Node,
    path: &str,
    errs: &mut Errors,
) -> Option<T> {
    match marked_yaml::from_node::<T>(node) {
        Ok(v) => Some(v),
        Err(e) => {
            report_from_node(&e, path, errs);
            None
        }
    }
}

/// Deserializes every value of a mapping node separately so that each bad entry
/// gets its own error; returns the entries that deserialized.
pub(crate) fn probe_named<T: serde::de::DeserializeOwned>(
    node: &Node,
    path: &str,
    errs: &mut Errors,
) -> NamedMap<T> {
    let Some(map) = node.as_mapping() else {
        return probe::<NamedMap<T>>(node, path, errs).unwrap_or_default();
    };
    let mut out = Vec::new();
    for (k, v) in map.iter() {
        if let Some(value) = probe::<T>(v, &child_path(path, k.as_str()), errs) {
            out.push((Spanned::new(*k.span(), k.as_str().to_string()), value));
        }
    }
    NamedMap(out)
}

/// Deserializes every item of a sequence node separately; returns the items
/// that deserialized.
pub(crate) fn probe_items<T: serde::de::DeserializeOwned>(
    node: &Node,
    path: &str,
    errs: &mut Errors,
) -> Spanned<Vec<T>> {
    let Some(seq) = node.as_sequence() else {
        let items = probe::<Vec<T>>(node, path, errs).unwrap_or_default();
        return Spanned::new(*node.span(), items);
    };
    let items = seq
        .iter()
        .enumerate()
        .filter_map(|(i, v)| probe::<T>(v, &format!("{path}[{i}]"), errs))
        .collect();
    Spanned::new(*node.span(), items)
}

/// Probes an optional top-level key.
pub(crate) fn probe_key<T: serde::de::DeserializeOwned>(
    node: &Node,
    key: &str,
    errs: &mut Errors,
) -> Option<T> {
    let value = node.as_mapping()?.get_node(key)?;
    probe::<T>(value, key, errs)
}

/// The names of the keys of a mapping node (e.g. every declared app), whether
/// or not their values are valid.
pub(crate) fn key_names(node: &Node, key: &str) -> std::collections::HashSet<String> {
    node.as_mapping()
        .and_then(|m| m.get_mapping(key))
        .map(|m| m.keys().map(|k| k.as_str().to_string()).collect())
        .unwrap_or_default()
}

/// Reports unknown top-level keys (listing `allowed`) and missing `required` ones.
pub fn check_top_level(node: &Node, allowed: &[&str], required: &[&str], errs: &mut Errors) {
    let Some(map) = node.as_mapping() else {
        return;
    };
    for (k, _) in map.iter() {
        if !allowed.contains(&k.as_str()) {
            let list: Vec<String> = allowed.iter().map(|t| format!("`{t}`")).collect();
            errs.at(
                k.span(),
                format!("unknown key {} at the top level", show_key(k.as_str())),
                format!(
                    "remove it or correct the spelling; allowed keys here: {}",
                    list.join(", ")
                ),
            );
        }
    }
    for name in required {
        if map.get_node(name).is_none() {
            errs.at_mark(
                None,
                format!("missing required key `{name}` at the top level"),
                format!("add `{name}: ...` here"),
            );
        }
    }
}

/// The keys serde expects in `T` (read from its unknown-field error), used to
/// test that hand-written key lists match the spec structs.
#[cfg(test)]
pub(crate) fn serde_keys<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    let node = match marked_yaml::parse_yaml(0, "zzz_unknown: 1\n") {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    match marked_yaml::from_node::<T>(&node) {
        Err(e) => match &*e {
            marked_yaml::Error::UnknownFieldError(_, expected, _) => expected.to_vec(),
            _ => Vec::new(),
        },
        Ok(_) => Vec::new(),
    }
}

// === NamedMap ===

/// A YAML mapping from operator-chosen names to values, in file order, with
/// each name's position kept.
#[derive(Debug)]
pub(crate) struct NamedMap<T>(pub(crate) Vec<(Spanned<String>, T)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        NamedMap(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = NamedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Spanned<String>, T>()? {
                    out.push((k, v));
                }
                Ok(NamedMap(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_yaml() {
        let split = |t| yaml_lines(t).collect::<Vec<_>>();
        assert_eq!(split(""), Vec::<&str>::new());
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\n"), ["a"]);
        assert_eq!(split("a\r\nb\rc\n\nd"), ["a", "b", "c", "", "d"]);
        assert_eq!(split("\r["), ["", "["]);
    }

    #[test]
    fn second_documents_are_found_whatever_the_line_endings() {
        for eol in ["\n", "\r\n", "\r"] {
            let text = ["version: 1", "routes: []", "---", "version: 2", ""].join(eol);
            assert_eq!(second_document_line(&text), Some(3), "{eol:?}");
        }
    }
}
