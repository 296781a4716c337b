//! `docker-archive:` sources: a `docker save` tarball converted into a temporary OCI layout.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{at, PushError};
use wharf_format::digest::Digest;

/// Converts a `docker save` archive into an OCI layout in `dir`: the config and the (uncompressed) layer tars
/// become blobs by their sha256, under a new OCI image manifest.
pub(super) fn docker_archive_to_layout(file: &Path, name: Option<&str>, dir: &Path) -> Result<(), PushError> {
    let bad = |m: String| PushError::Source(file.display().to_string(), m);
    let json = |what: &'static str| move |source| PushError::Json { path: file.display().to_string(), what, source };
    let x = dir.join("x");
    std::fs::create_dir_all(&x)?;
    tar::Archive::new(std::fs::File::open(file).map_err(at(file))?)
        .unpack(&x)
        .map_err(|source| PushError::Unpack { path: file.display().to_string(), source })?;
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(x.join("manifest.json"))?).map_err(json("manifest.json"))?;
    let entries = manifest.as_array().cloned().ok_or_else(|| bad("manifest.json is not an array".into()))?;
    let entry = match name {
        Some(n) => entries.iter().find(|e| e["RepoTags"].as_array().is_some_and(|t| t.iter().any(|t| t == n))),
        None if entries.len() == 1 => entries.first(),
        None => None,
    }
    .ok_or_else(|| bad("name the image with :NAME:TAG (the archive holds several or none)".into()))?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    // Moves a file of the archive into the blobs, returning its digest and size.
    let add = |rel: &str| -> Result<(Digest, u64), PushError> {
        // The archive's own symlinks are followed, but only to files inside it.
        let src = x.join(rel).canonicalize()?;
        if !src.starts_with(x.canonicalize()?) {
            return Err(bad(format!("{rel:?} escapes the archive")));
        }
        let mut h = wharf_format::digest::Algorithm::Sha256.hasher();
        let mut f = std::fs::File::open(&src).map_err(at(&src))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
        let d = h.finish();
        std::fs::copy(&src, blobs.join(d.hex()))?;
        Ok((d, size))
    };
    let config = entry["Config"].as_str().ok_or_else(|| bad("no Config".into()))?;
    let (cd, cs) = add(config)?;
    let mut layers = Vec::new();
    for l in entry["Layers"].as_array().cloned().ok_or_else(|| bad("manifest.json entry has no Layers".into()))? {
        let rel = l.as_str().ok_or_else(|| bad("bad Layers".into()))?;
        let (d, s) = add(rel)?;
        // docker save writes layers as plain tars; gzip ones (newer engines) are named by their media type.
        let mut magic = [0u8; 2];
        let gz = std::fs::File::open(blobs.join(d.hex()))
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == [0x1f, 0x8b];
        let mt =
            if gz { "application/vnd.oci.image.layer.v1.tar+gzip" } else { "application/vnd.oci.image.layer.v1.tar" };
        layers.push(serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": s}));
    }
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cs},
        "layers": layers});
    let mbytes = serde_json::to_vec(&m).map_err(json("encoding the new manifest"))?;
    let md = Digest::sha256_of(&mbytes);
    std::fs::write(blobs.join(md.hex()), &mbytes)?;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": mbytes.len()}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).map_err(json("encoding the new index.json"))?)?;
    std::fs::remove_dir_all(&x)?;
    Ok(())
}

/// A temporary directory removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

pub(super) fn tempdir() -> std::io::Result<TempDir> {
    let p = std::env::temp_dir().join(format!(
        "wharf-push-{}-{}",
        std::process::id(),
        &Digest::sha256_of(format!("{:?}", std::time::SystemTime::now()).as_bytes()).hex()[..12]
    ));
    std::fs::create_dir_all(&p)?;
    Ok(TempDir(p))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
