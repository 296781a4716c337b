//! `[metrics]`: the file's shape and its validation.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::ops::metrics::{MetricsSettings, MetricsToken};

/// `[metrics]`: `/metrics`, who may scrape it, and where.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` (default true). `WHARF_METRICS_ENABLED`.
    pub enabled: Option<bool>,
    /// A bearer token every scrape must present (`Authorization: Bearer …`). `WHARF_METRICS_TOKEN`.
    pub token: Option<String>,
    /// A file holding the token (one or the other). `WHARF_METRICS_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// Addresses or networks that may scrape; default: any when a token is set, loopback only otherwise.
    /// `WHARF_METRICS_ALLOW` (comma-separated).
    pub allow: Option<Vec<String>>,
    /// A listener of its own for `/metrics` (then the main port answers 404 there). `WHARF_METRICS_ADDR`.
    pub addr: Option<String>,
}

impl MetricsConfig {
    pub fn settings(self) -> Result<MetricsSettings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let token = match (self.token, self.token_file) {
            (Some(_), Some(_)) => return Err(invalid("metrics.token", "set token or token_file, not both".into())),
            (Some(t), None) => Some(t),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::File {
                    name: "metrics.token_file",
                    path: path.clone(),
                    source,
                })?;
                Some(text.trim().to_owned())
            }
            (None, None) => None,
        };
        if token.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("metrics.token", "empty".into()));
        }
        // The literal networks below parse: `expect` cannot fail.
        let allow = match self.allow {
            Some(list) => list
                .iter()
                .map(|p| crate::auth::proxy::parse_net(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("metrics.allow", e))?,
            None if token.is_some() => {
                vec!["0.0.0.0/0".parse().expect("a network"), "::/0".parse().expect("a network")]
            }
            None => vec!["127.0.0.0/8".parse().expect("a network"), "::1/128".parse().expect("a network")],
        };
        let addr = match self.addr {
            Some(a) => Some(a.parse().map_err(|e| invalid("metrics.addr", format!("{a:?}: {e}")))?),
            None => None,
        };
        Ok(MetricsSettings { enabled: self.enabled.unwrap_or(true), token: token.map(MetricsToken), allow, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<&str, &str>) {
        let c: MetricsConfig = toml::from_str(text).unwrap();
        match (c.settings(), expect) {
            (Ok(s), Ok(want)) => assert_eq!(format!("{:?} {:?} {:?}", s.enabled, s.allow, s.addr), want, "{text}"),
            (Err(e), Err(want)) => assert!(format!("{e:?}").contains(want), "{text}: {e:?}"),
            (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn rows() {
        check("", Ok("true [127.0.0.0/8, ::1/128] None"));
        check("token = \"t\"", Ok("true [0.0.0.0/0, ::/0] None"));
        check("token = \"t\"\nallow = [\"10.0.0.0/8\"]", Ok("true [10.0.0.0/8] None"));
        check("enabled = false\naddr = \"127.0.0.1:9102\"", Ok("false [127.0.0.0/8, ::1/128] Some(127.0.0.1:9102)"));
        check("token = \"t\"\ntoken_file = \"/x\"", Err("not both"));
        check("token = \"\"", Err("empty"));
        check("allow = [\"nonsense\"]", Err("metrics.allow"));
        check("addr = \"nowhere\"", Err("metrics.addr"));
        check("token_file = \"/nonexistent/token\"", Err("metrics.token_file"));
    }

    #[test]
    fn the_token_is_never_printed() {
        let c: MetricsConfig = toml::from_str("token = \"very-secret\"").unwrap();
        let s = c.settings().unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(s.token.as_ref().unwrap().matches(b"very-secret"));
        assert!(!s.token.as_ref().unwrap().matches(b"very-secreT"));
    }
}
