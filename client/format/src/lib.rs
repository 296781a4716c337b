//! Wharf's pure formats: parsing untrusted input at the edge into types, and validating OCI, TUF 1.0 and Notary v1
//! documents. Nothing here does I/O or reads a clock (`seal` draws nonces from the OS random source, and nothing
//! else); the time a verification runs at is an argument. Every Wharf crate depends on this one; it depends on no
//! Wharf crate, so the servers cannot reach the client's transport, store or commands.

pub mod challenge;
pub mod digest;
pub mod image_ref;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod notary;
pub mod seal;
pub mod tuf;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use media_type::MediaType;
pub use name::{NameError, Reference, RepositoryName, Tag};
