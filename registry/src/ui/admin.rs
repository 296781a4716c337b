//! Administration (administrators only): accounts, robots and grants (read-only), the audit log, the last
//! collection's report, quota usage.
//!
//! Only a viewer who administers the whole registry (`Viewer::is_admin`: an account granted everything on `**`)
//! sees these pages; anyone else gets a `403` page, with a sign-in link when they are not signed in. Every page is
//! one or two bounded statements (`meta.ui()`'s admin reads), paged by key. No page shows a secret: accounts are
//! read without their hashes.
//!
//! The last collection's report is kept in the `settings` table by every collection that removes (the server's
//! and `wharf admin gc`'s, [`keep_gc_report`]), since reports otherwise live only in the run's log and output.

use askama::Template;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use wharf_storage::meta::AccountKind;
use wharf_storage::{AuditQuery, Metadata, UnixTime};

use super::layout::{bytes, html, html_status, time, Chrome};
use super::path::AdminPage;
use super::{field, query, Viewer};
use crate::error::ApiError;
use crate::gc::{Removed, Report};
use crate::Registry;

/// Rows per page of accounts, audit rows and quotas; grants shown with a page of accounts.
const PAGE: u32 = 50;
const GRANTS: u32 = 500;
/// The setting that holds the last collection's report, and how many removed tags and manifests it keeps.
const LAST_GC: &str = "ui.last_gc_report";
const KEPT_REMOVALS: usize = 100;
/// The longest audit filter value looked at (names are at most 255 bytes).
const MAX_FILTER: usize = 256;

pub async fn page(st: &Registry, viewer: &Viewer, p: AdminPage, req: &Parts) -> Result<Response, ApiError> {
    if !viewer.is_admin() {
        return denied(viewer, req);
    }
    let q = query(req);
    let after = field(&q, "after").filter(|a| !a.is_empty() && a.len() <= MAX_FILTER);
    match p {
        AdminPage::Index => html(&Index { chrome: Chrome::new(viewer, "Administration", req) }),
        AdminPage::Accounts => accounts(st, viewer, req, after).await,
        AdminPage::Audit => audit(st, viewer, req, &q).await,
        AdminPage::Gc => gc(st, viewer, req).await,
        AdminPage::Quotas => quotas(st, viewer, req, after).await,
    }
}

#[derive(Template)]
#[template(path = "ui/admin_denied.html")]
struct Denied {
    chrome: Chrome,
    signed_in: bool,
}

/// `403`: the page is for administrators; the sign-in link returns here.
fn denied(viewer: &Viewer, req: &Parts) -> Result<Response, ApiError> {
    let chrome = Chrome::new(viewer, "Forbidden", req);
    html_status(StatusCode::FORBIDDEN, &Denied { signed_in: viewer.id.account.is_some(), chrome })
}

#[derive(Template)]
#[template(path = "ui/admin_index.html")]
struct Index {
    chrome: Chrome,
}

struct AccountLine {
    name: String,
    kind: &'static str,
    created: String,
    expires: String,
}

struct GrantLine {
    account: String,
    pattern: String,
    actions: String,
}

#[derive(Template)]
#[template(path = "ui/admin_accounts.html")]
struct Accounts {
    chrome: Chrome,
    accounts: Vec<AccountLine>,
    grants: Vec<GrantLine>,
    grants_cut: bool,
    next: Option<String>,
}

async fn accounts(st: &Registry, viewer: &Viewer, req: &Parts, after: Option<&str>) -> Result<Response, ApiError> {
    let ui = st.meta.ui();
    let (list, more) = ui.accounts(after, PAGE).await?;
    let (first, last) = match (list.first(), list.last()) {
        (Some(f), Some(l)) => (f.name.as_str(), l.name.as_str()),
        // No account on this page: only the anonymous grants (no account row has an empty name).
        _ => ("", ""),
    };
    let (grants, grants_cut) = ui.grants_of(first, last, GRANTS).await?;
    let next = more.then(|| list.last().map(|a| link("/ui/admin/accounts", &[("after", &a.name)]))).flatten();
    let accounts = list
        .into_iter()
        .map(|a| AccountLine {
            kind: match a.kind {
                AccountKind::User => "user",
                AccountKind::Robot => "robot",
            },
            created: time(a.created_at),
            expires: a.expires_at.map_or_else(|| "never".to_owned(), time),
            name: a.name,
        })
        .collect();
    let grants = grants
        .into_iter()
        .map(|g| GrantLine { actions: g.actions.replace(',', ", "), account: g.account, pattern: g.pattern })
        .collect();
    let chrome = Chrome::new(viewer, "Accounts and grants", req);
    html(&Accounts { chrome, accounts, grants, grants_cut, next })
}

