//! Docker's v1 search API, so that `docker search HOST/TERM` works: `GET /v1/_ping` and
//! `GET /v1/search?q=TERM&n=N&page=P`, listing only the repositories the caller may pull.
//!
//! How docker calls it (moby's `registry/search*.go`): the daemon pings `/v1/_ping` (HTTPS first), then sends
//! `GET /v1/search?q=TERM&n=LIMIT` (25 unless `--limit`, at most 100) with `X-Docker-Token: true`. Logged in with a
//! password, it sends Basic credentials; logged in with an identity token (what `docker login` keeps from our
//! token endpoint), it fetches a bearer token for the scope `registry:catalog:search` after reading the `/v2/`
//! challenge. Without a login it sends nothing, as long as the ping says the registry is not "standalone": a
//! standalone registry over HTTPS gets Basic credentials on every request, empty ones (`Og==`) for an anonymous
//! caller, which the gate would refuse. So the ping answers `X-Docker-Registry-Standalone: false`.
//!
//! The gate has identified the caller (`Rule::Identify`: anonymous, Basic through the login throttle, or a bearer
//! token) and left a `Caller` in the request; with access control off there is none and everything is listed.
//! Matching is a substring test on names, read only from the ranges of the index the caller's pull grants span
//! (as the catalog does), and bounded: a term of at most [`MAX_TERM`] bytes, pages of at most 100, at most
//! [`MAX_MATCHES`] matches counted and [`MAX_ROWS`] rows read per search.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use wharf_format::RepositoryName;
use wharf_storage::{Metadata, NameRange};

use crate::error::{ApiError, Kind};
use crate::route::DockerV1;
use crate::Registry;

/// The longest term searched for (a repository name is at most 255 bytes).
pub const MAX_TERM: usize = 255;
/// Results per page when the client gives no `n` (docker's default), and the most it may ask for.
const DEFAULT_PAGE: u32 = 25;
const MAX_PAGE: u32 = 100;
/// The most matches a search counts (`num_results`); a broader term should be narrowed.
pub const MAX_MATCHES: usize = 1000;
/// The most index rows one search reads.
pub const MAX_ROWS: usize = 20_000;
/// Rows asked of SQL at once.
const BATCH: u32 = 500;

pub async fn serve(st: Arc<Registry>, which: DockerV1, req: Request) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return ApiError::new(Kind::MethodNotAllowed, "docker's v1 API here answers GET only").into_response();
    }
    match which {
        DockerV1::Ping => ping(),
        DockerV1::Search => {
            // Only the head is read (`Parts` is `Sync`, so the future may hold it across awaits).
            let (parts, _) = req.into_parts();
            search(&st, &parts).await.unwrap_or_else(IntoResponse::into_response)
        }
    }
}

/// `/v1/_ping`: not a standalone registry (see the module's comment).
fn ping() -> Response {
    let mut resp = Json(serde_json::json!({ "standalone": false })).into_response();
    resp.headers_mut().insert("x-docker-registry-standalone", HeaderValue::from_static("false"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A search's parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Lowercase (names are).
    pub term: String,
    pub n: u32,
    pub page: u32,
}

impl Params {
    /// Reads `q`, `n` and `page`; a bad `n` or `page` or an overlong term is refused.
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let term = get("q").unwrap_or("").trim();
        if term.len() > MAX_TERM {
            return Err(ApiError::new(
                Kind::RequestInvalid,
                format!("the search term is longer than {MAX_TERM} bytes"),
            ));
        }
        let number = |k: &str, default: u32, max: u32| match get(k) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<u32>().ok().filter(|x| (1..=max).contains(x)).ok_or_else(|| {
                ApiError::new(Kind::PaginationInvalid, format!("{k} must be a whole number from 1 to {max}"))
            }),
        };
        let n = number("n", DEFAULT_PAGE, MAX_PAGE)?;
        let page = number("page", 1, u32::try_from(MAX_MATCHES).unwrap_or(u32::MAX))?;
        Ok(Params { term: term.to_ascii_lowercase(), n, page })
    }
}

#[derive(Debug, Serialize)]
struct Results {
    num_results: usize,
    query: String,
    results: Vec<Hit>,
    page: u32,
    page_size: u32,
    num_pages: usize,
}

