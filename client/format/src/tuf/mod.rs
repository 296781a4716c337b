//! TUF 1.0 metadata: types, canonical JSON, ed25519 keys, signature thresholds, and the checks every consumer
//! shares. Pure: time is passed in as Unix seconds, nothing here reads a clock or does I/O.
//!
//! Signatures are made and checked only over the canonical JSON (OLPC form) of the `signed` object exactly as it
//! was received, never over a re-serialisation of our own types, so unknown fields survive verification.

mod cjson;
mod envelope;
mod key;
mod role;
mod search;
mod time;
mod trusted;
mod verify;

pub use cjson::canonical;
pub use envelope::{Envelope, Signature};
pub use key::{KeyId, PublicKey, Scheme, SigningKey};
pub use role::{
    DelegatedRole, Delegations, Expires, MetaFile, Role, RoleKeys, RoleName, Root, Snapshot, SuccinctRoles, TargetFile,
    Targets, Timestamp, SPEC_VERSION,
};
pub use search::DelegationSearch;
pub use time::{format_time, parse_time};
pub use trusted::{check_file, check_hashes, TimestampUpdate, TrustedSet};
pub use verify::{
    check_delegation_bounds, check_expiry, check_threshold, path_delegated, path_matches, valid_signers,
    MAX_DELEGATED_ROLES, MAX_PATTERN_LEN, MAX_ROLE_PATHS,
};

/// Why metadata was refused. Each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    #[error("malformed metadata: {0}")]
    Malformed(String),
    #[error("{role}: expected _type {expected:?}")]
    WrongType { role: String, expected: &'static str },
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("{role}: {valid} valid signature(s) from distinct keys, threshold is {threshold}")]
    Threshold { role: String, valid: usize, threshold: u32 },
    #[error("{role}: key id {key_id} appears more than once in signatures")]
    DuplicateSignature { role: String, key_id: String },
    #[error("{role}: key id {key_id} is not the sha256 of the key's canonical JSON")]
    KeyIdMismatch { role: String, key_id: String },
    #[error(
        "{role}: unsupported key type {keytype}/{scheme} (ed25519, ecdsa-sha2-nistp256 and rsassa-pss-sha256 only)"
    )]
    UnsupportedKey { role: String, keytype: String, scheme: String },
    #[error("{role}: expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("{role}: version {got} where {expected} was required")]
    Version { role: String, expected: String, got: u64 },
    #[error("{role}: target {target:?} is outside the role's delegated paths")]
    OutsideDelegation { role: String, target: String },
    #[error("{role}: target {target:?}: {reason}")]
    BadTarget { role: String, target: String, reason: String },
    #[error("{role}: {reason}")]
    BadRole { role: String, reason: String },
    #[error("{role}: {what} does not match what {by} recorded")]
    Mismatch { role: String, what: &'static str, by: &'static str },
}
