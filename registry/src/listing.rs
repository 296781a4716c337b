//! Tag lists and the catalog, paginated with `n`, `last` and `Link`.

use axum::http::request::Parts as Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use wharf_format::RepositoryName;
use wharf_storage::{Metadata, NameRange};

use crate::error::{ApiError, Kind};
use crate::{query_pairs, query_param, AppState};

/// The page size when a client gives no `n`.
const DEFAULT_PAGE: u32 = 10_000;

pub async fn tags(st: &AppState, repo: &RepositoryName, req: &Request) -> Result<Response, ApiError> {
    let (n, last) = pagination(req)?;
    let (tags, more) = st.meta.manifests().tags(repo, last.as_deref(), n.unwrap_or(DEFAULT_PAGE)).await?;
    let names: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    let link = more.then(|| next_link(&format!("/v2/{repo}/tags/list"), n, names.last().copied()));
    Ok(with_link(Json(serde_json::json!({ "name": repo.as_str(), "tags": names })), link))
}

/// The catalog. With access control on, it lists only the repositories the caller may pull, reading only the
/// ranges of the index its pull grants span (see `auth::visible`).
pub async fn catalog(st: &AppState, req: &Request) -> Result<Response, ApiError> {
    let (n, last) = pagination(req)?;
    let caller = req.extensions.get::<crate::auth::Caller>();
    let ranges = caller.map_or_else(|| vec![NameRange::all()], |c| c.pull_ranges());
    let show = |r: &str| caller.is_none_or(|c| c.may_pull(r));
    let found = visible(&st.meta, &ranges, show, last.as_deref(), n.unwrap_or(DEFAULT_PAGE)).await?;
    tracing::debug!(ranges = ranges.len(), rows = found.rows_read, listed = found.names.len(), "catalog");
    let names: Vec<&str> = found.names.iter().map(|r| r.as_str()).collect();
    let link = found.more.then(|| next_link("/v2/_catalog", n, names.last().copied()));
    Ok(with_link(Json(serde_json::json!({ "repositories": names })), link))
}

/// Rows asked of SQL at once while looking for visible names.
const BATCH: u32 = 1000;

/// One catalog page.
#[derive(Debug, Default)]
struct Found {
    names: Vec<RepositoryName>,
    /// Whether another visible name follows.
    more: bool,
    /// Rows read from SQL to find them.
    rows_read: usize,
}

/// The first `want` names after `last` that `show` lets through, from `ranges` (disjoint, in name order).
async fn visible(
    meta: &Metadata,
    ranges: &[NameRange],
    show: impl Fn(&str) -> bool,
    last: Option<&str>,
    want: u32,
) -> Result<Found, wharf_storage::Error> {
    let batch = want.saturating_add(1).min(BATCH);
    let mut found = Found::default();
    for range in ranges {
        let mut cursor = last.map(str::to_owned);
        loop {
            let (rows, more) = meta.catalog().list(range, cursor.as_deref(), batch).await?;
            found.rows_read += rows.len();
            cursor = rows.last().map(|r| r.as_str().to_owned());
            for name in rows.into_iter().filter(|r| show(r.as_str())) {
                if found.names.len() >= want as usize {
                    found.more = true;
                    return Ok(found);
                }
                found.names.push(name);
            }
            if !more {
                break;
            }
        }
    }
    Ok(found)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wharf_storage::{AccountKind, AccountRow, GrantRow};

    use super::*;
    use crate::auth::policy::{Policy, Principal, ANONYMOUS};
    use crate::auth::Caller;

    const HIDDEN: usize = 300;
    const SHOWN: [&str; 5] = ["pub/a", "pub/b/c", "team/app", "team/app-x", "team/app/sub"];
    const DECOYS: [&str; 5] = ["pub", "pub-x", "pub0", "puba", "team"];

    async fn metadata(dir: &std::path::Path) -> Metadata {
        let m = Metadata::open_sqlite(&dir.join("meta.db")).await.unwrap();
        let digest = wharf_format::Digest::sha256_of(b"x");
        let hidden = (0..HIDDEN).map(|i| format!("hidden/r{i:04}"));
        for name in hidden.chain(SHOWN.iter().chain(&DECOYS).map(|s| s.to_string())) {
            m.blobs().link(&name.parse().unwrap(), &digest, 1, None, 0).await.unwrap();
        }
        m
    }

    fn caller(who: Principal, grants: &[(&str, &str)]) -> Caller {
        let account = AccountRow {
            name: "r".into(),
            kind: AccountKind::User,
            secret_hash: String::new(),
            expires_at: None,
            created_at: 0,
        };
        let grants = grants.iter().map(|(a, p)| GrantRow {
            account: a.to_string(),
            pattern: p.to_string(),
            actions: "pull".into(),
        });
        let (policy, problems) = Policy::build(1, vec![account], grants.collect());
        assert!(problems.is_empty());
        Caller { principal: who, claims: None, policy: Arc::new(policy) }
    }

    async fn page(m: &Metadata, c: &Caller, last: Option<&str>, want: u32) -> (Vec<String>, bool, usize) {
        let f = visible(m, &c.pull_ranges(), |r| c.may_pull(r), last, want).await.unwrap();
        (f.names.iter().map(ToString::to_string).collect(), f.more, f.rows_read)
    }

    #[tokio::test]
    async fn the_catalog_reads_only_the_ranges_a_caller_may_pull() {
        let dir = tempfile::tempdir().unwrap();
        let m = metadata(dir.path()).await;
        let grants = [(ANONYMOUS, "pub/**"), ("r", "team/app")];
        let anonymous = caller(Principal::Anonymous, &grants);
        // Two rows under `pub/`, whatever else the index holds.
        assert_eq!(page(&m, &anonymous, None, 100).await, (vec!["pub/a".into(), "pub/b/c".into()], false, 2));
        let reader = caller(Principal::Account("r".into()), &grants);
        let all = vec!["pub/a".to_string(), "pub/b/c".into(), "team/app".into()];
        assert_eq!(page(&m, &reader, None, 100).await, (all.clone(), false, 3));
        // Pages of one, in name order across the ranges.
        assert_eq!(page(&m, &reader, None, 1).await.0, ["pub/a"]);
        assert!(page(&m, &reader, None, 1).await.1);
        assert_eq!(page(&m, &reader, Some("pub/a"), 1).await.0, ["pub/b/c"]);
        assert_eq!(page(&m, &reader, Some("pub/b/c"), 1).await, (vec!["team/app".into()], false, 1));
        assert_eq!(page(&m, &reader, Some("team/app"), 1).await, (vec![], false, 0));
        assert_eq!(page(&m, &reader, None, 0).await.0.len(), 0);
        assert!(page(&m, &reader, None, 0).await.1, "n=0: more follow");
        // `team/*` reads the rows under `team/` and shows those one level down.
        let star = caller(Principal::Account("r".into()), &[("r", "team/*")]);
        assert_eq!(page(&m, &star, None, 100).await, (vec!["team/app".into(), "team/app-x".into()], false, 3));
        // No grant: nothing read.
        let nobody = caller(Principal::Account("r".into()), &[]);
        assert_eq!(page(&m, &nobody, None, 100).await, (vec![], false, 0));
        // Without access control, every name, in pages.
        let everything = visible(&m, &[NameRange::all()], |_| true, None, 10_000).await.unwrap();
        assert_eq!(everything.names.len(), HIDDEN + SHOWN.len() + DECOYS.len());
        let first = visible(&m, &[NameRange::all()], |_| true, None, 2).await.unwrap();
        assert_eq!((first.names.len(), first.more), (2, true));
    }
}
