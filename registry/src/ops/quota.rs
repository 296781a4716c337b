//! Storage quotas per repository pattern, as operators write and read them: sizes (`10GiB`, `500MB`, bytes), the
//! figures `wharf admin quota list` and the metrics show, and the message a refused push reads.
//!
//! Quotas are kept in the database (`wharf admin quota set`), not the config, so that every replica enforces the
//! same ones at once. Enforcement and counting live in storage (`wharf_storage::meta::Quotas`, in the transaction of
//! every change that links or unlinks content): a push that would take a quota over its limit fails there with
//! `QuotaExceeded`, which `error.rs` answers with `DENIED` and [`refusal`]'s message.

use serde::Serialize;
use wharf_storage::meta::QuotaRow;

/// A quota as `wharf admin quota list --json` prints it: exact bytes, a percentage, and human figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaReport {
    pub pattern: String,
    pub usage: u64,
    pub limit: u64,
    /// Usage as a percentage of the limit (100 and over: full; a zero limit with no usage is 0).
    pub percent: f64,
    pub usage_human: String,
    pub limit_human: String,
}

impl From<&QuotaRow> for QuotaReport {
    fn from(q: &QuotaRow) -> QuotaReport {
        QuotaReport {
            pattern: q.pattern.clone(),
            usage: q.usage,
            limit: q.limit,
            percent: percent(q.usage, q.limit),
            usage_human: human(q.usage),
            limit_human: human(q.limit),
        }
    }
}

/// `usage` as a percentage of `limit`, to two decimals.
pub fn percent(usage: u64, limit: u64) -> f64 {
    if limit == 0 {
        return if usage == 0 { 0.0 } else { 100.0 };
    }
    (usage as f64 * 10_000.0 / limit as f64).round() / 100.0
}

/// What a push refused by a quota reads: the quota, its usage and its limit, human and exact.
pub fn refusal(quota: &str, usage: u64, limit: u64, adding: u64) -> String {
    format!(
        "quota {quota} exceeded: {} ({usage} bytes) used of {} ({limit} bytes); this needs {} ({adding} bytes) more",
        human(usage),
        human(limit),
        human(adding)
    )
}

/// Bytes in binary units with one decimal where it is not whole: `512 B`, `1.5 KiB`, `10 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    format!("{} {}", text.strip_suffix(".0").unwrap_or(&text), UNITS[unit])
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size {0:?}: write a number of bytes, or a number and a unit (500MB, 10GiB, 1.5TB)")]
    Invalid(String),
    #[error("size {0:?} is too large")]
    TooLarge(String),
}

/// A size as people write it: bytes (`1048576`), or a number (decimals allowed) and a unit: `B`, decimal `KB` `MB`
/// `GB` `TB` `PB` (powers of 1000), binary `KiB` `MiB` `GiB` `TiB` `PiB` (powers of 1024); units in any case, a
/// space allowed before them. At most `i64::MAX` (what the database holds).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let invalid = || SizeError::Invalid(text.to_owned());
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim_start());
    let scale: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u128.pow(2),
        "gb" => 1000u128.pow(3),
        "tb" => 1000u128.pow(4),
        "pb" => 1000u128.pow(5),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "pib" => 1 << 50,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(invalid());
    }
    if whole.len() > 20 || fraction.len() > 18 {
        return Err(SizeError::TooLarge(text.to_owned()));
    }
    let whole: u128 = whole.parse().map_err(|_| invalid())?;
    let digits: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| invalid())? };
    let bytes = whole * scale + digits * scale / 10u128.pow(fraction.len() as u32);
    if !(digits * scale).is_multiple_of(10u128.pow(fraction.len() as u32)) {
        return Err(SizeError::Invalid(format!("{text} (not a whole number of bytes)")));
    }
    u64::try_from(bytes).ok().filter(|b| *b <= i64::MAX as u64).ok_or_else(|| SizeError::TooLarge(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, want: Result<u64, &str>) {
        match (parse_size(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
            (Err(e), Err(kind)) => assert!(format!("{e:?}").starts_with(kind), "{text}: {e:?}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn sizes() {
        check("0", Ok(0));
        check("1048576", Ok(1 << 20));
        check("500MB", Ok(500_000_000));
        check("10GiB", Ok(10 << 30));
        check("10 gib", Ok(10 << 30));
        check(" 1.5KiB ", Ok(1536));
        check("1.5TB", Ok(1_500_000_000_000));
        check("7B", Ok(7));
        check("8EiB", Err("Invalid"));
        check("1.5", Err("Invalid"));
        check("0.5B", Err("Invalid"));
        check("", Err("Invalid"));
        check("GiB", Err("Invalid"));
        check("-1", Err("Invalid"));
        check("1.GiB", Err("Invalid"));
        check("1.2.3MB", Err("Invalid"));
        check("10 parsecs", Err("Invalid"));
        check("9223372036854775807", Ok(i64::MAX as u64));
        check("9223372036854775808", Err("TooLarge"));
        check("9000PB", Ok(9_000_000_000_000_000_000));
        check("9300PB", Err("TooLarge"));
        check("99999999999999999999999", Err("TooLarge"));
    }

    #[test]
    fn figures() {
        for (bytes, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (10 << 30, "10 GiB"),
            (9_961_472, "9.5 MiB"),
            (u64::MAX, "16 EiB"),
        ] {
            assert_eq!(human(bytes), want, "{bytes}");
        }
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(5, 0), 100.0);
        assert_eq!(percent(0, 0), 0.0);
        let m = refusal("team/**", 9_961_472, 10 << 20, 1 << 20);
        assert_eq!(
            m,
            "quota team/** exceeded: 9.5 MiB (9961472 bytes) used of 10 MiB (10485760 bytes); \
             this needs 1 MiB (1048576 bytes) more"
        );
    }
}
