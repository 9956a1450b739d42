//! Where token rotation keeps the sealed pairs: files under `state.path` or Redis, with
//! the one-writer lock of each bot (see `rotation.rs` for how they are used).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use slackgate_guard::StateError;

use super::seal::SealError;
use crate::core::redis::RedisState;

/// Why the token store could not be read or written, or a pair not be made ready for it.
/// The texts never hold a token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The local pair is there but cannot be read.
    #[error("cannot read it: {}", .0.kind())]
    Read(#[source] std::io::Error),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[source] StateError),
    /// The tokens directory cannot be created.
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The new pair cannot be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The pair's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The lock file cannot be opened.
    #[error("cannot open {}: {source}", .path.display())]
    OpenLock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The lock file cannot be locked (other than being locked by another process).
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No random lock owner could be drawn.
    #[error("the system random source failed")]
    Random,
    /// No Redis client could be made (the CA file cannot be read).
    #[error("{0}")]
    Client(String),
    /// The start-up check could not start its runtime.
    #[error("cannot start a runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The stored pair (where it is) does not open with the key.
    #[error("{0} does not open with state.encryption_key")]
    DoesNotOpen(String),
    /// A minted pair cannot be encoded.
    #[error("cannot encode the pair: {0}")]
    Encode(#[source] serde_json::Error),
    /// A minted pair cannot be sealed.
    #[error("{0}")]
    Seal(#[source] SealError),
}

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
    pub(super) fn load_local(path: &Path, bot: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(Self::file(path, bot)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Read(e)),
        }
    }

    pub(super) async fn load(&self, bot: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Local(path) => Self::load_local(path, bot),
            Store::Redis(r) => r.get(&["token", bot]).await.map_err(StoreError::Redis),
        }
    }

    /// Writes a sealed pair: a new file renamed over the old one (so a crash leaves the
    /// old pair or the new one, never half of either), readable by this user only.
    pub(super) async fn save(&self, bot: &str, sealed: &[u8]) -> Result<(), StoreError> {
        match self {
            Store::Local(path) => {
                let dir = Self::dir(path);
                create_private_dir(&dir)?;
                let target = Self::file(path, bot);
                let tmp = dir.join(format!(".{bot}.sealed.tmp"));
                let write = || -> std::io::Result<()> {
                    let mut f = private_file(&tmp)?;
                    f.write_all(sealed)?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &target)?;
                    File::open(&dir)?.sync_all()
                };
                write().map_err(|source| StoreError::Write {
                    path: target,
                    source,
                })
            }
            Store::Redis(r) => r
                .set(&["token", bot], sealed)
                .await
                .map_err(StoreError::Redis),
        }
    }

    /// Takes the one-writer lock for `bot`; `None` while another process holds it.
    pub(super) async fn try_lock(
        &self,
        bot: &str,
        ttl: Duration,
    ) -> Result<Option<Held>, StoreError> {
        match self {
            Store::Local(path) => {
                let dir = Self::dir(path);
                create_private_dir(&dir)?;
                let lock = dir.join(format!("{bot}.lock"));
                let f = match private_file_keep(&lock) {
                    Ok(f) => f,
                    Err(source) => return Err(StoreError::OpenLock { path: lock, source }),
                };
                match f.try_lock() {
                    Ok(()) => Ok(Some(Held::Local(f))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(source)) => {
                        Err(StoreError::Lock { path: lock, source })
                    }
                }
            }
            Store::Redis(r) => {
                let owner = random_owner()?;
                match r.lock(&["token-lock", bot], &owner, ttl).await {
                    Ok(true) => Ok(Some(Held::Redis(owner))),
                    Ok(false) => Ok(None),
                    Err(e) => Err(StoreError::Redis(e)),
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

fn random_owner() -> Result<String, StoreError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Random)?;
    Ok(hex::encode(b))
}

/// Creates `dir` (and its parents) readable by this user only, if it is not there.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    create_private_dir_io(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(unix)]
fn create_private_dir_io(dir: &Path) -> std::io::Result<()> {
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
fn create_private_dir_io(dir: &Path) -> std::io::Result<()> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[tokio::test]
    async fn store_failures_name_the_path_and_keep_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        // `state.path` is a file: the tokens directory cannot be made under it.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let store = Store::Local(file.clone());
        for e in [
            store.save("helpdesk", b"sealed").await.unwrap_err(),
            store
                .try_lock("helpdesk", Duration::from_secs(1))
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(&e, StoreError::CreateDir { path, .. } if *path == file.join("tokens"))
            );
            assert!(e.to_string().starts_with(&format!(
                "cannot create {}: ",
                file.join("tokens").display()
            )));
            assert!(e.source().unwrap().is::<std::io::Error>());
        }
        // A pair that is there but cannot be read: named by its kind only.
        std::fs::create_dir_all(dir.path().join("tokens/helpdesk.sealed")).unwrap();
        let e = Store::load_local(dir.path(), "helpdesk").unwrap_err();
        assert!(e.to_string().starts_with("cannot read it: "), "{e}");
        assert_eq!(Store::load_local(dir.path(), "other").unwrap(), None);
    }
}
