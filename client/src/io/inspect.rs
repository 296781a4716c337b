//! `trust inspect`: every signed tag of a repository, verified through the full workflow, and what the registry
//! serves under each tag, so that a tag moved under its signature (by a push that bypassed signing) is flagged.

use crate::io::pull::{anchor, refresh_trusted, sources, Anchor, PullError, PullOptions, MANIFEST_ACCEPT};
use crate::io::source::Failure;
use crate::io::store::ContentStore;
use crate::io::transport::{Transport, TransportError};
use crate::io::trust::{find_target, SignedTarget, TrustFormat};
use wharf_format::digest::Digest;

/// The largest manifest read back from the registry.
const MAX_MANIFEST: u64 = 4 << 20;

/// What the registry serves under a signed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// A manifest, whose digest is computed here from its bytes.
    Digest(Digest),
    /// The registry has no such tag.
    Missing,
    /// The registry refused it (a policy's `DENIED`, or access): status and message.
    Refused(u16, String),
}

/// A signed tag beside what the registry serves for it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub signed: SignedTarget,
    pub served: Served,
}

impl Checked {
    /// Whether the registry serves something other than the signed manifest under the tag, or refuses it (a
    /// protected registry refuses a tag that disagrees with its signature). A tag the registry does not have
    /// serves nothing, and is not flagged.
    pub fn flagged(&self) -> bool {
        match &self.served {
            Served::Digest(d) => *d != self.signed.digest,
            Served::Missing => false,
            Served::Refused(..) => true,
        }
    }
}

/// Tags whose registry digest differs from their signed digest: a verification failure (exit status 3).
#[derive(Debug, thiserror::Error)]
#[error("{0} signed tag(s) differ from what the registry serves")]
pub struct Flagged(pub usize);

impl Flagged {
    pub fn failure(&self) -> Failure {
        Failure::Verification
    }
}

/// What the registry at `opts.image.host` serves for each of `rows`' tags (by `GET`, so that a refusal's message
/// is read).
pub async fn served(opts: &PullOptions, rows: Vec<SignedTarget>) -> Result<Vec<Checked>, TransportError> {
    let t = Transport::new(&opts.image.host, &opts.insecure)?;
    let repo = &opts.image.repository;
    t.want_scopes(&[format!("repository:{repo}:pull")]).await;
    let mut out = Vec::new();
    for signed in rows {
        let url = t.url(&format!("/v2/{repo}/manifests/{}", signed.name));
        let resp = t.send(|| t.http().get(&url).header("accept", MANIFEST_ACCEPT)).await?;
        let status = resp.status().as_u16();
        let served = if resp.status().is_success() {
            Served::Digest(Digest::sha256_of(&t.read_bounded(resp, &url, MAX_MANIFEST).await?))
        } else if status == 404 {
            Served::Missing
        } else {
            // The refusal's body is only its message: one that cannot be read leaves the status to show.
            let body = t.read_bounded(resp, &url, 64 << 10).await.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let message = v["errors"][0]["message"].as_str().unwrap_or("").to_string();
            Served::Refused(status, message)
        };
        out.push(Checked { signed, served });
    }
    Ok(out)
}

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
            let names = crate::io::policy::trust::all_names(&mut u).await?;
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
