//! The snapshot store: each layer extracted once, by its uncompressed digest (`diff_id`), into its own directory in
//! overlayfs form, shared by every image that has the layer.
//!
//! ```text
//! <store>/snapshots/
//! ├── sha256/<hex>[+devices]/    complete: info.json and fs/ (the layer alone; whiteouts as 0:0 devices,
//! │                              opaque directories marked with the overlay xattr)
//! └── tmp/<hex>.<pid>.<n>/       an extraction in progress, or one whose process died: never read as a snapshot
//! ```
//!
//! A snapshot is extracted under `tmp/`, its `diff_id` checked against the stream, `info.json` written, and only
//! then renamed to its key: a snapshot directory with a name under `sha256/` is complete. Removal renames it back
//! under `tmp/` before deleting, so a half-deleted snapshot is never visible either. Layers whose devices are
//! created (`--allow-devices`) get their own key, so the device policy of one image never leaks into another.
//! The store's own directories (`snapshots/`, `sha256/`, `tmp/`, each snapshot's directory) are 0700 and
//! `info.json` 0600, as containerd keeps its snapshots; a snapshot's `fs/` holds the layer's own modes.

mod flatten;
mod mount;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::store::ContentStore;
use crate::io::unpack::{Budget, Form, UnpackError, UnpackOptions};
use wharf_format::digest::Digest;
use wharf_format::manifest::Descriptor;

pub use flatten::flatten;
pub use mount::{mount_overlay, unmount, OverlayMount};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("layer {layer}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("image config {digest}: {reason}")]
    Config { digest: Digest, reason: String },
    #[error("image config {digest}: not JSON")]
    ConfigJson {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} is not in the local content store: pull it first")]
    Missing(Digest),
    #[error("snapshot store")]
    Io(#[from] std::io::Error),
}

/// What `info.json` records about a complete snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub diff_id: Digest,
    /// The (compressed) layer blob it was extracted from.
    pub layer: Digest,
    pub files: u64,
    pub dirs: u64,
    pub whiteouts: u64,
    /// File content bytes.
    pub bytes: u64,
    pub devices: bool,
    /// The xattr marking opaque directories (`trusted.overlay.opaque` or `user.overlay.opaque`).
    pub opaque_xattr: String,
    /// Whether the layer sets the root directory's metadata (has a `./` entry).
    #[serde(default)]
    pub root_entry: bool,
}

