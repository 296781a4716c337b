//! Wharf's pure formats: parsing untrusted input at the edge into types, and validating OCI, TUF 1.0 and Notary v1
//! documents. Nothing here does I/O or reads a clock (`seal` draws nonces from the OS random source, and nothing
//! else); the time a verification runs at is an argument. Every Wharf crate depends on this one; it depends on no
//! Wharf crate, so the servers cannot reach the client's transport, store or commands.
//!
//! # Errors
//!
//! Which error type belongs where: each format has its own `thiserror` enum beside its parser, whose variants name
//! the rule an input broke ([`DigestError`], [`NameError`], [`ManifestError`], [`image_ref::ImageRefError`],
//! [`seal::SealError`], and those of [`tuf`] and [`notary`]). They carry no I/O and no HTTP status: the
//! servers map them to status codes in their one error table, and the client wraps them as the `#[source]` of its
//! own errors. A dependency's error (serde, argon2) is kept as a typed value: as `#[source]`, or, where the
//! registry sends the message to clients as is ([`NameError::Digest`], [`ManifestError::Json`]), displayed in the
//! message and kept whole. A `String` field holds only words of our own; Notary v1's messages are notary-server's
//! words, which its clients show.

pub mod challenge;
pub mod digest;
pub mod image_ref;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod notary;
pub mod notation;
pub mod policy;
pub mod seal;
pub mod sigstore;
pub mod tuf;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use media_type::MediaType;
pub use name::{NameError, Reference, RepositoryName, Tag};
