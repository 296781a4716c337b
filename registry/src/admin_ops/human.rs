//! Figures for people: every admin command prints byte counts and times through here in its text output, and the
//! exact numbers (bytes, Unix seconds) in `--json`.

/// `n` bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A Unix time in RFC 3339, UTC, to the second.
pub fn time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map_or_else(|| format!("@{unix}"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes() {
        for (n, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (1_288_490_189, "1.2 GiB"),
            (u64::MAX, "16.0 EiB"),
        ] {
            assert_eq!(super::bytes(n), text, "{n}");
        }
    }

    #[test]
    fn time() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00Z");
    }
}
