//! Wharf's shared library.
//!
//! The modules here are **pure**: no tokio, no network, no files, no clock reads. They parse untrusted input at the
//! edge into types (`Digest`, `RepositoryName`, `Tag`, `Reference`, `MediaType`) and validate OCI documents, so that
//! the servers and the client never handle an unchecked string.

#[cfg(feature = "cli")]
pub mod cli;
pub mod digest;
pub mod image_ref;
#[cfg(feature = "io")]
pub mod inspect;
#[cfg(feature = "io")]
pub mod layout;
pub mod manifest;
pub mod media_type;
pub mod name;
#[cfg(feature = "io")]
pub mod progress;
#[cfg(feature = "io")]
pub mod publish;
#[cfg(feature = "io")]
pub mod pull;
#[cfg(feature = "io")]
pub mod push;
#[cfg(feature = "io")]
pub mod runtime;
pub mod seal;
#[cfg(feature = "io")]
pub mod store;
#[cfg(feature = "io")]
pub mod transport;
#[cfg(feature = "io")]
pub mod trust;
pub mod tuf;
#[cfg(feature = "io")]
pub mod unpack;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use media_type::MediaType;
pub use name::{NameError, Reference, RepositoryName, Tag};
