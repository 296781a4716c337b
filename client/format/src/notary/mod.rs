//! Notary v1 metadata (the dialect of TUF that `notary`, notary-server and Docker Content Trust speak): types,
//! keys and signature methods, root certificates, thresholds, hashes and prefix delegations. Pure: time is passed
//! in as Unix seconds; nothing here reads a clock or does I/O.
//!
//! It differs from TUF 1.0 (`super::tuf`) in ways that make the two mutually unreadable: capitalised `_type`s,
//! base64 hashes and signatures, key ids over `{"keytype","keyval":{"private":null,"public"}}`, raw r‖s ECDSA
//! signatures, X.509 root keys (`ecdsa-x509`, `rsa-x509`), role names as paths (`targets/releases`), prefix paths,
//! snapshot meta that lists root. Signatures are checked over the canonical JSON (OLPC form, shared with TUF 1.0)
//! of `signed` as received; hashes over the exact bytes.

mod check;
mod gun;
mod key;
mod meta;
mod time;
mod trusted;

pub use check::{
    check_delegation_paths, check_file, check_root, check_targets, check_threshold, delegation_allows, is_valid_role,
    parent_of, restrict_paths, MAX_DELEGATION_ROLES, MAX_ROLE_NAME,
};
pub use gun::{Gun, GunError, RoleName};
pub use key::{cert_key_id, ecdsa_key, ed25519_key, key_id, Key, KeyType, KeyVal, Signer};
pub use meta::{
    file_meta, DelegationRole, Delegations, FileMeta, RoleKeys, Root, Signature, Signed, Snapshot, Targets, Timestamp,
};
pub use time::{format_time, parse_time};
pub use trusted::{Found, TrustedCollection, MAX_VISITED};

/// Why Notary v1 metadata was refused. The server sorts these into notary-server's error names by the role being
/// checked; the messages follow notary-server's where a client shows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V1MetadataError {
    /// Not a signed envelope of the expected shape.
    #[error("{0}")]
    Malformed(String),
    /// Anything else: a broken rule, named in the message.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn invalid(msg: impl Into<String>) -> V1MetadataError {
    V1MetadataError::Invalid(msg.into())
}
