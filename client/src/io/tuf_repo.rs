//! A TUF 1.0 client for any repository at a metadata base URL, keeping its trusted metadata in a local directory
//! under unversioned names (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, `<role>.json`). This is
//! the library behind `wharf-tuf-client`, the program the TUF conformance suites drive; every decision is made by
//! the pure [`TrustedSet`] in its strict form, and only metadata that passed verification is written.
//!
//! Requests are made one at a time on fresh connections, so a server that answers one request at a time works.

use std::path::{Path, PathBuf};

use crate::io::transport::{Transport, TransportError};
use wharf_format::tuf::{
    check_hashes, DelegationSearch, Role, Snapshot, TargetFile, Timestamp, TimestampUpdate, TrustedSet, TufError,
};

/// Size limits on downloads (python-tuf's defaults) and bounds on the walks.
#[derive(Debug, Clone, Copy)]
pub struct RepoLimits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    pub max_root_rotations: u64,
    pub max_delegations: usize,
}

impl Default for RepoLimits {
    fn default() -> Self {
        RepoLimits {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
            max_root_rotations: 256,
            max_delegations: 32,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("metadata refused")]
    Refused(#[from] TufError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("target {0:?} is not in the repository's signed targets")]
    NotFound(String),
    #[error("target {name:?} from {url}: {reason}")]
    BadTarget { name: String, url: String, reason: String },
}

/// A repository client: where metadata comes from, where trusted metadata is kept.
pub struct RepoClient {
    meta: Transport,
    dir: PathBuf,
    limits: RepoLimits,
    now: i64,
}

/// Copies a trusted root into `dir` as `root.json`; touches no network. The root must be a well-formed root
/// signed by its own threshold.
pub fn init(dir: &Path, root_file: &Path) -> Result<(), RepoError> {
    let bytes = std::fs::read(root_file).map_err(|source| RepoError::Io { path: root_file.into(), source })?;
    TrustedSet::new(&bytes, 0)?;
    std::fs::create_dir_all(dir).map_err(|source| RepoError::Io { path: dir.into(), source })?;
    write_atomic(&dir.join("root.json"), &bytes)
}

impl RepoClient {
    pub fn new(metadata_url: url::Url, dir: PathBuf, limits: RepoLimits, now: i64) -> Result<RepoClient, RepoError> {
        Ok(RepoClient { meta: Transport::one_at_a_time(metadata_url)?, dir, limits, now })
    }

    /// The top-level update workflow (5.3-5.6), reusing local files that still verify.
    pub async fn refresh(&self) -> Result<TrustedSet, RepoError> {
        let root = self.read("root.json")?.ok_or_else(|| RepoError::Io {
            path: self.dir.join("root.json"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no trusted root: run init first"),
        })?;
        // 5.2: the trusted root verifies by its own threshold; it may be expired.
        let mut set = TrustedSet::new(&root, self.now)?.strict();
        // 5.3.2-5.3.9: walk N+1.root.json until the server has none, persisting each verified root.
        for _ in 0..self.limits.max_root_rotations {
            let next = set.root().version + 1;
            match self.meta.get_bounded(&format!("/{next}.root.json"), self.limits.root).await {
                Ok(bytes) => {
                    set.update_root(&bytes)?;
                    write_atomic(&self.dir.join("root.json"), &bytes)?;
                }
                Err(TransportError::Status { status: 403 | 404, .. } | TransportError::Denied { status: 403, .. }) => {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
        // 5.3.10: the final root must not be expired.
        set.finish_root()?;
        // 5.4. A local timestamp that still verifies under the new root is the rollback reference (5.3.11: one
        // signed by rotated-out keys does not, and is ignored).
        let prev_ts = self.local::<Timestamp>(&set, Role::Timestamp, "timestamp.json")?;
        let ts = self.meta.get_bounded("/timestamp.json", self.limits.timestamp).await?;
        // 5.4.3.1: one of the trusted version is discarded (whatever its content) and the local one stays.
        if set.update_timestamp(&ts, prev_ts.as_ref())? == TimestampUpdate::Accepted {
            write_atomic(&self.dir.join("timestamp.json"), &ts)?;
        }
        // 5.5: the local snapshot is the rollback reference, and is kept if it is the one the timestamp names.
        let prev_snap = self.local::<Snapshot>(&set, Role::Snapshot, "snapshot.json")?;
        // Each candidate is verified once, on a copy that replaces the set only if it passed.
        let mut reused = None;
        if let (Some(bytes), Some(_)) = (self.read("snapshot.json")?, &prev_snap) {
            let mut probe = set.clone();
            if probe.update_snapshot(&bytes, prev_snap.as_ref()).is_ok() {
                reused = Some(probe);
            }
        }
        match reused {
            Some(probe) => set = probe,
            None => {
                let meta = set.timestamp().and_then(|t| t.meta.get("snapshot.json")).cloned();
                let version = meta.as_ref().map_or(0, |m| m.version);
                let max = meta.and_then(|m| m.length).unwrap_or(self.limits.snapshot);
                let bytes = self.meta.get_bounded(&self.role_url("snapshot", version, &set), max).await?;
                set.update_snapshot(&bytes, prev_snap.as_ref())?;
                write_atomic(&self.dir.join("snapshot.json"), &bytes)?;
            }
        }
        // 5.6: top-level targets.
        self.load_targets(&mut set, "targets", "root").await?;
        Ok(set)
    }

    /// 5.6.7: a pre-order depth-first search of the delegation tree for `name`, loading roles on demand;
    /// `terminating` delegations end the search of their siblings, and at most `max_delegations` roles are visited.
    pub async fn find(&self, set: &mut TrustedSet, name: &str) -> Result<TargetFile, RepoError> {
        let mut search = DelegationSearch::new(self.limits.max_delegations);
        while let Some((role, parent)) = search.next_role() {
            self.load_targets(set, &role, &parent).await?;
            // A role reached again through another delegator (a diamond) is verified against that delegator's
            // keys and threshold too: `load_targets` loads it once, `delegated_via` checks it on every path.
            let targets = if role == "targets" { set.targets() } else { set.delegated_via(&role, &parent)? };
            let Some(targets) = targets else { continue };
            if let Some(t) = targets.targets.get(name) {
                return Ok(t.clone());
            }
            search.descend(&role, targets, name);
        }
        Err(RepoError::NotFound(name.into()))
    }

    /// Downloads `target` into `target_dir` under its URL-quoted name, unless a file with matching length and
    /// hashes is already there. With consistent snapshots the URL names `<hash>.<basename>`.
    pub async fn download(
        &self,
        set: &TrustedSet,
        name: &str,
        target: &TargetFile,
        base: &url::Url,
        target_dir: &Path,
    ) -> Result<PathBuf, RepoError> {
        let path = target_dir.join(quote(name, false));
        if let Ok(existing) = std::fs::read(&path) {
            if existing.len() as u64 == target.length && check_hashes(name, &existing, &target.hashes, "").is_ok() {
                return Ok(path);
            }
        }
        let remote = match (set.root().consistent_snapshot, target.hashes.values().next()) {
            (true, Some(hash)) => match name.rsplit_once('/') {
                Some((dir, file)) => format!("{dir}/{hash}.{file}"),
                None => format!("{hash}.{name}"),
            },
            _ => name.to_string(),
        };
        let t = Transport::one_at_a_time(base.clone())?;
        let url = t.url(&format!("/{}", quote(&remote, true)));
        let bytes = t.get_bounded(&format!("/{}", quote(&remote, true)), target.length).await?;
        if bytes.len() as u64 != target.length {
            let reason = format!("{} bytes where {} were signed", bytes.len(), target.length);
            return Err(RepoError::BadTarget { name: name.into(), url, reason });
        }
        if target.hashes.is_empty() || check_hashes(name, &bytes, &target.hashes, "targets").is_err() {
            return Err(RepoError::BadTarget { name: name.into(), url, reason: "hash mismatch".into() });
        }
        std::fs::create_dir_all(target_dir).map_err(|source| RepoError::Io { path: target_dir.into(), source })?;
        write_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// Loads `role` (top-level or delegated): the local copy if it is the version snapshot names and verifies,
    /// else a download, persisted once it verified.
    async fn load_targets(&self, set: &mut TrustedSet, role: &str, parent: &str) -> Result<(), RepoError> {
        let loaded = if role == "targets" { set.targets().is_some() } else { set.delegated(role).is_some() };
        if loaded {
            return Ok(());
        }
        let file = format!("{}.json", quote(role, false));
        let apply = |set: &mut TrustedSet, bytes: &[u8]| {
            if role == "targets" {
                set.update_targets(bytes)
            } else {
                set.update_delegated(role, bytes, if parent == "root" { "targets" } else { parent })
            }
        };
        if let Some(local) = self.read(&file)? {
            let mut probe = set.clone();
            if apply(&mut probe, &local).is_ok() {
                *set = probe;
                return Ok(());
            }
        }
        let meta = set.snapshot_entry(role)?;
        let max = meta.length.unwrap_or(self.limits.targets);
        let bytes = self.meta.get_bounded(&self.role_url(role, meta.version, set), max).await?;
        apply(set, &bytes)?;
        write_atomic(&self.dir.join(file), &bytes)
    }

    /// `/<version>.<role>.json` with consistent snapshots, else `/<role>.json`.
    fn role_url(&self, role: &str, version: u64, set: &TrustedSet) -> String {
        if set.root().consistent_snapshot {
            format!("/{version}.{}.json", quote(role, false))
        } else {
            format!("/{}.json", quote(role, false))
        }
    }

    /// A local file that verifies under the trusted root's keys for `role`, as the rollback reference.
    fn local<T: serde::de::DeserializeOwned>(
        &self,
        set: &TrustedSet,
        role: Role,
        file: &str,
    ) -> Result<Option<T>, RepoError> {
        Ok(self.read(file)?.and_then(|b| set.verify_signed_by_root(role, &b).ok()))
    }

    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let path = self.dir.join(file);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RepoError::Io { path, source }),
        }
    }
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`), as Python's
/// `urllib.parse.quote` does.
pub fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    use std::io::Write;
    let io = |source| RepoError::Io { path: path.into(), source };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_matches_python() {
        assert_eq!(quote("a b/c?d", true), "a%20b/c%3Fd");
        assert_eq!(quote("a b/c?d", false), "a%20b%2Fc%3Fd");
        assert_eq!(quote("release-1.0_x~y", false), "release-1.0_x~y");
        assert_eq!(quote("é", false), "%C3%A9");
    }
}
