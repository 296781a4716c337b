//! Writing a pulled image as an OCI image layout (`--output oci:DIR`).

use std::path::Path;

use serde_json::json;

use crate::io::pull::Pulled;
use crate::io::store::ContentStore;
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;

/// Copies (or hard-links) the image's blobs into `dir` and names it in `index.json` by its tag.
pub fn export(store: &ContentStore, p: &Pulled, image: &ImageRef, dir: &Path) -> std::io::Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let mut digests: Vec<&Digest> = vec![&p.digest, &p.manifest, &p.config.digest];
    digests.extend(p.layers.iter().map(|l| &l.digest));
    for d in digests {
        let dest = dir.join("blobs").join(d.algorithm().as_str()).join(d.hex());
        if dest.exists() {
            continue;
        }
        std::fs::create_dir_all(dest.parent().unwrap_or(dir))?;
        if std::fs::hard_link(store.blob_path(d), &dest).is_err() {
            std::fs::copy(store.blob_path(d), &dest)?;
        }
    }
    let size = std::fs::metadata(store.blob_path(&p.digest))?.len();
    let name = match &image.reference {
        wharf_format::name::Reference::Tag(t) => t.to_string(),
        wharf_format::name::Reference::Digest(_) => "latest".into(),
    };
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": p.media_type.as_str(), "digest": p.digest.to_string(), "size": size,
        "annotations": {"org.opencontainers.image.ref.name": name}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).map_err(std::io::Error::other)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
}
