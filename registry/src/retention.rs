//! Retention policies (pure logic): which tags of a repository a rule removes, given each tag's push time and
//! whether trust data signs it. The collector (issue 10) applies the plan; this module only decides.
//!
//! A rule applies to the repositories its pattern matches (`team/app`, `team/*`, `team/**`, `**`) and to the tags
//! its tag pattern matches (`*` any run of characters, everything else literal). Among those tags, newest first:
//! the first `keep_last` stay; of the rest, those pushed before `older_than` go, or all of them when no age is
//! given. Tags signed in trust data stay unless the rule says `include_signed`. Tags the pattern does not match
//! are never touched.

use crate::auth::scope::Pattern;

/// One retention rule, already parsed.
#[derive(Debug, Clone)]
pub struct Rule {
    pub repositories: Pattern,
    pub tags: TagPattern,
    /// The newest matching tags that always stay.
    pub keep_last: Option<usize>,
    /// Matching tags pushed more than this many seconds ago go (beyond `keep_last`).
    pub older_than_secs: Option<i64>,
    /// Untagged manifests older than this many seconds go.
    pub untagged_older_than_secs: Option<i64>,
    /// Whether tags that trust data signs may go too.
    pub include_signed: bool,
}

/// A tag as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    /// When the tag was last pushed (seconds since the epoch).
    pub pushed_at: i64,
    /// Whether a signed trust target names this tag.
    pub signed: bool,
}

/// A tag-name pattern: `*` matches any run of characters; nothing else is special.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern(String);

impl TagPattern {
    /// Tag patterns are tag characters (`[A-Za-z0-9_.-]`) and `*`, at most 128 of them.
    pub fn parse(s: &str) -> Result<TagPattern, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'*'));
        if ok {
            Ok(TagPattern(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a tag pattern (tag characters and *)"))
        }
    }

    /// Matches in O(pattern × tag) time at worst: each `*` is tried from the last place it matched, never
    /// recursively.
    pub fn matches(&self, tag: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), tag.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, ti));
                pi += 1;
            } else if pi < p.len() && p[pi] == t[ti] {
                pi += 1;
                ti += 1;
            } else if let Some((sp, st)) = star {
                // Let the last `*` swallow one more character and retry from there.
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&b| b == b'*')
    }
}

/// What a rule does to one repository's tags.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub keep: Vec<String>,
    pub remove: Vec<String>,
}

impl Rule {
    pub fn applies_to(&self, repository: &str) -> bool {
        self.repositories.matches(repository)
    }

    /// Splits `tags` into those that stay and those that go at time `now`; both lists are sorted by name.
    pub fn plan(&self, tags: &[TagInfo], now: i64) -> Plan {
        let mut matching: Vec<&TagInfo> = tags.iter().filter(|t| self.tags.matches(&t.name)).collect();
        // Newest first; equal times by name, so that a plan never depends on input order.
        matching.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then_with(|| a.name.cmp(&b.name)));
        let kept_newest = self.keep_last.unwrap_or(0);
        let cutoff = self.older_than_secs.map(|d| now.saturating_sub(d));
        let mut plan = Plan::default();
        for (i, t) in matching.iter().enumerate() {
            let beyond_keep = i >= kept_newest;
            let old_enough = cutoff.is_none_or(|c| t.pushed_at < c);
            let may_go = !t.signed || self.include_signed;
            // With neither a count nor an age, a rule removes nothing.
            let has_limit = self.keep_last.is_some() || self.older_than_secs.is_some();
            if has_limit && beyond_keep && old_enough && may_go {
                plan.remove.push(t.name.clone());
            } else {
                plan.keep.push(t.name.clone());
            }
        }
        plan.keep.extend(tags.iter().filter(|t| !self.tags.matches(&t.name)).map(|t| t.name.clone()));
        plan.keep.sort();
        plan.remove.sort();
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 100 * DAY;

