//! Reading a Notary v1 collection (what `docker trust sign` and the `notary` CLI publish) over the network:
//! `/v2/<gun>/_trust/tuf/`, with every decision made by the pure [`TrustedCollection`]. Used by a pull when the
//! repository is held to a Notary v1 root (recorded or pinned), or on first use when it has no TUF 1.0 trust data.
//! Every download is size-bounded by the limits or by the length the level above signed.

use base64::Engine as _;
use bytes::Bytes;

use crate::io::transport::Transport;
use crate::io::trust::{SignedTarget, TrustError, TrustFormat, TrustLimits};
use wharf_format::digest::Digest;
use wharf_format::notary::{Found, Gun, Signed, TrustedCollection, V1MetadataError};
use wharf_format::tuf::{Role, RoleName, TufError};

/// The versions the last verified refresh saw, to refuse rollbacks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub timestamp: Option<i64>,
    pub snapshot: Option<i64>,
}

fn refused(e: V1MetadataError) -> TrustError {
    TrustError::Refused(TufError::Malformed(format!("notary v1: {e}")))
}

fn base(gun: &Gun) -> String {
    format!("/v2/{gun}/_trust/tuf/")
}

/// The collection's current root as served (for trust on first use).
pub async fn current_root(t: &Transport, gun: &Gun, limits: &TrustLimits) -> Result<Bytes, TrustError> {
    Ok(t.get_bounded(&format!("{}root.json", base(gun)), limits.root).await?)
}

/// Refreshes from `trusted_root`: the root chain to the current root, timestamp, snapshot and top-level targets.
pub async fn refresh(
    t: &Transport,
    gun: &Gun,
    trusted_root: &[u8],
    seen: Seen,
    limits: &TrustLimits,
    now: i64,
) -> Result<TrustedCollection, TrustError> {
    let b = base(gun);
    let mut c = TrustedCollection::new(trusted_root, gun.as_str(), now).map_err(refused)?;
    let current = current_root(t, gun, limits).await?;
    let newest = Signed::parse(&current).map_err(refused)?.version;
    let mut v = c.root().version;
    while v < newest && (v - c.root().version) < limits.max_root_rotations as i64 {
        let bytes = t.get_bounded(&format!("{b}{}.root.json", v + 1), limits.root).await?;
        c.update_root(&bytes).map_err(refused)?;
        v += 1;
    }
    let ts = t.get_bounded(&format!("{b}timestamp.json"), limits.timestamp).await?;
    c.update_timestamp(&ts, seen.timestamp).map_err(refused)?;
    let snap = fetch(t, &b, "snapshot", c.snapshot_meta().map_err(refused)?, limits.snapshot).await?;
    c.update_snapshot(&snap, seen.snapshot).map_err(refused)?;
    load(t, &b, &mut c, "targets", limits).await?;
    Ok(c)
}

/// Finds `tag` as docker does, loading delegated roles as the search needs them.
pub async fn find(
    t: &Transport,
    gun: &Gun,
    c: &mut TrustedCollection,
    tag: &str,
    limits: &TrustLimits,
) -> Result<SignedTarget, TrustError> {
    let b = base(gun);
    let mut loads = 0;
    let found: Found = loop {
        match c.find(tag) {
            Ok(f) => break f,
            Err(Some(role)) if loads < limits.max_delegations => {
                loads += 1;
                load(t, &b, c, &role, limits).await?;
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
        "targets" => RoleName::TopLevel(Role::Targets),
        // Notary role names are paths (`targets/releases`); they are shown, never parsed as TUF roles.
        other => RoleName::Delegated(other.to_string()),
    };
    Ok(SignedTarget { name: tag.into(), length, digest, media_type: None, role, format: TrustFormat::NotaryV1 })
}

/// Every tag a search would find: all published targets roles are loaded (breadth first, bounded), then each name
/// they list is searched for, so a tag shows the signer a pull would trust.
pub async fn all_targets(
    t: &Transport,
    gun: &Gun,
    c: &mut TrustedCollection,
    limits: &TrustLimits,
) -> Result<Vec<SignedTarget>, TrustError> {
    let b = base(gun);
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
            load(t, &b, c, &role, limits).await?;
        }
        let Some(targets) = c.targets(&role) else { continue };
        names.extend(targets.targets.keys().cloned());
        queue.extend(targets.delegations.roles.iter().map(|d| d.name.clone()));
    }
    let mut out = Vec::new();
    for n in names {
        if let Ok(found) = find(t, gun, c, &n, limits).await {
            out.push(found);
        }
    }
    Ok(out)
}

