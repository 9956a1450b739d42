//! A real `redis-server` on a free loopback port, stopped when dropped (the shared-state
//! tests; `scripts/deps.sh` installs it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until};

/// A running `redis-server` that keeps nothing on disk.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one on `addr` and waits until it answers PING.
    pub fn start_on(addr: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests: run scripts/deps.sh");
        let r = Self {
            child,
            addr,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || r.ping()),
            "redis-server did not start"
        );
        r
    }

    /// Starts one on a free port.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills it (the tests of a Redis that dies).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
