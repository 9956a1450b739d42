//! Reload triggers from the file system: the config, the policy and every secret file.
//!
//! The watcher polls content fingerprints instead of relying on inotify events, which
//! is what survives every way files get replaced in practice: editors that write a
//! temp file and rename it over the original, and Kubernetes ConfigMap/Secret volumes
//! that swap a `..data` symlink to a new directory atomically. Paths are re-resolved
//! through symlinks on every poll, so a swap is seen as a content change. A change
//! triggers one reload; a reload that fails is not retried until the files change
//! again (the running policy keeps serving meanwhile).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use slackgate_policy::SecretRef;

use crate::core::state::{Shared, Snapshot};

/// Default time between two polls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The files a snapshot was loaded from.
pub fn watched_paths(config_path: &std::path::Path, snap: &Snapshot) -> Vec<PathBuf> {
    let mut paths = vec![config_path.to_path_buf(), snap.config.policy_path.clone()];
    for app in snap.policy.apps.values() {
        for secret in app.secrets.iter() {
            if let SecretRef::File(p) = &secret.source {
                paths.push(p.clone());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// A fingerprint of the files' current contents (missing files included as such).
pub fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in paths {
        p.hash(&mut h);
        match std::fs::read(p) {
            Ok(bytes) => {
                1u8.hash(&mut h);
                bytes.hash(&mut h);
            }
            Err(e) => {
                0u8.hash(&mut h);
                e.kind().hash(&mut h);
            }
        }
    }
    h.finish()
}

/// The background service that polls and reloads.
#[derive(Debug)]
pub struct FileWatcher {
    shared: Arc<Shared>,
    interval: Duration,
}

impl FileWatcher {
    /// A watcher polling every `interval`.
    pub fn new(shared: Arc<Shared>, interval: Duration) -> Self {
        Self { shared, interval }
    }
}

#[async_trait]
impl BackgroundService for FileWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let shared = Arc::clone(&self.shared);
        let initial = tokio::task::spawn_blocking(move || {
            let paths = watched_paths(&shared.config_path, &shared.current());
            fingerprint(&paths)
        })
        .await
        .unwrap_or(0);
        let mut last = initial;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let shared = Arc::clone(&self.shared);
            let seen = last;
            let result = tokio::task::spawn_blocking(move || {
                let paths = watched_paths(&shared.config_path, &shared.current());
                let now = fingerprint(&paths);
                if now == seen {
                    return now;
                }
                log::info!("files changed on disk; reloading");
                let outcome = shared.reload();
                // What was seen before the reload read the files: a change written while
                // it ran differs from it and triggers the next reload (fingerprinting
                // again here would take that change for the loaded one and lose it).
                // Only when the reload watches other files (a secret file added or gone)
                // is the new set fingerprinted, to start from it.
                if !outcome.ok {
                    return now;
                }
                let watched = watched_paths(&shared.config_path, &shared.current());
                if watched == paths {
                    now
                } else {
                    fingerprint(&watched)
                }
            })
            .await;
            if let Ok(fp) = result {
                last = fp;
            }
        }
    }
}
