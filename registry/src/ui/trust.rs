//! Each tag's signed status, verified on the server against the trust data this registry holds (TUF 1.0 and Notary
//! v1): which roles or delegations signed it, whether the signed digest is the tag's digest now, and when the data
//! expires.
//!
//! TODO(ui-trust): built by the trust engineer.
