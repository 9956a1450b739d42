//! Where token rotation keeps the sealed pairs: files under `state.path` or Redis, with
//! the one-writer lock of each bot (see `rotation.rs` for how they are used).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use crate::core::redis::RedisState;

/// Where sealed pairs live: files under `state.path`, or Redis.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// `state.path/tokens/<bot>.sealed`, with `<bot>.lock` for the one writer.
    Local(PathBuf),
    /// `<prefix>token:<bot>`, with `<prefix>token-lock:<bot>` for the one writer.
    Redis(Arc<RedisState>),
}

/// A held writer lock; released on drop (local) or by [`Store::unlock`] (Redis).
#[derive(Debug)]
pub(super) enum Held {
    Local(#[allow(dead_code)] File),
    Redis(String),
}

impl Store {
    fn dir(path: &Path) -> PathBuf {
        path.join("tokens")
    }

    fn file(path: &Path, bot: &str) -> PathBuf {
        Self::dir(path).join(format!("{bot}.sealed"))
    }

    /// Where a bot's pair is, for messages.
    pub(crate) fn describe(&self, bot: &str) -> String {
        match self {
            Store::Local(path) => Self::file(path, bot).display().to_string(),
            Store::Redis(_) => format!("redis key token:{bot}"),
        }
    }

    /// The local store's sealed pair, read synchronously (the start-up check).
    pub(super) fn load_local(path: &Path, bot: &str) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(Self::file(path, bot)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read it: {}", e.kind())),
        }
    }

    pub(super) async fn load(&self, bot: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Store::Local(path) => Self::load_local(path, bot),
            Store::Redis(r) => r
                .get(&["token", bot])
                .await
                .map_err(|e| format!("redis: {e}")),
        }
    }

    /// Writes a sealed pair: a new file renamed over the old one (so a crash leaves the
    /// old pair or the new one, never half of either), readable by this user only.
    pub(super) async fn save(&self, bot: &str, sealed: &[u8]) -> Result<(), String> {
        match self {
            Store::Local(path) => {
                let dir = Self::dir(path);
                create_private_dir(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let target = Self::file(path, bot);
                let tmp = dir.join(format!(".{bot}.sealed.tmp"));
                let write = || -> std::io::Result<()> {
                    let mut f = private_file(&tmp)?;
                    f.write_all(sealed)?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &target)?;
                    File::open(&dir)?.sync_all()
                };
                write().map_err(|e| format!("cannot write {}: {e}", target.display()))
            }
            Store::Redis(r) => r
                .set(&["token", bot], sealed)
                .await
                .map_err(|e| format!("redis: {e}")),
        }
    }

    /// Takes the one-writer lock for `bot`; `None` while another process holds it.
    pub(super) async fn try_lock(&self, bot: &str, ttl: Duration) -> Result<Option<Held>, String> {
        match self {
            Store::Local(path) => {
                let dir = Self::dir(path);
                create_private_dir(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let lock = dir.join(format!("{bot}.lock"));
                let f = private_file_keep(&lock)
                    .map_err(|e| format!("cannot open {}: {e}", lock.display()))?;
                match f.try_lock() {
                    Ok(()) => Ok(Some(Held::Local(f))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(format!("cannot lock {}: {e}", lock.display()))
                    }
                }
            }
            Store::Redis(r) => {
                let owner = random_owner()?;
                match r.lock(&["token-lock", bot], &owner, ttl).await {
                    Ok(true) => Ok(Some(Held::Redis(owner))),
                    Ok(false) => Ok(None),
                    Err(e) => Err(format!("redis: {e}")),
                }
            }
        }
    }

    pub(super) async fn unlock(&self, bot: &str, held: Held) {
        if let (Store::Redis(r), Held::Redis(owner)) = (self, held) {
            // An unlock that fails leaves the lock to its expiry.
            if let Err(e) = r.unlock(&["token-lock", bot], &owner).await {
                log::warn!("token rotation: bot `{bot}`: releasing the refresh lock failed ({e}); it expires by itself");
            }
        }
    }
}

fn random_owner() -> Result<String, String> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "the system random source failed".to_owned())?;
    Ok(hex::encode(b))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn open_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// A new (truncated) file readable by this user only.
fn private_file(path: &Path) -> std::io::Result<File> {
    open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// A file kept as it is (the lock file), created readable by this user only.
fn private_file_keep(path: &Path) -> std::io::Result<File> {
    open_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}
