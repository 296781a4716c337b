//! What the web interface reads: repository and tag pages, each a bounded number of statements whatever the page
//! holds (the registry's `ui` module renders them).
//!
//! A repository page is a scan of names ([`Ui::names`], filtered by a search term in SQL) and then one statement
//! per column over the page's names ([`Ui::summaries`]); a tag page is one count, one page of tags joined with
//! their manifests ([`Ui::tags`]) and one statement for the children of the page's indexes ([`Ui::children`]).
//! Lists of names or digests are bound as parameters (`IN ($2, $3, ...)`), at most [`MAX_KEYS`] at once.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;
use wharf_format::notary::Gun;
use wharf_format::{Digest, MediaType, RepositoryName, Tag};

use super::{parse, Metadata, NameRange};
use crate::{Error, Result, UnixTime};

/// The most names or digests one statement takes (a page is 50).
pub const MAX_KEYS: usize = 200;

/// One repository's line in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    pub name: RepositoryName,
    /// The sizes of the blobs linked into the repository plus the bytes of its manifests (each counted once,
    /// however many manifests share it).
    pub size: u64,
    pub tags: u64,
    /// The newest tag update or manifest push.
    pub pushed: Option<UnixTime>,
    /// Whether it has TUF 1.0 data (in its current generation).
    pub tuf: bool,
    /// Whether a Notary v1 collection (with data in its current generation) names it.
    pub notary_v1: bool,
}

/// The order of a tag page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSort {
    Name,
    NameDesc,
    Pushed,
    PushedDesc,
}

impl TagSort {
    fn order_by(self) -> &'static str {
        match self {
            TagSort::Name => "t.tag",
            TagSort::NameDesc => "t.tag DESC",
            TagSort::Pushed => "t.updated_at, t.tag",
            TagSort::PushedDesc => "t.updated_at DESC, t.tag DESC",
        }
    }
}

/// What a tag page asks: a substring of the tag (case-insensitive), an order, and a page by offset.
#[derive(Debug, Clone)]
pub struct TagQuery<'a> {
    pub filter: &'a str,
    pub sort: TagSort,
    pub offset: u64,
    pub limit: u32,
}

/// A tag with the manifest it points at.
#[derive(Debug, Clone)]
pub struct TagLine {
    pub tag: Tag,
    pub digest: Digest,
    pub media_type: MediaType,
    pub content: Vec<u8>,
    pub updated_at: UnixTime,
}

/// A page of tags, and how many tags the filter matches in all (for the pager).
#[derive(Debug, Clone)]
pub struct TagPage {
    pub tags: Vec<TagLine>,
    pub total: u64,
}

/// A child manifest of an index.
#[derive(Debug, Clone)]
pub struct Child {
    pub parent: Digest,
    pub digest: Digest,
    pub media_type: MediaType,
    pub content: Vec<u8>,
}

/// A blob linked into a repository: its size and where it lies (`None`: its content address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedBlob {
    pub digest: Digest,
    pub size: u64,
    pub location: Option<String>,
}

// The administration pages' reads and `docker search`'s name query (the `ui-admin` work), apart from the lists.
mod admin;

pub use admin::{AccountSummary, AuditPage};

/// The web interface's reads: [`Metadata::ui`].
#[derive(Clone, Copy, Debug)]
pub struct Ui<'a>(pub(super) &'a Metadata);

