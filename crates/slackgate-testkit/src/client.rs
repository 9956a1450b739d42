//! A small blocking HTTP/1.1 client, plain or TLS, that can also send raw bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use slackgate_fixtures::SignedRequest;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::first_header(&self.headers, name)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Asserts a refusal the way Slack answers a failed call: `ok: false`, with `error` and
    /// the `X-Slackgate-Reason` header both `reason`.
    pub fn assert_refused(&self, reason: &str) {
        assert_eq!(
            self.json()["ok"],
            false,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.json()["error"], reason);
        assert_eq!(self.header("x-slackgate-reason"), Some(reason));
    }

    /// The `reason` field of a gateway answer.
    pub fn reason(&self) -> Option<String> {
        self.json()
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_owned)
    }
}

/// A client for one gateway address.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Client {
    /// A plain HTTP client.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// A TLS client trusting only `ca_der`.
    pub fn tls(addr: SocketAddr, ca_der: &[u8]) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            addr,
            tls: Some(Arc::new(config)),
            timeout: Duration::from_secs(10),
        }
    }

    /// Changes the read timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let tcp = TcpStream::connect(self.addr)?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(Arc::clone(cfg), name)
                    .map_err(std::io::Error::other)?;
                Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        }
    }

    /// Sends a signed request on a new connection and reads the response.
    pub fn send(&self, req: &SignedRequest) -> std::io::Result<Response> {
        self.raw(&req.to_http("localhost"))
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn raw(&self, bytes: &[u8]) -> std::io::Result<Response> {
        let mut s = self.connect()?;
        // A gateway may answer (413, 431) and close before the whole request is written;
        // like curl, read the answer that came even when the write failed.
        let wrote = s.write_all(bytes).and_then(|()| s.flush());
        match read_response(&mut BufReader::new(s)) {
            Ok(r) => Ok(r),
            Err(e) => Err(wrote.err().unwrap_or(e)),
        }
    }

    /// Sends raw bytes and reads responses until the connection closes or times out.
    pub fn raw_all(&self, bytes: &[u8]) -> std::io::Result<Vec<Response>> {
        let mut s = self.connect()?;
        s.write_all(bytes)?;
        s.flush()?;
        let mut reader = BufReader::new(s);
        let mut out = Vec::new();
        while let Ok(r) = read_response(&mut reader) {
            out.push(r);
        }
        Ok(out)
    }

    /// GET a path.
    pub fn get(&self, path: &str) -> std::io::Result<Response> {
        self.raw(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    }

    /// POST an empty body to a path.
    pub fn post(&self, path: &str) -> std::io::Result<Response> {
        self.raw(
            format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    }
}

/// Reads an HTTP/1.1 head: its first line (as read, line end included) and its header
/// fields in arrival order, names lowercased and values trimmed. A stream that ends before
/// the blank line is `UnexpectedEof`.
pub fn read_head<R: BufRead>(r: &mut R) -> std::io::Result<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Ok((line, headers));
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

/// The last value of header `name` in a list [`read_head`] read, parsed.
pub(crate) fn last_header<T: std::str::FromStr>(
    headers: &[(String, String)],
    name: &str,
) -> Option<T> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// Reads one HTTP/1.1 response framed by Content-Length (or by close).
pub fn read_response<R: BufRead>(r: &mut R) -> std::io::Result<Response> {
    let (line, headers) = read_head(r)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let len: Option<usize> = last_header(&headers, "content-length");
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if !(100..200).contains(&status) && status != 204 && status != 304 {
        let _ = r.read_to_end(&mut body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}
