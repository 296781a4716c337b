//! TUF timestamps: `YYYY-MM-DDTHH:MM:SSZ`, as Unix seconds.

use chrono::{DateTime, NaiveDateTime};

use super::TufError;

pub fn parse_time(s: &str) -> Result<i64, TufError> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| t.and_utc().timestamp())
        .map_err(|_| TufError::Malformed(format!("expires {s:?} is not YYYY-MM-DDTHH:MM:SSZ")))
}

pub fn format_time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .map_or_else(|| "1970-01-01T00:00:00Z".into(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(parse_time("2030-01-02T03:04:05Z").unwrap(), 1_893_553_445);
        assert_eq!(format_time(1_893_553_445), "2030-01-02T03:04:05Z");
        assert!(parse_time("2030-01-02 03:04:05").is_err());
        assert!(parse_time("2030-01-02T03:04:05+00:00").is_err());
    }
}