/// One result, in the shape docker decodes (`registry.SearchResult`).
#[derive(Debug, Serialize)]
struct Hit {
    name: String,
    description: String,
    star_count: u32,
    is_official: bool,
    is_automated: bool,
}

async fn search(st: &Registry, req: &Parts) -> Result<Response, ApiError> {
    let p = Params::parse(req.uri.query())?;
    let caller = req.extensions.get::<crate::auth::Caller>();
    let ranges = caller.map_or_else(|| vec![NameRange::all()], |c| c.pull_ranges());
    let show = |r: &str| caller.is_none_or(|c| c.may_pull(r));
    let found = if could_match(&p.term) { matches(&st.meta, &ranges, &p.term, show).await? } else { Found::default() };
    tracing::debug!(ranges = ranges.len(), rows = found.rows_read, matched = found.names.len(), "docker search");
    let skip = (p.page as usize - 1).saturating_mul(p.n as usize);
    let results = found
        .names
        .iter()
        .skip(skip)
        .take(p.n as usize)
        .map(|name| Hit {
            name: name.to_string(),
            description: String::new(),
            star_count: 0,
            is_official: false,
            is_automated: false,
        })
        .collect();
    let total = found.names.len();
    let body = Results {
        num_results: total,
        query: p.term,
        results,
        page: p.page,
        page_size: p.n,
        num_pages: total.div_ceil(p.n as usize),
    };
    Ok(Json(body).into_response())
}

/// Whether a repository name could contain `term` (names are `[a-z0-9._/-]`): else nothing is read.
fn could_match(term: &str) -> bool {
    term.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b))
}

#[derive(Debug, Default)]
struct Found {
    names: Vec<RepositoryName>,
    rows_read: usize,
}

/// The names containing `term` that `show` lets through, from `ranges` (disjoint, in name order), in name order:
/// at most [`MAX_MATCHES`], reading at most [`MAX_ROWS`] rows.
async fn matches(
    meta: &Metadata,
    ranges: &[NameRange],
    term: &str,
    show: impl Fn(&str) -> bool,
) -> Result<Found, wharf_storage::Error> {
    let mut found = Found::default();
    for range in ranges {
        let mut cursor: Option<String> = None;
        loop {
            if found.rows_read >= MAX_ROWS {
                return Ok(found);
            }
            // The repository list's name query (`meta.ui().names`): the same search, the same escaping.
            let (names, more) = meta.ui().names(range, term, cursor.as_deref(), BATCH).await?;
            let next = if more { names.last().map(|n| n.as_str().to_owned()) } else { None };
            found.rows_read += if next.is_some() { BATCH as usize } else { names.len() };
            for name in names.into_iter().filter(|r| show(r.as_str())) {
                if found.names.len() >= MAX_MATCHES {
                    return Ok(found);
                }
                found.names.push(name);
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let ok = |q: &str, term: &str, n: u32, page: u32| {
            let got = Params::parse(Some(q)).unwrap_or_else(|e| panic!("{q}: {e:?}"));
            assert_eq!(got, Params { term: term.into(), n, page }, "{q}");
        };
        ok("", "", 25, 1);
        ok("q=App&n=10", "app", 10, 1);
        ok("q=team%2Fapp&n=100&page=3", "team/app", 100, 3);
        ok("q=x&n=", "x", 25, 1);
        // Each refusal, with the error it gives.
        let refused = |q: &str, kind: Kind| {
            let e = Params::parse(Some(q)).expect_err(q);
            assert_eq!(e.kind, kind, "{q}");
        };
        refused("q=a&n=0", Kind::PaginationInvalid);
        refused("q=a&n=101", Kind::PaginationInvalid);
        refused("q=a&n=-1", Kind::PaginationInvalid);
        refused("q=a&n=ten", Kind::PaginationInvalid);
        refused("q=a&page=0", Kind::PaginationInvalid);
        refused("q=a&page=1001", Kind::PaginationInvalid);
        refused("q=a&page=x", Kind::PaginationInvalid);
        refused(&format!("q={}", "a".repeat(MAX_TERM + 1)), Kind::RequestInvalid);
    }

    #[test]
    fn terms_that_cannot_match_read_nothing() {
        for (term, could) in [("app", true), ("team/app-1.0_x", true), ("", true), ("app*", false), ("é", false)] {
            assert_eq!(could_match(term), could, "{term}");
        }
    }
}
