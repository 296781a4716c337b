//! `[gc]` and `[[retention]]`: the collector's schedule and grace periods, and retention rules.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::auth::scope::Pattern;
use crate::retention::{Rule, TagPattern};

/// The collector. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// Seconds between collections in the background (fractions allowed; default 3600; 0 turns it off).
    pub interval_secs: Option<f64>,
    /// A blob nothing references survives this long after its last upload, mount, HEAD or reference (default
    /// 3600): the time a client has between pushing a layer and pushing the manifest that needs it.
    pub grace_secs: Option<i64>,
    /// Seconds between reconciliations of orphans, which list the store (default 86400; 0 turns them off).
    pub reconcile_every_secs: Option<u64>,
    /// Objects no row accounts for go once this old (default 86400, at least 60).
    pub orphan_age_secs: Option<i64>,
    /// Keys a reconciliation lists per second at most (default 1000).
    pub reconcile_rate: Option<u32>,
    /// Blobs a collection deletes per second at most (default 0: as fast as the store takes them).
    pub delete_rate: Option<u32>,
}

/// One `[[retention]]` rule as written. Durations are seconds or a number with `s`, `m`, `h`, `d` or `w`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Repository pattern (`team/app`, `team/*`, `team/**`, `**`).
    pub repositories: String,
    /// Tag pattern (`*` any run of characters); default `*`.
    pub tags: Option<String>,
    pub keep_last: Option<usize>,
    pub older_than: Option<toml::Value>,
    pub untagged_older_than: Option<toml::Value>,
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
    pub(super) fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Invalid { name, reason: format!("{v:?} is not a number") })
        }
        if let Some(v) = env("WHARF_GC_INTERVAL_SECS") {
            self.interval_secs = Some(num("WHARF_GC_INTERVAL_SECS", v)?);
        }
        if let Some(v) = env("WHARF_GC_GRACE_SECS") {
            self.grace_secs = Some(num("WHARF_GC_GRACE_SECS", v)?);
        }
        if let Some(v) = env("WHARF_GC_RECONCILE_EVERY_SECS") {
            self.reconcile_every_secs = Some(num("WHARF_GC_RECONCILE_EVERY_SECS", v)?);
        }
        if let Some(v) = env("WHARF_GC_DELETE_RATE") {
            self.delete_rate = Some(num("WHARF_GC_DELETE_RATE", v)?);
        }
        if let Some(v) = env("WHARF_GC_ORPHAN_AGE_SECS") {
            self.orphan_age_secs = Some(num("WHARF_GC_ORPHAN_AGE_SECS", v)?);
        }
        Ok(())
    }

    pub(super) fn settings(self, retention: Vec<RetentionConfig>) -> Result<GcSettings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let interval = self.interval_secs.unwrap_or(3600.0);
        if !interval.is_finite() || !(0.0..=31_536_000.0).contains(&interval) {
            return Err(invalid("gc.interval_secs", format!("{interval}: between 0 and one year")));
        }
        let grace_secs = self.grace_secs.unwrap_or(3600);
        if grace_secs < 0 {
            return Err(invalid("gc.grace_secs", "may not be negative".into()));
        }
        let reconcile = self.reconcile_every_secs.unwrap_or(86_400);
        let rules = retention.into_iter().map(rule).collect::<Result<Vec<_>, String>>();
        Ok(GcSettings {
            interval: (interval > 0.0).then(|| Duration::from_secs_f64(interval)),
            grace_secs,
            reconcile_every: (reconcile > 0).then(|| Duration::from_secs(reconcile)),
            orphan_age_secs: self.orphan_age_secs.unwrap_or(86_400).max(60),
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
    let secs = |v: Option<toml::Value>| -> Result<Option<i64>, String> {
        match v {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if n >= 0 => Ok(Some(n)),
            Some(toml::Value::String(s)) => parse_duration(&s).map(Some),
            Some(other) => Err(format!("{other}: a duration is seconds or a string such as \"30d\"")),
        }
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

/// `90`, `45s`, `15m`, `12h`, `30d`, `2w`: seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration (seconds, or a number with s, m, h, d or w)");
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
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
        let bad = |t: &str| rule(toml::from_str::<RetentionConfig>(t).unwrap()).is_err();
        assert!(bad("repositories = \"team/**/x\""));
        assert!(bad("repositories = \"**\"\ntags = \"v?\""));
        assert!(bad("repositories = \"**\"\nolder_than = \"soon\""));
        assert!(bad("repositories = \"**\"\nolder_than = -5"));
        assert!(GcConfig { grace_secs: Some(-1), ..GcConfig::default() }.settings(vec![]).is_err());
        assert!(GcConfig { interval_secs: Some(f64::NAN), ..GcConfig::default() }.settings(vec![]).is_err());
        assert_eq!(
            GcConfig { interval_secs: Some(0.0), ..GcConfig::default() }.settings(vec![]).unwrap().interval,
            None
        );
    }
}
