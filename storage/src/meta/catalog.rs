//! The catalog: repository names in byte order, read as range queries over the sorted index, so that a caller who
//! may see a few repositories costs a few rows, however many others exist; and every name, for walks over all
//! repositories (retention).

use sqlx::Row;
use wharf_format::RepositoryName;

use super::{page, parse, Metadata};
use crate::Result;

/// A range of repository names: one name, the names that start with a prefix ending in `/`, or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRange(Range);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Range {
    All,
    Exact(RepositoryName),
    /// ASCII, ending in `/`; its upper bound is the same text with `0` for the final `/`.
    Prefix(String),
}

impl NameRange {
    pub fn all() -> NameRange {
        NameRange(Range::All)
    }

    pub fn exact(name: RepositoryName) -> NameRange {
        NameRange(Range::Exact(name))
    }

    /// The names under `prefix` (`team/`); `None` unless it is non-empty ASCII ending in `/`.
    pub fn prefix(prefix: &str) -> Option<NameRange> {
        (prefix.len() > 1 && prefix.is_ascii() && prefix.ends_with('/'))
            .then(|| NameRange(Range::Prefix(prefix.to_owned())))
    }

    /// The lowest name the range can hold.
    fn start(&self) -> &str {
        match &self.0 {
            Range::All => "",
            Range::Exact(n) => n.as_str(),
            Range::Prefix(p) => p,
        }
    }

    /// The range as bounds on names for SQL: the lowest name (inclusive) and the end (exclusive, `None`:
    /// unbounded). One name's end is the name followed by `\u{1}`, which sorts right after it (names are
    /// printable ASCII, so nothing sorts between them).
    pub(crate) fn bounds(&self) -> (String, Option<String>) {
        match &self.0 {
            Range::All => (String::new(), None),
            Range::Exact(n) => (n.to_string(), Some(format!("{n}\u{1}"))),
            Range::Prefix(p) => (p.clone(), Some(format!("{}0", &p[..p.len() - 1]))),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        match &self.0 {
            Range::All => true,
            Range::Exact(n) => n.as_str() == name,
            Range::Prefix(p) => name.starts_with(p.as_str()),
        }
    }

    fn covers(&self, other: &NameRange) -> bool {
        match (&self.0, &other.0) {
            (Range::All, _) => true,
            (_, Range::All) => false,
            (Range::Exact(a), Range::Exact(b)) => a == b,
            (Range::Exact(_), Range::Prefix(_)) => false,
            (Range::Prefix(p), _) => other.start().starts_with(p.as_str()),
        }
    }

    /// The union of `ranges` as disjoint ranges in name order: every name of one range sorts before every name of
    /// the next. (Two prefixes are nested or disjoint, and a name is inside a prefix or outside it, so sorting by
    /// the lowest name and dropping what the previous range covers is enough.)
    pub fn union(mut ranges: Vec<NameRange>) -> Vec<NameRange> {
        if ranges.iter().any(|r| r.0 == Range::All) {
            return vec![NameRange::all()];
        }
        ranges.sort_by(|a, b| a.start().as_bytes().cmp(b.start().as_bytes()));
        let mut out: Vec<NameRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if !out.last().is_some_and(|last| last.covers(&r)) {
                out.push(r);
            }
        }
        out
    }
}

/// Repository names: [`Metadata::catalog`].
#[derive(Clone, Copy, Debug)]
pub struct Catalog<'a>(pub(super) &'a Metadata);

impl Catalog<'_> {
    /// Repository names in `range` after `last`, in byte order, at most `limit` (and whether more follow in the
    /// range). Only rows inside the range are read.
    pub async fn list(&self, range: &NameRange, last: Option<&str>, limit: u32) -> Result<(Vec<RepositoryName>, bool)> {
        let (last, limit_plus) = (last.unwrap_or(""), i64::from(limit) + 1);
        let rows = match &range.0 {
            Range::All => {
                sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                    .bind(last)
                    .bind(limit_plus)
                    .fetch_all(self.0.reader())
                    .await?
            }
            Range::Exact(name) => {
                sqlx::query("SELECT name FROM repositories WHERE name = $1 AND name > $2 LIMIT $3")
                    .bind(name.as_str())
                    .bind(last)
                    .bind(limit_plus)
                    .fetch_all(self.0.reader())
                    .await?
            }
            Range::Prefix(prefix) => {
                // Names are compared in byte order (SQLite's BINARY, PostgreSQL's "C" collation on the column), so
                // the names starting with `team/` are exactly those in [`team/`, `team0`).
                let end = format!("{}0", &prefix[..prefix.len() - 1]);
                sqlx::query(
                    "SELECT name FROM repositories WHERE name >= $1 AND name < $2 AND name > $3 ORDER BY name LIMIT $4",
                )
                .bind(prefix.as_str())
                .bind(end)
                .bind(last)
                .bind(limit_plus)
                .fetch_all(self.0.reader())
                .await?
            }
        };
        page(rows, limit)
    }

    /// Every repository's name, in byte order.
    pub async fn all(&self) -> Result<Vec<RepositoryName>> {
        let rows = sqlx::query("SELECT name FROM repositories ORDER BY name").fetch_all(self.0.reader()).await?;
        rows.iter().map(|r| parse(r.try_get::<String, _>(0)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> NameRange {
        NameRange::exact(s.parse().unwrap())
    }

    fn prefix(s: &str) -> NameRange {
        NameRange::prefix(s).unwrap()
    }

    #[test]
    fn union_is_disjoint_and_in_order() {
        let check = |input: Vec<NameRange>, expected: Vec<NameRange>| assert_eq!(NameRange::union(input), expected);
        check(vec![], vec![]);
        check(vec![exact("b"), exact("a"), exact("b")], vec![exact("a"), exact("b")]);
        check(vec![exact("team/app"), prefix("team/"), prefix("team/app/")], vec![prefix("team/")]);
        check(
            vec![prefix("team/app/"), exact("team/app"), exact("team-x")],
            vec![exact("team-x"), exact("team/app"), prefix("team/app/")],
        );
        check(vec![exact("a"), NameRange::all(), prefix("b/")], vec![NameRange::all()]);
        check(vec![prefix("pub/"), exact("pub"), exact("pub0")], vec![exact("pub"), prefix("pub/"), exact("pub0")]);
        assert!(NameRange::prefix("team").is_none());
        assert!(NameRange::prefix("/").is_none());
        assert!(prefix("team/").contains("team/a/b") && !prefix("team/").contains("team0"));
    }
}
