//! Wharf's TUF 1.0 trust data over the network: the one updater ([`crate::io::tuf`]) at `/v2/<name>/_tuf/`, the
//! trusted state a pull keeps per repository ([`Recorded`]), and a tag's target as a pull uses it
//! ([`SignedTarget`]). Every download is size-bounded; every decision is made by the pure `TrustedSet`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::io::source::Failure;
use crate::io::transport::{Transport, TransportError};
use crate::io::tuf::fetch::{Fetcher, HttpFetcher};
use crate::io::tuf::local::{read_if_present, LocalMetadata};
use crate::io::tuf::updater::{Options, Updater};
use crate::io::tuf::UpdateError;
use wharf_format::digest::Digest;
use wharf_format::name::RepositoryName;
use wharf_format::notary::V1MetadataError;
use wharf_format::tuf::{RoleName, TufError};

/// A pull's trust step failed, in either format.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("trust metadata refused")]
    Refused(#[from] TufError),
    #[error("Notary v1 trust data refused")]
    Notary(#[from] V1MetadataError),
    #[error("keeping the trusted {role} metadata")]
    Local {
        role: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tag {0:?} is not signed in the repository's trust data")]
    NotSigned(String),
}

impl From<UpdateError> for TrustError {
    fn from(e: UpdateError) -> TrustError {
        match e {
            UpdateError::Fetch(e) => TrustError::Transport(e),
            UpdateError::Refused(e) => TrustError::Refused(e),
            UpdateError::Local { role, source } => TrustError::Local { role, source },
            UpdateError::NotSigned(name) => TrustError::NotSigned(name),
        }
    }
}

impl TrustError {
    /// The class of this failure. A trust document that the trusted metadata requires and a source does not
    /// have (`404`) is a verification failure, not an absence: only a first use may find "no trust data".
    pub fn failure(&self) -> Failure {
        match self {
            TrustError::Transport(e) if e.is_not_found() => Failure::Verification,
            TrustError::Transport(e) => e.failure(),
            TrustError::Refused(_) | TrustError::Notary(_) | TrustError::NotSigned(_) => Failure::Verification,
            TrustError::Local { .. } => Failure::Other,
        }
    }
}

/// The TUF 1.0 state a pull keeps for a repository in the store's trust directory: `timestamp.json` and
/// `snapshot.json` as the rollback references (verified again under the current root before they count), and
/// `root.json`. What an updater keeps is staged here and written only by [`Recorded::commit`], once the pull has
/// proved its tag through that source: a source that fails half-way changes nothing on disk.
pub struct Recorded {
    dir: PathBuf,
    staged: BTreeMap<String, Vec<u8>>,
}

/// The roles a pull keeps besides root (targets are fetched on each pull).
const KEPT: [&str; 2] = ["timestamp", "snapshot"];

impl Recorded {
    pub fn new(dir: impl Into<PathBuf>) -> Recorded {
        Recorded { dir: dir.into(), staged: BTreeMap::new() }
    }

    /// Writes the trusted root (`root`: the newest one the refresh reached) and what was staged.
    pub fn commit(&self, root: &[u8]) -> std::io::Result<()> {
        crate::io::modes::write(&self.dir.join("root.json"), root)?;
        for (role, bytes) in &self.staged {
            crate::io::modes::write(&self.dir.join(format!("{role}.json")), bytes)?;
        }
        Ok(())
    }
}

impl LocalMetadata for Recorded {
    fn load(&self, role: &str) -> std::io::Result<Option<Vec<u8>>> {
        if let Some(b) = self.staged.get(role) {
            return Ok(Some(b.clone()));
        }
        if !KEPT.contains(&role) {
            return Ok(None);
        }
        read_if_present(&self.dir.join(format!("{role}.json")))
    }

    fn store(&mut self, role: &str, bytes: &[u8]) -> std::io::Result<()> {
        if KEPT.contains(&role) {
            self.staged.insert(role.to_string(), bytes.to_vec());
        }
        Ok(())
    }
}

/// An updater over a Wharf repository's `/_tuf/` metadata.
pub type RepoUpdater<L> = Updater<HttpFetcher, L>;

/// The fetcher for `repo`'s trust metadata on `t`.
pub fn fetcher(t: &Transport, repo: &RepositoryName) -> HttpFetcher {
    HttpFetcher::new(t.clone(), format!("/v2/{repo}/_tuf"))
}

/// A tag as signed: the manifest's length and digest, and its media type if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTarget {
    pub name: String,
    pub length: u64,
    pub digest: Digest,
    pub media_type: Option<String>,
    /// The role that signed it (`targets` or a delegated role).
    pub role: RoleName,
    /// Which trust data signed it.
    pub format: TrustFormat,
}

/// The two trust formats a repository may have: a TUF 1.0 repository (`/_tuf/`), a Notary v1 collection
/// (`/_trust/`, what `docker trust` and `notary` publish), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustFormat {
    Tuf,
    NotaryV1,
}

impl std::fmt::Display for TrustFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrustFormat::Tuf => "TUF 1.0",
            TrustFormat::NotaryV1 => "Notary v1 (Docker Content Trust)",
        })
    }
}

/// 5.2-5.6 against `repo` on `t`, from `trusted_root`, with `local` as what was trusted before.
pub async fn refresh<L: LocalMetadata + Send>(
    t: &Transport,
    repo: &RepositoryName,
    trusted_root: &[u8],
    local: L,
    opts: &Options,
) -> Result<RepoUpdater<L>, TrustError> {
    let mut u = Updater::new(trusted_root, fetcher(t, repo), local, opts)?;
    u.refresh().await?;
    Ok(u)
}

/// 5.6.7: `name` as the delegation search finds it, as a pull uses it: the manifest's length, sha256 digest and
/// media type, and the role that signed it.
pub async fn find_target<F: Fetcher + Sync, L: LocalMetadata + Send>(
    u: &mut Updater<F, L>,
    name: &str,
) -> Result<SignedTarget, TrustError> {
    let found = u.find(name).await?;
    let (role, tf) = (found.role, found.target);
    let bad = |reason: &str| TufError::BadTarget { role: role.clone(), target: name.into(), reason: reason.into() };
    let sha256 = tf.hashes.get("sha256").ok_or_else(|| bad("no sha256"))?;
    let digest: Digest = format!("sha256:{sha256}").parse().map_err(|_| bad("sha256 is not 64 hex digits"))?;
    let role: RoleName = role.parse()?;
    let media_type = tf.custom.as_ref().and_then(|c| c.get("mediaType")).and_then(|m| m.as_str()).map(String::from);
    Ok(SignedTarget { name: name.into(), length: tf.length, digest, media_type, role, format: TrustFormat::Tuf })
}
