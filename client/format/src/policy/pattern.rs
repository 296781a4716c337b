//! Repository patterns: `team/app` (exactly), `team/*` (one more component), `team/**` (any depth below `team`).
//! `*` never crosses a `/`; `**` as a whole component does. Compiled with `globset`.

use std::fmt;
use std::str::FromStr;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::name::RepositoryName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("repository pattern is empty")]
    Empty,
    #[error("repository pattern {pattern:?}: {reason}")]
    Invalid { pattern: String, reason: String },
}

/// A compiled repository pattern.
#[derive(Clone)]
pub struct Pattern {
    text: String,
    glob: GlobMatcher,
}

impl Pattern {
    pub fn matches(&self, repo: &RepositoryName) -> bool {
        self.glob.is_match(repo.as_str())
    }

    /// Whether `text` (any string: a subject, a scope) matches, with the same rules.
    pub fn matches_str(&self, text: &str) -> bool {
        self.glob.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Pattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        let invalid = |reason: String| PatternError::Invalid { pattern: s.into(), reason };
        if s.contains(['[', ']', '{', '}', '\\', '?']) {
            return Err(invalid("only `*` and `**` are special; `? [ ] { } \\` are not allowed".into()));
        }
        let glob = GlobBuilder::new(s)
            .literal_separator(true)
            .backslash_escape(false)
            .build()
            .map_err(|e| invalid(e.kind().to_string()))?;
        Ok(Pattern { text: s.into(), glob: glob.compile_matcher() })
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, r: &str) -> bool {
        p.parse::<Pattern>().unwrap().matches(&r.parse().unwrap())
    }

    #[test]
    fn components() {
        assert!(m("team/app", "team/app"));
        assert!(!m("team/app", "team/app2"));
        assert!(m("team/*", "team/app"));
        assert!(!m("team/*", "team/a/b"));
        assert!(!m("team/*", "teamx/app"));
        assert!(m("team/**", "team/a/b"));
        assert!(m("team/**", "team/a"));
        assert!(!m("team/**", "other/a"));
        assert!(m("**", "x/y/z"));
        assert!(m("team/app-*", "team/app-1"));
    }

    #[test]
    fn refused() {
        assert!("".parse::<Pattern>().is_err());
        assert!("team/[ab]".parse::<Pattern>().is_err());
        assert!("team/?".parse::<Pattern>().is_err());
    }
}
