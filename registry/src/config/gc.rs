//! `[gc]` and `[[retention]]`: the collector's schedule and grace periods, and retention rules.

use std::time::Duration;

use serde::Deserialize;

use super::settings::whole_secs;
use super::{ConfigError, Secs};
use crate::auth::scope::Pattern;
use crate::retention::{Rule, TagPattern};

/// The collector. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// Time between collections in the background (fractions of a second allowed; default 1 hour; 0 turns it
    /// off). `WHARF_GC_INTERVAL_SECS`.
    pub interval_secs: Option<Secs>,
    /// A blob nothing references survives this long after its last upload, mount, HEAD or reference (default
    /// 1 hour): the time a client has between pushing a layer and pushing the manifest that needs it.
    /// `WHARF_GC_GRACE_SECS`.
    pub grace_secs: Option<Secs>,
    /// Time between reconciliations of orphans, which list the store (default 1 day; 0 turns them off).
    /// `WHARF_GC_RECONCILE_EVERY_SECS`.
    pub reconcile_every_secs: Option<Secs>,
    /// Objects no row accounts for go once this old (default 1 day, at least 60 s). `WHARF_GC_ORPHAN_AGE_SECS`.
    pub orphan_age_secs: Option<Secs>,
    /// Keys a reconciliation lists per second at most (default 1000). `WHARF_GC_RECONCILE_RATE`.
    pub reconcile_rate: Option<u32>,
    /// Blobs a collection deletes per second at most (default 0: as fast as the store takes them).
    /// `WHARF_GC_DELETE_RATE`.
    pub delete_rate: Option<u32>,
}

/// One `[[retention]]` rule as written (no variables: rules live in the file). Durations are seconds or a number
/// with a unit (`"30d"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Repository pattern (`team/app`, `team/*`, `team/**`, `**`).
    pub repositories: String,
    /// Tag pattern (`*` any run of characters); default `*`.
    pub tags: Option<String>,
    pub keep_last: Option<usize>,
    pub older_than: Option<Secs>,
    pub untagged_older_than: Option<Secs>,
    #[serde(default)]
    pub include_signed: bool,
}

/// The collector's validated settings.
#[derive(Debug, Clone)]
pub struct GcSettings {
    /// `None`: no background collection.
    pub interval: Option<Duration>,
    pub grace_secs: i64,
    pub reconcile_every: Option<Duration>,
    pub orphan_age_secs: i64,
    pub reconcile_rate: u32,
    pub delete_rate: u32,
    pub rules: Vec<Rule>,
}

impl GcConfig {
    pub(super) fn settings(self, retention: Vec<RetentionConfig>) -> Result<GcSettings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let interval = self.interval_secs.map_or(Duration::from_secs(3600), Secs::as_std);
        if interval > Duration::from_secs(31_536_000) {
            return Err(invalid("gc.interval_secs", format!("{interval:?}: between 0 and one year")));
        }
        let reconcile = self.reconcile_every_secs.map_or(Duration::from_secs(86_400), Secs::as_std);
        let rules = retention.into_iter().map(rule).collect::<Result<Vec<_>, String>>();
        Ok(GcSettings {
            interval: (!interval.is_zero()).then_some(interval),
            grace_secs: whole_secs("gc.grace_secs", self.grace_secs, 3600)?,
            reconcile_every: (!reconcile.is_zero()).then_some(reconcile),
            orphan_age_secs: whole_secs("gc.orphan_age_secs", self.orphan_age_secs, 86_400)?.max(60),
            reconcile_rate: self.reconcile_rate.unwrap_or(1000).max(1),
            delete_rate: self.delete_rate.unwrap_or(0),
            rules: rules.map_err(|e| invalid("retention", e))?,
        })
    }
}

impl Default for GcSettings {
    fn default() -> Self {
        GcConfig::default().settings(Vec::new()).expect("the defaults are valid")
    }
}

/// A rule as written, checked.
pub fn rule(r: RetentionConfig) -> Result<Rule, String> {
    let secs = |v: Option<Secs>| -> Result<Option<i64>, String> {
        v.map(|d| d.whole_secs().ok_or_else(|| format!("{d}: give whole seconds"))).transpose()
    };
    Ok(Rule {
        repositories: Pattern::parse(&r.repositories)?,
        tags: TagPattern::parse(r.tags.as_deref().unwrap_or("*"))?,
        keep_last: r.keep_last,
        older_than_secs: secs(r.older_than)?,
        untagged_older_than_secs: secs(r.untagged_older_than)?,
        include_signed: r.include_signed,
    })
}

/// `90`, `45s`, `15m`, `12h`, `30d`, `2w`: whole seconds (the configuration's [`Secs`], for flags).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let d: Secs = s.parse().map_err(|e: super::duration::DurationError| e.to_string())?;
    d.whole_secs().ok_or_else(|| format!("{s:?}: give whole seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [("90", Some(90)), ("45s", Some(45)), ("15m", Some(900)), ("12h", Some(43_200))] {
            assert_eq!(parse_duration(text).ok(), secs, "{text}");
        }
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        for bad in ["", "d", "3x", "-1d", "1.5h", "99999999999999999999w", "1 d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_parse_and_refuse() {
        let c: Vec<RetentionConfig> = toml::from_str::<toml::Table>(
            "[[retention]]\nrepositories = \"team/**\"\ntags = \"v*\"\nkeep_last = 3\nolder_than = \"30d\"\n\
             untagged_older_than = 3600\n",
        )
        .unwrap()["retention"]
            .clone()
            .try_into()
            .unwrap();
        let s = GcConfig::default().settings(c).unwrap();
        let r = &s.rules[0];
        assert_eq!(
            (r.keep_last, r.older_than_secs, r.untagged_older_than_secs),
            (Some(3), Some(2_592_000), Some(3600))
        );
        assert!(!r.include_signed);
        let bad = |t: &str| toml::from_str::<RetentionConfig>(t).map_err(|e| e.to_string()).and_then(rule).is_err();
        assert!(bad("repositories = \"team/**/x\""));
        assert!(bad("repositories = \"**\"\ntags = \"v?\""));
        assert!(bad("repositories = \"**\"\nolder_than = \"soon\""));
        assert!(bad("repositories = \"**\"\nolder_than = -5"));
        assert!(bad("repositories = \"**\"\nolder_than = 0.5"), "whole seconds");
        let gc = |t: &str| {
            toml::from_str::<GcConfig>(t).map_err(|e| e.to_string())?.settings(vec![]).map_err(|e| e.to_string())
        };
        assert!(gc("grace_secs = -1").is_err());
        assert!(gc("interval_secs = nan").is_err());
        assert!(gc("interval_secs = \"53w\"").is_err(), "more than a year");
        assert_eq!(gc("interval_secs = 0").unwrap().interval, None);
        assert_eq!(gc("interval_secs = 0.5").unwrap().interval, Some(Duration::from_millis(500)));
        assert_eq!(gc("grace_secs = \"2h\"").unwrap().grace_secs, 7200);
    }
}
