//! A manifest's page: its config (entrypoint, environment with values hidden by default, labels, history), layers,
//! an index's children per platform, referrers by artifact type, the tags pointing here and their signed status,
//! and pull commands.
//!
//! A repository the viewer may not pull is answered as a missing one (404). Every read is bounded: the config at
//! [`config::MAX_CONFIG`] bytes (digest-checked), [`MAX_REFERRERS`] referrers, [`MAX_TAGS`] tags, [`MAX_PARENTS`]
//! indexes; a page costs the same few statements whatever the repository holds (plus the trust data's, once).

mod config;
mod describe;

use askama::Template;
use axum::http::request::Parts;
use axum::response::Response;
use wharf_format::{Digest, ParsedManifest, RepositoryName, Tag};
use wharf_storage::meta::ReferrerSummary;

use super::layout::{bytes, html, time, Chrome};
use super::{path, trust, Viewer};
use crate::error::{ApiError, Kind};
use crate::Registry;
use describe::PullCommands;

/// The most referrers a page lists (the rest are counted as "more").
pub const MAX_REFERRERS: u32 = 100;
/// The most tags pointing here a page lists, with their signed status.
pub const MAX_TAGS: u32 = 50;
/// The most indexes a page names as containing this manifest.
const MAX_PARENTS: i64 = 10;
/// The largest manifest shown as JSON on the page.
const MAX_RAW: usize = 256 << 10;

#[derive(Template)]
#[template(path = "ui/manifest.html")]
struct Page {
    chrome: Chrome,
    repo: String,
    repo_href: String,
    digest: String,
    media_type: String,
    size: String,
    /// `Image`, `Index` or `Artifact`.
    kind: &'static str,
    artifact_type: Option<String>,
    subject: Option<Link>,
    annotations: Vec<(String, String)>,
    parents: Vec<Link>,
    tags: Vec<TagRow>,
    tags_more: bool,
    config: Option<ConfigView>,
    config_problem: Option<String>,
    layers: Vec<Layer>,
    layers_total: u64,
    layers_total_h: String,
    children: Vec<Child>,
    referrers: Vec<Group>,
    referrers_more: bool,
    max_referrers: u32,
    host_known: bool,
    pulls: Vec<PullCommands>,
    delete_href: Option<String>,
    raw: Option<String>,
}

struct Link {
    text: String,
    href: String,
}

/// A tag pointing here, its signed status in each trust format, and its delete link.
struct TagRow {
    name: String,
    updated: String,
    badges: Vec<Badge>,
    delete_href: Option<String>,
}

/// One `span.trust-badge`.
struct Badge {
    status: &'static str,
    format: &'static str,
    signers: String,
    expires: Option<String>,
    note: Option<String>,
}

struct ConfigView {
    platform: Option<String>,
    created: Option<String>,
    author: Option<String>,
    entrypoint: Option<String>,
    cmd: Option<String>,
    working_dir: Option<String>,
    user: Option<String>,
    ports: Vec<String>,
    stop_signal: Option<String>,
    env: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    history: Vec<Step>,
}

struct Step {
    created: String,
    created_by: String,
    comment: String,
    empty: bool,
    /// The size of the layer the step made (steps that made one take the layers in order).
    layer_size: Option<String>,
}

struct Layer {
    media_type: String,
    digest: String,
    bytes: u64,
    size: String,
}

struct Child {
    platform: String,
    digest: String,
    href: String,
    media_type: String,
    bytes: u64,
    size: String,
}

/// Referrers of one artifact type.
struct Group {
    artifact_type: String,
    name: &'static str,
    group: &'static str,
    items: Vec<Referrer>,
}

struct Referrer {
    digest: String,
    href: String,
    size: String,
    created: String,
}