/// One snapshot: its key (directory name) and where its tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub key: String,
    pub fs: PathBuf,
    /// Whether the layer sets the root directory's metadata.
    pub root_entry: bool,
}

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl SnapshotStore {
    pub fn open(store: &ContentStore) -> std::io::Result<SnapshotStore> {
        let root = store.root().join("snapshots");
        for d in [&root, &root.join("sha256"), &root.join("tmp")] {
            crate::io::modes::create_dir_all(d)?;
            crate::io::modes::close_dir(d)?;
        }
        let store = SnapshotStore { root };
        // What a killed extraction left is cleared by the next user of the store.
        if let Err(e) = store.clean_stale() {
            tracing::warn!(error = %e, "clearing interrupted snapshot extractions");
        }
        Ok(store)
    }

    /// The key of a layer's snapshot under `opts`' device policy.
    pub fn key(diff_id: &Digest, opts: &UnpackOptions) -> String {
        if opts.devices {
            format!("{}+devices", diff_id.hex())
        } else {
            diff_id.hex().to_string()
        }
    }

    fn dir(&self, key: &str) -> PathBuf {
        self.root.join("sha256").join(key)
    }

    pub fn get(&self, key: &str) -> Option<Snapshot> {
        let dir = self.dir(key);
        let info = self.info(key)?;
        Some(Snapshot { key: key.to_string(), fs: dir.join("fs"), root_entry: info.root_entry })
    }

    pub fn info(&self, key: &str) -> Option<SnapshotInfo> {
        serde_json::from_slice(&std::fs::read(self.dir(key).join("info.json")).ok()?).ok()
    }

    /// Every complete snapshot's key.
    pub fn keys(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.root.join("sha256"))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if self.get(&name).is_some() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Extracts the layer blob at `blob` (checked against `diff_id` while it streams) unless its snapshot exists.
    /// Returns the snapshot and whether this call extracted it.
    pub fn extract(
        &self,
        blob: &Path,
        layer: &Digest,
        diff_id: &Digest,
        opts: &UnpackOptions,
        budget: &Budget,
    ) -> Result<(Snapshot, bool), SnapshotError> {
        let key = Self::key(diff_id, opts);
        if let Some(s) = self.get(&key) {
            return Ok((s, false));
        }
        let n = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!("{key}.{}.{n}", std::process::id()));
        // The snapshot's directory is the store's (0700); `fs/` is the layer's root, 0755 unless the layer says.
        let mut private = std::fs::DirBuilder::new();
        private.mode(crate::io::modes::DIR_MODE);
        if let Err(e) = private.create(&tmp) {
            // A dead process with this process's id left its extraction under the same name.
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e.into());
            }
            remove_tree(&tmp)?;
            private.create(&tmp)?;
        }
        std::fs::DirBuilder::new().mode(0o755).create(tmp.join("fs"))?;
        let result = (|| -> Result<(), SnapshotError> {
            let f = std::fs::File::open(blob).map_err(|_| SnapshotError::Missing(layer.clone()))?;
            let form = Form::overlay();
            let stats = crate::io::unpack::extract(&tmp.join("fs"), f, opts, form, budget, Some(diff_id))
                .map_err(|source| SnapshotError::Unpack { layer: layer.clone(), source })?;
            let Form::Overlay { opaque_xattr } = form else { unreachable!("Form::overlay is an overlay form") };
            let info = SnapshotInfo {
                diff_id: diff_id.clone(),
                layer: layer.clone(),
                files: stats.files,
                dirs: stats.dirs,
                whiteouts: stats.whiteouts,
                bytes: stats.bytes,
                devices: opts.devices,
                opaque_xattr: opaque_xattr.to_string(),
                root_entry: stats.root_entry,
            };
            let json = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?;
            crate::io::modes::write(&tmp.join("info.json"), &json)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
        let done = |fresh| self.get(&key).map(|s| (s, fresh)).ok_or_else(|| std::io::Error::other("snapshot vanished"));
        match std::fs::rename(&tmp, self.dir(&key)) {
            Ok(()) => Ok(done(true)?),
            // Another process completed the same snapshot first: use theirs.
            Err(_) if self.get(&key).is_some() => {
                let _ = remove_tree(&tmp);
                Ok(done(false)?)
            }
            Err(e) => {
                let _ = remove_tree(&tmp);
                Err(e.into())
            }
        }
    }

    /// Removes a snapshot: first out of sight (renamed under `tmp/`), then from the disk.
    pub fn remove(&self, key: &str) -> std::io::Result<()> {
        let n = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gone = self.root.join("tmp").join(format!("{key}.{}.{n}.removing", std::process::id()));
        match std::fs::rename(self.dir(key), &gone) {
            Ok(()) => remove_tree(&gone),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes what extractions and removals of processes no longer running left under `tmp/`; returns how many.
    pub fn clean_stale(&self) -> std::io::Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(self.root.join("tmp"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('.').nth(1).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                remove_tree(&e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The snapshots of an image's layers, bottom first, extracting the missing ones on all cores at once (each
    /// checked against the config's `diff_ids`). Returns them and how many were extracted now.
    pub fn prepare(
        &self,
        store: &ContentStore,
        config: &Descriptor,
        layers: &[Descriptor],
        opts: &UnpackOptions,
    ) -> Result<(Vec<Snapshot>, usize), SnapshotError> {
        let diff_ids = diff_ids(store, config, layers.len())?;
        let budget = Budget::new(opts.max_bytes);
        let work: Vec<(usize, &Descriptor, &Digest)> =
            layers.iter().zip(&diff_ids).enumerate().map(|(i, (l, d))| (i, l, d)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(vec![None; layers.len()]);
        let threads = crate::io::unpack::default_threads().min(layers.len().max(1));
        let first_error: std::sync::Mutex<Option<SnapshotError>> = std::sync::Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((idx, l, d)) = work.get(i) else { return };
                    if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    match self.extract(&store.blob_path(&l.digest), &l.digest, d, opts, &budget) {
                        Ok(r) => {
                            if let Ok(mut v) = results.lock() {
                                v[*idx] = Some(r);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let fresh = results.iter().flatten().filter(|(_, f)| *f).count();
        let snaps = results.into_iter().map(|r| r.map(|(s, _)| s)).collect::<Option<Vec<_>>>();
        let snaps = snaps.ok_or_else(|| SnapshotError::Io(std::io::Error::other("a layer was not extracted")))?;
        Ok((snaps, fresh))
    }
}

/// The `rootfs.diff_ids` of an image config, one per layer.
pub fn diff_ids(store: &ContentStore, config: &Descriptor, layers: usize) -> Result<Vec<Digest>, SnapshotError> {
    let bad = |reason: String| SnapshotError::Config { digest: config.digest.clone(), reason };
    let bytes = store.read(&config.digest).map_err(|_| SnapshotError::Missing(config.digest.clone()))?;
    let cfg: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|source| SnapshotError::ConfigJson { digest: config.digest.clone(), source })?;
    let ids = cfg["rootfs"]["diff_ids"].as_array().ok_or_else(|| bad("no rootfs.diff_ids".into()))?;
    if ids.len() != layers {
        return Err(bad(format!("{} diff_ids for {layers} layers", ids.len())));
    }
    ids.iter()
        .map(|v| v.as_str().and_then(|s| s.parse::<Digest>().ok()).ok_or_else(|| bad(format!("bad diff_id {v}"))))
        .collect()
}

/// Removes a directory tree, making read-only directories writable on the way (a layer may hold a 0555 one).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    fn walk(p: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        if !meta.is_dir() {
            return std::fs::remove_file(p);
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
        for e in std::fs::read_dir(p)? {
            walk(&e?.path())?;
        }
        std::fs::remove_dir(p)
    }
    walk(path)
}
