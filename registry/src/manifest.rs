//! Manifest reads, writes and deletes, by tag and by digest.

use axum::body::Body;
use axum::body::Body as RequestBody;
use axum::http::request::Parts as Request;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use wharf_format::{Digest, MediaType, ParsedManifest, Reference, RepositoryName, Tag};
use wharf_storage::{Change, ManifestRecord, NewManifest, Origin};

use crate::error::{ApiError, Kind};
use crate::{empty, header_str, AppState, Registry};

pub async fn get(st: &AppState, repo: &RepositoryName, r: &Reference, req: &Request) -> Result<Response, ApiError> {
    let record = lookup(st, repo, r).await?;
    crate::policy::gate::check_read(st, repo, r, &record).await?;
    if req.method == Method::GET {
        st.ops.later.record(crate::ops::notify::Action::Pull, req, st.clock.now(), || Change::ManifestPull {
            repository: repo.to_string(),
            digest: record.digest.to_string(),
            media_type: record.media_type.to_string(),
            size: record.content.len() as u64,
            tag: match r {
                Reference::Tag(t) => Some(t.to_string()),
                Reference::Digest(_) => None,
            },
        });
    }
    respond(record, req)
}

/// Answers a `GET` or `HEAD` with a stored manifest, if the `Accept` headers allow its type.
pub fn respond(record: ManifestRecord, req: &Request) -> Result<Response, ApiError> {
    if !acceptable(req, &record.media_type) {
        return Err(ApiError::new(
            Kind::ManifestUnknown,
            format!("manifest is {}, which the Accept header does not allow", record.media_type),
        ));
    }
    let b = Response::builder()
        .header("content-type", record.media_type.as_str())
        .header("docker-content-digest", record.digest.to_string())
        .header("etag", format!("\"{}\"", record.digest))
        .header("content-length", record.content.len());
    let body = if req.method == Method::HEAD { Body::empty() } else { Body::from(record.content) };
    b.body(body).map_err(|e| ApiError::new(Kind::Internal, e.to_string()))
}

pub async fn put(
    st: &AppState,
    repo: &RepositoryName,
    r: &Reference,
    req: &Request,
    body: RequestBody,
) -> Result<Response, ApiError> {
    let content_type = match header_str(req, header::CONTENT_TYPE) {
        Some(h) => Some(MediaType::from_header(h).map_err(|e| ApiError::new(Kind::ManifestInvalid, e.to_string()))?),
        None => None,
    };
    let body = read_limited(req, body, st.limits.max_manifest_size).await?;
    let parsed = ParsedManifest::parse(&body, content_type.as_ref())?;
    let digest = match r {
        Reference::Digest(d) => {
            if !d.matches(&body) {
                return Err(ApiError::new(Kind::DigestInvalid, "manifest does not match the digest in the URL"));
            }
            d.clone()
        }
        Reference::Tag(_) => Digest::sha256_of(&body),
    };
    let tag = match r {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    };
    crate::policy::gate::check_put(st, repo, r, &digest, &parsed).await?;
    let new = to_store(repo, &digest, &parsed, &body, tag, false);
    let now = st.clock.now();
    let change = Change::ManifestPush {
        repository: repo.to_string(),
        digest: digest.to_string(),
        media_type: parsed.media_type.to_string(),
        size: body.len() as u64,
        tag: tag.map(|t| t.to_string()),
    };
    let origin = crate::ops::origin::from_parts(req);
    let journal = st.ops.journal(&origin, &change, now);
    // A tag that is new or now names another manifest is a tag move too, read in the push's transaction.
    let moved = |from: Option<String>| match tag {
        Some(t) => {
            let change =
                Change::TagMove { repository: repo.to_string(), tag: t.to_string(), from, to: digest.to_string() };
            st.ops.journal(&origin, &change, now)
        }
        None => wharf_storage::Journal::default(),
    };
    st.meta.manifests().put_tag_recorded(&new, now, &journal, &moved).await?;
    crate::policy::gate::changed(st, repo);
    let mut headers =
        vec![("location", format!("/v2/{repo}/manifests/{digest}")), ("docker-content-digest", digest.to_string())];
    if let Some(subject) = &parsed.subject {
        headers.push(("oci-subject", subject.digest.to_string()));
    }
    Ok(empty(StatusCode::CREATED, headers))
}

