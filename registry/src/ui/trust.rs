//! Each tag's signed status, verified on the server against the trust data this registry holds (TUF 1.0 and Notary
//! v1): which roles or delegations signed it, whether the signed digest is the tag's digest now, and when the data
//! expires.
//!
//! TODO(ui-trust): the trust engineer fills this in; the API below is what the pages use (verify once per page with
//! [`for_repository`], then ask [`RepoTrust::tag`] per row).

use wharf_format::{Digest, RepositoryName};

use crate::Registry;

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
#[derive(Debug, Clone)]
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

/// A repository's trust data, verified once for a page.
#[derive(Debug, Clone, Default)]
pub struct RepoTrust {}

impl RepoTrust {
    /// The statuses of `tag` (pointing at `current` now), one per trust format the repository has; empty when it
    /// has none (unsigned).
    pub fn tag(&self, tag: &str, current: &Digest) -> Vec<TagTrust> {
        let _ = (tag, current);
        Vec::new()
    }

    /// The trust formats the repository has data in (`"TUF"`, `"Notary v1"`).
    pub fn formats(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// Verifies `repo`'s TUF 1.0 and Notary v1 data at `now`, once.
pub async fn for_repository(st: &Registry, repo: &RepositoryName, now: i64) -> RepoTrust {
    let _ = (st, repo, now);
    RepoTrust::default()
}
