//! Reading a Notary v1 collection (what `docker trust sign` and the `notary` CLI publish) over the network:
//! `/v2/<gun>/_trust/tuf/`, with every decision made by the pure [`TrustedCollection`]. Used by a pull when the
//! repository is held to a Notary v1 root (recorded or pinned), or on first use when it has no TUF 1.0 trust data.
//!
//! Shared with the TUF 1.0 updater ([`crate::io::tuf`]): the [`Fetcher`] (every download bounded by the same
//! [`Limits`], lowered by the length the level above signed), the root-chain walk ([`walk_roots`]), the order
//! (root chain, timestamp, snapshot, top-level targets, delegated roles as the search needs them), and
//! verification off the async workers. Separate, because the format is: the pure state machine (X.509 root
//! certificates, base64 hashes, roles named as paths, docker's search order), files named by their hash
//! (`<role>.<sha256>.json`) rather than by version, a chain whose end the current `root.json` names, and a
//! rollback reference that is the versions seen (`seen.json`) rather than kept documents, so the collection does
//! not go through [`crate::io::tuf::updater::Updater`] or its `LocalMetadata`.

use base64::Engine as _;
use bytes::Bytes;

use crate::io::transport::Transport;
use crate::io::trust::{SignedTarget, TrustError, TrustFormat};
use crate::io::tuf::fetch::{Fetcher, HttpFetcher};
use crate::io::tuf::updater::{off_workers, walk_roots};
use crate::io::tuf::Limits;
use wharf_format::digest::Digest;
use wharf_format::notary::{FileMeta, Found, Gun, Signed, TrustedCollection, V1MetadataError};
use wharf_format::tuf::{RoleName, TufError};

/// The versions the last verified refresh saw, to refuse rollbacks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub timestamp: Option<i64>,
    pub snapshot: Option<i64>,
}

fn invalid(msg: String) -> TrustError {
    TrustError::Notary(V1MetadataError::Invalid(msg))
}

/// The fetcher for `gun`'s collection on `t`.
pub fn fetcher(t: &Transport, gun: &Gun) -> HttpFetcher {
    HttpFetcher::new(t.clone(), format!("/v2/{gun}/_trust/tuf"))
}

/// The collection's current root as served (for trust on first use, and to learn the newest root version).
pub async fn current_root<F: Fetcher + Sync>(f: &F, limits: &Limits) -> Result<Bytes, TrustError> {
    Ok(f.metadata("root.json", limits.root).await?)
}

/// Refreshes from `trusted_root` in the TUF order: the root chain to the current root (the walk TUF 1.0 uses,
/// up to the version the current `root.json` names), timestamp, snapshot, top-level targets.
pub async fn refresh<F: Fetcher + Sync>(
    f: &F,
    gun: &Gun,
    trusted_root: &[u8],
    seen: Seen,
    limits: &Limits,
    now: i64,
) -> Result<TrustedCollection, TrustError> {
    let mut c = TrustedCollection::new(trusted_root, gun.as_str(), now)?;
    let current = current_root(f, limits).await?;
    let newest = u64::try_from(Signed::parse(&current)?.version).unwrap_or(0);
    let first = u64::try_from(c.root().version).unwrap_or(0) + 1;
    walk_roots(f, limits, first, Some(newest), |bytes| Ok::<_, TrustError>(off_workers(|| c.update_root(bytes))?))
        .await?;
    let ts = f.metadata("timestamp.json", limits.timestamp).await?;
    off_workers(|| c.update_timestamp(&ts, seen.timestamp))?;
    let snap = fetch(f, "snapshot", c.snapshot_meta()?, limits.snapshot).await?;
    off_workers(|| c.update_snapshot(&snap, seen.snapshot))?;
    load(f, &mut c, "targets", limits).await?;
    Ok(c)
}

/// Finds `tag` as docker does, loading delegated roles as the search needs them.
pub async fn find<F: Fetcher + Sync>(
    f: &F,
    c: &mut TrustedCollection,
    tag: &str,
    limits: &Limits,
) -> Result<SignedTarget, TrustError> {
    let mut loads = 0;
    let found: Found = loop {
        match c.find(tag) {
            Ok(f) => break f,
            Err(Some(role)) if loads < limits.max_delegations => {
                loads += 1;
                load(f, c, &role, limits).await?;
            }
            Err(_) => return Err(TrustError::NotSigned(tag.into())),
        }
    };
    let bad =
        |reason: &str| TufError::BadTarget { role: found.role.clone(), target: tag.into(), reason: reason.into() };
    let sha = found.meta.hashes.get("sha256").ok_or_else(|| bad("no sha256"))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| bad("sha256 is not base64"))?;
    let digest: Digest = format!("sha256:{}", hex::encode(raw)).parse().map_err(|_| bad("sha256 is not 32 bytes"))?;
    let length = u64::try_from(found.meta.length).map_err(|_| bad("negative length"))?;
    let role = match found.role.as_str() {
        "targets" => RoleName::TARGETS,
        // Notary role names are paths (`targets/releases`); they are shown, never parsed as TUF roles.
        other => RoleName::Delegated(other.to_string()),
    };
    Ok(SignedTarget { name: tag.into(), length, digest, media_type: None, role, format: TrustFormat::NotaryV1 })
}

