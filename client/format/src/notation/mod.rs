//! Notation (Notary Project) signatures: JWS and COSE envelopes attached as OCI 1.1 referrers
//! (`application/vnd.cncf.notary.signature`), judged by a trust policy in `trustpolicy.json` form against a trust
//! store, as the Notary Project specification defines.
//!
//! (Skeleton: the verification is being written; until then every candidate is refused.)

use crate::policy::{Material, NotationCandidate, NotationRequirement, Subject};

/// The artifact type of a Notation signature referrer.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
pub const COSE_MEDIA_TYPE: &str = "application/cose";

/// Whether one of `candidates` satisfies the trust policy `r` names for the subject. `Ok`: who signed; `Err`: why
/// none did.
pub fn satisfies(
    r: &NotationRequirement,
    s: &Subject,
    candidates: &[NotationCandidate],
    m: &Material,
    now: i64,
) -> Result<String, String> {
    let _ = (r, s, m, now);
    if candidates.is_empty() {
        return Err("no Notation signature".into());
    }
    Err("Notation verification is not implemented yet".into())
}
