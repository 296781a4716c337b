//! `docker search`'s query: repository names that contain a term, inside one range of the name index.

use sqlx::Row;
use wharf_format::RepositoryName;

use super::Ui;
use crate::meta::{parse, NameRange};
use crate::Result;

impl Ui<'_> {
    /// Names in `range` after `last` that contain `term` (lowercase; `%`, `_` and `\` match themselves), in byte
    /// order, of at most `limit` rows read; and the name to continue after, `None` once the range is exhausted.
    /// Only rows inside the range are read; the substring test runs on each of them (linear, bounded by the
    /// range).
    pub async fn search_names(
        &self,
        range: &NameRange,
        term: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RepositoryName>, Option<String>)> {
        let pattern = format!("%{}%", like_escape(term));
        let (low, high) = range.bounds();
        let last = last.unwrap_or("");
        let limit_plus = i64::from(limit) + 1;
        let rows = match high {
            None => {
                sqlx::query(
                    "SELECT name FROM repositories WHERE name >= $1 AND name > $2 AND name LIKE $3 ESCAPE '\\' \
                     ORDER BY name LIMIT $4",
                )
                .bind(low)
                .bind(last)
                .bind(pattern)
                .bind(limit_plus)
                .fetch_all(self.0.reader())
                .await?
            }
            Some(high) => {
                sqlx::query(
                    "SELECT name FROM repositories WHERE name >= $1 AND name < $2 AND name > $3 \
                     AND name LIKE $4 ESCAPE '\\' ORDER BY name LIMIT $5",
                )
                .bind(low)
                .bind(high)
                .bind(last)
                .bind(pattern)
                .bind(limit_plus)
                .fetch_all(self.0.reader())
                .await?
            }
        };
        let more = rows.len() > limit as usize;
        let names = rows
            .iter()
            .take(limit as usize)
            .map(|r| parse::<RepositoryName>(r.try_get::<String, _>(0)?))
            .collect::<Result<Vec<_>>>()?;
        let next = if more { names.last().map(|n| n.as_str().to_owned()) } else { None };
        Ok((names.into_iter().filter(|n| range.contains(n.as_str())).collect(), next))
    }
}

/// `term` for a `LIKE ... ESCAPE '\'` pattern: its wildcards and the escape itself match only themselves.
fn like_escape(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards_are_escaped() {
        let check = |term: &str, want: &str| assert_eq!(super::like_escape(term), want, "{term}");
        check("app", "app");
        check("my_app", "my\\_app");
        check("100%", "100\\%");
        check("a\\b", "a\\\\b");
    }
}
