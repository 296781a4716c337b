//! Configuration: defaults, then a TOML file, then `WHARF_*` environment variables, then command-line flags;
//! validated once into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;
use wharf_storage::UploadLimits;

use crate::Limits;

mod auth;
mod gc;
pub mod mirror;

use auth::auth_settings;
pub use auth::{AuthConfig, TrustedIssuerConfig};
pub use gc::{parse_duration, rule, GcConfig, GcSettings, RetentionConfig};

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
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub insecure: InsecureConfig,
    #[serde(default)]
    pub gc: GcConfig,
    #[serde(default)]
    pub retention: Vec<RetentionConfig>,
    /// Upstream registries served as pull-through caches.
    #[serde(default)]
    pub mirror: Vec<mirror::MirrorConfig>,
}

/// HTTPS: a PEM certificate chain and its private key, re-read on SIGHUP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Switches that allow listening beyond loopback without protection. Named so on purpose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsecureConfig {
    #[serde(default)]
    pub listen_without_tls: bool,
    #[serde(default)]
    pub listen_without_auth: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The secret the service's private keys are sealed under; default: a random one kept in
    /// `<data_dir>/trust.kek` (mode 0600), created on first start.
    pub key_encryption_key: Option<String>,
    /// A file holding that secret (a mounted secret, the same for every replica).
    pub key_encryption_key_file: Option<PathBuf>,
    pub timestamp_lifetime_secs: Option<i64>,
    pub snapshot_lifetime_secs: Option<i64>,
    pub max_metadata_size: Option<usize>,
    pub renew_check_secs: Option<u64>,
    /// Lifetime of Notary v1 timestamps (default 14 days, as notary-server's).
    pub notary_timestamp_lifetime_secs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `file:///dir`, `memory://` or `s3://BUCKET/PREFIX`; default `file://<data_dir>/store`.
    pub url: Option<String>,
    /// S3: the endpoint of an S3-compatible server (default AWS); unset S3 fields come from `AWS_*` variables.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// S3: path-style requests (`ENDPOINT/BUCKET/KEY`), as most S3-compatible servers want.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// S3: answer blob GETs with `307` to a presigned URL instead of streaming the bytes through the replica.
    pub redirect: Option<bool>,
    /// How long a presigned URL stays valid (default 300 s).
    pub redirect_expiry_secs: Option<u64>,
    /// S3: bytes of blobs read from the store kept on this replica's disk (default 2 GiB; 0 turns it off).
    pub cache_max_bytes: Option<u64>,
    /// Where that cache lives (default `<data_dir>/blob-cache`).
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:///path/to/file.db` (default `<data_dir>/wharf.db`) or `postgres://USER:PASSWORD@HOST:PORT/DB`.
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
    pub s3: wharf_storage::S3Options,
    /// Blob GETs redirect to presigned URLs valid this long.
    pub redirect: Option<std::time::Duration>,
    /// The local cache of a remote store's blobs: its directory and bound.
    pub blob_cache: Option<(PathBuf, u64)>,
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    pub upload: UploadLimits,
    pub limits: Limits,
    pub log_json: bool,
    pub log_level: String,
    pub trust: wharf_notary::TrustSettings,
    /// Where the key-encryption secret comes from.
    pub kek: KekSource,
    /// Certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `None`: access control is off.
    pub auth: Option<crate::auth::AuthSettings>,
    /// The collector and retention rules.
    pub gc: GcSettings,
    /// Upstreams this server mirrors (empty: none).
    pub mirrors: Vec<mirror::MirrorSettings>,
}

/// The key-encryption secret: given, in a file, or (single machine only) created in `<data_dir>/trust.kek`.
#[derive(Debug, Clone)]
pub enum KekSource {
    Secret(String),
    File(PathBuf),
    DataDir,
}

/// Flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub auth: bool,
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
        if let Some(v) = env("WHARF_STORAGE_ENDPOINT") {
            self.storage.endpoint = Some(v);
        }
        if let Some(v) = env("WHARF_STORAGE_REGION") {
            self.storage.region = Some(v);
        }
        if let Some(v) = env("WHARF_STORAGE_REDIRECT") {
            self.storage.redirect = Some(boolean("WHARF_STORAGE_REDIRECT", &v)?);
        }
        if let Some(v) = env("WHARF_STORAGE_REDIRECT_EXPIRY_SECS") {
            self.storage.redirect_expiry_secs = Some(num("WHARF_STORAGE_REDIRECT_EXPIRY_SECS", v)?);
        }
        if let Some(v) = env("WHARF_STORAGE_CACHE_MAX_BYTES") {
            self.storage.cache_max_bytes = Some(num("WHARF_STORAGE_CACHE_MAX_BYTES", v)?);
        }
        if let Some(v) = env("WHARF_STORAGE_PATH_STYLE") {
            self.storage.path_style = Some(boolean("WHARF_STORAGE_PATH_STYLE", &v)?);
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
        if let Some(v) = env("WHARF_TRUST_KEY_ENCRYPTION_KEY_FILE") {
            self.trust.key_encryption_key_file = Some(v.into());
        }
        if let Some(v) = env("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS") {
            self.trust.timestamp_lifetime_secs = Some(num("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", v)?);
        }
        if let Some(v) = env("WHARF_TRUST_NOTARY_TIMESTAMP_LIFETIME_SECS") {
            self.trust.notary_timestamp_lifetime_secs = Some(num("WHARF_TRUST_NOTARY_TIMESTAMP_LIFETIME_SECS", v)?);
        }
        if let Some(v) = env("WHARF_TRUST_SNAPSHOT_LIFETIME_SECS") {
            self.trust.snapshot_lifetime_secs = Some(num("WHARF_TRUST_SNAPSHOT_LIFETIME_SECS", v)?);
        }
        if let Some(v) = env("WHARF_TRUST_MAX_METADATA_SIZE") {
            self.trust.max_metadata_size = Some(num("WHARF_TRUST_MAX_METADATA_SIZE", v)?);
        }
        if let Some(v) = env("WHARF_TLS_CERT") {
            self.tls.cert = Some(v.into());
        }
        if let Some(v) = env("WHARF_TLS_KEY") {
            self.tls.key = Some(v.into());
        }
        if let Some(v) = env("WHARF_INSECURE_LISTEN_WITHOUT_TLS") {
            self.insecure.listen_without_tls = boolean("WHARF_INSECURE_LISTEN_WITHOUT_TLS", &v)?;
        }
        if let Some(v) = env("WHARF_INSECURE_LISTEN_WITHOUT_AUTH") {
            self.insecure.listen_without_auth = boolean("WHARF_INSECURE_LISTEN_WITHOUT_AUTH", &v)?;
        }
        if let Some(v) = env("WHARF_TRUST_RENEW_CHECK_SECS") {
            self.trust.renew_check_secs = Some(num("WHARF_TRUST_RENEW_CHECK_SECS", v)?);
        }
        self.auth.apply_env(&env)?;
        self.gc.apply_env(&env)
    }

    pub fn settings(self, o: Overrides) -> Result<Settings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let addr_text = o.addr.or(self.addr).unwrap_or_else(|| "127.0.0.1:5000".into());
        let addr: SocketAddr =
            addr_text.parse().map_err(|_| invalid("addr", format!("{addr_text:?} is not HOST:PORT")))?;
        let data_dir = o.data_dir.or(self.data_dir).unwrap_or_else(|| "wharf-data".into());
        let data_dir = std::path::absolute(&data_dir).map_err(|e| invalid("data_dir", e.to_string()))?;
        let redirect = (self.storage.redirect == Some(true))
            .then(|| std::time::Duration::from_secs(self.storage.redirect_expiry_secs.unwrap_or(300).max(1)));
        let s3 = wharf_storage::S3Options {
            endpoint: self.storage.endpoint,
            region: self.storage.region,
            path_style: self.storage.path_style.unwrap_or(false),
            access_key_id: self.storage.access_key_id,
            secret_access_key: self.storage.secret_access_key,
        };
        let storage_url = match self.storage.url {
            Some(u) => Url::parse(&u).map_err(|e| invalid("storage.url", e.to_string()))?,
            None => Url::from_directory_path(data_dir.join("store"))
                .map_err(|()| invalid("data_dir", "not an absolute path".into()))?,
        };
        let cache_max = self.storage.cache_max_bytes.unwrap_or(2 << 30);
        let blob_cache = (storage_url.scheme() == "s3" && cache_max > 0)
            .then(|| (self.storage.cache_dir.unwrap_or_else(|| data_dir.join("blob-cache")), cache_max));
        let database_url = match self.database.url {
            Some(u) if u.starts_with("sqlite://") || u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                u
            }
            Some(u) => return Err(invalid("database.url", format!("{u:?}: use sqlite://PATH or postgres://..."))),
            None => format!("sqlite://{}", data_dir.join("wharf.db").display()),
        };
        let shared = !database_url.starts_with("sqlite://");
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
            notary_timestamp_lifetime: t.notary_timestamp_lifetime_secs.unwrap_or(td.notary_timestamp_lifetime),
        };
        if trust.timestamp_lifetime < 2 || trust.snapshot_lifetime < 2 || trust.notary_timestamp_lifetime < 2 {
            return Err(invalid("trust", "lifetimes must be at least 2 seconds".into()));
        }
        let kek = match (t.key_encryption_key, t.key_encryption_key_file) {
            (Some(s), None) => KekSource::Secret(s),
            (None, Some(f)) => KekSource::File(f),
            (None, None) if !shared => KekSource::DataDir,
            (None, None) => {
                return Err(invalid(
                    "trust.key_encryption_key",
                    "a shared database needs the key-encryption key from the config or a secret file \
                     (trust.key_encryption_key or trust.key_encryption_key_file), the same for every replica"
                        .into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(invalid("trust", "give key_encryption_key or key_encryption_key_file, not both".into()))
            }
        };
        let tls = match (o.tls_cert.or(self.tls.cert), o.tls_key.or(self.tls.key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(invalid("tls", "give both a certificate (tls.cert) and its key (tls.key)".into())),
        };
        let auth = if o.auth || self.auth.enabled == Some(true) { Some(auth_settings(self.auth)?) } else { None };
        let gc = self.gc.settings(self.retention)?;
        let mirrors = mirror::settings(self.mirror)?;
        if !addr.ip().is_loopback() {
            if tls.is_none() && !self.insecure.listen_without_tls {
                return Err(invalid(
                    "addr",
                    format!(
                        "{addr} is not a loopback address: serve HTTPS (--tls-cert/--tls-key, or [tls] cert and key; \
                         `wharf cert` writes a throwaway pair), or set [insecure] listen_without_tls = true"
                    ),
                ));
            }
            if auth.is_none() && !self.insecure.listen_without_auth {
                return Err(invalid(
                    "addr",
                    format!(
                        "{addr} is not a loopback address: turn access control on (--auth, or [auth] enabled = \
                         true), or set [insecure] listen_without_auth = true"
                    ),
                ));
            }
        }
        Ok(Settings {
            addr,
            data_dir,
            storage_url,
            s3,
            redirect,
            blob_cache,
            database_url,
            upload,
            limits,
            log_json,
            log_level,
            trust,
            kek,
            tls,
            auth,
            gc,
            mirrors,
        })
    }
}

fn boolean(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid { name, reason: format!("{v:?} is not true or false") }),
    }
}

#[cfg(test)]
mod tests;
