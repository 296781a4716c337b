//! Notary v1 over a mirror's upstream: the collection at `/v2/<gun>/_trust/tuf/` of the upstream, whose GUN is
//! the upstream's host and the repository's name there, verified from the root the rule pins (`notary_v1.root`) by
//! the pure [`TrustedCollection`] in the order `wharf pull` uses: the root chain up to the version the current
//! `root.json` names, timestamp and snapshot (never older than this mirror saw before), top-level targets, then
//! delegated roles as docker's search asks for them.

use base64::Engine as _;
use reqwest::Method;
use wharf_format::notary::{FileMeta, Gun, Signed, TrustedCollection};
use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::Digest;

use super::UpstreamSource;
use crate::mirror::upstream::read_bounded;

/// Root versions walked past the pinned one, at most.
const MAX_ROOT_ROTATIONS: i64 = 256;
/// Roles loaded per decision, at most (as the client's `max_delegations`).
const MAX_ROLES: usize = 32;
/// The largest metadata file read.
const MAX_FILE: usize = 5_000_000;

/// The subject's tag as the upstream's verified collection signs it (by digest: every tag signed for the digest).
pub async fn finding(src: &UpstreamSource<'_>, root: &[u8], s: &Subject) -> Result<TrustFinding, String> {
    let gun = gun(src)?;
    let mut c = TrustedCollection::new(root, gun.as_str(), src.now).map_err(|e| format!("pinned root: {e}"))?;
    let Some(current) = file(src, &gun, "root.json", MAX_FILE).await? else { return Ok(TrustFinding::NoData) };
    let newest = Signed::parse(&current).map_err(|e| e.to_string())?.version;
    let first = c.root().version + 1;
    if newest - first >= MAX_ROOT_ROTATIONS {
        return Err(format!("root version {newest} is more than {MAX_ROOT_ROTATIONS} past the pinned one"));
    }
    for version in first..=newest {
        let bytes = file(src, &gun, &format!("{version}.root.json"), MAX_FILE)
            .await?
            .ok_or_else(|| format!("the upstream has no root version {version}"))?;
        c.update_root(&bytes).map_err(|e| e.to_string())?;
    }
    let seen = src.kept.seen_v1(src.repo);
    let ts = file(src, &gun, "timestamp.json", MAX_FILE).await?.ok_or("the upstream has no timestamp")?;
    c.update_timestamp(&ts, seen.0).map_err(|e| e.to_string())?;
    let meta = c.snapshot_meta().map_err(|e| e.to_string())?.clone();
    let snap = by_hash(src, &gun, "snapshot", &meta).await?;
    c.update_snapshot(&snap, seen.1).map_err(|e| e.to_string())?;
    src.kept.saw_v1(src.repo, (c.timestamp_version(), c.snapshot_version()));
    load(src, &gun, &mut c, "targets").await?;
    let names = match &s.tag {
        Some(tag) => vec![tag.to_string()],
        None => names_for(src, &gun, &mut c, &s.digest).await?,
    };
    let mut signed = Vec::new();
    for name in names {
        if let Some(t) = find(src, &gun, &mut c, &name).await? {
            signed.push(t);
        }
    }
    Ok(TrustFinding::Signed(signed))
}

/// `<upstream host[:port]>/<upstream repository>`.
fn gun(src: &UpstreamSource<'_>) -> Result<Gun, String> {
    let base = &src.route.upstream.base;
    let host = base.host_str().ok_or("the upstream URL has no host")?;
    let host = match base.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    format!("{host}/{}", src.route.repo).parse().map_err(|_| format!("{host}/{} is not a GUN", src.route.repo))
}

/// A file of the collection; `None` when the upstream has none.
async fn file(src: &UpstreamSource<'_>, gun: &Gun, name: &str, max: usize) -> Result<Option<Vec<u8>>, String> {
    let path = format!("/v2/{gun}/_trust/tuf/{name}");
    let url = src.route.upstream.url(&path);
    match src.route.upstream.send(Method::GET, &path, &src.route.repo, &[]).await {
        Ok(resp) => read_bounded(resp, max, &url).await.map(Some).map_err(|e| e.to_string()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// A role by the SHA-256 its meta names (`<role>.<hex>.json`), within the signed length.
async fn by_hash(src: &UpstreamSource<'_>, gun: &Gun, role: &str, meta: &FileMeta) -> Result<Vec<u8>, String> {
    let sha = meta.hashes.get("sha256").ok_or_else(|| format!("no sha256 for {role}"))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| format!("bad sha256 for {role}"))?;
    let max = usize::try_from(meta.length).map_err(|_| format!("bad length for {role}"))?.min(MAX_FILE);
    file(src, gun, &format!("{role}.{}.json", hex::encode(raw)), max)
        .await?
        .ok_or_else(|| format!("the upstream has no {role} the level above names"))
}

async fn load(src: &UpstreamSource<'_>, gun: &Gun, c: &mut TrustedCollection, role: &str) -> Result<(), String> {
    let meta = c.role_meta(role).ok_or_else(|| format!("snapshot does not list {role}"))?.clone();
    let bytes = by_hash(src, gun, role, &meta).await?;
    c.update_targets(role, &bytes).map_err(|e| e.to_string())
}

/// docker's search for `name`, loading roles as it asks for them.
async fn find(
    src: &UpstreamSource<'_>,
    gun: &Gun,
    c: &mut TrustedCollection,
    name: &str,
) -> Result<Option<SignedTag>, String> {
    for _ in 0..MAX_ROLES {
        match c.find(name) {
            Ok(found) => {
                let sha = found.meta.hashes.get("sha256").ok_or_else(|| format!("{name}: no sha256"))?;
                let raw =
                    base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| format!("{name}: bad sha256"))?;
                let digest: Digest =
                    format!("sha256:{}", hex::encode(raw)).parse().map_err(|_| format!("{name}: bad sha256"))?;
                return Ok(Some(SignedTag { tag: name.to_string(), digest, role: found.role, keys: vec![] }));
            }
            Err(Some(role)) => load(src, gun, c, &role).await?,
            Err(None) => return Ok(None),
        }
    }
    Ok(None)
}

/// Every name a published targets role lists for `digest` (breadth first, bounded); each is then searched for, so
/// only a role that may sign the name counts.
async fn names_for(
    src: &UpstreamSource<'_>,
    gun: &Gun,
    c: &mut TrustedCollection,
    digest: &Digest,
) -> Result<Vec<String>, String> {
    let want = base64::engine::general_purpose::STANDARD.encode(hex::decode(digest.hex()).map_err(|e| e.to_string())?);
    let mut queue = vec!["targets".to_string()];
    let mut names = std::collections::BTreeSet::new();
    let mut visited = 0;
    while let Some(role) = queue.pop() {
        visited += 1;
        if visited > MAX_ROLES {
            break;
        }
        if c.targets(&role).is_none() && (c.role_meta(&role).is_none() || load(src, gun, c, &role).await.is_err()) {
            continue;
        }
        let Some(t) = c.targets(&role) else { continue };
        names.extend(t.targets.iter().filter(|(_, m)| m.hashes.get("sha256") == Some(&want)).map(|(n, _)| n.clone()));
        queue.extend(t.delegations.roles.iter().map(|d| d.name.clone()));
    }
    Ok(names.into_iter().collect())
}
