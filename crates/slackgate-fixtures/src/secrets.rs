//! [`MapSecrets`]: the one in-memory secret source of the test suites.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use slackgate_policy::SecretSource;

/// Secrets from memory: environment values from a map, files from a map and (unless the
/// source was made with [`MapSecrets::in_memory`] or [`MapSecrets::any_env`]) from the
/// file system.
///
/// Clones share one map, so a test can change a secret under a running gateway and reload.
#[derive(Debug, Clone)]
pub struct MapSecrets {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    env: HashMap<String, String>,
    files: HashMap<PathBuf, Vec<u8>>,
    /// Whether a file missing from `files` is read from the file system.
    disk: bool,
    /// Whether every env name is answered, with `secret-for-NAME`.
    any_env: bool,
}

impl Default for MapSecrets {
    /// No env values; files from the file system.
    fn default() -> Self {
        Self::with(true, false)
    }
}

impl MapSecrets {
    fn with(disk: bool, any_env: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                env: HashMap::new(),
                files: HashMap::new(),
                disk,
                any_env,
            })),
        }
    }

    /// A source with these env values; files are read from the file system.
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        let s = Self::default();
        for (k, v) in pairs {
            s.set(k, v);
        }
        s
    }

    /// A source with these env values and only the files given by [`MapSecrets::set_file`];
    /// the file system is never read.
    pub fn in_memory(pairs: &[(&str, &str)]) -> Self {
        let s = Self::with(false, false);
        for (k, v) in pairs {
            s.set(k, v);
        }
        s
    }

    /// A source that answers every env name with `secret-for-NAME` and knows no files:
    /// for loading policies whose variable names the test does not care about.
    pub fn any_env() -> Self {
        Self::with(false, true)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Sets (or replaces) an env value; the next load or reload sees it.
    pub fn set(&self, k: &str, v: &str) {
        self.lock().env.insert(k.to_owned(), v.to_owned());
    }

    /// Removes an env value.
    pub fn remove(&self, k: &str) {
        self.lock().env.remove(k);
    }

    /// Sets (or replaces) the contents of the file at `path`, as the policy names it.
    pub fn set_file(&self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        self.lock().files.insert(path.into(), contents.into());
    }
}

impl SecretSource for MapSecrets {
    fn env(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        if inner.any_env {
            return Some(format!("secret-for-{name}"));
        }
        inner.env.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let inner = self.lock();
        match inner.files.get(path) {
            Some(contents) => Ok(contents.clone()),
            None if inner.disk => std::fs::read(path),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
}
