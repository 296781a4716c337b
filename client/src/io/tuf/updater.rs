//! The client workflow of the specification's section 5 over a [`Fetcher`] and a [`LocalMetadata`]: every
//! decision is the pure [`TrustedSet`]'s, every download is bounded by [`Limits`], and what verified is kept. The
//! step numbers in comments are the specification's (5.2 trusted root, 5.3 root chain, 5.4 timestamp, 5.5
//! snapshot, 5.6 targets, 5.6.7 the delegation search).

use wharf_format::tuf::{DelegationSearch, Role, Snapshot, TargetFile, Timestamp, TimestampUpdate, TrustedSet};

use super::fetch::{ends_root_chain, Fetcher};
use super::local::LocalMetadata;
use super::{quote, Limits, UpdateError};
use crate::io::transport::TransportError;

/// How an updater runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: Limits,
    /// Unix seconds, for every expiry check (the clock is read by the caller, never here).
    pub now: i64,
    /// The specification's 5.5.5 to the letter ([`TrustedSet::strict`]): on for `wharf-tuf-client`, off for
    /// Wharf's own pulls, whose trust service drops a revoked delegation from snapshot.
    pub strict: bool,
}

impl Options {
    pub fn new(now: i64) -> Options {
        Options { limits: Limits::default(), now, strict: false }
    }
}

/// A target as the delegation search found it, with the role that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub role: String,
    pub target: TargetFile,
}

/// A repository's trusted metadata, brought up to date by [`Updater::refresh`] and searched by [`Updater::find`].
pub struct Updater<F, L> {
    fetcher: F,
    local: L,
    limits: Limits,
    set: TrustedSet,
}

impl<F: Fetcher + Sync, L: LocalMetadata + Send> Updater<F, L> {
    /// Starts from a trusted root (pinned, recorded, or accepted on first use). 5.2: it must be signed by its own
    /// threshold; it may be expired, since newer roots may follow.
    pub fn new(trusted_root: &[u8], fetcher: F, local: L, opts: &Options) -> Result<Updater<F, L>, UpdateError> {
        let set = TrustedSet::new(trusted_root, opts.now)?;
        let set = if opts.strict { set.strict() } else { set };
        Ok(Updater { fetcher, local, limits: opts.limits, set })
    }

    pub fn trusted(&self) -> &TrustedSet {
        &self.set
    }

    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The local metadata, with everything this updater kept in it.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// The top-level workflow, 5.3 to 5.6: root chain, timestamp, snapshot, top-level targets.
    pub async fn refresh(&mut self) -> Result<(), UpdateError> {
        self.update_root().await?;
        self.update_timestamp().await?;
        self.update_snapshot().await?;
        self.load_targets("targets", "root").await?;
        Ok(())
    }

    /// 5.6.7: the pre-order depth-first search of the delegation tree for `name`, loading roles as it reaches
    /// them; a terminating delegation ends the search of its siblings, and at most `max_delegations` roles are
    /// visited.
    pub async fn find(&mut self, name: &str) -> Result<Found, UpdateError> {
        let mut search = DelegationSearch::new(self.limits.max_delegations);
        while let Some((role, parent)) = search.next_role() {
            let loaded_now = self.load_targets(&role, &parent).await?;
            // A role reached again through another delegator (a diamond) is verified against that delegator's
            // keys and threshold too (5.6.7.2 on every path): it never inherits authority from another path.
            let targets = match (role.as_str(), loaded_now) {
                ("targets", _) => self.set.targets(),
                (_, true) => self.set.delegated(&role),
                (_, false) => off_workers(|| self.set.delegated_via(&role, &parent))?,
            };
            let Some(targets) = targets else { continue };
            if let Some(t) = targets.targets.get(name) {
                return Ok(Found { role, target: t.clone() });
            }
            search.descend(&role, targets, name);
        }
        Err(UpdateError::NotSigned(name.into()))
    }

    /// Loads the delegated role `role` as `delegator` delegates it (for listings that read every role); a role
    /// already loaded is left as it is.
    pub async fn load_delegated(&mut self, role: &str, delegator: &str) -> Result<(), UpdateError> {
        self.load_targets(role, delegator).await.map(|_| ())
    }

    /// 5.3.2-5.3.9: each newer root in turn, verified by the previous root's threshold and its own, and kept;
    /// 5.3.10: the final root must not be expired (freeze).
    async fn update_root(&mut self) -> Result<(), UpdateError> {
        let Updater { fetcher, local, limits, set } = self;
        let next = set.root().version + 1;
        walk_roots(fetcher, limits, next, None, |bytes| {
            off_workers(|| set.update_root(bytes))?;
            store(local, "root", bytes)
        })
        .await?;
        Ok(set.finish_root()?)
    }

    /// 5.4: the timestamp, never older than the one kept. 5.3.11: a kept timestamp counts as the rollback
    /// reference only if it verifies under the current root; one signed by rotated-out keys is ignored.
    async fn update_timestamp(&mut self) -> Result<(), UpdateError> {
        let previous = self.kept::<Timestamp>(Role::Timestamp)?;
        let bytes = self.fetcher.metadata("timestamp.json", self.limits.timestamp).await?;
        // 5.4.3.1: a timestamp of the kept version is discarded, and the kept one stays trusted and kept.
        if off_workers(|| self.set.update_timestamp(&bytes, previous.as_ref()))? == TimestampUpdate::Accepted {
            store(&mut self.local, "timestamp", &bytes)?;
        }
        Ok(())
    }