/// Every tag a search would find: all published targets roles are loaded (breadth first, bounded), then each name
/// they list is searched for, so a tag shows the signer a pull would trust.
pub async fn all_targets<F: Fetcher + Sync>(
    f: &F,
    c: &mut TrustedCollection,
    limits: &Limits,
) -> Result<Vec<SignedTarget>, TrustError> {
    let mut queue = vec!["targets".to_string()];
    let mut names = std::collections::BTreeSet::new();
    let mut visited = 0;
    while let Some(role) = queue.pop() {
        visited += 1;
        if visited > limits.max_delegations {
            break;
        }
        if c.targets(&role).is_none() {
            if c.role_meta(&role).is_none() {
                continue;
            }
            load(f, c, &role, limits).await?;
        }
        let Some(targets) = c.targets(&role) else { continue };
        names.extend(targets.targets.keys().cloned());
        queue.extend(targets.delegations.roles.iter().map(|d| d.name.clone()));
    }
    let mut out = Vec::new();
    for n in names {
        if let Ok(found) = find(f, c, &n, limits).await {
            out.push(found);
        }
    }
    Ok(out)
}

async fn load<F: Fetcher + Sync>(
    f: &F,
    c: &mut TrustedCollection,
    role: &str,
    limits: &Limits,
) -> Result<(), TrustError> {
    let meta = c.role_meta(role).ok_or_else(|| invalid(format!("snapshot does not list {role}")))?.clone();
    let bytes = fetch(f, role, &meta, limits.targets).await?;
    Ok(off_workers(|| c.update_targets(role, &bytes))?)
}

/// A role by the SHA-256 its meta names (`<role>.<hex>.json`: Notary's consistent names are by hash, not by
/// version), bounded by the signed length under `max`.
async fn fetch<F: Fetcher + Sync>(f: &F, role: &str, meta: &FileMeta, max: u64) -> Result<Bytes, TrustError> {
    let sha = meta.hashes.get("sha256").ok_or_else(|| invalid(format!("no sha256 for {role}")))?;
    let raw =
        base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| invalid(format!("bad sha256 for {role}")))?;
    let length = u64::try_from(meta.length).map_err(|_| invalid(format!("negative length for {role}")))?;
    Ok(f.metadata(&format!("{role}.{}.json", hex::encode(raw)), Limits::capped(max, Some(length))).await?)
}

/// Whether `bytes` is a Notary v1 root (a pinned `--trust-root` may be either format).
pub fn is_notary_root(bytes: &[u8]) -> bool {
    Signed::parse(bytes).is_ok_and(|s| s.type_name == "Root")
}

/// Whether a Notary v1 root is recorded for the image's repository (then pulls go straight to it).
pub fn recorded(store: &crate::io::store::ContentStore, opts: &crate::io::pull::PullOptions) -> bool {
    dir(store, opts).join("root.json").exists()
}

fn dir(store: &crate::io::store::ContentStore, opts: &crate::io::pull::PullOptions) -> std::path::PathBuf {
    store.trust_dir(&opts.image.host, &opts.image.repository).join("notary-v1")
}

