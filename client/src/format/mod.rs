//! The pure formats: parsing untrusted input at the edge into types, and validating OCI and TUF documents. Nothing
//! here does I/O or reads a clock (`seal` draws nonces from the OS random source, and nothing else).

pub mod challenge;
pub mod digest;
pub mod image_ref;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod notary;
pub mod seal;
pub mod tuf;