struct AuditLine {
    id: i64,
    time: String,
    actor: String,
    kind: String,
    address: String,
    action: String,
    repository: String,
    target: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "ui/admin_audit.html")]
struct Audit {
    chrome: Chrome,
    account: String,
    repository: String,
    action: String,
    rows: Vec<AuditLine>,
    filtered: bool,
    newest: Option<String>,
    next: Option<String>,
}

async fn audit(st: &Registry, viewer: &Viewer, req: &Parts, q: &[(String, String)]) -> Result<Response, ApiError> {
    let filter = |k: &str| field(q, k).map(str::trim).filter(|v| !v.is_empty() && v.len() <= MAX_FILTER);
    let (account, repository, action) = (filter("account"), filter("repository"), filter("action"));
    let before = field(q, "before").and_then(|b| b.parse::<i64>().ok());
    let query = AuditQuery {
        repository: repository.map(str::to_owned),
        actor: account.map(str::to_owned),
        since: None,
        action: action.map(str::to_owned),
        before: None,
        limit: PAGE,
    };
    let found = st.meta.ui().audit(&query, before).await?;
    let filters = [
        ("account", account.unwrap_or("")),
        ("repository", repository.unwrap_or("")),
        ("action", action.unwrap_or("")),
    ];
    let kept: Vec<(&str, &str)> = filters.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
    let next = match (found.more, found.rows.last()) {
        (true, Some((id, _))) => {
            let id = id.to_string();
            let mut pairs = kept.clone();
            pairs.push(("before", &id));
            Some(link("/ui/admin/audit", &pairs))
        }
        _ => None,
    };
    let newest = before.map(|_| link("/ui/admin/audit", &kept));
    let dash = |v: Option<String>| v.unwrap_or_else(|| "–".to_owned());
    let rows = found
        .rows
        .into_iter()
        .map(|(id, r)| AuditLine {
            id,
            time: time(r.at),
            target: match (r.digest, r.tag) {
                (Some(d), Some(t)) => format!("{t} ({d})"),
                (d, t) => dash(t.or(d)),
            },
            detail: r.detail.map(|d| d.chars().take(300).collect()).unwrap_or_default(),
            actor: r.actor,
            kind: r.actor_kind,
            address: dash(r.address),
            action: r.action,
            repository: dash(r.repository),
        })
        .collect();
    let chrome = Chrome::new(viewer, "Audit log", req);
    let own = |v: Option<&str>| v.unwrap_or("").to_owned();
    html(&Audit {
        chrome,
        account: own(account),
        repository: own(repository),
        action: own(action),
        filtered: !kept.is_empty(),
        rows,
        newest,
        next,
    })
}

/// The last collection's report as kept: when it finished, and the collector's own report with its lists cut to
/// [`KEPT_REMOVALS`] entries (the counts are whole).
#[derive(Serialize, Deserialize)]
struct Kept {
    finished_at: UnixTime,
    report: Report,
}

/// Keeps `report` (of a run that removed, started at `started`) as the last collection's, for `/ui/admin/gc`.
/// A failure is logged: the collection itself is done, and the page then shows the previous report.
pub async fn keep_gc_report(meta: &Metadata, report: &Report, started: UnixTime) {
    let mut cut = report.clone();
    cut.tags.truncate(KEPT_REMOVALS);
    cut.manifests.truncate(KEPT_REMOVALS);
    (cut.blobs, cut.waiting) = (Vec::new(), None);
    let kept = Kept { finished_at: started + i64::try_from(report.millis / 1000).unwrap_or(0), report: cut };
    let stored = match serde_json::to_vec(&kept) {
        Ok(bytes) => meta.settings().set(LAST_GC, &bytes).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, "keeping the collection's report for the web interface");
    }
}

