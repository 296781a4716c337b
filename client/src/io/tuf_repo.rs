//! A TUF 1.0 client for any repository at a metadata base URL, keeping its trusted metadata in a local directory
//! under unversioned names (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, `<role>.json`). This is
//! the library behind `wharf-tuf-client`, the program the TUF conformance suites drive; every decision is made by
//! the pure `TrustedSet` in its strict form, and only metadata that passed verification is written.
//!
//! Requests are made one at a time on fresh connections, so a server that answers one request at a time works.
//! The workflow is the one updater ([`crate::io::tuf`]) with a [`MetadataDir`].

use std::path::{Path, PathBuf};

use crate::io::transport::{Transport, TransportError};
use crate::io::tuf::fetch::{Fetcher, HttpFetcher};
use crate::io::tuf::local::{write_atomic, MetadataDir};
use crate::io::tuf::updater::{Options, Updater};
use crate::io::tuf::UpdateError;
use wharf_format::tuf::{check_hashes, TargetFile, TrustedSet, TufError};

pub use crate::io::tuf::quote;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the trusted root is refused")]
    Refused(#[from] TufError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("target {name:?} from {url}: {reason}")]
    BadTarget { name: String, url: String, reason: String },
}

/// A repository client: the one updater over HTTP, keeping its trusted metadata in a directory, in the
/// specification's strict form.
pub struct RepoClient {
    updater: Updater<HttpFetcher, MetadataDir>,
}

/// Copies a trusted root into `dir` as `root.json`; touches no network. The root must be a well-formed root
/// signed by its own threshold.
pub fn init(dir: &Path, root_file: &Path) -> Result<(), RepoError> {
    let bytes = std::fs::read(root_file).map_err(|source| RepoError::Io { path: root_file.into(), source })?;
    TrustedSet::new(&bytes, 0)?;
    std::fs::create_dir_all(dir).map_err(|source| RepoError::Io { path: dir.into(), source })?;
    let path = dir.join("root.json");
    write_atomic(&path, &bytes).map_err(|source| RepoError::Io { path, source })
}

impl RepoClient {
    /// A client for the metadata at `metadata_url` (and targets at `target_base`, to download), from the root
    /// kept in `dir` (5.2: run [`init`] first). `now` is read once by the caller.
    pub fn new(
        metadata_url: url::Url,
        target_base: Option<url::Url>,
        dir: PathBuf,
        now: i64,
    ) -> Result<RepoClient, RepoError> {
        let path = dir.join("root.json");
        let root = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let source = std::io::Error::new(e.kind(), "no trusted root: run init first");
                return Err(RepoError::Io { path, source });
            }
            Err(source) => return Err(RepoError::Io { path, source }),
        };
        let mut fetcher = HttpFetcher::new(Transport::one_at_a_time(metadata_url)?, "");
        if let Some(base) = target_base {
            fetcher = fetcher.with_targets(Transport::one_at_a_time(base)?);
        }
        let opts = Options { strict: true, ..Options::new(now) };
        Ok(RepoClient { updater: Updater::new(&root, fetcher, MetadataDir::new(dir), &opts)? })
    }

    /// The top-level update workflow (5.3-5.6), reusing local files that still verify.
    pub async fn refresh(&mut self) -> Result<&TrustedSet, RepoError> {
        self.updater.refresh().await?;
        Ok(self.updater.trusted())
    }

    /// 5.6.7: `name`'s target file, as the delegation search finds it.
    pub async fn find(&mut self, name: &str) -> Result<TargetFile, RepoError> {
        Ok(self.updater.find(name).await?.target)
    }

    /// Downloads `target` into `target_dir` under its URL-quoted name, unless a file with matching length and
    /// hashes is already there. With consistent snapshots the URL names `<hash>.<basename>`.
    pub async fn download(&self, name: &str, target: &TargetFile, target_dir: &Path) -> Result<PathBuf, RepoError> {
        let path = target_dir.join(quote(name, false));
        if let Ok(existing) = std::fs::read(&path) {
            if existing.len() as u64 == target.length && check_hashes(name, &existing, &target.hashes, "").is_ok() {
                return Ok(path);
            }
        }
        let remote = match (self.updater.trusted().root().consistent_snapshot, target.hashes.values().next()) {
            (true, Some(hash)) => match name.rsplit_once('/') {
                Some((dir, file)) => format!("{dir}/{hash}.{file}"),
                None => format!("{hash}.{name}"),
            },
            _ => name.to_string(),
        };
        let remote = quote(&remote, true);
        let fetcher = self.updater.fetcher();
        let url = fetcher.target_url(&remote);
        let bytes = fetcher.target(&remote, target.length).await?;
        if bytes.len() as u64 != target.length {
            let reason = format!("{} bytes where {} were signed", bytes.len(), target.length);
            return Err(RepoError::BadTarget { name: name.into(), url, reason });
        }
        if target.hashes.is_empty() || check_hashes(name, &bytes, &target.hashes, "targets").is_err() {
            return Err(RepoError::BadTarget { name: name.into(), url, reason: "hash mismatch".into() });
        }
        std::fs::create_dir_all(target_dir).map_err(|source| RepoError::Io { path: target_dir.into(), source })?;
        write_atomic(&path, &bytes).map_err(|source| RepoError::Io { path: path.clone(), source })?;
        Ok(path)
    }
}
