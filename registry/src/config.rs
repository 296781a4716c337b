//! Configuration: defaults, then a TOML file, then `WHARF_*` environment variables, then command-line flags;
//! validated once into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;
use wharf_storage::UploadLimits;

use crate::Limits;

/// The configuration file's shape. Every field is optional; absent ones take defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub trust: TrustConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The secret the service's private keys are sealed under; default: a random one kept in
    /// `<data_dir>/trust.kek` (mode 0600), created on first start.
    pub key_encryption_key: Option<String>,
    pub timestamp_lifetime_secs: Option<i64>,
    pub snapshot_lifetime_secs: Option<i64>,
    pub max_metadata_size: Option<usize>,
    pub renew_check_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `file:///dir` or `memory://`; default `file://<data_dir>/store`.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:///path/to/file.db`; default `<data_dir>/wharf.db`.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_blob_size: Option<u64>,
    pub max_manifest_size: Option<usize>,
    pub upload_idle_timeout_secs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A `tracing` filter such as `info` or `wharf_registry=debug`.
    pub level: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub storage_url: Url,
    pub database_path: PathBuf,
    pub upload: UploadLimits,
    pub limits: Limits,
    pub log_json: bool,
    pub log_level: String,
    pub trust: wharf_notary::TrustSettings,
    /// `None`: use (or create) `<data_dir>/trust.kek`.
    pub kek_secret: Option<String>,
}

/// Flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
    }

    /// Applies `WHARF_*` variables from `env` (a lookup function, so tests need not touch the process environment).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Invalid { name, reason: format!("{v:?} is not a number") })
        }
        if let Some(v) = env("WHARF_ADDR") {
            self.addr = Some(v);
        }
        if let Some(v) = env("WHARF_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = env("WHARF_STORAGE_URL") {
            self.storage.url = Some(v);
        }
        if let Some(v) = env("WHARF_DATABASE_URL") {
            self.database.url = Some(v);
        }
        if let Some(v) = env("WHARF_MAX_BLOB_SIZE") {
            self.limits.max_blob_size = Some(num("WHARF_MAX_BLOB_SIZE", v)?);
        }
        if let Some(v) = env("WHARF_MAX_MANIFEST_SIZE") {
            self.limits.max_manifest_size = Some(num("WHARF_MAX_MANIFEST_SIZE", v)?);
        }
        if let Some(v) = env("WHARF_UPLOAD_IDLE_TIMEOUT_SECS") {
            self.limits.upload_idle_timeout_secs = Some(num("WHARF_UPLOAD_IDLE_TIMEOUT_SECS", v)?);
        }
        if let Some(v) = env("WHARF_LOG_FORMAT") {
            self.log.format = Some(v);
        }
        if let Some(v) = env("WHARF_LOG") {
            self.log.level = Some(v);
        }
        if let Some(v) = env("WHARF_TRUST_KEY_ENCRYPTION_KEY") {
            self.trust.key_encryption_key = Some(v);
        }
        if let Some(v) = env("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS") {
            self.trust.timestamp_lifetime_secs = Some(num("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", v)?);
        }
        if let Some(v) = env("WHARF_TRUST_SNAPSHOT_LIFETIME_SECS") {
            self.trust.snapshot_lifetime_secs = Some(num("WHARF_TRUST_SNAPSHOT_LIFETIME_SECS", v)?);
        }
        if let Some(v) = env("WHARF_TRUST_MAX_METADATA_SIZE") {
            self.trust.max_metadata_size = Some(num("WHARF_TRUST_MAX_METADATA_SIZE", v)?);
        }
        if let Some(v) = env("WHARF_TRUST_RENEW_CHECK_SECS") {
            self.trust.renew_check_secs = Some(num("WHARF_TRUST_RENEW_CHECK_SECS", v)?);
        }
        Ok(())
    }

    pub fn settings(self, o: Overrides) -> Result<Settings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let addr_text = o.addr.or(self.addr).unwrap_or_else(|| "127.0.0.1:5000".into());
        let addr = addr_text.parse().map_err(|_| invalid("addr", format!("{addr_text:?} is not HOST:PORT")))?;
        let data_dir = o.data_dir.or(self.data_dir).unwrap_or_else(|| "wharf-data".into());
        let data_dir = std::path::absolute(&data_dir).map_err(|e| invalid("data_dir", e.to_string()))?;
        let storage_url = match self.storage.url {
            Some(u) => Url::parse(&u).map_err(|e| invalid("storage.url", e.to_string()))?,
            None => Url::from_directory_path(data_dir.join("store"))
                .map_err(|()| invalid("data_dir", "not an absolute path".into()))?,
        };
        let database_path = match self.database.url {
            Some(u) => match u.strip_prefix("sqlite://") {
                Some(p) => PathBuf::from(p),
                None => return Err(invalid("database.url", format!("{u:?}: only sqlite:// is supported yet"))),
            },
            None => data_dir.join("wharf.db"),
        };
        let d = UploadLimits::default();
        let upload = UploadLimits {
            max_blob_size: self.limits.max_blob_size.unwrap_or(d.max_blob_size),
            idle_timeout_secs: self.limits.upload_idle_timeout_secs.unwrap_or(d.idle_timeout_secs),
            part_size: d.part_size,
        };
        let limits =
            Limits { max_manifest_size: self.limits.max_manifest_size.unwrap_or(Limits::default().max_manifest_size) };
        let log_json = match self.log.format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(invalid("log.format", format!("{other:?}: use text or json"))),
        };
        let log_level = self.log.level.unwrap_or_else(|| "info".into());
        let td = wharf_notary::TrustSettings::default();
        let t = self.trust;
        let trust = wharf_notary::TrustSettings {
            timestamp_lifetime: t.timestamp_lifetime_secs.unwrap_or(td.timestamp_lifetime),
            snapshot_lifetime: t.snapshot_lifetime_secs.unwrap_or(td.snapshot_lifetime),
            max_metadata_size: t.max_metadata_size.unwrap_or(td.max_metadata_size),
            renew_check_secs: t.renew_check_secs.unwrap_or(td.renew_check_secs),
        };
        if trust.timestamp_lifetime < 2 || trust.snapshot_lifetime < 2 {
            return Err(invalid("trust", "lifetimes must be at least 2 seconds".into()));
        }
        let kek_secret = t.key_encryption_key;
        Ok(Settings {
            addr,
            data_dir,
            storage_url,
            database_path,
            upload,
            limits,
            log_json,
            log_level,
            trust,
            kek_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering() {
        let mut c: Config = toml::from_str(
            "addr = \"127.0.0.1:6000\"\ndata_dir = \"/srv/w\"\n[limits]\nmax_blob_size = 10\n[log]\nformat = \"json\"",
        )
        .unwrap();
        c.apply_env(|k| (k == "WHARF_MAX_BLOB_SIZE").then(|| "20".to_string())).unwrap();
        let s = c.settings(Overrides { addr: Some("127.0.0.1:7000".into()), data_dir: None }).unwrap();
        assert_eq!(s.addr.port(), 7000);
        assert_eq!(s.upload.max_blob_size, 20);
        assert!(s.log_json);
        assert_eq!(s.storage_url.as_str(), "file:///srv/w/store/");
        assert_eq!(s.database_path, PathBuf::from("/srv/w/wharf.db"));
    }

    #[test]
    fn refusals() {
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
        let mut c = Config::default();
        assert!(c.apply_env(|k| (k == "WHARF_MAX_BLOB_SIZE").then(|| "big".to_string())).is_err());
        let c = Config { addr: Some("nope".into()), ..Config::default() };
        assert!(c.settings(Overrides::default()).is_err());
    }
}
