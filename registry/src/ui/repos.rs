//! The repository list: search and paging over what the viewer may pull; per repository its size, tag count, last
//! push and the trust formats it has.
//!
//! The names come from the ranges of the index the viewer's pull rights span, filtered by the search term in SQL
//! and by `may_pull` here (as the catalog does, `listing.rs`); pages are numbered, and page N reads the visible
//! names before it (so deep pages are bounded: [`MAX_PAGE`]). The page's summaries are then five statements over
//! its names, not one per repository.

use askama::Template;
use axum::http::request::Parts;
use axum::response::Response;
use wharf_format::RepositoryName;

use super::layout::{self, bytes, time, Chrome};
use super::{field, path, query, Viewer};
use crate::error::{ApiError, Kind};
use crate::Registry;

/// Repositories per page.
pub const PER_PAGE: usize = 50;
/// The deepest page (searching narrows a longer list).
pub const MAX_PAGE: u64 = 2000;
/// Names read from SQL at once while looking for visible ones.
const BATCH: usize = 1000;

#[derive(Template)]
#[template(path = "ui/repos.html")]
struct Page {
    chrome: Chrome,
    term: String,
    rows: Vec<Row>,
    page: u64,
    prev: Option<String>,
    next: Option<String>,
}

struct Row {
    name: String,
    link: String,
    size: String,
    tags: u64,
    pushed: String,
    formats: String,
}

pub async fn page(st: &Registry, viewer: &Viewer, req: &Parts) -> Result<Response, ApiError> {
    let q = query(req);
    let term = field(&q, "q").unwrap_or("").trim().to_owned();
    let page = page_number(field(&q, "page"))?;
    let skip = (page - 1) as usize * PER_PAGE;
    let (names, more) = visible(st, viewer, &term, skip).await?;
    let rows = st
        .meta
        .ui()
        .summaries(&names)
        .await?
        .into_iter()
        .map(|s| {
            let formats: Vec<&str> = [(s.tuf, "TUF"), (s.notary_v1, "Notary v1")]
                .into_iter()
                .filter_map(|(has, name)| has.then_some(name))
                .collect();
            Row {
                link: path::repository(&s.name),
                name: s.name.to_string(),
                size: bytes(s.size),
                tags: s.tags,
                pushed: s.pushed.map_or_else(|| "never".into(), time),
                formats: if formats.is_empty() { "none".into() } else { formats.join(", ") },
            }
        })
        .collect();
    let link = |p: u64| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if !term.is_empty() {
            s.append_pair("q", &term);
        }
        format!("/ui/?{}", s.append_pair("page", &p.to_string()).finish())
    };
    layout::html(&Page {
        chrome: Chrome::new(viewer, "Repositories", req),
        prev: (page > 1).then(|| link(page - 1)),
        next: (more && page < MAX_PAGE).then(|| link(page + 1)),
        term,
        rows,
        page,
    })
}

/// `?page=N`: 1 when absent, refused unless a number from 1 to [`MAX_PAGE`].
pub fn page_number(v: Option<&str>) -> Result<u64, ApiError> {
    match v.filter(|v| !v.is_empty()) {
        None => Ok(1),
        Some(v) => v.parse::<u64>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
            ApiError::new(Kind::PaginationInvalid, format!("page must be a number from 1 to {MAX_PAGE}"))
        }),
    }
}

/// The visible names of page `skip / PER_PAGE` containing `term`, and whether more follow.
async fn visible(
    st: &Registry,
    viewer: &Viewer,
    term: &str,
    skip: usize,
) -> Result<(Vec<RepositoryName>, bool), ApiError> {
    let want = skip + PER_PAGE + 1;
    let mut found = Vec::new();
    for range in viewer.pull_ranges() {
        let mut cursor: Option<String> = None;
        loop {
            let batch = (want - found.len()).min(BATCH) as u32;
            let (rows, more) = st.meta.ui().names(&range, term, cursor.as_deref(), batch).await?;
            cursor = rows.last().map(|r| r.to_string());
            found.extend(rows.into_iter().filter(|r| viewer.may_pull(r.as_str())));
            if found.len() >= want {
                let more = found.len() > skip + PER_PAGE;
                return Ok((found.into_iter().skip(skip).take(PER_PAGE).collect(), more));
            }
            if !more {
                break;
            }
        }
    }
    Ok((found.into_iter().skip(skip).take(PER_PAGE).collect(), false))
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_numbers() {
        let check = |v: Option<&str>, expected: Option<u64>| assert_eq!(super::page_number(v).ok(), expected, "{v:?}");
        check(None, Some(1));
        check(Some(""), Some(1));
        check(Some("3"), Some(3));
        check(Some("0"), None);
        check(Some("-1"), None);
        check(Some("x"), None);
        check(Some("2001"), None);
    }
}