pub async fn page(
    st: &Registry,
    viewer: &Viewer,
    repo: &RepositoryName,
    digest: &Digest,
    req: &Parts,
) -> Result<Response, ApiError> {
    // A repository the viewer may not pull is as missing as one that is not there.
    let missing = || ApiError::new(Kind::ManifestUnknown, format!("{repo} has no manifest {digest}"));
    if !viewer.may_pull(repo.as_str()) {
        return Err(missing());
    }
    let record = st.meta.manifests().by_digest(repo, digest).await?.ok_or_else(missing)?;
    let parsed = ParsedManifest::parse(&record.content, Some(&record.media_type))
        .map_err(|e| ApiError::internal(format!("the stored manifest {digest} of {repo} does not parse: {e}")))?;
    let (tag_list, tags_more) = st.meta.ui().tags_of(repo, digest, MAX_TAGS).await?;
    let (found, referrers_more) = st.meta.ui().referrers(repo, digest, MAX_REFERRERS).await?;
    let parents = st.meta.manifests().parents(repo, digest, MAX_PARENTS).await?;
    let index = record.media_type.is_index() || !parsed.manifests.is_empty();
    let kind = if index {
        "Index"
    } else if parsed.config.as_ref().is_some_and(|c| config::is_image_config(&c.media_type)) {
        "Image"
    } else {
        "Artifact"
    };
    let (config, config_problem) = match &parsed.config {
        Some(c) if kind == "Image" => match config::read(st, repo, c).await? {
            config::Read::Parsed(c) => (Some(c), None),
            config::Read::Unavailable(why) => (None, Some(why)),
        },
        _ => (None, None),
    };
    let may_delete = viewer.may_delete(repo.as_str());
    let tags = signed_tags(st, repo, digest, &tag_list, may_delete).await;
    let layers: Vec<Layer> = parsed
        .layers
        .iter()
        .map(|l| Layer {
            media_type: l.media_type.to_string(),
            digest: l.digest.to_string(),
            bytes: l.size,
            size: bytes(l.size),
        })
        .collect();
    let layers_total = parsed.layers.iter().map(|l| l.size).fold(0u64, u64::saturating_add);
    let host = describe::host(req);
    let first_tag = tag_list.first().map(|(t, _)| t);
    let page = Page {
        chrome: Chrome::new(viewer, format!("{repo}@{}", short(digest)), req),
        repo: repo.to_string(),
        repo_href: path::repository(repo),
        digest: digest.to_string(),
        media_type: record.media_type.to_string(),
        size: bytes(record.content.len() as u64),
        kind,
        artifact_type: parsed.artifact_type.as_ref().filter(|_| kind == "Artifact").map(ToString::to_string),
        subject: parsed
            .subject
            .as_ref()
            .map(|s| Link { text: s.digest.to_string(), href: path::manifest(repo, &s.digest) }),
        annotations: parsed.annotations.clone().unwrap_or_default().into_iter().collect(),
        parents: parents.iter().map(|p| Link { text: p.to_string(), href: path::manifest(repo, p) }).collect(),
        tags,
        tags_more,
        config: config.map(|c| view(&c, &layers)),
        config_problem,
        layers_total,
        layers_total_h: bytes(layers_total),
        layers,
        children: children(repo, &parsed),
        referrers: groups(repo, found),
        referrers_more,
        max_referrers: MAX_REFERRERS,
        host_known: host.is_some(),
        pulls: describe::pull_commands(host.as_deref().unwrap_or("HOST"), viewer.tls, repo, digest, first_tag),
        delete_href: may_delete.then(|| delete_href(repo, "digest", &digest.to_string())),
        raw: raw(&record.content),
    };
    html(&page)
}

/// The delete confirmation's address for a tag or a digest.
pub fn delete_href(repo: &RepositoryName, key: &str, value: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new()).append_pair(key, value).finish();
    format!("{}?{query}", path::delete(repo))
}

/// `sha256:0123456789ab`: a digest short enough for a title.
fn short(d: &Digest) -> String {
    let s = d.to_string();
    let end = s.find(':').map_or(s.len(), |i| (i + 13).min(s.len()));
    s[..end].to_owned()
}

