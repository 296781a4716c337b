//! Where an updater keeps the metadata it trusted (the specification's "persist" steps: 5.3.8, 5.4.5, 5.5.7,
//! 5.6.6) and finds what it trusted last time. A kept copy is only ever a candidate: the updater verifies it again
//! under the current root before it counts for anything (5.3.11).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::quote;

/// Trusted metadata by role name (`root`, `timestamp`, `snapshot`, `targets`, a delegated role's name).
pub trait LocalMetadata {
    /// The copy of `role` kept last time, if there is one.
    fn load(&self, role: &str) -> std::io::Result<Option<Vec<u8>>>;

    /// Keeps `bytes`, which just passed verification, as `role`'s trusted copy.
    fn store(&mut self, role: &str, bytes: &[u8]) -> std::io::Result<()>;
}

/// Nothing kept before, and what is kept lives as long as the value: for a one-off refresh (a publisher reading
/// its own repository) and for tests.
#[derive(Debug, Clone, Default)]
pub struct Memory(pub BTreeMap<String, Vec<u8>>);

impl LocalMetadata for Memory {
    fn load(&self, role: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.get(role).cloned())
    }

    fn store(&mut self, role: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.insert(role.to_string(), bytes.to_vec());
        Ok(())
    }
}

/// A directory of `<role>.json` files (the role name URL-quoted), each written atomically and synced as it
/// verifies: the layout python-tuf's and go-tuf's clients keep, and the one the conformance suite reads.
#[derive(Debug, Clone)]
pub struct MetadataDir {
    dir: PathBuf,
}

impl MetadataDir {
    pub fn new(dir: impl Into<PathBuf>) -> MetadataDir {
        MetadataDir { dir: dir.into() }
    }

    pub fn path(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.json", quote(role, false)))
    }
}

impl LocalMetadata for MetadataDir {
    fn load(&self, role: &str) -> std::io::Result<Option<Vec<u8>>> {
        read_if_present(&self.path(role))
    }

    fn store(&mut self, role: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.path(role), bytes)
    }
}

/// A file's bytes, or `None` when there is no such file; any other failure to read it is an error, never
/// "nothing kept".
pub fn read_if_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // Durable means synced: the rename too.
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
