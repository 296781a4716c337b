//! Configuration: defaults, then a TOML file, then `WHARF_*` environment variables, then command-line flags;
//! validated once into [`Settings`].
//!
//! Every key has a variable named from its TOML path ([`env`]): `limits.max_blob_size` is
//! `WHARF_LIMITS_MAX_BLOB_SIZE`. Durations are one type ([`duration`]). The list of keys is read from these structs
//! ([`schema`]), so the variables, the README check and `wharf config check` follow the code by themselves.
//!
//! Errors: [`ConfigError`] is this module's only error type. Reading a file is `Read` or `Parse` (with the TOML
//! error as source); a variable that names no key or does not fit its key is `Variable` or `VariableValue`; a rule
//! the values break is `Invalid`, naming the key; a file or URL a key names that cannot be read or parsed is `File`
//! or `Url`, with the I/O or parse error as source. Callers above (`wharf serve`, `wharf admin`, `wharf config
//! check`) wrap it in `anyhow` and print the chain.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod audit;
mod auth;
mod check;
pub mod duration;
pub mod effective;
pub mod env;
mod gc;
mod metrics;
pub mod mirror;
mod notify;
mod ratelimit;
pub mod schema;
mod settings;
mod ui;

pub use audit::AuditConfig;
pub use auth::{AuthConfig, TrustedIssuerConfig};
pub use check::{CheckConfig, CheckSettings};
pub use duration::{Millis, Secs};
pub use env::Vars;
pub use gc::{parse_duration, rule, GcConfig, GcSettings, RetentionConfig};
pub use metrics::MetricsConfig;
pub use notify::NotificationsConfig;
pub use ratelimit::RateLimitConfig;
pub use settings::{KekSource, Overrides, Settings};
pub use ui::UiConfig;

/// The configuration file's shape. Every field is optional; absent ones take defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, HOST:PORT (default `127.0.0.1:5000`). `WHARF_ADDR`, `--addr`.
    pub addr: Option<String>,
    /// The data directory (default `wharf-data`). `WHARF_DATA_DIR`, `--data-dir`.
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
    /// Scheduled store checks.
    #[serde(default)]
    pub check: CheckConfig,
    /// Retention rules (`[[retention]]`); no variable.
    #[serde(default)]
    pub retention: Vec<RetentionConfig>,
    /// Upstream registries served as pull-through caches (`[[mirror]]`); no variable.
    #[serde(default)]
    pub mirror: Vec<mirror::MirrorConfig>,
    /// Signature policy rules (`[[policy]]`, `wharf_format::policy::Rule`): the first whose pattern matches a
    /// repository decides what its manifests must satisfy to be served or tagged; no variable.
    #[serde(default)]
    pub policy: Vec<wharf_format::policy::Rule>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub notifications: NotificationsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The web interface.
    #[serde(default)]
    pub ui: UiConfig,
}

/// HTTPS: a PEM certificate chain and its private key, re-read on SIGHUP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, server certificate first. `WHARF_TLS_CERT`, `--tls-cert`.
    pub cert: Option<PathBuf>,
    /// Its private key. `WHARF_TLS_KEY`, `--tls-key`.
    pub key: Option<PathBuf>,
}