/// The collection's trusted root for a pull: recorded, pinned, or (with `--trust-on-first-use`) as served; and
/// whether it was recorded or pinned before this pull (then nothing missing is "no trust data").
async fn trusted_root(
    store: &crate::io::store::ContentStore,
    origin: &HttpFetcher,
    opts: &crate::io::pull::PullOptions,
) -> Result<(Vec<u8>, std::path::PathBuf, bool), crate::io::pull::PullError> {
    use crate::io::pull::PullError;
    let d = dir(store, opts);
    crate::io::modes::create_dir_all(&d)?;
    let pinned = opts.trust.pinned_root.clone().filter(|p| is_notary_root(p));
    let recorded = match std::fs::read(d.join("root.json")) {
        Ok(r) => Some(r),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let root = match (recorded, pinned) {
        (Some(r), _) | (None, Some(r)) => return Ok((r, d, true)),
        (None, None) => match current_root(origin, &Limits::default()).await {
            Err(TrustError::Transport(e)) if e.is_not_found() => {
                return Err(PullError::NoTrustData(gun(opts)?.to_string()))
            }
            Err(e) => return Err(e.into()),
            Ok(_) if !opts.trust.trust_on_first_use => return Err(PullError::NoTrustedRoot(opts.image.to_string())),
            Ok(r) => {
                tracing::warn!(gun = %gun(opts)?, recorded = %d.display(), "trusting the collection's root on first use; it is recorded and enforced from now on");
                r.to_vec()
            }
        },
    };
    Ok((root, d, false))
}

fn gun(opts: &crate::io::pull::PullOptions) -> Result<Gun, crate::io::pull::PullError> {
    format!("{}/{}", opts.image.host, opts.image.repository)
        .parse()
        .map_err(|_| crate::io::pull::PullError::NoTrustData(opts.image.to_string()))
}

/// Refreshes the image's collection from its trusted root, runs `step`, and records the root and versions seen.
async fn with_collection<T>(
    store: &crate::io::store::ContentStore,
    srcs: &[crate::io::store::Source],
    opts: &crate::io::pull::PullOptions,
    step: impl for<'a> FnOnce(
        &'a HttpFetcher,
        &'a mut TrustedCollection,
    ) -> futures::future::BoxFuture<'a, Result<T, TrustError>>,
) -> Result<T, crate::io::pull::PullError> {
    use crate::io::pull::PullError;
    // Invariant: a pull's sources end with the origin (`pull::sources`); the collection is read there only.
    let source = srcs.last().ok_or_else(|| PullError::Io(std::io::Error::other("no sources to pull from")))?;
    let gun = gun(opts)?;
    let origin = fetcher(&source.transport, &gun);
    let (root, d, held) = trusted_root(store, &origin, opts).await?;
    // Versions seen before: none recorded is a first refresh; a record that cannot be read is an error, never
    // "nothing seen" (that would lift the rollback check).
    let seen: Seen = match crate::io::tuf::local::read_if_present(&d.join("seen.json"))? {
        Some(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
        None => Seen::default(),
    };
    let refreshed = match refresh(&origin, &gun, &root, seen, &Limits::default(), opts.now).await {
        Ok(mut c) => step(&origin, &mut c).await.map(|out| (c, out)),
        Err(e) => Err(e),
    };
    let (c, out) = match refreshed {
        Ok(r) => r,
        // A collection the repository is held to, gone from the registry: never "no trust data".
        Err(TrustError::Transport(e)) if held && e.is_not_found() => {
            let mut failures = crate::io::source::Failures::default();
            failures.push(
                crate::io::source::Failure::Verification,
                format!("{}: {}", source.name, crate::io::transport::report(&e)),
            );
            return Err(PullError::TrustMissing { repo: gun.to_string(), format: TrustFormat::NotaryV1, failures });
        }
        Err(e) => return Err(e.into()),
    };
    let seen = Seen { timestamp: c.timestamp_version(), snapshot: c.snapshot_version() };
    crate::io::modes::write(&d.join("root.json"), c.root_bytes())?;
    crate::io::modes::write(&d.join("seen.json"), &serde_json::to_vec(&seen).map_err(std::io::Error::other)?)?;
    Ok(out)
}

/// A pull's tag resolution through the Notary v1 collection `HOST/REPOSITORY` at the origin.
pub async fn resolve_for_pull(
    store: &crate::io::store::ContentStore,
    srcs: &[crate::io::store::Source],
    opts: &crate::io::pull::PullOptions,
    tag: &str,
) -> Result<SignedTarget, crate::io::pull::PullError> {
    let tag = tag.to_string();
    let target = with_collection(store, srcs, opts, move |f, c| {
        Box::pin(async move { find(f, c, &tag, &Limits::default()).await })
    })
    .await?;
    tracing::info!(image = %opts.image, role = %target.role, "tag verified through the Notary v1 collection");
    Ok(target)
}

/// Every signed tag of the collection (for `wharf trust inspect`).
pub async fn signed_tags(
    store: &crate::io::store::ContentStore,
    srcs: &[crate::io::store::Source],
    opts: &crate::io::pull::PullOptions,
) -> Result<Vec<SignedTarget>, crate::io::pull::PullError> {
    with_collection(store, srcs, opts, |f, c| Box::pin(async move { all_targets(f, c, &Limits::default()).await }))
        .await
}