#[derive(Template)]
#[template(path = "ui/admin_gc.html")]
struct Gc {
    chrome: Chrome,
    report: Option<GcView>,
}

struct GcView {
    finished: String,
    figures: Vec<(&'static str, String)>,
    removed: Vec<(String, String, String, String)>,
    removed_total: u64,
    /// Whether more were removed than kept.
    removed_more: bool,
}

async fn gc(st: &Registry, viewer: &Viewer, req: &Parts) -> Result<Response, ApiError> {
    let stored = st.meta.settings().get(LAST_GC).await?;
    let report = match stored {
        None => None,
        Some(b) => {
            let k: Kept = serde_json::from_slice(&b)
                .map_err(|e| ApiError::internal(format!("the kept collection report does not parse: {e}")))?;
            Some(gc_view(k))
        }
    };
    html(&Gc { chrome: Chrome::new(viewer, "Last garbage collection", req), report })
}

fn gc_view(k: Kept) -> GcView {
    let r = k.report;
    let n = |v: u64| v.to_string();
    let figures = vec![
        ("Tags removed", n(r.tags_removed)),
        ("Manifests removed", n(r.manifests_removed)),
        ("Blob links removed", n(r.links_removed)),
        ("Blobs removed", n(r.blobs_removed)),
        ("Bytes freed", bytes(r.bytes_removed)),
        ("Interrupted removals finished", n(r.resumed)),
        ("Blobs not deleted (retried next run)", n(r.failed)),
        ("Uploads expired", n(r.uploads_expired)),
        ("Orphans removed", format!("{} ({})", r.orphans_removed, bytes(r.orphan_bytes_removed))),
        ("Objects listed", n(r.objects_listed)),
        ("Duration", format!("{} ms", r.millis)),
    ];
    let line = |what: &str, x: &Removed| {
        (what.to_owned(), x.repository.clone(), x.tag.clone().unwrap_or_else(|| "–".to_owned()), x.digest.clone())
    };
    let removed: Vec<_> =
        r.tags.iter().map(|x| line("tag", x)).chain(r.manifests.iter().map(|x| line("manifest", x))).collect();
    let removed_total = r.tags_removed + r.manifests_removed;
    let removed_more = removed_total > removed.len() as u64;
    GcView { finished: time(k.finished_at), figures, removed, removed_total, removed_more }
}

struct QuotaLine {
    pattern: String,
    limit: String,
    usage: String,
    percent: String,
    over: bool,
}

#[derive(Template)]
#[template(path = "ui/admin_quotas.html")]
struct Quotas {
    chrome: Chrome,
    quotas: Vec<QuotaLine>,
    next: Option<String>,
}

async fn quotas(st: &Registry, viewer: &Viewer, req: &Parts, after: Option<&str>) -> Result<Response, ApiError> {
    let (list, more) = st.meta.ui().quotas(after, PAGE).await?;
    let next = more.then(|| list.last().map(|q| link("/ui/admin/quotas", &[("after", &q.pattern)]))).flatten();
    let quotas = list
        .into_iter()
        .map(|q| QuotaLine {
            limit: bytes(q.limit),
            usage: bytes(q.usage),
            percent: if q.limit == 0 {
                "–".to_owned()
            } else {
                format!("{:.0} %", q.usage as f64 * 100.0 / q.limit as f64)
            },
            over: q.usage > q.limit,
            pattern: q.pattern,
        })
        .collect();
    html(&Quotas { chrome: Chrome::new(viewer, "Quotas", req), quotas, next })
}

/// `path?k=v&...`, the values encoded.
fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_encode_their_values() {
        assert_eq!(super::link("/ui/admin/audit", &[]), "/ui/admin/audit");
        assert_eq!(
            super::link("/ui/admin/audit", &[("account", "robot$ci"), ("before", "42")]),
            "/ui/admin/audit?account=robot%24ci&before=42"
        );
    }
}