pub async fn delete(st: &AppState, repo: &RepositoryName, r: &Reference, req: &Request) -> Result<Response, ApiError> {
    remove(st, repo, r, &crate::ops::origin::from_parts(req)).await?;
    Ok(empty(StatusCode::ACCEPTED, vec![]))
}

/// Deletes a tag, or a manifest and every tag pointing at it, for `origin`: the one delete behind both the API's
/// `DELETE /v2/<name>/manifests/<reference>` and the web interface's delete form. The signature policy's check,
/// then the delete with its audit row and webhook events (and the quota's accounting) in one transaction, then the
/// policy's cache is told. The caller has checked the right to delete; a mirrored repository refuses every write.
pub(crate) async fn remove(
    st: &Registry,
    repo: &RepositoryName,
    r: &Reference,
    origin: &Origin,
) -> Result<(), ApiError> {
    if let Some(route) = st.mirror.as_ref().and_then(|m| m.route(repo)) {
        return Err(crate::mirror::denied(repo, &route));
    }
    crate::policy::gate::check_delete(st, repo, r)?;
    let now = st.clock.now();
    let deleted = match r {
        Reference::Digest(d) => {
            let change = Change::ManifestDelete { repository: repo.to_string(), digest: d.to_string() };
            st.meta.manifests().delete_recorded(repo, d, &st.ops.journal(origin, &change, now)).await?
        }
        Reference::Tag(t) => {
            // What the tag pointed at, for the record (read before; the delete itself is conditional on nothing).
            let digest = st.meta.manifests().by_tag(repo, t).await?.map(|m| m.digest.to_string());
            let change = Change::TagDelete { repository: repo.to_string(), tag: t.to_string(), digest };
            st.meta.manifests().delete_tag_recorded(repo, t, &st.ops.journal(origin, &change, now)).await?
        }
    };
    crate::policy::gate::changed(st, repo);
    if deleted {
        Ok(())
    } else {
        Err(wharf_storage::Error::ManifestUnknown.into())
    }
}

/// What storage keeps of a validated manifest `body` (digest `digest`) in `repo`: its references, and its tag.
/// `lazy`: a mirrored manifest, whose references may arrive later.
pub(crate) fn to_store<'a>(
    repo: &'a RepositoryName,
    digest: &'a Digest,
    parsed: &'a ParsedManifest,
    body: &'a [u8],
    tag: Option<&'a Tag>,
    lazy: bool,
) -> NewManifest<'a> {
    NewManifest {
        repo,
        digest,
        media_type: &parsed.media_type,
        artifact_type: parsed.artifact_type.as_ref(),
        subject: parsed.subject.as_ref().map(|s| &s.digest),
        content: body,
        // Foreign and non-distributable layers live elsewhere by definition; everything else must be here.
        blobs: parsed.blobs().filter(|d| !is_external(&d.media_type)).map(|d| &d.digest).collect(),
        manifests: parsed.manifests.iter().map(|d| &d.digest).collect(),
        tag,
        lazy,
    }
}

async fn lookup(st: &AppState, repo: &RepositoryName, r: &Reference) -> Result<ManifestRecord, ApiError> {
    let found = match r {
        Reference::Tag(t) => st.meta.manifests().by_tag(repo, t).await?,
        Reference::Digest(d) => st.meta.manifests().by_digest(repo, d).await?,
    };
    Ok(found.ok_or(wharf_storage::Error::ManifestUnknown)?)
}

fn is_external(m: &MediaType) -> bool {
    m.as_str().contains(".foreign.") || m.as_str().contains(".nondistributable.")
}

/// Whether the request's `Accept` headers allow `media_type`. No `Accept` at all allows anything.
fn acceptable(req: &Request, media_type: &MediaType) -> bool {
    let mut any = false;
    for value in req.headers.get_all(header::ACCEPT) {
        let Ok(v) = value.to_str() else { continue };
        for item in v.split(',') {
            let item = item.split(';').next().unwrap_or("").trim();
            if item.is_empty() {
                continue;
            }
            any = true;
            if item == "*/*" || item == "application/*" || item.eq_ignore_ascii_case(media_type.as_str()) {
                return true;
            }
        }
    }
    !any
}

/// Reads a body of at most `limit` bytes; a longer one is refused with 413 before it is all read.
async fn read_limited(req: &Request, body: RequestBody, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_big = || ApiError::new(Kind::TooLarge, format!("manifest exceeds {limit} bytes"));
    if header_str(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(Kind::ManifestInvalid, format!("reading body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
