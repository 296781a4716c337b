//! The registry's routes, parsed from the path after `/v2/` by one pure function.
//!
//! axum cannot capture a slash-containing repository name in the middle of a path, so the server registers one
//! catch-all route and this module decides what the tail names. Names are matched from the right, because a
//! repository name may itself contain `blobs`, `manifests` or `tags` as components.

use wharf_format::{Digest, DigestError, NameError, Reference, RepositoryName};
use wharf_storage::UploadId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Catalog,
    Tags(RepositoryName),
    Manifest(RepositoryName, Reference),
    /// A manifest path whose reference is neither a valid tag nor a digest (`.INVALID_MANIFEST_NAME`): unknown to
    /// a GET, HEAD or DELETE, an invalid tag to a PUT.
    ManifestBadReference(RepositoryName),
    Blob(RepositoryName, Digest),
    UploadStart(RepositoryName),
    Upload(RepositoryName, UploadId),
    Referrers(RepositoryName, Digest),
}

impl Endpoint {
    /// The repository the endpoint addresses (none for the catalog).
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Catalog => None,
            Endpoint::Tags(r)
            | Endpoint::Manifest(r, _)
            | Endpoint::ManifestBadReference(r)
            | Endpoint::Blob(r, _)
            | Endpoint::UploadStart(r)
            | Endpoint::Upload(r, _)
            | Endpoint::Referrers(r, _) => Some(r),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("no such endpoint")]
    NotFound,
    #[error("invalid repository name: {0}")]
    Name(NameError),
    #[error("invalid digest: {0}")]
    Digest(DigestError),
    #[error("upload session unknown")]
    UploadUnknown,
}

/// Parses the path after `/v2/` (without a leading slash).
pub fn parse(tail: &str) -> Result<Endpoint, EndpointError> {
    if tail == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    let segs: Vec<&str> = tail.split('/').collect();
    let n = segs.len();
    let name = |k: usize| -> Result<RepositoryName, EndpointError> {
        if k == 0 {
            return Err(EndpointError::NotFound);
        }
        segs[..k].join("/").parse().map_err(EndpointError::Name)
    };
    let digest = |s: &str| -> Result<Digest, EndpointError> { s.parse().map_err(EndpointError::Digest) };
    let at = |i: usize| if i < n { segs[i] } else { "" };
    let from_end = |k: usize| if n >= k { segs[n - k] } else { "" };

    // `<name>/blobs/uploads/` and `<name>/blobs/uploads`
    if n >= 3 && from_end(3) == "blobs" && from_end(2) == "uploads" && from_end(1).is_empty() {
        return Ok(Endpoint::UploadStart(name(n - 3)?));
    }
    if n >= 2 && from_end(2) == "blobs" && from_end(1) == "uploads" {
        return Ok(Endpoint::UploadStart(name(n - 2)?));
    }
    if n >= 3 && from_end(3) == "blobs" && from_end(2) == "uploads" {
        let id = from_end(1).parse().map_err(|_| EndpointError::UploadUnknown)?;
        return Ok(Endpoint::Upload(name(n - 3)?, id));
    }
    if n >= 2 {
        let last = at(n - 1);
        match from_end(2) {
            "tags" if last == "list" => return Ok(Endpoint::Tags(name(n - 2)?)),
            "manifests" => {
                let repo = name(n - 2)?;
                return match last.parse() {
                    Ok(r) => Ok(Endpoint::Manifest(repo, r)),
                    Err(NameError::Digest(d)) => Err(EndpointError::Digest(d)),
                    Err(_) => Ok(Endpoint::ManifestBadReference(repo)),
                };
            }
            "blobs" => {
                let repo = name(n - 2)?;
                return Ok(Endpoint::Blob(repo, digest(last)?));
            }
            "referrers" => {
                let repo = name(n - 2)?;
                return Ok(Endpoint::Referrers(repo, digest(last)?));
            }
            _ => {}
        }
    }
    Err(EndpointError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tail: &str, expect: &str) {
        let got = match parse(tail) {
            Ok(Endpoint::Catalog) => "catalog".to_string(),
            Ok(Endpoint::Tags(r)) => format!("tags {r}"),
            Ok(Endpoint::Manifest(r, x)) => format!("manifest {r} {x}"),
            Ok(Endpoint::ManifestBadReference(r)) => format!("manifest-bad-reference {r}"),
            Ok(Endpoint::Blob(r, d)) => format!("blob {r} {}", &d.hex()[..4]),
            Ok(Endpoint::UploadStart(r)) => format!("upload-start {r}"),
            Ok(Endpoint::Upload(r, id)) => format!("upload {r} {}", &id.to_string()[..4]),
            Ok(Endpoint::Referrers(r, d)) => format!("referrers {r} {}", &d.hex()[..4]),
            Err(EndpointError::NotFound) => "not-found".into(),
            Err(EndpointError::Name(_)) => "name-invalid".into(),
            Err(EndpointError::Digest(_)) => "digest-invalid".into(),
            Err(EndpointError::UploadUnknown) => "upload-unknown".into(),
        };
        assert_eq!(got, expect, "{tail}");
    }

    #[test]
    fn table() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let id = "0123456789abcdef0123456789abcdef";
        check("_catalog", "catalog");
        check("a/b/tags/list", "tags a/b");
        check("tags/tags/list", "tags tags");
        check("a/manifests/latest", "manifest a latest");
        check(&format!("a/manifests/{d}"), &format!("manifest a {d}"));
        check("blobs/manifests/v1", "manifest blobs v1");
        check(&format!("x/y/blobs/{d}"), "blob x/y abab");
        check("lib/img/blobs/uploads/", "upload-start lib/img");
        check("lib/img/blobs/uploads", "upload-start lib/img");
        check(&format!("lib/blobs/uploads/{id}"), "upload lib 0123");
        check(&format!("r/referrers/{d}"), "referrers r abab");
        check("a/blobs/uploads/not-an-id", "upload-unknown");
        check("a/blobs/sha256:abc", "digest-invalid");
        check("a/manifests/sha256:abc", "digest-invalid");
        check("a/manifests/-bad", "manifest-bad-reference a");
        check("a/manifests/.INVALID_MANIFEST_NAME", "manifest-bad-reference a");
        check("UPPER/manifests/x", "name-invalid");
        check("a/../b/manifests/x", "name-invalid");
        check("_tuf/manifests/x", "name-invalid");
        check("manifests/x", "not-found");
        check("a/b", "not-found");
        check("", "not-found");
        check(&format!("{}/tags/list", "a".repeat(256)), "name-invalid");
    }
}
