//! Blob uploads: monolithic, POST then PUT, chunked PATCH, status, cancel, and cross-repository mount.

use axum::body::Body;
use axum::http::request::Parts as Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use wharf_format::{Digest, RepositoryName};
use wharf_storage::{Committed, UploadId};

use crate::error::{range_header, ApiError, Kind};
use crate::{empty, header_str, query_pairs, query_param, AppState};

pub async fn start(st: &AppState, repo: &RepositoryName, req: &Request, body: Body) -> Result<Response, ApiError> {
    let q = query_pairs(req);
    if let (Some(mount), Some(from)) = (query_param(&q, "mount"), query_param(&q, "from")) {
        let digest = parse_digest(&mount)?;
        // An unparsable or invisible source falls back to a plain upload session, as the spec asks.
        if let Ok(from) = from.parse::<RepositoryName>() {
            if st.meta.blobs().mount(&from, repo, &digest, st.clock.now()).await?.is_some() {
                return Ok(created(repo, &digest));
            }
        }
    }
    if let Some(d) = query_param(&q, "digest") {
        // Monolithic upload: the whole blob is this request's body, and no session outlives it.
        let digest = parse_digest(&d)?;
        let (start, declared) = chunk_headers(req, None).await?;
        if start.is_some_and(|s| s != 0) {
            return Err(ApiError::new(Kind::UploadRangeInvalid, "a monolithic upload starts at 0"));
        }
        let committed = st.uploads.put_whole(declared, body.into_data_stream(), &digest).await?;
        return record(st, repo, &digest, committed, req).await;
    }
    let id = st.uploads.start(repo, st.clock.now()).await?;
    Ok(accepted(repo, &id, 0, StatusCode::ACCEPTED))
}

pub async fn status(st: &AppState, repo: &RepositoryName, id: &UploadId) -> Result<Response, ApiError> {
    let s = st.uploads.status(id, repo).await?;
    Ok(accepted(repo, id, s.offset, StatusCode::NO_CONTENT))
}

pub async fn patch(
    st: &AppState,
    repo: &RepositoryName,
    id: &UploadId,
    req: &Request,
    body: Body,
) -> Result<Response, ApiError> {
    let offset = receive(st, repo, id, req, body).await?;
    Ok(accepted(repo, id, offset, StatusCode::ACCEPTED))
}

pub async fn put(
    st: &AppState,
    repo: &RepositoryName,
    id: &UploadId,
    req: &Request,
    body: Body,
) -> Result<Response, ApiError> {
    let q = query_pairs(req);
    let digest = parse_digest(
        &query_param(&q, "digest")
            .ok_or_else(|| ApiError::new(Kind::DigestInvalid, "the digest parameter is missing"))?,
    )?;
    let (start, declared) = chunk_headers(req, Some((st, repo, id))).await?;
    let body = body.into_data_stream();
    let committed = st.uploads.complete(id, repo, start, declared, body, &digest, st.clock.now()).await?;
    record(st, repo, &digest, committed, req).await
}

/// Records a committed blob in the metadata (see [`wharf_storage::Uploads::record`]).
/// Its webhook `push` event is recorded off the request path (see [`crate::ops::notify::later`]).
async fn record(
    st: &AppState,
    repo: &RepositoryName,
    digest: &Digest,
    c: Committed,
    req: &Request,
) -> Result<Response, ApiError> {
    let now = st.clock.now();
    st.uploads.record(repo, digest, &c, now).await?;
    st.ops.later.record(crate::ops::notify::Action::Push, req, now, || wharf_storage::Change::BlobPush {
        repository: repo.to_string(),
        digest: digest.to_string(),
        size: c.size,
    });
    Ok(created(repo, digest))
}

pub async fn cancel(st: &AppState, repo: &RepositoryName, id: &UploadId) -> Result<Response, ApiError> {
    st.uploads.cancel(id, repo, st.clock.now()).await?;
    Ok(empty(StatusCode::NO_CONTENT, vec![]))
}

/// Streams the request body into the session, honouring `Content-Range` and `Content-Length`.
async fn receive(
    st: &AppState,
    repo: &RepositoryName,
    id: &UploadId,
    req: &Request,
    body: Body,
) -> Result<u64, ApiError> {
    let (start, declared) = chunk_headers(req, Some((st, repo, id))).await?;
    let body = body.into_data_stream();
    let status = st.uploads.append(id, repo, start, declared, body, st.clock.now()).await?;
    Ok(status.offset)
}

/// A chunk's declared first offset and length, from `Content-Range` and `Content-Length`. A malformed range is
/// answered with the session's offset, when there is a session.
async fn chunk_headers(
    req: &Request,
    session: Option<(&AppState, &RepositoryName, &UploadId)>,
) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let length = match header_str(req, header::CONTENT_LENGTH) {
        Some(v) => Some(v.parse::<u64>().map_err(|_| bad_upload("invalid Content-Length"))?),
        None => None,
    };
    let range = match header_str(req, header::CONTENT_RANGE) {
        Some(v) => match parse_content_range(v) {
            Some(r) => Some(r),
            None => return Err(bad_range(session).await),
        },
        None => None,
    };
    match (range, length) {
        (Some((_, len)), Some(n)) if len != n => Err(bad_upload("Content-Range and Content-Length disagree")),
        (Some((start, len)), _) => Ok((Some(start), Some(len))),
        (None, n) => Ok((None, n)),
    }
}

fn created(repo: &RepositoryName, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        vec![("location", format!("/v2/{repo}/blobs/{digest}")), ("docker-content-digest", digest.to_string())],
    )
}

fn accepted(repo: &RepositoryName, id: &UploadId, offset: u64, status: StatusCode) -> Response {
    empty(
        status,
        vec![
            ("location", format!("/v2/{repo}/blobs/uploads/{id}")),
            ("range", range_header(offset)),
            ("docker-upload-uuid", id.to_string()),
        ],
    )
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|e| ApiError::new(Kind::DigestInvalid, format!("invalid digest: {e}")))
}

fn bad_upload(msg: &str) -> ApiError {
    ApiError::new(Kind::UploadInvalid, msg)
}

async fn bad_range(session: Option<(&AppState, &RepositoryName, &UploadId)>) -> ApiError {
    let offset = match session {
        Some((st, repo, id)) => st.uploads.status(id, repo).await.map_or(0, |s| s.offset),
        None => 0,
    };
    ApiError::new(Kind::UploadRangeInvalid, "malformed Content-Range").with_header("range", range_header(offset))
}

/// `Content-Range` of a chunk: `<start>-<end>` as the spec writes it, also `bytes <start>-<end>/<total>`; returns
/// the start and the length, computed with checked arithmetic (an end of `u64::MAX` is malformed, not a panic).
pub fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix("bytes ").or_else(|| v.strip_prefix("bytes=")).unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let len = b.checked_sub(a)?.checked_add(1)?;
    Some((a, len))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range as p;

    #[test]
    fn content_range() {
        assert_eq!(p("0-99"), Some((0, 100)));
        assert_eq!(p("bytes 100-199/*"), Some((100, 100)));
        assert_eq!(p("bytes=5-5"), Some((5, 1)));
        assert_eq!(p("0-18446744073709551615"), None);
        assert_eq!(p("1-18446744073709551615"), Some((1, u64::MAX)));
        assert_eq!(p("9-1"), None);
        assert_eq!(p("x-1"), None);
        assert_eq!(p("100"), None);
    }
}
