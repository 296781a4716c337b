//! Notation (Notary Project) signatures: JWS and COSE envelopes attached as OCI 1.1 referrers
//! (`application/vnd.cncf.notary.signature`), judged by a trust policy in `trustpolicy.json` form against a trust
//! store, as the Notary Project specification defines.
//!
//! - [`trust_policy`]: the document, its validation, and the statement for a repository (how scopes match a
//!   repository without a host is said there);
//! - [`store`]: the trust store's certificates, from the raw files [`Material`] holds;
//! - [`jws`] and [`cose`]: the envelopes, read into one [`envelope::Envelope`];
//! - [`cert`]: signing keys, chain signatures and the certificate requirements;
//! - [`verify()`]: the workflow, each validation enforced or logged as the statement's [`level`] says.

pub mod cert;
pub mod cose;
pub mod dn;
pub mod envelope;
pub mod jws;
pub mod level;
pub mod store;
pub mod trust_policy;
mod verify;

pub use verify::{verify, Failure, Time, Verified, VerifyError};

use crate::policy::{Material, NotationCandidate, NotationRequirement, Subject};
use store::TrustStore;
use trust_policy::TrustPolicyDocument;

/// The artifact type of a Notation signature referrer.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
pub const COSE_MEDIA_TYPE: &str = "application/cose";
/// The content type of the signed payload.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Bounds on what a pushed signature can make the verifier do: envelope size (Notation's own limit), chain length,
/// and how many of a subject's signatures are tried.
pub const MAX_ENVELOPE_BYTES: usize = 4 << 20;
pub const MAX_CERTIFICATES: usize = 10;
pub const MAX_CANDIDATES: usize = 16;

/// Whether one of `candidates` satisfies the trust policy `r` names for the subject. `Ok`: who signed; `Err`: why
/// none did. The subject's registry host and manifest size are unknown here: see [`satisfies_with`].
pub fn satisfies(
    r: &NotationRequirement,
    s: &Subject,
    candidates: &[NotationCandidate],
    m: &Material,
    now: i64,
) -> Result<String, String> {
    satisfies_with(r, s, None, None, candidates, m, now)
}

/// [`satisfies`] for a caller that knows the registry `host` the subject was read from (scopes then match whole)
/// and the manifest's `size` (the signed descriptor's size must then equal it).
pub fn satisfies_with(
    r: &NotationRequirement,
    s: &Subject,
    host: Option<&str>,
    size: Option<u64>,
    candidates: &[NotationCandidate],
    m: &Material,
    now: i64,
) -> Result<String, String> {
    let path = &r.trust_policy;
    let bytes = m.files.get(path).ok_or_else(|| format!("trust policy {path} was not read"))?;
    let doc = TrustPolicyDocument::parse(bytes).map_err(|e| format!("trust policy {path}: {e}"))?;
    let policy = doc.select(host, &s.repository).map_err(|e| format!("trust policy {path}: {e}"))?;
    if policy.level.is_skip() {
        return Ok(format!("trust policy statement {:?} skips verification", policy.name));
    }
    let dir = &r.trust_store;
    let files = m.trust_stores.get(dir).ok_or_else(|| format!("trust store {dir} was not read"))?;
    let store = TrustStore::parse(files, &policy.trust_stores).map_err(|e| format!("trust store {dir}: {e}"))?;
    if candidates.is_empty() {
        return Err("no Notation signature".into());
    }
    let mut failures = vec![];
    for c in candidates.iter().take(MAX_CANDIDATES) {
        match verify(policy, &store, &c.media_type, &c.envelope, &s.digest, size, now) {
            Ok(v) => {
                let level = &policy.level.name;
                let mut out = format!("signed by {} (trust policy statement {:?}, {level})", v.signer, policy.name);
                if !v.logged.is_empty() {
                    let logged: Vec<String> = v.logged.iter().map(Failure::to_string).collect();
                    out.push_str(&format!("; logged: {}", logged.join("; ")));
                }
                return Ok(out);
            }
            Err(f) => failures.push(f.to_string()),
        }
    }
    if candidates.len() > MAX_CANDIDATES {
        failures.push(format!("{} more signatures not tried", candidates.len() - MAX_CANDIDATES));
    }
    Err(format!("no Notation signature verified (trust policy statement {:?}): {}", policy.name, failures.join("; ")))
}

#[cfg(test)]
mod tests;
