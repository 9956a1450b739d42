//! A recording mock bot: a blocking HTTP/1.1 server on `127.0.0.1:0`.
//!
//! It records every request it parses and counts every byte it receives, so tests
//! can assert what the bot did *not* get: for a denied request, not even a header.

use parking_lot::Mutex;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One request as the bot saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Which of the bot's connections carried it (numbered from 1 in accept order), to
    /// see keep-alive reuse.
    pub conn: u64,
}

impl Recorded {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::first_header(&self.headers, name)
    }
}

/// How the bot answers.
#[derive(Debug, Clone)]
pub enum BotBehavior {
    /// Answer 200 with a small JSON body echoing the body length.
    Echo,
    /// Answer with this status and body.
    Status(u16, Vec<u8>),
    /// Wait, then echo.
    Delay(Duration),
    /// Close the connection without answering.
    Close,
}

#[derive(Debug)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    bytes: AtomicU64,
    conns: AtomicU64,
    behavior: Mutex<BotBehavior>,
    stop: AtomicBool,
}

/// The mock bot. Stops accepting when dropped.
#[derive(Debug)]
pub struct MockBot {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl MockBot {
    /// Starts a bot that echoes.
    pub fn start() -> Self {
        Self::with(BotBehavior::Echo)
    }

    /// Starts a bot with a behavior.
    pub fn with(behavior: BotBehavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind bot");
        let addr = listener.local_addr().expect("bot addr");
        let inner = Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            bytes: AtomicU64::new(0),
            conns: AtomicU64::new(0),
            behavior: Mutex::new(behavior),
            stop: AtomicBool::new(false),
        });
        let accept_inner = Arc::clone(&inner);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_inner.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_nodelay(true);
                let conn_inner = Arc::clone(&accept_inner);
                std::thread::spawn(move || serve(conn, &conn_inner));
            }
        });
        Self { addr, inner }
    }

    /// The bot's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().clone()
    }

    /// Bytes received on all connections so far (health-check connects send none).
    pub fn bytes_received(&self) -> u64 {
        self.inner.bytes.load(Ordering::SeqCst)
    }

    /// Changes how the bot answers from now on.
    pub fn set_behavior(&self, b: BotBehavior) {
        *self.inner.behavior.lock() = b;
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.inner.requests.lock().clear();
        self.inner.bytes.store(0, Ordering::SeqCst);
    }
}

impl Drop for MockBot {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

struct Counting<'a> {
    stream: &'a TcpStream,
    inner: &'a Inner,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.stream).read(buf)?;
        self.inner.bytes.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

fn serve(stream: TcpStream, inner: &Inner) {
    let conn = inner.conns.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(Counting {
        stream: &stream,
        inner,
    });
    loop {
        let Ok((line, headers)) = crate::client::read_head(&mut reader) else {
            return;
        };
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let content_length: usize =
            crate::client::last_header(&headers, "content-length").unwrap_or(0);
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let len = body.len();
        inner.requests.lock().push(Recorded {
            method,
            target,
            headers,
            body,
            conn,
        });
        let behavior = inner.behavior.lock().clone();
        let (status, resp_body) = match behavior {
            BotBehavior::Echo => (200, format!("{{\"ok\":true,\"len\":{len}}}").into_bytes()),
            BotBehavior::Status(s, b) => (s, b),
            BotBehavior::Delay(d) => {
                std::thread::sleep(d);
                (200, format!("{{\"ok\":true,\"len\":{len}}}").into_bytes())
            }
            BotBehavior::Close => return,
        };
        // One write: the head and body as two small segments would wait out the
        // client's delayed ACK (Nagle), about 40 ms on Linux, on every answer.
        let mut answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            resp_body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&resp_body);
        let mut w = &stream;
        if w.write_all(&answer).is_err() {
            return;
        }
    }
}
