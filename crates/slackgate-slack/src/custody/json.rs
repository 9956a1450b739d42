//! Reading JSON for secret custody: what a path holds for custody ([`Role`]), where a
//! reader found it ([`Spot`]), and the walk that finds every string value at the patterns'
//! paths when no reader could say.

use std::borrow::Cow;

/// Why a body was not taken into custody. No variant carries body content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CustodyError {
    /// The body (or its `payload`) is not the form or JSON it claims to be.
    #[error("the body cannot be read for secret custody")]
    Unreadable,
    /// The caller could not keep a capability (its replacement was `None`).
    #[error("a capability could not be taken into custody")]
    Refused,
}

/// A string value custody takes or reads, where a facts reader found it: its span in the
/// document (quotes included), its role and the object it stands in (for a channel beside
/// a response URL). A reader makes spots only for a document it read whole and strictly,
/// and only when it can vouch that they are every value at custody's paths: then custody
/// needs no walk of its own (property tests and the `custody` fuzz target hold the two to
/// the same answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spot {
    pub(crate) at: std::ops::Range<usize>,
    pub(crate) role: Role,
    pub(crate) object: usize,
}

/// What a path in a JSON document holds for custody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    ResponseUrl,
    /// The `channel_id` beside a response URL in `response_urls[]`.
    Channel,
    WorkflowToken,
    ExecutionId,
}

/// A path pattern: keys, with `None` for any array index.
pub(crate) type Pattern = (&'static [Option<&'static str>], Role);

/// One string value found at a pattern's path: its span (quotes included), text, and the
/// object it stands in (numbered in document order).
pub(crate) struct Found<'a> {
    pub(crate) at: std::ops::Range<usize>,
    pub(crate) role: Role,
    pub(crate) text: Cow<'a, str>,
    pub(crate) object: usize,
}

/// The text of the JSON string at `at` in `doc` (quotes included): decoded by
/// `serde_json` when it has an escape (`escaped`), else the bytes between the quotes.
pub(crate) fn string_text(
    doc: &[u8],
    at: std::ops::Range<usize>,
    escaped: bool,
) -> Result<Cow<'_, str>, CustodyError> {
    let raw = doc.get(at.clone()).ok_or(BAD)?;
    if escaped {
        return serde_json::from_slice::<String>(raw)
            .map(Cow::Owned)
            .map_err(|_| BAD);
    }
    let inner = doc.get(at.start + 1..at.end.saturating_sub(1)).ok_or(BAD)?;
    std::str::from_utf8(inner)
        .map(Cow::Borrowed)
        .map_err(|_| BAD)
}

// === the JSON walk ===

/// How many bytes the walk looks at one by one before it asks `memchr`: most of what it
/// searches in a Slack body is a short key or id, where a `memchr` call costs more than
/// the bytes it skips.
pub(crate) const SHORT: usize = 16;

/// The first byte of `hay` that is `a` or `b` (as `memchr::memchr2`).
pub(crate) fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let head = hay.get(..SHORT).unwrap_or(hay);
    if let Some(at) = head.iter().position(|&x| x == a || x == b) {
        return Some(at);
    }
    memchr::memchr2(a, b, hay.get(SHORT..)?).map(|at| at + SHORT)
}

/// The first byte of `hay` that is `a`, `b` or `c` (as `memchr::memchr3`).
pub(crate) fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    let head = hay.get(..SHORT).unwrap_or(hay);
    if let Some(at) = head.iter().position(|&x| x == a || x == b || x == c) {
        return Some(at);
    }
    memchr::memchr3(a, b, c, hay.get(SHORT..)?).map(|at| at + SHORT)
}

/// The deepest nesting the walk follows (it follows only the patterns' paths, a few
/// levels: this bounds its recursion whatever the patterns).
const MAX_DEPTH: usize = 128;

/// One step of the path to a value: an object key (decoded) or an array element.
enum Seg<'a> {
    Key(Cow<'a, str>),
    Index,
}

/// How a path relates to the patterns.
enum Fit {
    /// It is a pattern's path, with its role.
    Is(Role),
    /// A pattern's path goes through it.
    Within,
    /// No pattern's path goes through it: the value is skipped.
    Outside,
}

fn fit(path: &[Seg<'_>], patterns: &[Pattern]) -> Fit {
    let mut within = false;
    for (pattern, role) in patterns {
        if pattern.len() < path.len() {
            continue;
        }
        let same = path
            .iter()
            .zip(pattern.iter())
            .all(|(seg, want)| match (seg, want) {
                (Seg::Key(k), Some(w)) => k == w,
                (Seg::Index, None) => true,
                _ => false,
            });
        if same {
            if pattern.len() == path.len() {
                return Fit::Is(*role);
            }
            within = true;
        }
    }
    if within {
        Fit::Within
    } else {
        Fit::Outside
    }
}

/// Every string value at a pattern's path, in document order.
pub(crate) fn find<'a>(
    doc: &'a [u8],
    patterns: &[Pattern],
) -> Result<Vec<Found<'a>>, CustodyError> {
    let mut walk = Walk {
        s: doc,
        i: 0,
        found: Vec::new(),
        path: Vec::with_capacity(4),
        objects: 0,
        object: 0,
    };
    walk.value(patterns, 0)?;
    walk.ws();
    if walk.i != doc.len() {
        return Err(CustodyError::Unreadable);
    }
    Ok(walk.found)
}

