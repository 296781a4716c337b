//! A repository's tags, paged, sorted and filtered: each with its digest, size, platforms, creation time and signed
//! status (from `trust`).
//!
//! A page costs a fixed number of statements: whether the repository exists, the count and the page of tags
//! (joined with their manifests), the children of the page's indexes, the locations of the configs not cached yet,
//! and what `trust::for_repository` reads, once. Paging is by page number (an offset in the chosen order).
//!
//! An image's size is its config's and layers' sizes; an index's, the distinct configs and layers of its stored
//! children. An image's creation time is its config's `created`; an index's, the newest of its children's.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::http::request::Parts;
use axum::response::Response;
use wharf_format::{Digest, RepositoryName};
use wharf_storage::meta::{TagQuery, TagSort};

use super::image::{self, Doc};
use super::layout::{self, bytes, time, Chrome};
use super::trust::{self, Status, TagTrust};
use super::{field, path, query, Viewer};
use crate::error::{ApiError, Kind};
use crate::Registry;

/// Tags per page.
pub const PER_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "ui/tags.html")]
struct Page {
    chrome: Chrome,
    repo: String,
    filter: String,
    sort: &'static str,
    rows: Vec<Row>,
    total: u64,
    page: u64,
    prev: Option<String>,
    next: Option<String>,
}

struct Row {
    tag: String,
    digest: String,
    manifest: String,
    size: String,
    platforms: String,
    created: String,
    badges: Vec<Badge>,
    delete: Option<String>,
}

struct Badge {
    status: &'static str,
    format: &'static str,
    label: String,
    signers: String,
    expires: Option<String>,
    title: String,
}

pub async fn page(st: &Registry, viewer: &Viewer, repo: &RepositoryName, req: &Parts) -> Result<Response, ApiError> {
    // Not pullable looks exactly like absent: the page does not reveal that the repository exists.
    if !viewer.may_pull(repo.as_str()) || !st.meta.ui().exists(repo).await? {
        return Err(ApiError::new(Kind::NameUnknown, "repository name not known to registry"));
    }
    let q = query(req);
    let filter = field(&q, "q").unwrap_or("").trim().to_owned();
    let (sort, sort_name) = parse_sort(field(&q, "sort"))?;
    let page = super::repos::page_number(field(&q, "page"))?;
    let ask = TagQuery { filter: &filter, sort, offset: (page - 1) * u64::from(PER_PAGE), limit: PER_PAGE };
    let found = st.meta.ui().tags(repo, &ask).await?;
    let docs: Vec<Doc> = found.tags.iter().map(|t| Doc::parse(&t.content)).collect();
    let indexes: Vec<Digest> =
        found.tags.iter().zip(&docs).filter(|(_, d)| d.is_index()).map(|(t, _)| t.digest.clone()).collect();
    let children = st.meta.ui().children(repo, &indexes).await?;
    let mut kids: HashMap<Digest, Vec<Doc>> = HashMap::new();
    for c in &children {
        kids.entry(c.parent.clone()).or_default().push(Doc::parse(&c.content));
    }
    let configs: Vec<Digest> = docs.iter().chain(kids.values().flatten()).filter_map(Doc::config_digest).collect();
    let summaries = image::configs(st, repo, &configs).await;
    let verified = trust::for_repository(st, repo, st.clock.now()).await;
    let may_delete = viewer.may_delete(repo.as_str());
    let rows = found
        .tags
        .iter()
        .zip(&docs)
        .map(|(t, doc)| {
            let images: Vec<&Doc> = match kids.get(&t.digest) {
                Some(k) if doc.is_index() => k.iter().collect(),
                _ => vec![doc],
            };
            let size: u64 = {
                let mut seen = BTreeSet::new();
                images.iter().flat_map(|d| d.blobs()).filter(|(d, _)| seen.insert(*d)).map(|(_, s)| s).sum()
            };
            let of = |d: &Doc| d.config_digest().and_then(|c| summaries.get(&c).cloned());
            let platforms = if doc.is_index() {
                doc.platforms()
            } else {
                of(doc).and_then(|s| s.platform.clone()).into_iter().collect()
            };
            let created = images.iter().filter_map(|d| of(d)?.created).max();
            Row {
                tag: t.tag.to_string(),
                digest: t.digest.to_string(),
                manifest: path::manifest(repo, &t.digest),
                size: bytes(size),
                platforms: if platforms.is_empty() { "unknown".into() } else { platforms.join(", ") },
                created: created.map_or_else(|| "unknown".into(), time),
                badges: badges(&verified.tag(t.tag.as_str(), &t.digest)),
                delete: may_delete.then(|| delete_link(repo, t.tag.as_str())),
            }
        })
        .collect();
    let link = |p: u64| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if !filter.is_empty() {
            s.append_pair("q", &filter);
        }
        if sort != TagSort::Name {
            s.append_pair("sort", sort_name);
        }
        s.append_pair("page", &p.to_string());
        format!("{}?{}", path::repository(repo), s.finish())
    };
    let more = page * u64::from(PER_PAGE) < found.total;
    layout::html(&Page {
        chrome: Chrome::new(viewer, repo.as_str(), req),
        repo: repo.to_string(),
        prev: (page > 1).then(|| link(page - 1)),
        next: more.then(|| link(page + 1)),
        filter,
        sort: sort_name,
        rows,
        total: found.total,
        page,
    })
}