impl Ui<'_> {
    /// The metadata this view reads from.
    pub fn meta(&self) -> &Metadata {
        self.0
    }

    /// Repository names in `range` after `last` containing `term` (case-insensitive substring), in byte order, at
    /// most `limit` (and whether more follow in the range). One statement.
    pub async fn names(
        &self,
        range: &NameRange,
        term: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RepositoryName>, bool)> {
        let (low, high) = range.bounds();
        let last = last.unwrap_or("");
        // Names are compared in byte order (SQLite's BINARY, PostgreSQL's "C" collation on the column).
        let rows = sqlx::query(
            "SELECT name FROM repositories WHERE name >= $1 AND ($2 = '' OR name < $2) AND name > $3 \
             AND LOWER(name) LIKE $4 ESCAPE '\\' ORDER BY name LIMIT $5",
        )
        .bind(low)
        .bind(high.unwrap_or_default())
        .bind(last)
        .bind(contains(term))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.0.reader())
        .await?;
        super::page(rows, limit)
    }

    /// The summaries of `names` (in their order; a name not stored is left out): five statements, whatever the
    /// number of names (at most [`MAX_KEYS`]).
    pub async fn summaries(&self, names: &[RepositoryName]) -> Result<Vec<RepoSummary>> {
        let names = &names[..names.len().min(MAX_KEYS)];
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let list = placeholders(1, keys.len());
        let mut out: HashMap<String, RepoSummary> = HashMap::new();
        let blobs = format!(
            "SELECT rb.repository, CAST(SUM(b.size) AS BIGINT) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repository IN ({list}) GROUP BY rb.repository"
        );
        for r in self.rows(&blobs, &keys).await? {
            let name: String = r.try_get(0)?;
            let size = r.try_get::<Option<i64>, _>(1)?.unwrap_or(0).max(0) as u64;
            out.insert(name.clone(), blank(parse(name)?, size));
        }
        let manifests = format!(
            "SELECT repository, CAST(SUM(LENGTH(content)) AS BIGINT), MAX(created_at) FROM manifests WHERE repository IN ({list}) \
             GROUP BY repository"
        );
        for r in self.rows(&manifests, &keys).await? {
            let name: String = r.try_get(0)?;
            let bytes = r.try_get::<Option<i64>, _>(1)?.unwrap_or(0).max(0) as u64;
            let created: Option<i64> = r.try_get(2)?;
            let s = entry(&mut out, name)?;
            s.size += bytes;
            s.pushed = s.pushed.max(created);
        }
        let tags = format!(
            "SELECT repository, COUNT(*), MAX(updated_at) FROM tags WHERE repository IN ({list}) GROUP BY repository"
        );
        for r in self.rows(&tags, &keys).await? {
            let name: String = r.try_get(0)?;
            let (count, updated): (i64, Option<i64>) = (r.try_get(1)?, r.try_get(2)?);
            let s = entry(&mut out, name)?;
            s.tags = count.max(0) as u64;
            s.pushed = s.pushed.max(updated);
        }
        let tuf = format!(
            "SELECT r.repository FROM trust_repositories r WHERE r.repository IN ({list}) AND EXISTS \
             (SELECT 1 FROM trust_metadata m WHERE m.repository = r.repository AND m.generation = r.generation)"
        );
        for r in self.rows(&tuf, &keys).await? {
            entry(&mut out, r.try_get(0)?)?.tuf = true;
        }
        // A collection's GUN is the repository's name, or a host and then the name (`Gun::repository` decides).
        let mut guns = keys.clone();
        guns.extend(keys.iter().map(|k| format!("%/{}", escape(k))));
        let likes: Vec<String> =
            (0..keys.len()).map(|i| format!("c.gun LIKE ${} ESCAPE '\\'", keys.len() + i + 1)).collect();
        let notary = format!(
            "SELECT c.gun FROM notary_collections c WHERE (c.gun IN ({list}) OR {}) AND EXISTS \
             (SELECT 1 FROM notary_metadata m WHERE m.gun = c.gun AND m.generation = c.generation)",
            likes.join(" OR ")
        );
        for r in self.rows(&notary, &guns).await? {
            let text: String = r.try_get(0)?;
            let gun: Gun = text.parse().map_err(|_| Error::Corrupt(format!("stored GUN {text:?} is not a GUN")))?;
            if let Some(repo) = gun.repository().filter(|r| keys.iter().any(|k| k == r.as_str())) {
                entry(&mut out, repo.to_string())?.notary_v1 = true;
            }
        }
        Ok(names.iter().filter_map(|n| out.remove(n.as_str())).collect())
    }

    /// Whether `repo` is stored.
    pub async fn exists(&self, repo: &RepositoryName) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.is_some())
    }

    /// A page of `repo`'s tags with their manifests, and the number matching the filter: two statements.
    pub async fn tags(&self, repo: &RepositoryName, q: &TagQuery<'_>) -> Result<TagPage> {
        let pattern = contains(q.filter);
        let total: i64 =
            sqlx::query("SELECT COUNT(*) FROM tags t WHERE t.repository = $1 AND LOWER(t.tag) LIKE $2 ESCAPE '\\'")
                .bind(repo.as_str())
                .bind(&pattern)
                .fetch_one(self.0.reader())
                .await?
                .try_get(0)?;
        let sql = format!(
            "SELECT t.tag, t.digest, t.updated_at, m.media_type, m.content FROM tags t JOIN manifests m \
             ON m.repository = t.repository AND m.digest = t.digest \
             WHERE t.repository = $1 AND LOWER(t.tag) LIKE $2 ESCAPE '\\' ORDER BY {} LIMIT $3 OFFSET $4",
            q.sort.order_by()
        );
        let rows = sqlx::query(&sql)
            .bind(repo.as_str())
            .bind(&pattern)
            .bind(i64::from(q.limit))
            .bind(i64::try_from(q.offset).unwrap_or(i64::MAX))
            .fetch_all(self.0.reader())
            .await?;
        let tags = rows
            .iter()
            .map(|r| {
                Ok(TagLine {
                    tag: parse(r.try_get(0)?)?,
                    digest: parse(r.try_get(1)?)?,
                    updated_at: r.try_get(2)?,
                    media_type: parse(r.try_get(3)?)?,
                    content: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TagPage { tags, total: total.max(0) as u64 })
    }

    /// The child manifests of `parents` (indexes of `repo`), stored ones only: one statement.
    pub async fn children(&self, repo: &RepositoryName, parents: &[Digest]) -> Result<Vec<Child>> {
        let parents = &parents[..parents.len().min(MAX_KEYS)];
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = vec![repo.to_string()];
        keys.extend(parents.iter().map(|d| d.to_string()));
        let sql = format!(
            "SELECT r.manifest, m.digest, m.media_type, m.content FROM manifest_references r JOIN manifests m \
             ON m.repository = r.repository AND m.digest = r.digest \
             WHERE r.repository = $1 AND r.kind = 'manifest' AND r.manifest IN ({})",
            placeholders(2, parents.len())
        );
        self.rows(&sql, &keys)
            .await?
            .iter()
            .map(|r| {
                Ok(Child {
                    parent: parse(r.try_get(0)?)?,
                    digest: parse(r.try_get(1)?)?,
                    media_type: parse(r.try_get(2)?)?,
                    content: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The blobs among `digests` linked into `repo`, with their sizes and locations: one statement.
    pub async fn blobs(&self, repo: &RepositoryName, digests: &[Digest]) -> Result<Vec<LinkedBlob>> {
        let digests = &digests[..digests.len().min(MAX_KEYS)];
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = vec![repo.to_string()];
        keys.extend(digests.iter().map(|d| d.to_string()));
        let sql = format!(
            "SELECT b.digest, b.size, b.location FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repository = $1 AND rb.digest IN ({})",
            placeholders(2, digests.len())
        );
        self.rows(&sql, &keys)
            .await?
            .iter()
            .map(|r| {
                Ok(LinkedBlob {
                    digest: parse(r.try_get(0)?)?,
                    size: r.try_get::<i64, _>(1)?.max(0) as u64,
                    location: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn rows(&self, sql: &str, binds: &[String]) -> Result<Vec<AnyRow>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b.as_str());
        }
        Ok(q.fetch_all(self.0.reader()).await?)
    }
}

fn blank(name: RepositoryName, size: u64) -> RepoSummary {
    RepoSummary { name, size, tags: 0, pushed: None, tuf: false, notary_v1: false }
}

fn entry(out: &mut HashMap<String, RepoSummary>, name: String) -> Result<&mut RepoSummary> {
    if !out.contains_key(&name) {
        let parsed = parse(name.clone())?;
        out.insert(name.clone(), blank(parsed, 0));
    }
    out.get_mut(&name).ok_or_else(|| Error::Corrupt("a summary just made is missing".into()))
}

/// `$first, $first+1, ...`: `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `LIKE`'s wildcards and its escape character, escaped (with `ESCAPE '\'`).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The `LIKE` pattern (against `LOWER(column)`) of a case-insensitive substring.
fn contains(term: &str) -> String {
    format!("%{}%", escape(&term.to_lowercase()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns() {
        let check = |term: &str, expected: &str| assert_eq!(super::contains(term), expected);
        check("", "%%");
        check("App", "%app%");
        check("a_b%c\\", "%a\\_b\\%c\\\\%");
        assert_eq!(super::placeholders(2, 3), "$2, $3, $4");
    }
}
