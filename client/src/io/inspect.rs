//! `trust inspect`: every signed tag of a repository, verified through the full workflow.

use crate::io::pull::{anchor, refresh_trusted, sources, Anchor, PullError, PullOptions};
use crate::io::store::ContentStore;
use crate::io::trust::{find_target, SignedTarget, TrustFormat};

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
    let (_, rows) = refresh_trusted(store, srcs, opts, |mut u| {
        Box::pin(async move {
            let top = u.trusted().targets();
            let mut names: Vec<String> = top.map(|t| t.targets.keys().cloned().collect()).unwrap_or_default();
            // No delegations means no delegated roles: absence, not a failure.
            let roles: Vec<String> = top
                .and_then(|t| t.delegations.as_ref())
                .map(|d| d.roles.iter().map(|x| x.name.clone()).collect())
                .unwrap_or_default();
            for role in roles {
                // A role the snapshot does not list was revoked: it signs nothing.
                if u.trusted().snapshot_entry(&role).is_err() {
                    continue;
                }
                u.load_delegated(&role, "targets").await?;
                if let Some(t) = u.trusted().delegated(&role) {
                    names.extend(t.targets.keys().cloned());
                }
            }
            names.sort();
            names.dedup();
            let mut rows = Vec::new();
            for n in names {
                // The search applies delegation order and paths, so a tag shows the signer a pull would trust.
                if let Ok(t) = find_target(&mut u, &n).await {
                    rows.push(t);
                }
            }
            Ok((u, rows))
        })
    })
    .await?;
    Ok(rows)
}
