//! Just enough HTTP/1.1 for the load generator and the echo bot: find the end of a
//! head, read `Content-Length` / chunked framing, and the status code. Loopback only,
//! trusted peers; not a general-purpose parser.

/// Where the head ends (index just past `\r\n\r\n`), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// How the body of a message is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 when absent).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The parts of a head the benchmarks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code of a response (0 for a request).
    pub status: u16,
    /// The body framing.
    pub framing: Framing,
    /// Whether the peer asked to close the connection after this message.
    pub close: bool,
}

/// Parses a head (`buf[..end]`, from [`head_end`]).
pub fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let status = if first.starts_with("HTTP/") {
        first
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let mut framing = Framing::Length(0);
    let mut close = first.ends_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            framing = Framing::Length(value.parse().unwrap_or(0));
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Head {
        status,
        framing,
        close,
    }
}

/// For a chunked body starting at `buf[0]`: the length of the whole chunked body
/// (through the final `0\r\n\r\n`) once it is complete.
pub fn chunked_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let size_text = std::str::from_utf8(&buf[pos..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers (none expected) then the blank line.
            let end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
            return Some(end + 2);
        }
        if buf.len() < pos + size + 2 {
            return None;
        }
        pos += size + 2;
    }
}

/// The total length of the message at the front of `buf` (head and body), once complete.
pub fn message_len(buf: &[u8]) -> Option<(Head, usize)> {
    let end = head_end(buf)?;
    let head = parse_head(&buf[..end]);
    match head.framing {
        Framing::Length(n) => (buf.len() >= end + n).then_some((head, end + n)),
        Framing::Chunked => chunked_len(&buf[end..]).map(|n| (head, end + n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
        let (h, n) = message_len(r).unwrap();
        assert_eq!((h.status, n, h.close), (200, r.len() - 5, false));
        let c = b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let (h, n) = message_len(c).unwrap();
        assert_eq!((h.status, n, h.close), (401, c.len(), true));
        assert!(message_len(&c[..c.len() - 1]).is_none());
    }
}