/// Switches that allow listening beyond loopback without protection. Named so on purpose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsecureConfig {
    /// Plain HTTP on an address beyond loopback. `WHARF_INSECURE_LISTEN_WITHOUT_TLS`.
    #[serde(default)]
    pub listen_without_tls: bool,
    /// No access control on an address beyond loopback. `WHARF_INSECURE_LISTEN_WITHOUT_AUTH`.
    #[serde(default)]
    pub listen_without_auth: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The secret the service's private keys are sealed under; default: a random one kept in
    /// `<data_dir>/trust.kek` (mode 0600), created on first start. `WHARF_TRUST_KEY_ENCRYPTION_KEY`.
    pub key_encryption_key: Option<String>,
    /// A file holding that secret (a mounted secret, the same for every replica).
    /// `WHARF_TRUST_KEY_ENCRYPTION_KEY_FILE`.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Lifetime of TUF timestamps (default 1 day). `WHARF_TRUST_TIMESTAMP_LIFETIME_SECS`.
    pub timestamp_lifetime_secs: Option<Secs>,
    /// Lifetime of TUF snapshots (default 7 days). `WHARF_TRUST_SNAPSHOT_LIFETIME_SECS`.
    pub snapshot_lifetime_secs: Option<Secs>,
    /// The largest metadata document accepted, in bytes (default 1 MiB). `WHARF_TRUST_MAX_METADATA_SIZE`.
    pub max_metadata_size: Option<usize>,
    /// How often expiring metadata is looked for (default 60 s). `WHARF_TRUST_RENEW_CHECK_SECS`.
    pub renew_check_secs: Option<Secs>,
    /// Lifetime of Notary v1 timestamps (default 14 days, as notary-server's).
    /// `WHARF_TRUST_NOTARY_TIMESTAMP_LIFETIME_SECS`.
    pub notary_timestamp_lifetime_secs: Option<Secs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `file:///dir`, `memory://` or `s3://BUCKET/PREFIX`; default `file://<data_dir>/store`. `WHARF_STORAGE_URL`.
    pub url: Option<String>,
    /// S3: the endpoint of an S3-compatible server (default AWS); unset S3 fields come from `AWS_*` variables.
    /// `WHARF_STORAGE_ENDPOINT`.
    pub endpoint: Option<String>,
    /// S3: the region. `WHARF_STORAGE_REGION`.
    pub region: Option<String>,
    /// S3: path-style requests (`ENDPOINT/BUCKET/KEY`), as most S3-compatible servers want.
    /// `WHARF_STORAGE_PATH_STYLE`.
    pub path_style: Option<bool>,
    /// S3: the access key id. `WHARF_STORAGE_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// S3: the secret access key. `WHARF_STORAGE_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// S3: answer blob GETs with `307` to a presigned URL instead of streaming the bytes through the replica.
    /// `WHARF_STORAGE_REDIRECT`.
    pub redirect: Option<bool>,
    /// How long a presigned URL stays valid (default 300 s). `WHARF_STORAGE_REDIRECT_EXPIRY_SECS`.
    pub redirect_expiry_secs: Option<Secs>,
    /// S3: how long one request may spend retrying `5xx`, `SlowDown` and lost connections before it answers `503`
    /// (default 30 s). `WHARF_STORAGE_RETRY_TIMEOUT_SECS`.
    pub retry_timeout_secs: Option<Secs>,
    /// S3: how long a read waits for its answer, or for the next bytes of its body, before it answers `503`
    /// (default 60 s; a read that keeps moving has no time limit). `WHARF_STORAGE_STALL_TIMEOUT_SECS`.
    pub stall_timeout_secs: Option<Secs>,
    /// S3: bytes of blobs read from the store kept on this replica's disk (default 2 GiB; 0 turns it off).
    /// `WHARF_STORAGE_CACHE_MAX_BYTES`.
    pub cache_max_bytes: Option<u64>,
    /// Where that cache lives (default `<data_dir>/blob-cache`). `WHARF_STORAGE_CACHE_DIR`.
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:///path/to/file.db` (default `<data_dir>/wharf.db`) or `postgres://USER:PASSWORD@HOST:PORT/DB`.
    /// `WHARF_DATABASE_URL`.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest blob accepted, in bytes (default 64 GiB). `WHARF_LIMITS_MAX_BLOB_SIZE` (or
    /// `WHARF_MAX_BLOB_SIZE`).
    pub max_blob_size: Option<u64>,
    /// The largest manifest accepted, in bytes (default 4 MiB). `WHARF_LIMITS_MAX_MANIFEST_SIZE` (or
    /// `WHARF_MAX_MANIFEST_SIZE`).
    pub max_manifest_size: Option<usize>,
    /// An upload session idle this long expires (default 1 hour). `WHARF_LIMITS_UPLOAD_IDLE_TIMEOUT_SECS` (or
    /// `WHARF_UPLOAD_IDLE_TIMEOUT_SECS`).
    pub upload_idle_timeout_secs: Option<Secs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`. `WHARF_LOG_FORMAT`.
    pub format: Option<String>,
    /// A `tracing` filter such as `info` or `wharf_registry=debug`. `WHARF_LOG_LEVEL` (or `WHARF_LOG`).
    pub level: Option<String>,
    /// One `info` line per request (route kind, repository, status, bytes, duration, account, client address);
    /// default on. `WHARF_LOG_ACCESS`.
    pub access: Option<bool>,
}

/// Errors of reading and validating the configuration; see the module's documentation for which is which.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    /// A `WHARF_*` variable that names no key, or whose text is not of its key's kind.
    #[error("{name}: {reason}")]
    Variable { name: String, reason: String },
    /// A `WHARF_*` variable whose value its key refuses.
    #[error("{name}")]
    VariableValue { name: String, source: Box<toml::de::Error> },
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("{name}: reading {path}")]
    File { name: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{name}: {text:?} is not a URL")]
    Url { name: &'static str, text: String, source: url::ParseError },
}

impl Config {
    /// Reads the file at `path` (none: no file) and applies the `WHARF_*` variables in `vars`.
    pub fn load(path: Option<&Path>, vars: &Vars) -> Result<Config, ConfigError> {
        Config::from_table(Config::load_table(path, vars)?, vars)
    }

    /// The file at `path` with the variables applied, as a table: what [`Config::load`] reads.
    pub fn load_table(path: Option<&Path>, vars: &Vars) -> Result<toml::Table, ConfigError> {
        let (text, path) = match path {
            Some(p) => (std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?, p),
            None => (String::new(), Path::new("(no file)")),
        };
        Config::table(&text, path, vars)
    }

    /// `text` as a configuration file, then the variables. The text is read into `Config` alone first, so that
    /// its errors point into it.
    pub fn from_toml(text: &str, path: &Path, vars: &Vars) -> Result<Config, ConfigError> {
        Config::from_table(Config::table(text, path, vars)?, vars)
    }

    /// The first configuration file alone.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::load(Some(path), &Vars::new())
    }

    fn table(text: &str, path: &Path, vars: &Vars) -> Result<toml::Table, ConfigError> {
        let parse = |source| ConfigError::Parse { path: path.into(), source: Box::new(source) };
        toml::from_str::<Config>(text).map_err(parse)?;
        let mut table: toml::Table = toml::from_str(text).map_err(parse)?;
        env::apply(&mut table, vars)?;
        Ok(table)
    }

    /// A table from [`Config::load_table`] read into `Config`; the first administrator's password comes from
    /// `vars` alone.
    pub fn from_table(table: toml::Table, vars: &Vars) -> Result<Config, ConfigError> {
        let mut config = Config::deserialize(toml::Value::Table(table)).map_err(|source| ConfigError::Parse {
            path: "(file and WHARF_* variables)".into(),
            source: Box::new(source),
        })?;
        config.auth.admin_password = vars.get("WHARF_ADMIN_PASSWORD").cloned();
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
