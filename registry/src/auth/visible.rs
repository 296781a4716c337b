//! What the catalog may show a caller, as ranges of the sorted repository index: each pull grant's pattern becomes
//! the range its literal head spans (`team/app`: one name; `team/*` and `team/**`: the names under `team/`; `**`
//! or `*/app`: all), so the catalog reads the rows in those ranges only and checks each with [`Caller::may_pull`].

use wharf_format::RepositoryName;
use wharf_storage::NameRange;

use super::policy::Principal;
use super::scope::{Actions, Pattern, Resource};
use super::Caller;

impl Caller {
    /// Disjoint ranges, in name order, that hold every repository the caller may pull (and perhaps others, which
    /// `may_pull` then hides).
    pub fn pull_ranges(&self) -> Vec<NameRange> {
        let ranges = match &self.principal {
            // An external issuer's token grants exactly the names it claims.
            Principal::External(_) => self
                .claims
                .iter()
                .flat_map(|c| c.iter())
                .filter(|c| c.actions.contains(Actions::PULL))
                .filter_map(|c| match &c.resource {
                    Resource::Repository(n) => n.parse::<RepositoryName>().ok().map(NameRange::exact),
                    Resource::Catalog => None,
                })
                .collect(),
            who => self.policy.pull_patterns(who).into_iter().filter_map(range_of).collect(),
        };
        NameRange::union(ranges)
    }
}

/// The range of names `pattern` can match; `None` if it can match no repository name.
fn range_of(pattern: &Pattern) -> Option<NameRange> {
    let mut head = String::new();
    for part in pattern.as_str().split('/') {
        if part == "*" || part == "**" {
            return Some(NameRange::prefix(&head).unwrap_or_else(NameRange::all));
        }
        head.push_str(part);
        head.push('/');
    }
    pattern.as_str().parse::<RepositoryName>().ok().map(NameRange::exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_ranges() {
        let check = |pattern: &str, expected: Option<NameRange>| {
            assert_eq!(range_of(&Pattern::parse(pattern).unwrap()), expected, "{pattern}");
        };
        check("team/app", Some(NameRange::exact("team/app".parse().unwrap())));
        check("team/*", NameRange::prefix("team/"));
        check("team/**", NameRange::prefix("team/"));
        check("team/*/x", NameRange::prefix("team/"));
        check("a/b/**", NameRange::prefix("a/b/"));
        check("**", Some(NameRange::all()));
        check("*/app", Some(NameRange::all()));
    }
}