/// The tags pointing here with their signed status, verified once for the page (only if a tag points here).
async fn signed_tags(
    st: &Registry,
    repo: &RepositoryName,
    digest: &Digest,
    tags: &[(Tag, i64)],
    may_delete: bool,
) -> Vec<TagRow> {
    if tags.is_empty() {
        return Vec::new();
    }
    let repo_trust = trust::for_repository(st, repo, st.clock.now()).await;
    tags.iter()
        .map(|(t, updated)| {
            let mut badges: Vec<Badge> = repo_trust
                .tag(t.as_str(), digest)
                .into_iter()
                .map(|s| Badge {
                    status: s.status.as_str(),
                    format: s.format,
                    signers: s.signers.join(", "),
                    expires: s.expires.map(time),
                    note: match (s.status, &s.signed_digest, &s.problem) {
                        (_, _, Some(p)) => Some(p.clone()),
                        (trust::Status::Moved, Some(d), None) => {
                            Some(format!("signed for {d}: the tag moved after it was signed"))
                        }
                        _ => None,
                    },
                })
                .collect();
            if badges.is_empty() {
                badges.push(Badge {
                    status: "unsigned",
                    format: "none",
                    signers: String::new(),
                    expires: None,
                    note: None,
                });
            }
            TagRow {
                name: t.to_string(),
                updated: time(*updated),
                badges,
                delete_href: may_delete.then(|| delete_href(repo, "tag", t.as_str())),
            }
        })
        .collect()
}

/// The config as shown; history steps that made a layer take the layers' sizes in order.
fn view(c: &config::ImageConfig, layers: &[Layer]) -> ConfigView {
    let run = c.config.as_ref();
    let list = |v: Option<&Vec<String>>| v.and_then(|v| serde_json::to_string(v).ok());
    let mut sizes = layers.iter().map(|l| l.size.clone());
    let history = c
        .history
        .iter()
        .flatten()
        .map(|h| {
            let empty = h.empty_layer.unwrap_or(false);
            Step {
                created: h.created.clone().unwrap_or_default(),
                created_by: h.created_by.clone().unwrap_or_default(),
                comment: h.comment.clone().unwrap_or_default(),
                empty,
                layer_size: if empty { None } else { sizes.next() },
            }
        })
        .collect();
    ConfigView {
        platform: c.platform(),
        created: c.created.clone(),
        author: c.author.clone(),
        entrypoint: list(run.and_then(|r| r.entrypoint.as_ref())),
        cmd: list(run.and_then(|r| r.cmd.as_ref())),
        working_dir: run.and_then(|r| r.working_dir.clone()).filter(|s| !s.is_empty()),
        user: run.and_then(|r| r.user.clone()).filter(|s| !s.is_empty()),
        ports: run.and_then(|r| r.exposed_ports.as_ref()).map(|p| p.keys().cloned().collect()).unwrap_or_default(),
        stop_signal: run.and_then(|r| r.stop_signal.clone()),
        env: c.env(),
        labels: run.and_then(|r| r.labels.clone()).unwrap_or_default().into_iter().collect(),
        history,
    }
}

/// An index's children, each with its platform and a link to its page.
fn children(repo: &RepositoryName, parsed: &ParsedManifest) -> Vec<Child> {
    parsed
        .manifests
        .iter()
        .map(|m| Child {
            platform: describe::platform(m.platform.as_ref()),
            digest: m.digest.to_string(),
            href: path::manifest(repo, &m.digest),
            media_type: m.media_type.to_string(),
            bytes: m.size,
            size: bytes(m.size),
        })
        .collect()
}

/// Referrers grouped by artifact type, the groups in order of their first referrer.
fn groups(repo: &RepositoryName, found: Vec<ReferrerSummary>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for r in found {
        let artifact_type = r.artifact_type.as_ref().unwrap_or(&r.media_type).to_string();
        let item = Referrer {
            digest: r.digest.to_string(),
            href: path::manifest(repo, &r.digest),
            size: bytes(r.size),
            created: time(r.created_at),
        };
        match out.iter_mut().find(|g| g.artifact_type == artifact_type) {
            Some(g) => g.items.push(item),
            None => {
                let (name, group) = describe::artifact_kind(&artifact_type);
                out.push(Group { artifact_type, name, group, items: vec![item] });
            }
        }
    }
    out
}

/// The manifest as indented JSON, if it is small enough to show.
fn raw(content: &[u8]) -> Option<String> {
    if content.len() > MAX_RAW {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(content).ok()?;
    serde_json::to_string_pretty(&v).ok()
}
