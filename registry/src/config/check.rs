//! `[check]`: scheduled store checks (the scrub of `wharf admin check`) in the server.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secs};

/// Scheduled checks. Every field is optional; by default none run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Time between scheduled checks (`"1d"`, `"12h"`; default 0: none). One replica at a time runs one.
    /// `WHARF_CHECK_INTERVAL`.
    pub interval: Option<Secs>,
    /// Blob bytes a scheduled check reads a second at most (`"50M"`, `"1G"`; default unlimited). `WHARF_CHECK_RATE`.
    pub rate: Option<String>,
    /// Repair what is safe, as `wharf admin check --repair` does (default false). `WHARF_CHECK_REPAIR`.
    pub repair: Option<bool>,
}

/// Scheduled checks' validated settings.
#[derive(Debug, Clone, Default)]
pub struct CheckSettings {
    /// `None`: no scheduled checks.
    pub interval: Option<Duration>,
    /// Bytes a second; `None`: unlimited.
    pub rate: Option<u64>,
    pub repair: bool,
}

impl CheckConfig {
    pub(super) fn settings(self) -> Result<CheckSettings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let interval = self.interval.map_or(Duration::ZERO, Secs::as_std);
        if interval > Duration::from_secs(31_536_000) {
            return Err(invalid("check.interval", format!("{interval:?}: between 0 and one year")));
        }
        let rate = self.rate.map(|r| crate::check::parse_rate(&r)).transpose().map_err(|e| invalid("check.rate", e))?;
        Ok(CheckSettings {
            interval: (!interval.is_zero()).then_some(interval),
            rate,
            repair: self.repair.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let off = CheckConfig::default().settings().unwrap();
        assert_eq!((off.interval, off.rate, off.repair), (None, None, false));
        let on: CheckConfig = toml::from_str("interval = \"12h\"\nrate = \"50M\"\nrepair = true").unwrap();
        let on = on.settings().unwrap();
        assert_eq!((on.interval, on.rate, on.repair), (Some(Duration::from_secs(43_200)), Some(50 << 20), true));
        let bad: CheckConfig = toml::from_str("rate = \"fast\"").unwrap();
        assert!(matches!(bad.settings(), Err(ConfigError::Invalid { name: "check.rate", .. })));
    }
}