struct Walk<'a> {
    s: &'a [u8],
    i: usize,
    found: Vec<Found<'a>>,
    path: Vec<Seg<'a>>,
    /// Objects entered so far, and the number of the one the walk is in.
    objects: usize,
    object: usize,
}

const BAD: CustodyError = CustodyError::Unreadable;

impl<'a> Walk<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Result<u8, CustodyError> {
        self.ws();
        self.s.get(self.i).copied().ok_or(BAD)
    }

    /// A string at `i` (which holds `"`): its span with the quotes, and whether it has
    /// escapes.
    fn string(&mut self) -> Result<(std::ops::Range<usize>, bool), CustodyError> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        loop {
            let rest = self.s.get(self.i..).ok_or(BAD)?;
            let at = find2(b'"', b'\\', rest).ok_or(BAD)?;
            self.i += at;
            if self.s.get(self.i) == Some(&b'"') {
                self.i += 1;
                return Ok((start..self.i, escaped));
            }
            escaped = true;
            self.i += 2;
        }
    }

    /// The text of the string at `at`.
    fn text(
        &self,
        at: std::ops::Range<usize>,
        escaped: bool,
    ) -> Result<Cow<'a, str>, CustodyError> {
        string_text(self.s, at, escaped)
    }

    /// A value whose path is `self.path`, recording it when a pattern names it.
    fn value(&mut self, patterns: &[Pattern], depth: usize) -> Result<(), CustodyError> {
        let fits = fit(&self.path, patterns);
        if matches!(fits, Fit::Outside) {
            return self.skip();
        }
        match self.peek()? {
            b'"' => {
                let (at, escaped) = self.string()?;
                if let Fit::Is(role) = fits {
                    let text = self.text(at.clone(), escaped)?;
                    let object = self.object;
                    self.found.push(Found {
                        at,
                        role,
                        text,
                        object,
                    });
                }
                Ok(())
            }
            b'{' => {
                self.i += 1;
                let outer = self.object;
                self.objects += 1;
                self.object = self.objects;
                let r = self.members(b'}', depth, |walk| {
                    if walk.peek()? != b'"' {
                        return Err(BAD);
                    }
                    let (at, escaped) = walk.string()?;
                    let key = walk.text(at, escaped)?;
                    if walk.peek()? != b':' {
                        return Err(BAD);
                    }
                    walk.i += 1;
                    walk.path.push(Seg::Key(key));
                    let r = walk.value(patterns, depth + 1);
                    walk.path.pop();
                    r
                });
                self.object = outer;
                r
            }
            b'[' => {
                self.i += 1;
                self.members(b']', depth, |walk| {
                    walk.path.push(Seg::Index);
                    let r = walk.value(patterns, depth + 1);
                    walk.path.pop();
                    r
                })
            }
            _ => self.skip(),
        }
    }

    /// Members up to `close` (the opening byte already read), separated by commas.
    fn members(
        &mut self,
        close: u8,
        depth: usize,
        mut member: impl FnMut(&mut Self) -> Result<(), CustodyError>,
    ) -> Result<(), CustodyError> {
        if depth >= MAX_DEPTH {
            return Err(BAD);
        }
        if self.peek()? != close {
            member(self)?;
            while self.peek()? == b',' {
                self.i += 1;
                member(self)?;
            }
        }
        (self.peek()? == close).then(|| self.i += 1).ok_or(BAD)
    }

    /// Skips one value (of a document already checked as JSON by the facts: this only
    /// needs to find its end, strings and nesting included). It counts brackets in a
    /// loop, so it needs no bound on their nesting: like `serde_json` skipping a field it
    /// does not read, it skips a value however deep.
    fn skip(&mut self) -> Result<(), CustodyError> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            open @ (b'{' | b'[') => {
                // In a well-formed document the brackets of one kind balance by
                // themselves, strings aside: only those of the value's own kind are
                // counted.
                let close = if open == b'{' { b'}' } else { b']' };
                let mut nest = 0usize;
                loop {
                    let rest = self.s.get(self.i..).ok_or(BAD)?;
                    self.i += find3(b'"', open, close, rest).ok_or(BAD)?;
                    match self.s.get(self.i).copied().ok_or(BAD)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b if b == open => nest += 1,
                        _ => nest -= 1,
                    }
                    self.i += 1;
                    if nest == 0 {
                        return Ok(());
                    }
                }
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.i;
                while let Some(&b) = self.s.get(self.i) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return Err(BAD);
                }
                Ok(())
            }
        }
    }
}
