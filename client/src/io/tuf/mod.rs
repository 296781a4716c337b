//! The one TUF 1.0 updater (specification section 5), shaped like go-tuf's `updater` over `trustedmetadata`: the
//! pure [`wharf_format::tuf::TrustedSet`] decides, this module fetches and keeps. `wharf pull` and `wharf trust`
//! (over Wharf's `/v2/<name>/_tuf/` layout, `io::trust`) and `wharf-tuf-client` (any repository with a local
//! metadata directory, `io::tuf_repo`) both run it; the Notary v1 reader (`io::notary_v1`) shares its fetcher,
//! limits and root-chain walk.
//!
//! - [`fetch`]: the [`fetch::Fetcher`] trait (a metadata file by name, a target by path, each with a byte limit)
//!   and its HTTP implementation over the transport.
//! - [`local`]: where trusted metadata is kept between runs ([`local::LocalMetadata`]).
//! - [`updater`]: the workflow: root chain, timestamp, snapshot, targets, the delegation search.
//!
//! # Errors
//!
//! Which error type belongs in which layer of the TUF client:
//! - `wharf_format::tuf::TufError`: the pure core refused a document (a rule broken, named by the variant).
//! - `io::transport::TransportError`: a fetch failed (status, size limit, pace, connection).
//! - [`UpdateError`]: the updater's own: one of those two as its cause, or the local metadata could not be kept,
//!   or a target is signed by no role the search reached. Causes are kept as `#[source]`, never as text.
//! - `io::trust::TrustError`: a pull's trust step, in either format (it adds the Notary v1 refusals and the
//!   classification into a `source::Failure`); `io::tuf_repo::RepoError`: the standalone client (it adds target
//!   downloads and its directories).

pub mod fetch;
pub mod local;
pub mod updater;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use crate::io::transport::TransportError;
use wharf_format::tuf::TufError;

/// One set of byte limits on metadata downloads and bounds on the walks, for every TUF client Wharf runs.
///
/// The values are python-tuf's and go-tuf's defaults (`UpdaterConfig`): root 512,000 bytes, timestamp 16,384,
/// snapshot 2,000,000, targets (top-level and each delegated role) 5,000,000, at most 256 root rotations per
/// refresh and 32 delegated roles per search. The trust service accepts documents of at most
/// `trust.max_metadata_size` (1 MiB by default), well under the targets limit. A length the level above signed
/// lowers the limit for that file, never raises it: a signed length is attacker-chosen once a key leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    pub max_root_rotations: u64,
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
            max_root_rotations: 256,
            max_delegations: 32,
        }
    }
}

impl Limits {
    /// The byte limit for a file whose referrer signed `length` (if it did), under the `limit` for its kind.
    pub fn capped(limit: u64, length: Option<u64>) -> u64 {
        length.map_or(limit, |l| l.min(limit))
    }
}

/// Why a refresh or a search failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Fetch(#[from] TransportError),
    #[error("trust metadata refused")]
    Refused(#[from] TufError),
    #[error("keeping the trusted {role} metadata")]
    Local {
        role: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not signed by any role the delegation search reached")]
    NotSigned(String),
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`), as Python's
/// `urllib.parse.quote` does: role names in metadata file names, target paths in URLs.
pub fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
