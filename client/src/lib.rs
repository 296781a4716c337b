//! Wharf's shared library, in three layers that match ARCHITECTURE.md:
//!
//! - [`format`]: **pure** formats: digests, names and references, media types, manifests, image references, TUF
//!   1.0 metadata and verification, key sealing. No tokio, no network, no files, no clock reads. The servers build
//!   only this layer.
//! - [`io`] (feature `io`): the I/O library on top: transport, content store, pull, push, publish, unpack, runtime.
//! - [`cli`] (feature `cli`): the `wharf` client commands and the `wharf-tuf-client` program, one file per command
//!   group.
//!
//! The modules of each layer are re-exported at the crate root (`wharf_client::digest`, `wharf_client::pull`), so
//! paths stay stable however the folders move.

#[cfg(feature = "cli")]
pub mod cli;
pub mod format;
#[cfg(feature = "io")]
pub mod io;

pub use format::{challenge, digest, image_ref, manifest, media_type, name, notary, seal, tuf};
#[cfg(feature = "io")]
pub use io::{
    auth, credentials, images, inspect, layout, notary_v1, progress, publish, pull, push, runtime, snapshot, source,
    store, transport, trust, tuf_repo, unpack,
};

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use media_type::MediaType;
pub use name::{NameError, Reference, RepositoryName, Tag};
