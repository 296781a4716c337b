//! Blob reads and deletes.

use axum::body::Body;
use axum::http::request::Parts as Request;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use futures::TryStreamExt;
use wharf_format::{Digest, RepositoryName};
use wharf_storage::ByteRange;

use crate::error::{ApiError, Kind};
use crate::{empty, header_str, AppState};

pub async fn get(st: &AppState, repo: &RepositoryName, digest: &Digest, req: &Request) -> Result<Response, ApiError> {
    let seen = st.meta.blobs().seen(repo, digest).await?.ok_or(wharf_storage::Error::BlobUnknown)?;
    let now = st.clock.now();
    if seen.touched_at < now - wharf_storage::meta::TOUCH_EVERY {
        // A read restarts the blob's grace period (a client that found it may reference it next), at most once a
        // minute; a failed touch costs the read nothing.
        if let Err(e) = st.meta.blobs().touch(repo, digest, now).await {
            tracing::warn!(error = %e, %digest, "touching a blob on read");
        }
    }
    let (size, location) = (seen.size, seen.location.as_deref());
    let range = match header_str(req, header::RANGE) {
        None => None,
        Some(h) => Some(parse_range(h, size).ok_or_else(|| unsatisfiable(size))?),
    };
    let common = |b: axum::http::response::Builder| {
        b.header("docker-content-digest", digest.to_string())
            .header("content-type", "application/octet-stream")
            .header("accept-ranges", "bytes")
            .header("etag", format!("\"{digest}\""))
    };
    if req.method == Method::HEAD {
        return common(Response::builder()).header("content-length", size).body(Body::empty()).map_err(build_error);
    }
    st.ops.later.record(crate::ops::notify::Action::Pull, req, now, || wharf_storage::Change::BlobPull {
        repository: repo.to_string(),
        digest: digest.to_string(),
        size,
    });
    if let Some(expires_in) = st.redirect {
        if let Some(url) = st.blobs.presigned_get_at(digest, location, expires_in).await? {
            return common(Response::builder())
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", url.as_str())
                .header("content-length", 0)
                .body(Body::empty())
                .map_err(build_error);
        }
    }
    let read = match st.blobs.open_at(digest, location, range).await {
        Err(wharf_storage::Error::BlobUnknown) => {
            // The metadata records the blob but the store has no bytes for it: damage for `wharf admin check`.
            tracing::error!(%digest, repository = %repo, ?location, "a recorded blob has no bytes in the store");
            return Err(wharf_storage::Error::BlobUnknown.into());
        }
        other => other?,
    };
    if read.size != size {
        // The store holds other bytes than the row says: never serve them as this blob.
        let found = read.size;
        return Err(
            wharf_storage::Error::Corrupt(format!("{digest}: the store holds {found} bytes, not {size}")).into()
        );
    }
    let (start, end) = read.range;
    let len = if read.size == 0 { 0 } else { end - start + 1 };
    let body = Body::from_stream(read.body.map_err(|e| std::io::Error::other(e.to_string())));
    let mut b = common(Response::builder()).header("content-length", len);
    b = if range.is_some() {
        b.status(StatusCode::PARTIAL_CONTENT).header("content-range", format!("bytes {start}-{end}/{}", read.size))
    } else {
        b.status(StatusCode::OK)
    };
    b.body(body).map_err(build_error)
}

fn build_error(e: axum::http::Error) -> ApiError {
    ApiError::new(Kind::Internal, e.to_string())
}

pub async fn delete(
    st: &AppState,
    repo: &RepositoryName,
    digest: &Digest,
    req: &Request,
) -> Result<Response, ApiError> {
    let change = wharf_storage::Change::BlobDelete { repository: repo.to_string(), digest: digest.to_string() };
    let journal = st.ops.journal(&crate::ops::origin::from_parts(req), &change, st.clock.now());
    if st.meta.blobs().unlink_recorded(repo, digest, &journal).await? {
        Ok(empty(StatusCode::ACCEPTED, vec![("docker-content-digest", digest.to_string())]))
    } else {
        Err(wharf_storage::Error::BlobUnknown.into())
    }
}

pub(crate) fn unsatisfiable(size: u64) -> ApiError {
    ApiError::new(Kind::BlobRangeInvalid, "requested range not satisfiable")
        .with_header("content-range", format!("bytes */{size}"))
}

/// Parses a single-range `Range: bytes=...` header against a blob of `size` bytes.
pub fn parse_range(h: &str, size: u64) -> Option<ByteRange> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { size.checked_sub(1)? } else { b.parse::<u64>().ok()?.min(size.checked_sub(1)?) };
        (start, end)
    };
    (start <= end && start < size).then_some(ByteRange { start, end: Some(end) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(h: &str, size: u64, expect: Option<(u64, u64)>) {
        assert_eq!(parse_range(h, size).map(|r| (r.start, r.end.unwrap())), expect, "{h} of {size}");
    }

    #[test]
    fn ranges() {
        check("bytes=0-9", 100, Some((0, 9)));
        check("bytes=90-", 100, Some((90, 99)));
        check("bytes=-10", 100, Some((90, 99)));
        check("bytes=50-1000", 100, Some((50, 99)));
        check("bytes=100-", 100, None);
        check("bytes=5-2", 100, None);
        check("bytes=0-1,4-5", 100, None);
        check("items=0-1", 100, None);
        check("bytes=0-0", 0, None);
        check("bytes=-0", 100, None);
    }
}
