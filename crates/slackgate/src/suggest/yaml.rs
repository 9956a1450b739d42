//! A small YAML tree the suggestion rewrites and writes back out: the policy as parsed
//! (mappings in their order, scalars quoted where the file quoted them), with comments
//! attached to entries. Block style, two spaces per level; a list of plain scalars
//! without comments is written in flow style (`[a, b]`).

use marked_yaml::Node;

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Y {
    /// A scalar, and whether it may be written plain (the file did not quote it).
    Str(String, bool),
    Seq(Vec<Item>),
    Map(Vec<Entry>),
}

/// A list item, with a comment written after it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) value: Y,
    pub(crate) comment: Option<String>,
}

/// A mapping entry: comment lines above it, the key, the value, a comment after it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) before: Vec<String>,
    pub(crate) key: String,
    pub(crate) value: Y,
    pub(crate) comment: Option<String>,
}

impl Y {
    /// A plain-looking string value (quoted when its text needs it).
    pub(crate) fn s(v: &str) -> Y {
        Y::Str(v.to_owned(), true)
    }

    /// A list of strings, each with an optional comment.
    pub(crate) fn list(items: Vec<(String, Option<String>)>) -> Y {
        Y::Seq(
            items
                .into_iter()
                .map(|(v, comment)| Item {
                    value: Y::Str(v, true),
                    comment,
                })
                .collect(),
        )
    }

    /// The tree of a parsed YAML node.
    pub(crate) fn of(node: &Node) -> Y {
        match node {
            Node::Scalar(s) => Y::Str(s.as_str().to_owned(), s.may_coerce()),
            Node::Sequence(seq) => Y::Seq(
                seq.iter()
                    .map(|n| Item {
                        value: Y::of(n),
                        comment: None,
                    })
                    .collect(),
            ),
            Node::Mapping(map) => Y::Map(
                map.iter()
                    .map(|(k, v)| Entry {
                        before: Vec::new(),
                        key: k.as_str().to_owned(),
                        value: Y::of(v),
                        comment: None,
                    })
                    .collect(),
            ),
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Y::Str(s, _) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        match self {
            Y::Map(e) => e,
            _ => &[],
        }
    }

    pub(crate) fn entries_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match self {
            Y::Map(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn items_mut(&mut self) -> Option<&mut Vec<Item>> {
        match self {
            Y::Seq(i) => Some(i),
            _ => None,
        }
    }

    /// The value under `key`, in a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Y> {
        self.entries()
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Y> {
        self.entries_mut()?
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value)
    }

    /// The strings of a list value (a scalar counts as a list of one).
    pub(crate) fn strings(&self) -> Vec<&str> {
        match self {
            Y::Str(s, _) => vec![s.as_str()],
            Y::Seq(items) => items.iter().filter_map(|i| i.value.as_str()).collect(),
            Y::Map(_) => Vec::new(),
        }
    }

    /// Sets `key` to `value` with `comment`: in place when present, else at the end.
    pub(crate) fn set(&mut self, key: &str, value: Y, comment: Option<String>) {
        let Some(entries) = self.entries_mut() else {
            return;
        };
        match entries.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = value;
                e.comment = comment;
            }
            None => entries.push(Entry {
                before: Vec::new(),
                key: key.to_owned(),
                value,
                comment,
            }),
        }
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let Some(entries) = self.entries_mut() else {
            return false;
        };
        let before = entries.len();
        entries.retain(|e| e.key != key);
        entries.len() != before
    }

    /// Adds comment lines above `key`'s entry.
    pub(crate) fn note(&mut self, key: &str, lines: impl IntoIterator<Item = String>) {
        if let Some(e) = self
            .entries_mut()
            .and_then(|es| es.iter_mut().find(|e| e.key == key))
        {
            e.before.extend(lines);
        }
    }
}

/// Words YAML 1.1 and 1.2 loaders read as something other than a string.
const RESERVED: [&str; 22] = [
    "true", "false", "yes", "no", "on", "off", "null", "y", "n", "True", "False", "Yes", "No",
    "On", "Off", "Null", "TRUE", "FALSE", "YES", "NO", "NULL", "~",
];

/// Whether `s` reads back as the same string when written plain.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphanumeric() || first == '_' || first == '/' || first == '.')
        && !s.ends_with(':')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:+-".contains(c))
        && !RESERVED.contains(&s)
}

/// `s` as a double-quoted YAML scalar.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar(s: &str, plain: bool) -> String {
    if plain && plain_ok(s) {
        s.to_owned()
    } else {
        quoted(s)
    }
}

fn key_text(k: &str) -> String {
    scalar(k, true)
}

/// A comment's text, on one line.
fn comment_text(c: &str) -> String {
    c.replace(['\n', '\r'], " ")
}