fn parse_sort(s: Option<&str>) -> Result<(TagSort, &'static str), ApiError> {
    Ok(match s.unwrap_or("name") {
        "" | "name" => (TagSort::Name, "name"),
        "-name" => (TagSort::NameDesc, "-name"),
        "pushed" => (TagSort::Pushed, "pushed"),
        "-pushed" => (TagSort::PushedDesc, "-pushed"),
        _ => return Err(ApiError::new(Kind::RequestInvalid, "sort by name, -name, pushed or -pushed")),
    })
}

fn delete_link(repo: &RepositoryName, tag: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("tag", tag).finish();
    format!("{}?{q}", path::delete(repo))
}

/// One badge per trust format that has a say; one `unsigned` badge (format `none`) when none does.
fn badges(found: &[TagTrust]) -> Vec<Badge> {
    if found.is_empty() {
        return vec![Badge {
            status: Status::Unsigned.as_str(),
            format: "none",
            label: "unsigned".into(),
            signers: String::new(),
            expires: None,
            title: "No trust data signs this tag.".into(),
        }];
    }
    found.iter().map(badge).collect()
}

fn badge(t: &TagTrust) -> Badge {
    let signed_for = t.signed_digest.as_ref().map_or_else(String::new, |d| format!(" for {d}"));
    let problem = t.problem.as_deref().unwrap_or("it does not verify");
    let title = match t.status {
        Status::Signed => format!("{}: signed{signed_for}, the digest the tag points to now.", t.format),
        Status::Moved => format!("{}: signed{signed_for}. The tag moved after signing.", t.format),
        Status::Unsigned => format!("{}: the trust data does not sign this tag.", t.format),
        Status::Failed => format!("{}: the trust data does not verify: {problem}.", t.format),
        Status::Expired => format!("{}: the trust data has expired: {problem}.", t.format),
    };
    Badge {
        status: t.status.as_str(),
        format: t.format,
        label: format!("{} {}", t.format, t.status.as_str()),
        signers: t.signers.join(", "),
        expires: t.expires.map(time),
        title,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts() {
        for (q, sort) in [(None, "name"), (Some(""), "name"), (Some("-pushed"), "-pushed"), (Some("pushed"), "pushed")]
        {
            assert_eq!(parse_sort(q).map(|s| s.1).ok(), Some(sort), "{q:?}");
        }
        assert!(parse_sort(Some("size")).is_err());
    }

    #[test]
    fn badge_texts() {
        let unsigned = badges(&[]);
        assert_eq!((unsigned.len(), unsigned[0].status, unsigned[0].format), (1, "unsigned", "none"));
        let d = Digest::sha256_of(b"old");
        let moved = TagTrust {
            status: Status::Moved,
            format: "TUF",
            signers: vec!["targets".into(), "targets/releases".into()],
            signed_digest: Some(d.clone()),
            expires: Some(0),
            problem: None,
        };
        let b = badge(&moved);
        assert_eq!((b.status, b.format, b.signers.as_str()), ("moved", "TUF", "targets, targets/releases"));
        assert_eq!(b.title, format!("TUF: signed for {d}. The tag moved after signing."));
        assert_eq!(b.expires.as_deref(), Some("1970-01-01 00:00:00Z"));
    }
}
