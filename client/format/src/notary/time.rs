//! Notary timestamps: RFC 3339 in UTC, with the fractional seconds Go prints (trailing zeros trimmed).

use chrono::DateTime;

use super::V1MetadataError;

/// Unix seconds of an `expires` value (any RFC 3339 form; the fraction is dropped).
pub fn parse_time(s: &str) -> Result<i64, V1MetadataError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| V1MetadataError::Malformed(format!("expires {s:?} is not an RFC 3339 time")))
}

/// `unix` seconds plus `nanos` as Go's `time.RFC3339Nano` writes them in UTC.
pub fn format_time(unix: i64, nanos: u32) -> String {
    let whole = DateTime::from_timestamp(unix, 0)
        .map_or_else(|| "1970-01-01T00:00:00".into(), |t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
    match nanos.min(999_999_999) {
        0 => format!("{whole}Z"),
        n => format!("{whole}.{}Z", format!("{n:09}").trim_end_matches('0')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        assert_eq!(parse_time("2036-11-19T06:03:04.629036755Z").unwrap(), 2_110_687_384);
        assert_eq!(parse_time("2036-11-19T06:03:04Z").unwrap(), 2_110_687_384);
        assert!(parse_time("2036-11-19 06:03:04").is_err());
        assert_eq!(format_time(2_110_687_384, 0), "2036-11-19T06:03:04Z");
        assert_eq!(format_time(2_110_687_384, 629_036_755), "2036-11-19T06:03:04.629036755Z");
        assert_eq!(format_time(2_110_687_384, 500_000_000), "2036-11-19T06:03:04.5Z");
    }
}
