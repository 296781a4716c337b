//! Tag lists and the catalog, paginated with `n`, `last` and `Link`.

use axum::http::request::Parts as Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use wharf_client::RepositoryName;

use crate::error::{ApiError, Kind};
use crate::{query_pairs, query_param, AppState};

/// The page size when a client gives no `n`.
const DEFAULT_PAGE: u32 = 10_000;

pub async fn tags(st: &AppState, repo: &RepositoryName, req: &Request) -> Result<Response, ApiError> {
    let (n, last) = pagination(req)?;
    let (tags, more) = st.meta.tags(repo, last.as_deref(), n.unwrap_or(DEFAULT_PAGE)).await?;
    let names: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    let link = more.then(|| next_link(&format!("/v2/{repo}/tags/list"), n, names.last().copied()));
    Ok(with_link(Json(serde_json::json!({ "name": repo.as_str(), "tags": names })), link))
}

/// The catalog. With access control on, it lists only the repositories the caller may pull: pages are read from
/// SQL and filtered until `n` names are found or the list ends.
pub async fn catalog(st: &AppState, req: &Request) -> Result<Response, ApiError> {
    let (n, last) = pagination(req)?;
    let want = n.unwrap_or(DEFAULT_PAGE);
    let caller = req.extensions.get::<crate::auth::Caller>();
    let mut repos = Vec::new();
    let mut cursor = last;
    let more = loop {
        let (page, more) = st.meta.catalog(cursor.as_deref(), want).await?;
        cursor = page.last().map(|r| r.as_str().to_owned());
        repos.extend(page.into_iter().filter(|r| caller.is_none_or(|c| c.may_pull(r.as_str()))));
        if repos.len() >= want as usize || !more {
            let more = more || repos.len() > want as usize;
            repos.truncate(want as usize);
            break more;
        }
    };
    let names: Vec<&str> = repos.iter().map(|r| r.as_str()).collect();
    let link = more.then(|| next_link("/v2/_catalog", n, names.last().copied()));
    Ok(with_link(Json(serde_json::json!({ "repositories": names })), link))
}

fn pagination(req: &Request) -> Result<(Option<u32>, Option<String>), ApiError> {
    let q = query_pairs(req);
    let n = match query_param(&q, "n") {
        Some(v) => Some(
            v.parse::<u32>().map_err(|_| ApiError::new(Kind::PaginationInvalid, "n must be a non-negative integer"))?,
        ),
        None => None,
    };
    Ok((n, query_param(&q, "last")))
}

fn next_link(path: &str, n: Option<u32>, last: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(l) = last {
        q.append_pair("last", l);
    }
    if let Some(n) = n {
        q.append_pair("n", &n.to_string());
    }
    format!("<{path}?{}>; rel=\"next\"", q.finish())
}

fn with_link(body: impl IntoResponse, link: Option<String>) -> Response {
    let mut resp = body.into_response();
    if let Some(l) = link.and_then(|l| l.parse().ok()) {
        resp.headers_mut().insert("link", l);
    }
    resp
}
