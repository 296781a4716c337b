//! The object store's key layout. Every key is derived here, only from a `Digest` or an `UploadId`:
//!
//! ```text
//! <root>/
//! ├── blobs/
//! │   └── <algorithm>/<first two hex characters>/<hex>   committed content, immutable, written once
//! └── uploads/
//!     └── <upload id>/data                               an upload in progress; never read as content
//! ```

use object_store::path::Path;
use wharf_client::Digest;

use crate::upload::UploadId;

pub fn blob(d: &Digest) -> Path {
    let hex = d.hex();
    Path::from(format!("blobs/{}/{}/{}", d.algorithm().as_str(), &hex[..2], hex))
}

pub fn upload_data(id: &UploadId) -> Path {
    Path::from(format!("uploads/{id}/data"))
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
