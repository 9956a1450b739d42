//! The layout the code is held to (README "Layout", docs/ARCHITECTURE.md): within every
//! crate no import circle between source files, no source file over 800 lines, and in the
//! proxy crate the two doors (`src/inbound/`, `src/egress/`) never import each other.
//!
//! Imports are read from the text: `crate::a::b` paths anywhere (in `use` lines, grouped
//! `use crate::{a, b::c}` included, and in expressions), `super::` at the top level of a
//! file, and `use child::...` of a file's own submodules. A path names the deepest source
//! file whose module it starts with. Inline test modules (`use super::*` indented) are the
//! file itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Source files longer than this are split (test files aside).
const MAX_LINES: usize = 800;

fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src`: `lib.rs` is the root, `a/mod.rs` and `a.rs`
/// are `a`, `a/b.rs` is `a::b`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The paths (as segments) a `crate::`-rooted or relative path text starts, expanding one
/// or more levels of `{a, b::c}` groups.
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut segs: Vec<String> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i > start {
            segs.push(text[start..i].to_owned());
        }
        let group = if text[i..].starts_with("::{") {
            Some(i + 3)
        } else if text[i..].starts_with('{') {
            Some(i + 1)
        } else {
            None
        };
        if let Some(open) = group {
            // A group: each item continues the path.
            let mut depth = 1;
            let mut j = open;
            while j < bytes.len() && depth > 0 {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            let close = if depth == 0 { j - 1 } else { j };
            let inner = &text[open..close];
            let mut depth = 0;
            let mut from = 0;
            let items_end = inner.len();
            let inner_bytes = inner.as_bytes();
            for k in 0..=items_end {
                let at_end = k == items_end;
                let c = if at_end { b',' } else { inner_bytes[k] };
                match c {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => {
                        let item = inner[from..k].trim();
                        if !item.is_empty() {
                            for rest in expand(item) {
                                let mut p = segs.clone();
                                p.extend(rest);
                                out.push(p);
                            }
                        }
                        from = k + 1;
                    }
                    _ => {}
                }
            }
            return out;
        }
        if text[i..].starts_with("::") {
            i += 2;
            continue;
        }
        break;
    }
    out.push(segs);
    out
}

/// What one file refers to: module paths from the crate root.
fn references(text: &str, module: &[String], submodules: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `crate::...` anywhere.
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].bytes().last();
        let tail = &rest[at + "crate::".len()..];
        if !before.is_some_and(is_ident) {
            let end = path_end(tail);
            out.extend(expand(&tail[..end]));
        }
        rest = tail;
    }
    for line in text.lines() {
        // Top-level `use super::...` names the parent module; indented ones are inline
        // modules of this file.
        let top = !line.starts_with(' ');
        let trimmed = line.trim_start();
        let body = trimmed
            .strip_prefix("pub(crate) use ")
            .or_else(|| trimmed.strip_prefix("pub use "))
            .or_else(|| trimmed.strip_prefix("use "));
        let Some(body) = body else { continue };
        if let Some(tail) = body.strip_prefix("super::") {
            if top && !module.is_empty() {
                let parent = &module[..module.len() - 1];
                for p in expand(&tail[..path_end(tail)]) {
                    let mut full = parent.to_vec();
                    full.extend(p);
                    out.push(full);
                }
            }
        } else if top {
            let first: String = body
                .bytes()
                .take_while(|b| is_ident(*b))
                .map(char::from)
                .collect();
            if submodules.contains(&first) {
                for p in expand(&body[..path_end(body)]) {
                    let mut full = module.to_vec();
                    full.extend(p);
                    out.push(full);
                }
            }
        }
    }
    out
}

/// Where a path text ends: past identifiers, `::` and balanced `{...}` groups.
fn path_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut depth = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_ident(b) || b == b':' || (depth > 0 && b" ,*\n\t\r".contains(&b)) {
            i += 1;
        } else if b == b'{' {
            depth += 1;
            i += 1;
        } else if b == b'}' && depth > 0 {
            depth -= 1;
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// The `mod x;` (file) submodules a file declares.
fn submodules(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let l = l
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// One crate's files and the file-to-file edges of its imports.
struct Graph {
    files: BTreeMap<Vec<String>, PathBuf>,
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph(src: &Path) -> Graph {
    let mut paths = Vec::new();
    sources(src, &mut paths);
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .map(|p| (module_of(src, p), p.clone()))
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let subs = submodules(&text);
        for r in references(&text, module, &subs) {
            // The deepest file whose module the path starts with.
            let target = (1..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|m| files.contains_key(m));
            if let Some(t) = target.filter(|t| t != module) {
                edges.entry(module.clone()).or_default().insert(t);
            }
        }
    }
    Graph { files, edges }
}

/// The strongly connected groups of more than one file (Tarjan).
fn circles(g: &Graph) -> Vec<Vec<Vec<String>>> {
    struct State<'g> {
        g: &'g Graph,
        index: BTreeMap<&'g [String], usize>,
        low: BTreeMap<&'g [String], usize>,
        on: BTreeSet<&'g [String]>,
        stack: Vec<&'g [String]>,
        next: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g [String]) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        if let Some(ws) = s.g.edges.get(v) {
            for w in ws {
                let w: &[String] = w;
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                group.push(w.to_vec());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.files.keys() {
        if !s.index.contains_key(v.as_slice()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn crate_srcs() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join("src"),
            )
        })
        .filter(|(_, src)| src.is_dir())
        .collect();
    out.sort();
    out
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "lib".to_owned()
    } else {
        m.join("::")
    }
}

#[test]
fn no_import_circle_between_the_files_of_any_crate() {
    let mut found = Vec::new();
    for (name, src) in crate_srcs() {
        for group in circles(&graph(&src)) {
            let names: Vec<String> = group.iter().map(|m| show(m)).collect();
            found.push(format!("{name}: {}", names.join(", ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_two_doors_never_import_each_other() {
    let src = workspace().join("crates/slackgate-proxy/src");
    let g = graph(&src);
    let mut found = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            match (
                from.first().map(String::as_str),
                to.first().map(String::as_str),
            ) {
                (Some("inbound"), Some("egress")) | (Some("egress"), Some("inbound")) => {
                    found.push(format!("{} -> {}", show(from), show(to)));
                }
                _ => {}
            }
        }
    }
    assert!(
        found.is_empty(),
        "the doors import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut long = Vec::new();
    for (name, src) in crate_srcs() {
        let mut files = Vec::new();
        sources(&src, &mut files);
        for f in files {
            // Unit-test files beside the code are tests.
            if f.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let lines = std::fs::read_to_string(&f).unwrap().lines().count();
            if lines > MAX_LINES {
                long.push(format!("{name}: {} ({lines} lines)", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_relative_imports() {
    let subs: BTreeSet<String> = ["rotation".to_owned()].into();
    let m = vec!["egress".to_owned()];
    let text = "use crate::{audit::X, http1::{self, Y}};\npub(crate) use rotation::{A, B};\nuse super::Z;\nfn f() { crate::state::Shared::new(); }\nmod tests {\n    use super::*;\n}\n";
    let refs: BTreeSet<String> = references(text, &m, &subs)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    for want in [
        "audit::X",
        "http1::self",
        "http1::Y",
        "egress::rotation::A",
        "Z",
        "state::Shared::new",
    ] {
        assert!(refs.contains(want), "{want} not in {refs:?}");
    }
}
