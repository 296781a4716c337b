//! Small parsers: manifests and indexes, `WWW-Authenticate` challenges, `Range` and `Content-Range`, config files.

use wharf_format::challenge::parse_challenge;
use wharf_format::{Digest, MediaType, ParsedManifest};

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/json",
];

/// A manifest or index body, under no `Content-Type` and each manifest type; every descriptor's digest prints
/// back to itself.
pub fn manifest(data: &[u8]) {
    let types: Vec<Option<MediaType>> =
        std::iter::once(None).chain(MANIFEST_TYPES.iter().map(|t| t.parse().ok())).collect();
    for ct in &types {
        let Ok(m) = ParsedManifest::parse(data, ct.as_ref()) else { continue };
        let all = m.config.iter().chain(&m.layers).chain(&m.manifests).chain(&m.subject);
        for d in all {
            let again: Digest = d.digest.to_string().parse().expect("a parsed digest prints to a valid digest");
            assert_eq!(again, d.digest);
        }
    }
}

/// A `WWW-Authenticate` value.
pub fn challenge(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_challenge(s);
    }
}

/// Eight bytes of blob size (little-endian), then a `Range` header, also parsed as a chunk's `Content-Range`: a
/// range found lies inside the blob, and a chunk's end does not overflow.
pub fn range(data: &[u8]) {
    let Some((size, header)) = data.split_first_chunk::<8>() else { return };
    let size = u64::from_le_bytes(*size);
    let Ok(h) = std::str::from_utf8(header) else { return };
    if let Some(r) = wharf_registry::fuzzing::parse_range(h, size) {
        let end = r.end.expect("a parsed range has an end");
        assert!(r.start <= end && end < size, "{h:?} against {size}: {r:?}");
    }
    if let Some((start, len)) = wharf_registry::fuzzing::parse_content_range(h) {
        assert!(len >= 1 && start.checked_add(len - 1).is_some(), "{h:?}: {start} + {len}");
    }
}

/// A TOML config file through defaults and validation into `Settings`. Paths it names are read (a JWKS file, a
/// CA certificate): inputs naming device or kernel files are skipped, as an operator's config is trusted to.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let vars = wharf_registry::config::Vars::new();
    let Ok(c) = wharf_registry::config::Config::from_toml(text, std::path::Path::new("fuzz.toml"), &vars) else {
        return;
    };
    let _ = c.settings(wharf_registry::config::Overrides::default());
}
