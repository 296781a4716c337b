//! The TUF client workflow over the network: refresh a repository's trust metadata from `/v2/<name>/_tuf/` and
//! find a tag's target through the delegation tree. Every download is size-bounded; every decision is made by
//! the pure [`TrustedSet`].

use bytes::Bytes;

use crate::io::source::Failure;
use crate::io::transport::{Transport, TransportError};
use wharf_format::digest::Digest;
use wharf_format::name::RepositoryName;
use wharf_format::tuf::{
    DelegationSearch, Envelope, RoleName, Snapshot, Timestamp, TimestampUpdate, TrustedSet, TufError,
};

/// Size limits on trust metadata downloads (defaults: root 512 KiB, timestamp 16 KiB, snapshot 4 MiB,
/// targets 16 MiB), and the most root versions one refresh will walk.
#[derive(Debug, Clone, Copy)]
pub struct TrustLimits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    pub max_root_rotations: u64,
    pub max_delegations: usize,
}

impl Default for TrustLimits {
    fn default() -> Self {
        TrustLimits {
            root: 512 << 10,
            timestamp: 16 << 10,
            snapshot: 4 << 20,
            targets: 16 << 20,
            max_root_rotations: 1024,
            max_delegations: 32,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("trust metadata refused")]
    Refused(#[from] TufError),
    #[error("tag {0:?} is not signed in the repository's trust data")]
    NotSigned(String),
}

impl TrustError {
    /// The class of this failure. A trust document that the trusted metadata requires and a source does not
    /// have (`404`) is a verification failure, not an absence: only a first use may find "no trust data".
    pub fn failure(&self) -> Failure {
        match self {
            TrustError::Transport(e) if e.is_not_found() => Failure::Verification,
            TrustError::Transport(e) => e.failure(),
            TrustError::Refused(_) | TrustError::NotSigned(_) => Failure::Verification,
        }
    }
}

/// What the last successful refresh trusted, kept by the caller so that the next one can refuse rollbacks.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    pub timestamp: Option<Timestamp>,
    pub snapshot: Option<Snapshot>,
}

/// A refreshed repository: the trusted set and the raw timestamp and snapshot to remember.
pub struct Refreshed {
    pub set: TrustedSet,
    /// `None` when the server's timestamp had the recorded version: the recorded one stays trusted, and recorded.
    pub timestamp: Option<Bytes>,
    pub snapshot: Bytes,
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

fn base(repo: &RepositoryName) -> String {
    format!("/v2/{repo}/_tuf/")
}

/// Steps 5.3-5.6 of the specification: root chain, timestamp, snapshot, top-level targets.
pub async fn refresh(
    t: &Transport,
    repo: &RepositoryName,
    trusted_root: &[u8],
    previous: &Previous,
    limits: &TrustLimits,
    now: i64,
) -> Result<Refreshed, TrustError> {
    let b = base(repo);
    let mut set = TrustedSet::new(trusted_root, now)?;
    // 5.3.3: fetch N+1.root.json until there is none.
    for _ in 0..limits.max_root_rotations {
        let next = set.root().version + 1;
        match t.get_bounded(&format!("{b}{next}.root.json"), limits.root).await {
            Ok(bytes) => set = verify(set, move |s| s.update_root(&bytes)).await?,
            Err(e) if e.is_not_found() => break,
            Err(e) => return Err(e.into()),
        }
    }
    set.finish_root()?;
    // 5.4
    let timestamp = t.get_bounded(&format!("{b}timestamp.json"), limits.timestamp).await?;
    let (ts, prev) = (timestamp.clone(), previous.timestamp.clone());
    let (verified, update) = verify_with(set, move |s| s.update_timestamp(&ts, prev.as_ref())).await?;
    set = verified;
    // 5.4.3.1: a timestamp of the recorded version is discarded and the recorded one stays. The recorded one is
    // not verified again here (it was verified when recorded, but the root may have rotated its keys since), so
    // it stays only if the served, verified copy says the same; other content under that version is refused.
    let timestamp = match update {
        TimestampUpdate::Accepted => Some(timestamp),
        TimestampUpdate::KeptPrevious => {
            let served: Timestamp = Envelope::parse(&timestamp)?.decode()?;
            if previous.timestamp.as_ref() != Some(&served) {
                let what = "content under the same version";
                return Err(TufError::Mismatch { role: "timestamp".into(), what, by: "the last refresh" }.into());
            }
            None
        }
    };
    // 5.5: consistent snapshots, by the version the timestamp names.
    let snap_meta = set.timestamp().and_then(|ts| ts.meta.get("snapshot.json")).cloned();
    let version = snap_meta.as_ref().map_or(0, |m| m.version);
    let max = snap_meta.and_then(|m| m.length).unwrap_or(limits.snapshot).min(limits.snapshot);
    let snapshot = t.get_bounded(&format!("{b}{version}.snapshot.json"), max).await?;
    let (snap, prev) = (snapshot.clone(), previous.snapshot.clone());
    set = verify(set, move |s| s.update_snapshot(&snap, prev.as_ref())).await?;
    // 5.6
    let meta = set.snapshot_entry("targets")?;
    let max = meta.length.unwrap_or(limits.targets).min(limits.targets);
    let targets = t.get_bounded(&format!("{b}{}.targets.json", meta.version), max).await?;
    set = verify(set, move |s| s.update_targets(&targets)).await?;
    Ok(Refreshed { set, timestamp, snapshot })
}

/// 5.6.7: a pre-order depth-first search of the delegation tree for `name`, fetching delegated roles on demand.
pub async fn find_target(
    t: &Transport,
    repo: &RepositoryName,
    set: &mut TrustedSet,
    name: &str,
    limits: &TrustLimits,
) -> Result<SignedTarget, TrustError> {
    let b = base(repo);
    let mut search = DelegationSearch::new(limits.max_delegations);
    while let Some((role, parent)) = search.next_role() {
        if role != "targets" {
            let (r, p) = (role.clone(), parent.clone());
            if set.delegated(&role).is_none() {
                let meta = set.snapshot_entry(&role)?;
                let max = meta.length.unwrap_or(limits.targets).min(limits.targets);
                let bytes = t.get_bounded(&format!("{b}{}.{role}.json", meta.version), max).await?;
                *set = verify(set.clone(), move |s| s.update_delegated(&r, &bytes, &p)).await?;
            } else {
                // A diamond: the role was loaded through another delegator, and must verify against this one
                // too (`TrustedSet::delegated_via`).
                *set = verify(set.clone(), move |s| s.delegated_via(&r, &p).map(|_| ())).await?;
            }
        }
        // Verified through `parent` just above, on the blocking pool.
        let targets = if role == "targets" { set.targets() } else { set.delegated(&role) };
        let Some(targets) = targets else { continue };
        if let Some(tf) = targets.targets.get(name) {
            let bad =
                |reason: &str| TufError::BadTarget { role: role.clone(), target: name.into(), reason: reason.into() };
            let sha256 = tf.hashes.get("sha256").ok_or_else(|| bad("no sha256"))?;
            let digest: Digest = format!("sha256:{sha256}").parse().map_err(|_| bad("sha256 is not 64 hex digits"))?;
            let role: RoleName = role.parse()?;
            let media_type =
                tf.custom.as_ref().and_then(|c| c.get("mediaType")).and_then(|m| m.as_str()).map(String::from);
            return Ok(SignedTarget {
                name: name.into(),
                length: tf.length,
                digest,
                media_type,
                role,
                format: TrustFormat::Tuf,
            });
        }
        search.descend(&role, targets, name);
    }
    Err(TrustError::NotSigned(name.into()))
}

/// Runs a verification step (signature checks over metadata of up to megabytes, delegation bounds) on the blocking
/// pool, off the async workers, and hands the set back.
async fn verify<F>(set: TrustedSet, step: F) -> Result<TrustedSet, TrustError>
where
    F: FnOnce(&mut TrustedSet) -> Result<(), TufError> + Send + 'static,
{
    Ok(verify_with(set, step).await?.0)
}

/// [`verify`] for a step that also answers something.
async fn verify_with<F, R>(mut set: TrustedSet, step: F) -> Result<(TrustedSet, R), TrustError>
where
    F: FnOnce(&mut TrustedSet) -> Result<R, TufError> + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || step(&mut set).map(|r| (set, r)))
        .await
        .map_err(|e| TufError::Malformed(format!("verification task failed: {e}")))?
        .map_err(TrustError::from)
}