async fn load(
    t: &Transport,
    b: &str,
    c: &mut TrustedCollection,
    role: &str,
    limits: &TrustLimits,
) -> Result<(), TrustError> {
    let meta = c
        .role_meta(role)
        .ok_or_else(|| refused(V1MetadataError::Invalid(format!("snapshot does not list {role}"))))?
        .clone();
    let bytes = fetch(t, b, role, &meta, limits.targets).await?;
    c.update_targets(role, &bytes).map_err(refused)
}

/// A role by the SHA-256 its meta names, bounded by the signed length.
async fn fetch(
    t: &Transport,
    b: &str,
    role: &str,
    meta: &wharf_format::notary::FileMeta,
    max: u64,
) -> Result<Bytes, TrustError> {
    let sha =
        meta.hashes.get("sha256").ok_or_else(|| refused(V1MetadataError::Invalid(format!("no sha256 for {role}"))))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sha)
        .map_err(|_| refused(V1MetadataError::Invalid(format!("bad sha256 for {role}"))))?;
    let len = u64::try_from(meta.length).unwrap_or(0).min(max);
    Ok(t.get_bounded(&format!("{b}{role}.{}.json", hex::encode(raw)), len).await?)
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
    origin: &Transport,
    opts: &crate::io::pull::PullOptions,
) -> Result<(Gun, Vec<u8>, std::path::PathBuf, bool), crate::io::pull::PullError> {
    use crate::io::pull::PullError;
    let gun: Gun = format!("{}/{}", opts.image.host, opts.image.repository)
        .parse()
        .map_err(|_| PullError::NoTrustData(opts.image.to_string()))?;
    let d = dir(store, opts);
    crate::io::modes::create_dir_all(&d)?;
    let pinned = opts.trust.pinned_root.clone().filter(|p| is_notary_root(p));
    let recorded = match std::fs::read(d.join("root.json")) {
        Ok(r) => Some(r),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let root = match (recorded, pinned) {
        (Some(r), _) | (None, Some(r)) => return Ok((gun, r, d, true)),
        (None, None) => match current_root(origin, &gun, &TrustLimits::default()).await {
            Err(TrustError::Transport(e)) if e.is_not_found() => return Err(PullError::NoTrustData(gun.to_string())),
            Err(e) => return Err(e.into()),
            Ok(_) if !opts.trust.trust_on_first_use => return Err(PullError::NoTrustedRoot(opts.image.to_string())),
            Ok(r) => {
                tracing::warn!(gun = %gun, recorded = %d.display(), "trusting the collection's root on first use; it is recorded and enforced from now on");
                r.to_vec()
            }
        },
    };
    Ok((gun, root, d, false))
}

/// Refreshes the image's collection from its trusted root, runs `step`, and records the root and versions seen.
async fn with_collection<T>(
    store: &crate::io::store::ContentStore,
    srcs: &[crate::io::store::Source],
    opts: &crate::io::pull::PullOptions,
    step: impl for<'a> FnOnce(
        &'a Transport,
        &'a Gun,
        &'a mut TrustedCollection,
    ) -> futures::future::BoxFuture<'a, Result<T, TrustError>>,
) -> Result<T, crate::io::pull::PullError> {
    use crate::io::pull::PullError;
    // Invariant: a pull's sources end with the origin (`pull::sources`); the collection is read there only.
    let source = srcs.last().ok_or_else(|| PullError::Io(std::io::Error::other("no sources to pull from")))?;
    let origin = &source.transport;
    let (gun, root, d, held) = trusted_root(store, origin, opts).await?;
    let seen: Seen =
        std::fs::read(d.join("seen.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let refreshed = match refresh(origin, &gun, &root, seen, &TrustLimits::default(), opts.now).await {
        Ok(mut c) => step(origin, &gun, &mut c).await.map(|out| (c, out)),
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
    let target = with_collection(store, srcs, opts, move |t, gun, c| {
        Box::pin(async move { find(t, gun, c, &tag, &TrustLimits::default()).await })
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
    with_collection(store, srcs, opts, |t, gun, c| {
        Box::pin(async move { all_targets(t, gun, c, &TrustLimits::default()).await })
    })
    .await
}
