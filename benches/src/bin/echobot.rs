//! The upstream bot of the load comparison: answers every HTTP/1.1 request with
//! `200 ok` on keep-alive connections, as cheaply as possible, so the proxies in
//! front of it are the bottleneck.
//!
//! `echobot 127.0.0.1:PORT [THREADS]` (default one thread). Binds loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use slackgate_benches::http::message_len;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()
        .expect("ADDR");
    assert!(addr.ip().is_loopback(), "the echo bot binds loopback only");
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("THREADS"));
    let rt = slackgate_benches::runtime(threads);
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        eprintln!("echobot listening on {addr}");
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve(sock));
        }
    });
}

async fn serve(mut sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    loop {
        // Answer every complete request already buffered (pipelining-safe).
        while let Some((head, len)) = message_len(&buf) {
            buf.drain(..len);
            if sock.write_all(RESPONSE).await.is_err() {
                return;
            }
            if head.close {
                return;
            }
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
