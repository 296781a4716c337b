//! `trust inspect`: every signed tag of a repository, verified through the full workflow.

use crate::io::pull::{anchor, refresh_trusted, sources, Anchor, PullError, PullOptions};
use crate::io::store::ContentStore;
use crate::io::trust::{find_target, SignedTarget, TrustFormat, TrustLimits};

/// The signed tags of the repository, verified. A repository held to one format (a recorded or pinned root) shows
/// that format's tags only, and its data missing is a failure; on first use, both formats it may have: its TUF 1.0
/// repository (top-level targets and every delegated role they name) and its Notary v1 collection.
pub async fn signed_tags(store: &ContentStore, opts: &PullOptions) -> Result<Vec<SignedTarget>, PullError> {
    let srcs = sources(opts)?;
    match anchor(store, opts)? {
        Anchor::Pinned(TrustFormat::Tuf) => tuf_tags(store, &srcs, opts).await,
        Anchor::Pinned(TrustFormat::NotaryV1) => crate::io::notary_v1::signed_tags(store, &srcs, opts).await,
        Anchor::FirstUse => {
            let tuf = tuf_tags(store, &srcs, opts).await;
            let notary = crate::io::notary_v1::signed_tags(store, &srcs, opts).await;
            match (tuf, notary) {
                (Ok(mut a), Ok(b)) => {
                    a.extend(b);
                    Ok(a)
                }
                (Ok(a), Err(PullError::NoTrustData(_))) | (Err(PullError::NoTrustData(_)), Ok(a)) => Ok(a),
                (Err(PullError::NoTrustData(_)), Err(e)) | (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            }
        }
    }
}

async fn tuf_tags(
    store: &ContentStore,
    srcs: &[crate::io::store::Source],
    opts: &PullOptions,
) -> Result<Vec<SignedTarget>, PullError> {
    let (_, rows) = refresh_trusted(store, srcs, opts, |s, mut r| {
        Box::pin(async move {
            let limits = TrustLimits::default();
            let mut names: Vec<String> = Vec::new();
            if let Some(t) = r.set.targets() {
                names.extend(t.targets.keys().cloned());
            }
            // No delegations means no delegated roles: absence, not a failure.
            let roles: Vec<String> = r
                .set
                .targets()
                .and_then(|t| t.delegations.as_ref())
                .map(|d| d.roles.iter().map(|x| x.name.clone()).collect())
                .unwrap_or_default();
            for role in roles {
                let meta = match r.set.snapshot_entry(&role) {
                    Ok(m) => m,
                    Err(_) => continue,
                };
                let bytes = s
                    .transport
                    .get_bounded(&format!("/v2/{}/_tuf/{}.{role}.json", s.repo, meta.version), limits.targets)
                    .await?;
                r.set.update_delegated(&role, &bytes, "targets")?;
                if let Some(t) = r.set.delegated(&role) {
                    names.extend(t.targets.keys().cloned());
                }
            }
            names.sort();
            names.dedup();
            let mut rows = Vec::new();
            for n in names {
                // The search applies delegation order and paths, so a tag shows the signer a pull would trust.
                if let Ok(t) = find_target(s.transport, &s.repo, &mut r.set, &n, &limits).await {
                    rows.push(t);
                }
            }
            Ok((r, rows))
        })
    })
    .await?;
    Ok(rows)
}
