//! [`Config`] validated into [`Settings`]: one function per section or rule, each filling in its defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;
use wharf_storage::UploadLimits;

use super::auth::auth_settings;
use super::TrustConfig;
use super::{mirror, Config, ConfigError, DatabaseConfig, GcSettings, LimitsConfig, LogConfig, Secs, StorageConfig};
use crate::Limits;

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub storage_url: Url,
    pub s3: wharf_storage::S3Options,
    /// Blob GETs redirect to presigned URLs valid this long.
    pub redirect: Option<Duration>,
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
    /// Scheduled store checks.
    pub check: super::CheckSettings,
    /// Upstreams this server mirrors (empty: none).
    pub mirrors: Vec<mirror::MirrorSettings>,
    /// Signature policy rules, in order (empty: nothing is enforced).
    pub policy: Vec<wharf_format::policy::Rule>,
    /// Metrics, webhooks, audit, rate limits, access log.
    pub ops: crate::ops::OpsSettings,
    /// The web interface.
    pub ui: crate::ui::UiSettings,
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

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

/// Whole seconds of a duration key, or its default.
pub(super) fn whole_secs(name: &'static str, d: Option<Secs>, default: i64) -> Result<i64, ConfigError> {
    match d {
        None => Ok(default),
        Some(d) => d.whole_secs().ok_or_else(|| invalid(name, format!("{d}: give whole seconds"))),
    }
}

impl Config {
    pub fn settings(self, o: Overrides) -> Result<Settings, ConfigError> {
        let addr = addr(o.addr.or(self.addr))?;
        let data_dir = data_dir(o.data_dir.or(self.data_dir))?;
        let database_url = database_url(self.database, &data_dir)?;
        let shared = !database_url.starts_with("sqlite://");
        let (storage_url, s3, redirect, blob_cache) = storage(self.storage, &data_dir)?;
        let access_log = self.log.access.unwrap_or(true);
        let (log_json, log_level) = log(self.log)?;
        let kek = kek(&self.trust, shared)?;
        let tls = tls(o.tls_cert.or(self.tls.cert), o.tls_key.or(self.tls.key))?;
        // Read with access control off too: the audit log, the access log and the rate limits name clients by them.
        let proxies = self
            .auth
            .trusted_proxies
            .iter()
            .map(|p| crate::auth::proxy::parse_net(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("auth.trusted_proxies", e))?;
        let (ui, session_secs) = self.ui.settings(tls.is_some())?;
        let auth = if o.auth || self.auth.enabled == Some(true) { Some(auth_settings(self.auth)?) } else { None };
        let auth = auth.map(|a| crate::auth::AuthSettings { web_session_secs: session_secs, ..a });
        exposure(addr, tls.is_some(), auth.is_some(), &self.insecure)?;
        let notifications = self.notifications.settings(addr, tls.is_some())?;
        let rate_limit = self.rate_limit.settings()?.behind(proxies.clone());
        if rate_limit.shared && !shared {
            return Err(invalid(
                "rate_limit.shared",
                "buckets are shared through a PostgreSQL database; one SQLite server keeps them in memory",
            ));
        }
        Ok(Settings {
            addr,
            data_dir,
            storage_url,
            s3,
            redirect,
            blob_cache,
            database_url,
            upload: upload(&self.limits)?,
            limits: limits(&self.limits),
            log_json,
            log_level,
            trust: trust(self.trust)?,
            kek,
            tls,
            auth,
            gc: self.gc.settings(self.retention)?,
            check: self.check.settings()?,
            mirrors: mirror::settings(self.mirror)?,
            policy: policy(self.policy)?,
            ops: crate::ops::OpsSettings {
                metrics: self.metrics.settings()?,
                notifications,
                audit: self.audit.settings()?,
                rate_limit,
                trusted_proxies: proxies,
                access_log,
            },
            ui,
        })
    }
}

/// Every rule names at least one repository pattern (a rule that matches nothing is a mistake, not a no-op), and
/// passes the policy language's validation.
fn policy(rules: Vec<wharf_format::policy::Rule>) -> Result<Vec<wharf_format::policy::Rule>, ConfigError> {
    if let Some(i) = rules.iter().position(|r| r.repositories.is_empty()) {
        return Err(invalid("policy", format!("rule {} names no repositories", i + 1)));
    }
    // The language's own checks (empty lists, a sigstore rule with neither key nor identity, a key threshold that
    // cannot be met or is met by nothing): a rule that cannot be applied as written is refused, never weakened.
    let policy = wharf_format::policy::Policy { rules };
    policy.validate().map_err(|e| invalid("policy", e.to_string()))?;
    Ok(policy.rules)
}

fn addr(text: Option<String>) -> Result<SocketAddr, ConfigError> {
    let text = text.unwrap_or_else(|| "127.0.0.1:5000".into());
    text.parse().map_err(|_| invalid("addr", format!("{text:?} is not HOST:PORT")))
}

fn data_dir(dir: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    let dir = dir.unwrap_or_else(|| "wharf-data".into());
    std::path::absolute(&dir).map_err(|source| ConfigError::File { name: "data_dir", path: dir, source })
}

type Storage = (Url, wharf_storage::S3Options, Option<Duration>, Option<(PathBuf, u64)>);

/// The store's URL, its S3 options, the presigned-URL redirect and the local blob cache.
fn storage(s: StorageConfig, data_dir: &std::path::Path) -> Result<Storage, ConfigError> {
    let redirect = match (s.redirect, s.redirect_expiry_secs) {
        (Some(true), expiry) => Some(expiry.map_or(Duration::from_secs(300), Secs::as_std).max(Duration::from_secs(1))),
        _ => None,
    };
    let url = match s.url {
        Some(text) => Url::parse(&text).map_err(|source| ConfigError::Url { name: "storage.url", text, source })?,
        None => Url::from_directory_path(data_dir.join("store"))
            .map_err(|()| invalid("data_dir", "not an absolute path"))?,
    };
    let cache_max = s.cache_max_bytes.unwrap_or(2 << 30);
    let blob_cache = (url.scheme() == "s3" && cache_max > 0)
        .then(|| (s.cache_dir.unwrap_or_else(|| data_dir.join("blob-cache")), cache_max));
    let s3 = wharf_storage::S3Options {
        endpoint: s.endpoint,
        region: s.region,
        path_style: s.path_style.unwrap_or(false),
        access_key_id: s.access_key_id,
        secret_access_key: s.secret_access_key,
        retry_timeout: s.retry_timeout_secs.map(Secs::as_std),
        stall_timeout: s.stall_timeout_secs.map(Secs::as_std),
    };
    if s3.stall_timeout.is_some_and(|t| t.is_zero()) {
        return Err(invalid("storage", "stall_timeout_secs must be more than 0"));
    }
    Ok((url, s3, redirect, blob_cache))
}

fn database_url(d: DatabaseConfig, data_dir: &std::path::Path) -> Result<String, ConfigError> {
    match d.url {
        Some(u) if ["sqlite://", "postgres://", "postgresql://"].iter().any(|p| u.starts_with(p)) => Ok(u),
        Some(u) => Err(invalid("database.url", format!("{u:?}: use sqlite://PATH or postgres://..."))),
        None => Ok(format!("sqlite://{}", data_dir.join("wharf.db").display())),
    }
}

fn upload(l: &LimitsConfig) -> Result<UploadLimits, ConfigError> {
    let d = UploadLimits::default();
    Ok(UploadLimits {
        max_blob_size: l.max_blob_size.unwrap_or(d.max_blob_size),
        idle_timeout_secs: whole_secs(
            "limits.upload_idle_timeout_secs",
            l.upload_idle_timeout_secs,
            d.idle_timeout_secs,
        )?,
        part_size: d.part_size,
    })
}

fn limits(l: &LimitsConfig) -> Limits {
    Limits { max_manifest_size: l.max_manifest_size.unwrap_or(Limits::default().max_manifest_size) }
}

/// Whether logs are JSON, and the filter.
fn log(l: LogConfig) -> Result<(bool, String), ConfigError> {
    let json = match l.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(invalid("log.format", format!("{other:?}: use text or json"))),
    };
    Ok((json, l.level.unwrap_or_else(|| "info".into())))
}

