//! Each tag's signed status, verified on the server against the trust data this registry holds (TUF 1.0 and Notary
//! v1): which roles or delegations signed it, whether the signed digest is the tag's digest now, and when the data
//! expires.
//!
//! A page verifies once ([`for_repository`]), with the code signature policy runs (`policy::tuf`,
//! `policy::notary`): the TUF chain from the first root to top-level targets and each Notary v1 collection's root,
//! timestamp, snapshot and targets, then every delegated role reachable from targets (at most the search bound,
//! `MAX_DELEGATIONS` / `MAX_VISITED` loads per format and collection). Each row then runs the client's search for
//! its tag over what is loaded ([`RepoTrust::tag`]), with no further reads: the work per page is bounded and does
//! not grow with the number of rows. Nothing is cached between renders, so a trust write by any replica (a revoke,
//! a new signature) shows on the next load.

use std::collections::BTreeMap;

use wharf_format::notary::Gun;
use wharf_format::{Digest, RepositoryName};

use crate::policy::notary::{self as nv, NotaryDocuments};
use crate::policy::tuf::{self, Found, Lookup, Search, TufDocuments};
use crate::policy::{Problem, Stored};
use crate::Registry;

/// The `data-format` of TUF 1.0 data.
pub const TUF: &str = "TUF";
/// The `data-format` of Notary v1 (Docker Content Trust) data.
pub const NOTARY_V1: &str = "Notary v1";
/// Characters of a key id shown.
const SHORT_KEY: usize = 12;

/// A tag's signed status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Signed, and the signed digest is the tag's digest now.
    Signed,
    /// No trust data signs this tag.
    Unsigned,
    /// Signed for another digest: the tag moved after it was signed.
    Moved,
    /// The repository's trust data does not verify (bad signature, rollback, ...).
    Failed,
    /// The trust data has expired.
    Expired,
}

impl Status {
    /// The word the pages show and the `data-status` attribute tests read.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Signed => "signed",
            Status::Unsigned => "unsigned",
            Status::Moved => "moved",
            Status::Failed => "failed",
            Status::Expired => "expired",
        }
    }
}

/// One tag's status in one trust format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTrust {
    pub status: Status,
    /// `"TUF"` or `"Notary v1"`.
    pub format: &'static str,
    /// The roles or delegations that sign the tag (`targets`, `targets/releases`), with their key ids.
    pub signers: Vec<String>,
    /// The digest the trust data signs for the tag.
    pub signed_digest: Option<Digest>,
    /// When the signature data stops verifying (the earliest expiry on the chain), Unix seconds.
    pub expires: Option<i64>,
    /// Why the data did not verify (for `Failed` and `Expired`).
    pub problem: Option<String>,
}

// TODO(ui): the helpers of `templates/ui/trust.html`, for the manifest page's `#signatures`.
#[allow(dead_code)]
impl TagTrust {
    /// The status word (`data-status`).
    pub fn status_str(&self) -> &'static str {
        self.status.as_str()
    }

    /// The expiry as UTC text, or empty.
    pub fn expires_text(&self) -> String {
        self.expires.map(super::layout::time).unwrap_or_default()
    }

    /// The signed digest as text, or empty.
    pub fn signed_text(&self) -> String {
        self.signed_digest.as_ref().map(|d| d.to_string()).unwrap_or_default()
    }

    /// One sentence for people: what the status means for this tag.
    pub fn summary(&self) -> String {
        match self.status {
            Status::Signed => format!("{}: signed", self.format),
            Status::Unsigned => format!("{}: not signed", self.format),
            Status::Moved => format!("{}: signed for {}, not the tag's digest now", self.format, self.signed_text()),
            Status::Failed => format!("{}: does not verify", self.format),
            Status::Expired => format!("{}: expired", self.format),
        }
    }

    fn of(format: &'static str, result: Result<Option<Found>, Problem>, current: &Digest) -> TagTrust {
        let mut t = TagTrust {
            status: Status::Unsigned,
            format,
            signers: vec![],
            signed_digest: None,
            expires: None,
            problem: None,
        };
        match result {
            Ok(None) => {}
            Ok(Some(found)) => {
                t.status = if found.signed.digest == *current { Status::Signed } else { Status::Moved };
                let keys: Vec<&str> = found.signed.keys.iter().map(|k| k.get(..SHORT_KEY).unwrap_or(k)).collect();
                t.signers = vec![if keys.is_empty() {
                    found.signed.role
                } else {
                    format!("{} (key {})", found.signed.role, keys.join(", "))
                }];
                t.signed_digest = Some(found.signed.digest);
                t.expires = Some(found.expires);
            }
            Err(Problem::Expired { why, at }) => {
                t.status = Status::Expired;
                t.expires = Some(at);
                t.problem = Some(why);
            }
            Err(Problem::Invalid(why)) => {
                t.status = Status::Failed;
                t.problem = Some(why);
            }
        }
        t
    }
}

/// A repository's trust data, verified once for a page.
#[derive(Debug, Clone, Default)]
pub struct RepoTrust {
    /// TUF 1.0 (`None`: the repository has no root), or why its chain does not verify.
    tuf: Option<Result<TufData, Problem>>,
    /// The Notary v1 collections naming the repository that have a root, each verified or not (`None`: none), or
    /// why they could not be listed.
    notary: Option<Result<Vec<(Gun, Result<NotaryData, Problem>)>, Problem>>,
}

#[derive(Debug, Clone)]
struct TufData {
    trusted: tuf::Trusted,
    /// The delegated roles that did not load, by role and delegator.
    failed: BTreeMap<(String, String), Problem>,
}

