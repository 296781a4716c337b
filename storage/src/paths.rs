//! The object store's key layout. Every key is derived here, only from a `Digest` or an `UploadId`:
//!
//! ```text
//! <root>/
//! ├── blobs/
//! │   ├── <algorithm>/<first two hex characters>/<hex>   committed content, immutable, written once
//! │   └── uploaded/<upload id>                           committed content that a multipart upload completed in
//! │                                                      place (the metadata records the digest's location)
//! └── uploads/
//!     └── <upload id>/
//!         ├── data                                       an upload in progress; never read as content
//!         └── tail-<writer>                              a multipart session's bytes after its last part
//! ```

use object_store::path::Path;
use wharf_format::Digest;

use crate::upload::UploadId;

pub fn blob(d: &Digest) -> Path {
    let hex = d.hex();
    Path::from(format!("blobs/{}/{}/{}", d.algorithm().as_str(), &hex[..2], hex))
}

/// Where a multipart upload writes its blob: once completed and verified it stays there, with no copy.
pub fn staged_blob(id: &UploadId) -> Path {
    Path::from(format!("blobs/uploaded/{id}"))
}

/// A committed blob: at the location its metadata records, else at its content address. A recorded location is
/// only ever one that `staged_blob` made, so it cannot point outside `blobs/`.
pub fn stored_blob(d: &Digest, location: Option<&str>) -> Path {
    match location {
        Some(l) if l.starts_with("blobs/uploaded/") && !l.contains("..") => Path::from(l),
        _ => blob(d),
    }
}

pub fn upload_data(id: &UploadId) -> Path {
    Path::from(format!("uploads/{id}/data"))
}

/// Everything a session keeps in the store lives under this prefix.
pub fn upload_dir(id: &UploadId) -> Path {
    Path::from(format!("uploads/{id}"))
}

/// The bytes a session holds after its last part, as written by the request holding lease `writer`.
pub fn upload_tail(id: &UploadId, writer: &str) -> Path {
    Path::from(format!("uploads/{id}/tail-{writer}"))
}

/// `path` as a store that adds no prefix of its own (the multipart API) must name it.
pub fn with_prefix(prefix: &str, path: &Path) -> Path {
    if prefix.is_empty() {
        path.clone()
    } else {
        Path::from(format!("{prefix}/{}", path.as_ref()))
    }
}

pub const UPLOADS_DIR: &str = "uploads";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d: Digest = format!("sha256:ab{}", "0".repeat(62)).parse().unwrap();
        assert_eq!(blob(&d).as_ref(), format!("blobs/sha256/ab/ab{}", "0".repeat(62)));
        let id: UploadId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(upload_data(&id).as_ref(), "uploads/0123456789abcdef0123456789abcdef/data");
    }
}