fn trust(t: TrustConfig) -> Result<wharf_notary::TrustSettings, ConfigError> {
    let d = wharf_notary::TrustSettings::default();
    let renew = whole_secs("trust.renew_check_secs", t.renew_check_secs, d.renew_check_secs as i64)?;
    let trust = wharf_notary::TrustSettings {
        timestamp_lifetime: whole_secs(
            "trust.timestamp_lifetime_secs",
            t.timestamp_lifetime_secs,
            d.timestamp_lifetime,
        )?,
        snapshot_lifetime: whole_secs("trust.snapshot_lifetime_secs", t.snapshot_lifetime_secs, d.snapshot_lifetime)?,
        max_metadata_size: t.max_metadata_size.unwrap_or(d.max_metadata_size),
        // Durations are never negative, so the whole seconds are too.
        renew_check_secs: renew.unsigned_abs(),
        notary_timestamp_lifetime: whole_secs(
            "trust.notary_timestamp_lifetime_secs",
            t.notary_timestamp_lifetime_secs,
            d.notary_timestamp_lifetime,
        )?,
    };
    if trust.timestamp_lifetime < 2 || trust.snapshot_lifetime < 2 || trust.notary_timestamp_lifetime < 2 {
        return Err(invalid("trust", "lifetimes must be at least 2 seconds"));
    }
    Ok(trust)
}

/// Where the key-encryption secret comes from; a shared database needs it given, the same for every replica.
fn kek(t: &TrustConfig, shared_database: bool) -> Result<KekSource, ConfigError> {
    match (&t.key_encryption_key, &t.key_encryption_key_file) {
        (Some(s), None) => Ok(KekSource::Secret(s.clone())),
        (None, Some(f)) => Ok(KekSource::File(f.clone())),
        (None, None) if !shared_database => Ok(KekSource::DataDir),
        (None, None) => Err(invalid(
            "trust.key_encryption_key",
            "a shared database needs the key-encryption key from the config or a secret file \
             (trust.key_encryption_key or trust.key_encryption_key_file), the same for every replica",
        )),
        (Some(_), Some(_)) => Err(invalid("trust", "give key_encryption_key or key_encryption_key_file, not both")),
    }
}

fn tls(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => Err(invalid("tls", "give both a certificate (tls.cert) and its key (tls.key)")),
    }
}

/// Beyond loopback, HTTPS and access control are on unless the `[insecure]` switches say otherwise.
fn exposure(addr: SocketAddr, tls: bool, auth: bool, insecure: &super::InsecureConfig) -> Result<(), ConfigError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !tls && !insecure.listen_without_tls {
        return Err(invalid(
            "addr",
            format!(
                "{addr} is not a loopback address: serve HTTPS (--tls-cert/--tls-key, or [tls] cert and key; \
                 `wharf cert` writes a throwaway pair), or set [insecure] listen_without_tls = true"
            ),
        ));
    }
    if !auth && !insecure.listen_without_auth {
        return Err(invalid(
            "addr",
            format!(
                "{addr} is not a loopback address: turn access control on (--auth, or [auth] enabled = true), or set \
                 [insecure] listen_without_auth = true"
            ),
        ));
    }
    Ok(())
}