fn is_flow_list(items: &[Item]) -> bool {
    items
        .iter()
        .all(|i| i.comment.is_none() && matches!(i.value, Y::Str(..)))
        && items
            .iter()
            .map(|i| i.value.as_str().map_or(0, str::len) + 2)
            .sum::<usize>()
            < 70
}

fn push_comment(out: &mut String, comment: Option<&String>) {
    if let Some(c) = comment {
        out.push_str("  # ");
        out.push_str(&comment_text(c));
    }
}

/// Writes `entries` as a block mapping at `indent` spaces.
pub(crate) fn write_map(out: &mut String, entries: &[Entry], indent: usize) {
    let pad = " ".repeat(indent);
    for e in entries {
        for line in &e.before {
            out.push_str(&pad);
            out.push_str("# ");
            out.push_str(&comment_text(line));
            out.push('\n');
        }
        out.push_str(&pad);
        out.push_str(&key_text(&e.key));
        out.push(':');
        write_value(out, &e.value, e.comment.as_ref(), indent);
    }
}

/// Writes a value after `key:` (the rest of that line and the lines below).
fn write_value(out: &mut String, value: &Y, comment: Option<&String>, indent: usize) {
    match value {
        Y::Str(s, plain) => {
            out.push(' ');
            out.push_str(&scalar(s, *plain));
            push_comment(out, comment);
            out.push('\n');
        }
        Y::Map(entries) if entries.is_empty() => {
            out.push_str(" {}");
            push_comment(out, comment);
            out.push('\n');
        }
        Y::Seq(items) if items.is_empty() => {
            out.push_str(" []");
            push_comment(out, comment);
            out.push('\n');
        }
        Y::Seq(items) if is_flow_list(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match &i.value {
                    Y::Str(s, plain) => Some(scalar(s, *plain)),
                    _ => None,
                })
                .collect();
            out.push_str(" [");
            out.push_str(&parts.join(", "));
            out.push(']');
            push_comment(out, comment);
            out.push('\n');
        }
        Y::Map(entries) => {
            push_comment(out, comment);
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
        Y::Seq(items) => {
            push_comment(out, comment);
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
    }
}

/// Writes `items` as a block sequence at `indent` spaces.
fn write_seq(out: &mut String, items: &[Item], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match &item.value {
            Y::Str(s, plain) => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&scalar(s, *plain));
                push_comment(out, item.comment.as_ref());
                out.push('\n');
            }
            Y::Map(entries) if !entries.is_empty() => {
                let mut inner = String::new();
                write_map(&mut inner, entries, indent + 2);
                // The first line's indent becomes the dash.
                let body = inner.get(indent + 2..).unwrap_or_default();
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(body);
            }
            other => {
                // An empty mapping or a nested list: one flow-style line.
                out.push_str(&pad);
                out.push('-');
                let mut line = String::new();
                write_value(&mut line, other, item.comment.as_ref(), indent);
                out.push_str(&line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let node = marked_yaml::parse_yaml(0, text).unwrap();
        let mut out = String::new();
        write_map(&mut out, Y::of(&node).entries(), 0);
        out
    }

    #[test]
    fn a_policy_reads_back_as_itself() {
        let text = "version: 1\nroutes:\n  - name: a\n    path: /slack/a\n    allow:\n      users: [\"@oncall\", U1]\n      actions: [\"t_*\"]\n    source_ips: { allow: [\"::/0\", 0.0.0.0/0] }\nbots: {}\nx: \"1\"\ny: \"true\"\nz: 'a b: c # d'\nlong:\n  - aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  - bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
        let out = round_trip(text);
        let a = Y::of(&marked_yaml::parse_yaml(0, text).unwrap());
        let b = Y::of(&marked_yaml::parse_yaml(0, &out).unwrap());
        assert_eq!(a, b, "{out}");
        assert!(out.contains("version: 1\n"), "{out}");
        assert!(out.contains("  - name: a\n    path: /slack/a\n"), "{out}");
    }

    #[test]
    fn comments_go_after_values_and_above_entries() {
        let mut doc = Y::Map(Vec::new());
        doc.set(
            "methods",
            Y::list(vec![
                ("chat.postMessage".into(), Some("3 calls".into())),
                ("reactions.*".into(), None),
            ]),
            None,
        );
        doc.note("methods", ["seen:\nlines".to_owned()]);
        let mut out = String::new();
        write_map(&mut out, doc.entries(), 2);
        assert_eq!(
            out,
            "  # seen: lines\n  methods:\n    - chat.postMessage  # 3 calls\n    - \"reactions.*\"\n"
        );
        let back = Y::of(&marked_yaml::parse_yaml(0, &out).unwrap());
        assert_eq!(
            back.get("methods").map(Y::strings),
            Some(vec!["chat.postMessage", "reactions.*"])
        );
    }
}
