//! The one duration type of the configuration: a bare number in the unit its key names, or a string with a unit.
//!
//! `_secs` keys read a bare number as seconds (fractions allowed, as `gc.interval_secs = 0.5`), the one `_ms` key
//! (`auth.throttle_base_ms`) as milliseconds, keys without a suffix (`older_than`) as seconds. Any of them also takes
//! a whole number with a unit: `"500ms"`, `"90s"`, `"15m"`, `"12h"`, `"30d"`, `"2w"`. The same text works in the
//! TOML file and in `WHARF_*` variables, and keys keep their names, so files written before this type still mean
//! what they meant.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A duration read from the configuration. `UNIT_MS` is the length of one unit of a bare number in milliseconds:
/// 1000 for `_secs` keys ([`Secs`]), 1 for `_ms` keys ([`Millis`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration<const UNIT_MS: u64 = 1000>(std::time::Duration);

/// A duration whose bare numbers are seconds.
pub type Secs = Duration<1000>;
/// A duration whose bare numbers are milliseconds.
pub type Millis = Duration<1>;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration (a number, or a whole number with ms, s, m, h, d or w, such as \"30d\")")]
pub struct DurationError {
    text: String,
}

impl<const UNIT_MS: u64> Duration<UNIT_MS> {
    pub fn from_std(d: std::time::Duration) -> Self {
        Duration(d)
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whole seconds, for settings that count seconds; `None` when there is a fraction of one or it does not fit.
    pub fn whole_secs(self) -> Option<i64> {
        if self.0.subsec_nanos() != 0 {
            return None;
        }
        i64::try_from(self.0.as_secs()).ok()
    }

    fn from_bare(n: f64) -> Option<Self> {
        let secs = n * UNIT_MS as f64 / 1000.0;
        (n.is_finite() && n >= 0.0).then(|| std::time::Duration::try_from_secs_f64(secs).ok()).flatten().map(Duration)
    }
}

impl<const UNIT_MS: u64> FromStr for Duration<UNIT_MS> {
    type Err = DurationError;

    /// `90` (a bare number, in the key's unit; `1.5` too), or a whole number with a unit: `500ms`, `45s`, `15m`,
    /// `12h`, `30d`, `2w`.
    fn from_str(text: &str) -> Result<Self, DurationError> {
        let bad = || DurationError { text: text.to_owned() };
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad());
        }
        if unit.is_empty() {
            return Self::from_bare(number.parse().map_err(|_| bad())?).ok_or_else(bad);
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        n.checked_mul(unit_ms).map(|ms| Duration(std::time::Duration::from_millis(ms))).ok_or_else(bad)
    }
}

/// Prints the shortest exact form with a unit (`30d`, `90s`, `1500ms`), which reads back as the same duration
/// under any key; `0`; or, below a millisecond, a bare number in the type's own unit.
impl<const UNIT_MS: u64> fmt::Display for Duration<UNIT_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 && self.0.is_zero() {
            return f.write_str("0");
        }
        if !self.0.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{}", self.0.as_nanos() as f64 / (UNIT_MS as f64 * 1e6));
        }
        let units = [(604_800_000, "w"), (86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
        let (n, unit) =
            units.iter().find(|(u, _)| ms.is_multiple_of(*u)).map_or((ms, "ms"), |(u, name)| (ms / u, *name));
        write!(f, "{n}{unit}")
    }
}

impl<'de, const UNIT_MS: u64> Deserialize<'de> for Duration<UNIT_MS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const U: u64>;
        impl<const U: u64> Visitor<'_> for V<U> {
            type Value = Duration<U>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: a number, or a string such as \"30d\" (ms, s, m, h, d, w)")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                n.checked_mul(U)
                    .map(|ms| Duration(std::time::Duration::from_millis(ms)))
                    .ok_or_else(|| E::custom(format!("{n}: too long a duration")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                let n = u64::try_from(n).map_err(|_| E::custom(format!("{n}: a duration may not be negative")))?;
                self.visit_u64(n)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                Duration::from_bare(n).ok_or_else(|| E::custom(format!("{n}: not a duration (negative or too long)")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V::<UNIT_MS>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<f64> {
        text.parse::<Secs>().ok().map(|d| d.as_std().as_secs_f64())
    }

    #[test]
    fn texts() {
        let rows = [
            ("90", Some(90.0)),
            ("0.5", Some(0.5)),
            ("45s", Some(45.0)),
            ("1500ms", Some(1.5)),
            ("15m", Some(900.0)),
            ("12h", Some(43_200.0)),
            ("30d", Some(2_592_000.0)),
            ("2w", Some(1_209_600.0)),
            ("", None),
            ("d", None),
            ("3x", None),
            ("-1d", None),
            ("1.5h", None),
            (".5", None),
            ("1 d", None),
            ("99999999999999999999w", None),
            ("9999999999999999w", None),
        ];
        for (text, want) in rows {
            assert_eq!(secs(text), want, "{text:?}");
        }
        assert_eq!("250".parse::<Millis>().unwrap().as_std(), std::time::Duration::from_millis(250));
        assert_eq!("2s".parse::<Millis>().unwrap().as_std(), std::time::Duration::from_secs(2));
    }

    #[test]
    fn toml_values() {
        #[derive(serde::Deserialize)]
        struct T {
            a: Secs,
            b: Millis,
        }
        let t: T = toml::from_str("a = 60\nb = 250").unwrap();
        assert_eq!((t.a.whole_secs(), t.b.as_std().as_millis()), (Some(60), 250));
        let t: T = toml::from_str("a = \"1d\"\nb = \"1s\"").unwrap();
        assert_eq!((t.a.whole_secs(), t.b.as_std().as_millis()), (Some(86_400), 1000));
        let t: T = toml::from_str("a = 0.25\nb = 1").unwrap();
        assert_eq!(t.a.whole_secs(), None, "a fraction is not whole seconds");
        assert!(toml::from_str::<T>("a = -1\nb = 1").is_err());
        assert!(toml::from_str::<T>("a = true\nb = 1").is_err());
    }

    #[test]
    fn display_reads_back() {
        for text in ["30d", "2w", "90s", "1500ms", "0.25", "0", "61m"] {
            let d: Secs = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<Secs>().unwrap(), d, "{text}");
            assert_eq!(d.to_string().parse::<Millis>().unwrap().as_std(), d.as_std(), "{text} as ms");
        }
        assert_eq!("86400".parse::<Secs>().unwrap().to_string(), "1d");
    }
}
