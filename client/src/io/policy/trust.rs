//! TUF 1.0 and Notary v1 findings for a policy, through the same verified workflows a pull runs (the recorded,
//! pinned or first-use root; every document verified; what verified recorded): the subject's tag as signed, or, by
//! digest, every tag signed for that digest; with the signing role and, for TUF 1.0, the key IDs whose signatures
//! on that role verified.

use crate::io::pull::{anchor, refresh_trusted, Anchor, PullError, PullOptions};
use crate::io::source::{Failure, Source};
use crate::io::store::ContentStore;
use crate::io::trust::{find_target, SignedTarget, TrustError, TrustFormat};
use wharf_format::digest::Digest;
use wharf_format::policy::{SignedTag, TrustFinding};

/// What one trust format proved: the finding for the policy, and the signed targets behind it (a pull by tag
/// fetches the manifest within the signed length).
pub struct Found {
    pub finding: TrustFinding,
    pub targets: Vec<SignedTarget>,
}

/// What a finding is about: the tag an image is read by, or the digest (then every tag signed for it).
#[derive(Debug, Clone, Copy)]
pub enum Want<'a> {
    Tag(&'a str),
    Digest(&'a Digest),
}

/// What TUF 1.0 data signs for `want`.
pub async fn tuf(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    want: Want<'_>,
) -> Result<Found, PullError> {
    // A repository held to Notary v1 has no TUF 1.0 root to start from.
    if anchor(store, opts)? == Anchor::Pinned(TrustFormat::NotaryV1) {
        return Ok(Found { finding: TrustFinding::NoData, targets: Vec::new() });
    }
    let (tag, digest) = match want {
        Want::Tag(t) => (Some(t.to_string()), None),
        Want::Digest(d) => (None, Some(d.clone())),
    };
    let result = refresh_trusted(store, srcs, opts, move |mut u| {
        let (tag, digest) = (tag.clone(), digest.clone());
        Box::pin(async move {
            let names = match &tag {
                Some(t) => vec![t.clone()],
                None => all_names(&mut u).await?,
            };
            let mut found = Vec::new();
            for n in names {
                let t = match find_target(&mut u, &n).await {
                    Ok(t) => t,
                    // By digest, a name a search does not reach signs nothing; by tag, it is the finding.
                    Err(TrustError::NotSigned(_)) if tag.is_none() => continue,
                    Err(e) => return Err(e),
                };
                if tag.is_some() || digest.as_ref() == Some(&t.digest) {
                    let keys = u.trusted().signers(t.role.as_str())?;
                    found.push((t, keys));
                }
            }
            Ok((u, found))
        })
    })
    .await;
    let found = match result {
        Ok((_, found)) => found,
        Err(e) => return finding_of(e),
    };
    let finding = TrustFinding::Signed(found.iter().map(|(t, keys)| signed_tag(t, keys.clone())).collect());
    Ok(Found { finding, targets: found.into_iter().map(|(t, _)| t).collect() })
}

/// The same from the repository's Notary v1 collection (no key IDs: its requirement names delegations only).
pub async fn notary_v1(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    want: Want<'_>,
) -> Result<Found, PullError> {
    // No policy falls back from a repository's recorded or pinned TUF 1.0 root to a Notary v1 collection (which a
    // first-use client would trust from whoever serves it): its Notary v1 finding is "no data".
    if anchor(store, opts)? == Anchor::Pinned(TrustFormat::Tuf) {
        return Ok(Found { finding: TrustFinding::NoData, targets: Vec::new() });
    }
    let result = match want {
        Want::Tag(t) => crate::io::notary_v1::resolve_for_pull(store, srcs, opts, t).await.map(|t| vec![t]),
        Want::Digest(digest) => crate::io::notary_v1::signed_tags(store, srcs, opts)
            .await
            .map(|all| all.into_iter().filter(|t| t.digest == *digest).collect()),
    };
    match result {
        Ok(targets) => {
            let finding = TrustFinding::Signed(targets.iter().map(|t| signed_tag(t, Vec::new())).collect());
            Ok(Found { finding, targets })
        }
        Err(e) => finding_of(e),
    }
}

/// Every target name of top-level targets and the delegated roles it names (as `wharf trust inspect` lists them).
pub(crate) async fn all_names(u: &mut crate::io::pull::Refreshed) -> Result<Vec<String>, TrustError> {
    let top = u.trusted().targets();
    let mut names: Vec<String> = top.map(|t| t.targets.keys().cloned().collect()).unwrap_or_default();
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
    Ok(names)
}

fn signed_tag(t: &SignedTarget, keys: Vec<String>) -> SignedTag {
    SignedTag { tag: t.name.clone(), digest: t.digest.clone(), role: t.role.as_str().to_string(), keys }
}

/// A workflow's failure as a finding: no data, nothing signed, or why it did not verify. A registry that could not
/// be reached, or refused access, stays an error: that is not a policy's verdict.
fn finding_of(e: PullError) -> Result<Found, PullError> {
    let finding = match &e {
        PullError::NoTrustData(_) => TrustFinding::NoData,
        PullError::Trust(TrustError::NotSigned(_)) => TrustFinding::Signed(Vec::new()),
        _ if matches!(e.failure(), Failure::Unreachable | Failure::Denied) => return Err(e),
        _ => TrustFinding::Failed(crate::io::transport::report(&e)),
    };
    Ok(Found { finding, targets: Vec::new() })
}