    /// 5.5: the snapshot the timestamp names. A kept snapshot that is exactly that one (version, length, hashes)
    /// is used without a download; otherwise the named version is fetched within the signed length.
    async fn update_snapshot(&mut self) -> Result<(), UpdateError> {
        let previous = self.kept::<Snapshot>(Role::Snapshot)?;
        if let (Some(bytes), Some(_)) = (self.local.load("snapshot").map_err(local_error("snapshot"))?, &previous) {
            if off_workers(|| self.set.update_snapshot(&bytes, previous.as_ref())).is_ok() {
                return Ok(());
            }
        }
        let meta = self.set.snapshot_meta()?.clone();
        let max = Limits::capped(self.limits.snapshot, meta.length);
        let bytes = self.fetcher.metadata(&self.file_name("snapshot", meta.version), max).await?;
        off_workers(|| self.set.update_snapshot(&bytes, previous.as_ref()))?;
        store(&mut self.local, "snapshot", &bytes)
    }

    /// 5.6 (top-level targets) and 5.6.7.1 (a delegated role, verified by `delegator`'s delegation): the kept copy
    /// if it is the version snapshot names and verifies, else a download within the signed length, kept once it
    /// verified. `true` when the role was loaded now, `false` when it already was.
    async fn load_targets(&mut self, role: &str, delegator: &str) -> Result<bool, UpdateError> {
        let top = role == "targets";
        let loaded = if top { self.set.targets().is_some() } else { self.set.delegated(role).is_some() };
        if loaded {
            return Ok(false);
        }
        let apply = |set: &mut TrustedSet, bytes: &[u8]| {
            if top {
                set.update_targets(bytes)
            } else {
                set.update_delegated(role, bytes, delegator)
            }
        };
        if let Some(kept) = self.local.load(role).map_err(local_error(role))? {
            if off_workers(|| apply(&mut self.set, &kept)).is_ok() {
                return Ok(true);
            }
        }
        let meta = self.set.snapshot_entry(role)?;
        let max = Limits::capped(self.limits.targets, meta.length);
        let bytes = self.fetcher.metadata(&self.file_name(role, meta.version), max).await?;
        off_workers(|| apply(&mut self.set, &bytes))?;
        store(&mut self.local, role, &bytes)?;
        Ok(true)
    }

    /// A kept document of a top-level role, if it verifies under the current root. One that does not is no
    /// reference at all (5.3.11), which is what the specification asks, not a failure hidden.
    fn kept<T: serde::de::DeserializeOwned>(&self, role: Role) -> Result<Option<T>, UpdateError> {
        let bytes = self.local.load(role.as_str()).map_err(local_error(role.as_str()))?;
        Ok(bytes.and_then(|b| off_workers(|| self.set.verify_signed_by_root(role, &b)).ok()))
    }

    /// `<version>.<role>.json` with consistent snapshots (5.5.1, 5.6.1), else `<role>.json`.
    fn file_name(&self, role: &str, version: u64) -> String {
        if self.set.root().consistent_snapshot {
            format!("{version}.{}.json", quote(role, false))
        } else {
            format!("{}.json", quote(role, false))
        }
    }
}

/// 5.3.2-5.3.9, the root chain both formats walk: `N.root.json` for N = `first`, `first + 1`, ... handed to
/// `apply` (which verifies and keeps it), for at most `max_root_rotations` versions. Without `last`, a version
/// the repository does not have ends the chain ([`ends_root_chain`]: 404 or 403, as the specification and
/// python-tuf); with `last` (Notary v1, whose current `root.json` names the newest version), the walk stops
/// there and every version up to it must exist. Returns how many roots were applied.
pub async fn walk_roots<F, E>(
    fetcher: &F,
    limits: &Limits,
    first: u64,
    last: Option<u64>,
    mut apply: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E>
where
    F: Fetcher + Sync,
    E: From<TransportError>,
{
    let mut applied = 0;
    while applied < limits.max_root_rotations {
        let version = first + applied;
        if last.is_some_and(|l| version > l) {
            break;
        }
        match fetcher.metadata(&format!("{version}.root.json"), limits.root).await {
            Ok(bytes) => apply(&bytes)?,
            Err(e) if last.is_none() && ends_root_chain(&e) => break,
            Err(e) => return Err(e.into()),
        }
        applied += 1;
    }
    Ok(applied)
}

fn store(local: &mut impl LocalMetadata, role: &str, bytes: &[u8]) -> Result<(), UpdateError> {
    local.store(role, bytes).map_err(local_error(role))
}

fn local_error(role: &str) -> impl FnOnce(std::io::Error) -> UpdateError + '_ {
    move |source| UpdateError::Local { role: role.to_string(), source }
}

/// Runs a verification step (signature checks over metadata of up to megabytes) off the async workers when the
/// runtime has several, in place on a single-threaded one (`wharf-tuf-client`, tests), where nothing else waits.
pub(crate) fn off_workers<R>(step: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(step),
        _ => step(),
    }
}
