//! The process signals of `slackgate run`, with an operator's feedback at the default
//! log level.
//!
//! pingora's own watcher treats every `SIGQUIT` as "a new process is waiting for the
//! listeners": sent too early, the old process retries for a few seconds, gives up, and
//! drains anyway, leaving nobody to serve. This watcher checks first that a process is
//! listening on the upgrade socket (`/proc/net/unix`, which a connect would disturb:
//! the new process accepts exactly one connection for the handover) and otherwise logs
//! why the signal is ignored and keeps serving.
//!
//! - `SIGQUIT`: hand the listeners to the new process (`run --upgrade`), then drain.
//! - `SIGTERM`: drain: stop accepting, answer requests on open connections with
//!   `Connection: close`, close connections that stay idle, exit after `shutdown_grace`.
//! - `SIGINT`: stop now.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

/// The watcher for `slackgate run`.
#[derive(Debug)]
pub struct OperatorSignals {
    /// pingora's upgrade socket.
    pub upgrade_sock: PathBuf,
    /// `limits.shutdown_grace`, for the log.
    pub grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for OperatorSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            log::error!("cannot install the signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = quit.recv() => {
                    let sock = self.upgrade_sock.display();
                    if is_listening(&self.upgrade_sock) {
                        log::info!(
                            "SIGQUIT: handing the listening sockets to the new process on {sock}; \
                             this process then drains for up to {}s",
                            self.grace.as_secs()
                        );
                        return ShutdownSignal::GracefulUpgrade;
                    }
                    log::warn!(
                        "SIGQUIT ignored: no new process is waiting on {sock}; still serving. \
                         Start `slackgate run --upgrade --upgrade-sock {sock}` first, wait until \
                         it says it is waiting for the listeners, then send SIGQUIT again"
                    );
                }
                _ = term.recv() => {
                    log::info!(
                        "SIGTERM: draining: no new connections; open ones are answered with \
                         `Connection: close`; exit within {}s",
                        self.grace.as_secs()
                    );
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    log::info!("SIGINT: stopping now");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
    }
}

/// Whether a process listens on the Unix socket at `path` (Linux: `/proc/net/unix`).
/// Where that table cannot be read, the socket file existing is taken as a yes.
pub fn is_listening(path: &Path) -> bool {
    match std::fs::read_to_string("/proc/net/unix") {
        Ok(table) => listening_in(&table, path),
        Err(_) => path.exists(),
    }
}

/// Whether `table` (the text of `/proc/net/unix`) has a listening socket bound to
/// `path` (as given, or canonical).
fn listening_in(table: &str, path: &Path) -> bool {
    // __SO_ACCEPTCON: the socket is listening.
    const ACCEPTCON: u32 = 0x0001_0000;
    let given = path.to_string_lossy();
    let canonical = path
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .zip(path.file_name())
        .map(|(d, f)| d.join(f).to_string_lossy().into_owned());
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(flags), Some(bound)) = (fields.get(3), fields.get(7)) else {
            return false;
        };
        let listening = u32::from_str_radix(flags, 16).is_ok_and(|f| f & ACCEPTCON != 0);
        listening && (*bound == given || canonical.as_deref() == Some(*bound))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_and_a_stale_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.sock");
        assert!(!is_listening(&path));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(is_listening(&path));
        drop(listener);
        assert!(path.exists(), "the file stays behind");
        assert!(
            !is_listening(&path),
            "a stale socket file is not a waiting process"
        );
    }

    #[test]
    fn the_table_is_read_by_flags_and_path() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                     0000000000000000: 00000002 00000000 00010000 0001 01 1234 /run/up.sock\n\
                     0000000000000000: 00000002 00000000 00000000 0001 03 1235 /run/other.sock\n";
        assert!(listening_in(table, Path::new("/run/up.sock")));
        assert!(!listening_in(table, Path::new("/run/other.sock")));
        assert!(!listening_in(table, Path::new("/run/none.sock")));
    }
}