    fn rule(tags: &str, keep_last: Option<usize>, older_days: Option<i64>, include_signed: bool) -> Rule {
        Rule {
            repositories: Pattern::parse("team/**").unwrap(),
            tags: TagPattern::parse(tags).unwrap(),
            keep_last,
            older_than_secs: older_days.map(|d| d * DAY),
            untagged_older_than_secs: None,
            include_signed,
        }
    }

    /// Tags pushed `age` days ago; `signed` marks those trust data signs.
    fn history() -> Vec<TagInfo> {
        let t = |name: &str, age: i64, signed: bool| TagInfo { name: name.into(), pushed_at: NOW - age * DAY, signed };
        vec![
            t("v1.0", 90, true),
            t("v1.1", 60, false),
            t("v1.2", 30, false),
            t("v2.0", 10, true),
            t("v2.1", 2, false),
            t("latest", 1, true),
            t("dev-a", 40, false),
            t("dev-b", 5, false),
        ]
    }

    fn names(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s.split_whitespace().map(String::from).collect();
        v.sort();
        v
    }

    #[test]
    fn policies_against_one_history() {
        // (rule, removed); everything else is kept.
        let table: Vec<(Rule, &str)> = vec![
            // Keep the three newest v* tags: of the rest, the signed v1.0 stays.
            (rule("v*", Some(3), None, false), "v1.1"),
            // The same, signed tags included.
            (rule("v*", Some(3), None, true), "v1.0 v1.1"),
            // Older than 20 days, any tag, signed ones stay.
            (rule("*", None, Some(20), false), "v1.1 v1.2 dev-a"),
            // Keep 2 newest and remove the rest older than 20 days.
            (rule("*", Some(2), Some(20), true), "v1.0 v1.1 v1.2 dev-a"),
            // dev-* older than 3 days.
            (rule("dev-*", None, Some(3), false), "dev-a dev-b"),
            // Keep the newest dev-*: only dev-a goes.
            (rule("dev-*", Some(1), None, false), "dev-a"),
            // No limit at all: nothing goes.
            (rule("*", None, None, true), ""),
            // A pattern nothing matches.
            (rule("release-*", Some(0), None, true), ""),
            // Keep 0 with include_signed: every matching tag goes.
            (rule("v2.*", Some(0), None, true), "v2.0 v2.1"),
        ];
        let all = history();
        for (i, (r, removed)) in table.iter().enumerate() {
            let plan = r.plan(&all, NOW);
            assert_eq!(plan.remove, names(removed), "rule {i}: {r:?}");
            let mut everything = plan.keep.clone();
            everything.extend(plan.remove.clone());
            everything.sort();
            assert_eq!(everything, names("v1.0 v1.1 v1.2 v2.0 v2.1 latest dev-a dev-b"), "rule {i} loses a tag");
        }
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let r = rule("*", Some(3), None, true);
        let mut reversed = history();
        reversed.reverse();
        assert_eq!(r.plan(&history(), NOW), r.plan(&reversed, NOW));
    }

    #[test]
    fn tag_patterns() {
        let m = |p: &str, t: &str| TagPattern::parse(p).unwrap().matches(t);
        assert!(m("*", "anything"));
        assert!(m("v*", "v1.2") && !m("v*", "1.2"));
        assert!(m("*-rc*", "1.0-rc1") && !m("*-rc*", "1.0"));
        assert!(m("a*b*c", "aXbYc") && m("a*b*c", "abbbc") && !m("a*b*c", "acb"));
        assert!(m("exact", "exact") && !m("exact", "exact1"));
        assert!(TagPattern::parse("bad/pattern").is_err() && TagPattern::parse("").is_err());
        // A hostile pattern against a long tag stays polynomial (and fast).
        let p = TagPattern::parse(&"*a".repeat(60)).unwrap();
        let t = "a".repeat(127) + "b";
        let started = std::time::Instant::now();
        assert!(!p.matches(&t));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert!(
            rule("*", None, None, false).applies_to("team/x/y") && !rule("*", None, None, false).applies_to("other/x")
        );
    }
}
