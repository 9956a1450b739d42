//! HTTP/1.1 request framing and answer rendering (pure).

/// The largest request head read, in bytes.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read, in bytes (Slack's own limits are far below).
pub(super) const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a request could not be framed: the status it gets and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bad {
    pub(super) status: u16,
    pub(super) why: &'static str,
}

pub(super) const fn bad(why: &'static str) -> Bad {
    Bad { status: 400, why }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(super) version: u8,
    pub(super) headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included.
    pub(super) len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(usize),
    Chunked,
}

/// Parses a head from the start of `buf`; `Ok(None)` while it is incomplete.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<Head>, Bad> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(bad("head too large")),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Err(bad("head too large")),
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            version: req.version.unwrap_or(1),
            headers: req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_owned(),
                    )
                })
                .collect(),
            len,
        })),
        Err(httparse::Error::TooManyHeaders) => Err(bad("too many headers")),
        Err(_) => Err(bad("malformed head")),
    }
}

impl Head {
    pub(super) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the body is framed. Both `Transfer-Encoding` and `Content-Length`, a coding
    /// other than `chunked`, or disagreeing lengths are refused (no guessing where a
    /// request ends).
    pub(super) fn framing(&self) -> Result<Framing, Bad> {
        let te: Vec<&str> = self.values("transfer-encoding").collect();
        let cl: Vec<&str> = self.values("content-length").collect();
        if !te.is_empty() {
            if !cl.is_empty() {
                return Err(bad("both transfer-encoding and content-length"));
            }
            let codings: Vec<String> = te
                .iter()
                .flat_map(|v| v.split(','))
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            return if codings == ["chunked"] {
                Ok(Framing::Chunked)
            } else {
                Err(bad("unsupported transfer-encoding"))
            };
        }
        let mut length = None;
        for v in cl {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("invalid content-length"));
            }
            let n: usize = v.parse().map_err(|_| bad("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("conflicting content-length"));
            }
            length = Some(n);
        }
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(Bad {
                status: 413,
                why: "body too large",
            });
        }
        Ok(Framing::Length(n))
    }

    pub(super) fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after this request.
    pub(super) fn keep_alive(&self) -> bool {
        if self.version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    pub(super) fn expects_continue(&self) -> bool {
        self.version == 1 && self.has_token("expect", "100-continue")
    }
}

/// Decodes a chunked body from the start of `buf`: the payload and the bytes it took on
/// the wire (trailers included), or `Ok(None)` while incomplete.
pub(super) fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Bad> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > 1024 {
                Err(bad("chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + eol];
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .map_err(|_| bad("invalid chunk size"))?
            .trim_end_matches([' ', '\t']);
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("invalid chunk size"));
        }
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("invalid chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section, up to the blank line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return if buf.len() - pos > MAX_HEAD {
                        Err(bad("trailers too large"))
                    } else {
                        Ok(None)
                    };
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((out, pos)));
                }
            }
        }
        if out.len().saturating_add(size) > MAX_BODY {
            return Err(Bad {
                status: 413,
                why: "body too large",
            });
        }
        let end = pos + size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
        out.extend_from_slice(&buf[pos..end]);
        pos = end + 2;
    }
}

pub(super) fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

pub(super) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        _ => "",
    }
}

/// The bytes of an answer: status line, headers, JSON body framed by `Content-Length`.
pub(super) fn render(status: u16, headers: &[(&str, String)], body: &[u8], close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    out.push_str("content-type: application/json; charset=utf-8\r\n");
    out.push_str(&format!("content-length: {}\r\n", body.len()));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Splits a request target into path and query; an absolute-form target loses its
/// scheme and authority.
pub(super) fn split_target(target: &str) -> (&str, &str) {
    let target = ["http://", "https://"]
        .iter()
        .find_map(|s| target.strip_prefix(s))
        .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(target);
    target.split_once('?').unwrap_or((target, ""))
}