#[derive(Debug, Clone)]
struct NotaryData {
    trusted: nv::Trusted,
    failed: BTreeMap<String, Problem>,
}

impl RepoTrust {
    /// The statuses of `tag` (pointing at `current` now), one per trust format the repository has; empty when it
    /// has none (unsigned).
    pub fn tag(&self, tag: &str, current: &Digest) -> Vec<TagTrust> {
        let mut out = Vec::new();
        if let Some(t) = &self.tuf {
            out.push(TagTrust::of(TUF, tuf_find(t, tag), current));
        }
        if let Some(n) = &self.notary {
            out.push(TagTrust::of(NOTARY_V1, notary_find(n, tag), current));
        }
        out
    }

    /// The trust formats the repository has data in (`"TUF"`, `"Notary v1"`).
    #[allow(dead_code)] // TODO(ui): for pages that list formats from verified data
    pub fn formats(&self) -> Vec<&'static str> {
        [(self.tuf.is_some(), TUF), (self.notary.is_some(), NOTARY_V1)]
            .into_iter()
            .filter_map(|(has, f)| has.then_some(f))
            .collect()
    }

    /// The names the verified data lists for `digest`, each with its status as if the tag pointed at `digest`
    /// (`Moved` when the search resolves the name to another digest first), sorted by name then format. For a
    /// manifest's page; at most 64 names per format.
    #[allow(dead_code)] // TODO(ui): for the manifest page's `#signatures`
    pub fn signed_for_digest(&self, digest: &Digest) -> Vec<(String, TagTrust)> {
        let mut out = Vec::new();
        if let Some(all @ Ok(t)) = &self.tuf {
            for name in t.trusted.loaded_names_for(digest) {
                let found = tuf_find(all, &name);
                out.push((name, TagTrust::of(TUF, found, digest)));
            }
        }
        if let Some(all @ Ok(collections)) = &self.notary {
            let mut names: Vec<String> = collections
                .iter()
                .filter_map(|(_, c)| c.as_ref().ok())
                .flat_map(|c| c.trusted.loaded_names_for(digest))
                .collect();
            names.sort();
            names.dedup();
            for name in names {
                let found = notary_find(all, &name);
                out.push((name, TagTrust::of(NOTARY_V1, found, digest)));
            }
        }
        out.sort_by(|a, b| (a.0.as_str(), a.1.format).cmp(&(b.0.as_str(), b.1.format)));
        out
    }
}

/// The client's search for `name` over the loaded TUF data (no I/O).
fn tuf_find(data: &Result<TufData, Problem>, name: &str) -> Result<Option<Found>, Problem> {
    let d = data.as_ref().map_err(Clone::clone)?;
    match d.trusted.step(&mut Search::new(name))? {
        Lookup::Found(f) => Ok(Some(f)),
        Lookup::NotSigned => Ok(None),
        Lookup::Need { role, delegator } => {
            Err(d.failed.get(&(role.clone(), delegator)).cloned().unwrap_or_else(|| {
                Problem::Invalid(format!("{role}: not verified (more delegated roles than a page verifies)"))
            }))
        }
    }
}

/// docker's search for `name` in every collection (no I/O): any collection failing fails it, as in a policy
/// finding; else the first that signs it.
fn notary_find(
    data: &Result<Vec<(Gun, Result<NotaryData, Problem>)>, Problem>,
    name: &str,
) -> Result<Option<Found>, Problem> {
    let collections = data.as_ref().map_err(Clone::clone)?;
    let mut first = None;
    for (gun, c) in collections {
        let at = |p: Problem| match p {
            Problem::Expired { why, at } => Problem::Expired { why: format!("collection {gun}: {why}"), at },
            Problem::Invalid(why) => Problem::Invalid(format!("collection {gun}: {why}")),
        };
        let c = c.as_ref().map_err(|p| at(p.clone()))?;
        match c.trusted.lookup(name).map_err(at)? {
            Lookup::Found(f) => {
                first.get_or_insert(f);
            }
            Lookup::NotSigned => {}
            Lookup::Need { role, .. } => {
                return Err(at(c.failed.get(&role).cloned().unwrap_or_else(|| {
                    Problem::Invalid(format!("{role}: not verified (more delegated roles than a page verifies)"))
                })))
            }
        }
    }
    Ok(first)
}

/// Verifies `repo`'s TUF 1.0 and Notary v1 data at `now`, once.
pub async fn for_repository(st: &Registry, repo: &RepositoryName, now: i64) -> RepoTrust {
    verify(&Stored { registry: st, repo }, now).await
}

/// [`for_repository`] over any store of documents.
async fn verify<D: TufDocuments + NotaryDocuments>(docs: &D, now: i64) -> RepoTrust {
    let tuf = match tuf::open(docs, now).await {
        Ok(None) => None,
        Ok(Some(mut v)) => {
            let failed = v.load_all(tuf::MAX_DELEGATIONS).await;
            Some(Ok(TufData { trusted: v.into_trusted(), failed }))
        }
        Err(why) => Some(Err(why)),
    };
    let notary = match docs.guns().await {
        Err(why) => Some(Err(Problem::Invalid(why))),
        Ok(guns) => {
            let mut out = Vec::new();
            for gun in guns {
                let verified = match nv::open(docs, &gun, now).await {
                    Ok(None) => continue,
                    Ok(Some(mut c)) => {
                        let failed = c.load_all(wharf_format::notary::MAX_VISITED).await;
                        Ok(NotaryData { trusted: c.into_trusted(), failed })
                    }
                    Err(why) => Err(why),
                };
                out.push((gun, verified));
            }
            (!out.is_empty()).then_some(Ok(out))
        }
    };
    RepoTrust { tuf, notary }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
