//! `wharf admin backup DIR` and `wharf admin restore DIR`: a consistent copy of a registry while it serves, and
//! its restoration into an empty data directory, database and store.
//!
//! A backup holds the collector off (it takes the collector's `gc` lease and keeps it), copies the database first
//! (SQLite: `VACUUM INTO`; PostgreSQL: `pg_dump` in an exported snapshot), then exactly the blobs that copy's rows
//! name (hard links from a local store on the same file system, else streamed copies), then what the server keeps
//! outside the database that a restore needs (the key-encryption key in the data directory, TLS files kept there).
//! `backup.json`, written last, lists every file with its size and digest; a directory without it is no backup.
//! A restore verifies every file against it before writing anything, then writes the store, then the database.

mod pg;
mod restore;
mod take;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wharf_storage::meta::BackupCounts;

pub use restore::restore;
pub use take::backup;

/// The version of `backup.json` this build writes and reads.
pub const FORMAT: u32 = 1;
/// The record of a complete backup, in its directory.
pub const RECORD: &str = "backup.json";
/// Where blobs go in a backup: `store/<the store's key>`.
const STORE: &str = "store";

/// `wharf admin backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The directory to write the backup into (created; must be empty or absent).
    pub dir: PathBuf,
    /// Print the record (`backup.json`) on standard output when done.
    #[arg(long)]
    pub json: bool,
}

/// `wharf admin restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A directory that `wharf admin backup` wrote.
    pub dir: PathBuf,
}

/// `backup.json`: what a backup holds and how to verify each file of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    /// When the backup started (its database state is from then or a little later), Unix seconds and RFC 3339.
    pub created_at: i64,
    pub created: String,
    pub wharf_version: String,
    pub stack: Stack,
    pub database: FileEntry,
    pub counts: BackupCounts,
    /// Bytes of every file listed here (database, secrets and blobs).
    pub total_bytes: u64,
    /// `data_dir`: the key-encryption key is `trust.kek`, listed in `secrets`. `external`: it was configured
    /// (`WHARF_TRUST_KEY_ENCRYPTION_KEY` or a file), and the restored server needs the same one.
    pub key_encryption_key: String,
    /// Files of the data directory other than the database and the store (path relative to it), mode 0600.
    pub secrets: Vec<FileEntry>,
    pub blobs: Vec<BlobEntry>,
}

impl Record {
    /// What it holds, for the line `backup` and `restore` print.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "{} repositories, {} manifests, {} tags, {} blobs ({} bytes in all)",
            c.repositories,
            c.manifests,
            c.tags,
            self.blobs.len(),
            self.total_bytes
        )
    }
}

/// Which database and store the backup was taken from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stack {
    /// `sqlite` or `postgres`.
    pub database: String,
    /// `file` or `s3` (a backup restores into either).
    pub storage: String,
}

/// A file of the backup: its path in the backup directory, size and SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A blob of the backup: its key in the store (the file is `store/<key>`), digest (what its bytes must hash to)
/// and size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobEntry {
    pub key: String,
    pub digest: String,
    pub size: u64,
    /// A hard link to the store's file: its bytes were not re-read at backup (a streamed copy's were, and hashed),
    /// and it shares that file, damage and all.
    #[serde(default)]
    pub linked: bool,
}

impl BlobEntry {
    /// The file in the backup directory.
    fn file(&self, dir: &Path) -> PathBuf {
        dir.join(STORE).join(&self.key)
    }
}

/// Whether a key is one a backup may hold: a committed blob's, with no way out of `store/`.
fn safe_key(key: &str) -> bool {
    key.starts_with("blobs/") && !key.split('/').any(|p| p.is_empty() || p == "." || p == "..")
}

/// Whether a secret's path stays inside the data directory.
fn safe_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|p| p.is_empty() || p == "." || p == "..")
}

/// The database's kind, as `Stack::database` names it.
fn database_kind(url: &str) -> &'static str {
    if url.starts_with("sqlite://") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// The SQLite database file of a `sqlite://PATH` URL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://").map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)))
}

/// SHA-256 of a file, and its size.
fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths_stay_inside() {
        for (key, ok) in [
            ("blobs/sha256/ab/abcd", true),
            ("blobs/uploaded/0123", true),
            ("blobs/../../etc/passwd", false),
            ("uploads/x/data", false),
            ("blobs//x", false),
            ("/blobs/x", false),
        ] {
            assert_eq!(safe_key(key), ok, "{key}");
        }
        for (path, ok) in [("trust.kek", true), ("tls/server.key", true), ("../x", false), ("/etc/x", false)] {
            assert_eq!(safe_relative(path), ok, "{path}");
        }
    }
}
