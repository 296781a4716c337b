//! Registry credentials in docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! `auths` entries, `credsStore`, and per-host `credHelpers` run as `docker-credential-NAME get|store|erase`.
//! `docker login` and `wharf login` read and write the same entries. Secrets never reach a log line.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Map, Value};

/// What a registry is logged in with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        user: String,
        password: String,
    },
    /// An identity (refresh) token from the registry's token service, used with `grant_type=refresh_token`.
    IdentityToken {
        user: String,
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, <secret>)"),
            Credentials::IdentityToken { user, .. } => write!(f, "IdentityToken({user}, <secret>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("{path}")]
    ConfigIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not JSON")]
    ConfigJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The helper failed, with what it printed (helpers say "credentials not found" on a miss).
    #[error("credential helper docker-credential-{helper}: {reason}")]
    Helper { helper: String, reason: String },
    #[error("credential helper docker-credential-{helper}")]
    HelperIo {
        helper: String,
        #[source]
        source: std::io::Error,
    },
    #[error("credential helper docker-credential-{helper}: its answer is not JSON")]
    HelperJson {
        helper: String,
        #[source]
        source: serde_json::Error,
    },
}

/// docker's configuration directory.
pub fn docker_config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".docker"),
    }
}

fn config_path() -> PathBuf {
    docker_config_dir().join("config.json")
}

fn load() -> Result<Map<String, Value>, CredentialsError> {
    let path = config_path();
    let p = || path.display().to_string();
    match std::fs::read(&path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(CredentialsError::Config { path: p(), reason: "not a JSON object".into() }),
            Err(source) => Err(CredentialsError::ConfigJson { path: p(), source }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(CredentialsError::ConfigIo { path: p(), source }),
    }
}

fn save(config: &Map<String, Value>) -> Result<(), CredentialsError> {
    let path = config_path();
    let err = |source: std::io::Error| CredentialsError::ConfigIo { path: path.display().to_string(), source };
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(err)?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let text = serde_json::to_vec_pretty(config)
        .map_err(|source| CredentialsError::ConfigJson { path: path.display().to_string(), source })?;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(&text).and_then(|()| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// The helper that keeps `host`'s credentials, if any: `credHelpers[host]`, else `credsStore`.
fn helper(config: &Map<String, Value>, host: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(|h| h.get(host))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn run_helper(name: &str, verb: &str, input: &str) -> Result<String, CredentialsError> {
    let err = |reason: String| CredentialsError::Helper { helper: name.into(), reason };
    let io = |source: std::io::Error| CredentialsError::HelperIo { helper: name.into(), source };
    let mut child = Command::new(format!("docker-credential-{name}"))
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(io)?;
    }
    let out = child.wait_with_output().map_err(io)?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        // Helpers print "credentials not found in native keychain" on a miss.
        return Err(err(format!("{verb} failed: {}", stdout.chars().take(200).collect::<String>())));
    }
    Ok(stdout)
}

/// The keys `auths` may use for `host`.
fn auth_keys(host: &str) -> [String; 3] {
    [host.to_owned(), format!("https://{host}"), format!("http://{host}")]
}

/// The credentials stored for `host`, if any.
pub fn lookup(host: &str) -> Result<Option<Credentials>, CredentialsError> {
    let config = load()?;
    if let Some(h) = helper(&config, host) {
        let out = match run_helper(&h, "get", host) {
            Ok(o) => o,
            Err(CredentialsError::Helper { reason, .. }) if reason.contains("not found") => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value =
            serde_json::from_str(&out).map_err(|source| CredentialsError::HelperJson { helper: h.clone(), source })?;
        let user = v["Username"].as_str().unwrap_or("").to_owned();
        let secret = v["Secret"].as_str().unwrap_or("").to_owned();
        return Ok(Some(if user == "<token>" {
            Credentials::IdentityToken { user, token: secret }
        } else {
            Credentials::Basic { user, password: secret }
        }));
    }
    let Some(entry) = auth_keys(host).iter().find_map(|k| config.get("auths").and_then(|a| a.get(k.as_str())).cloned())
    else {
        return Ok(None);
    };
    let (mut user, mut password) = (String::new(), String::new());
    if let Some(b64) = entry.get("auth").and_then(Value::as_str) {
        let bad = || CredentialsError::Config {
            path: config_path().display().to_string(),
            reason: format!("auths[{host:?}].auth is not base64 of user:password"),
        };
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = text.split_once(':').ok_or_else(bad)?;
        (user, password) = (u.to_owned(), p.to_owned());
    }
    if let Some(u) = entry.get("username").and_then(Value::as_str) {
        user = u.to_owned();
    }
    if let Some(p) = entry.get("password").and_then(Value::as_str) {
        password = p.to_owned();
    }
    if let Some(token) = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken { user, token: token.to_owned() }));
    }
    Ok((!user.is_empty()).then_some(Credentials::Basic { user, password }))
}

/// Stores `creds` for `host` (in its helper if one is configured, else in `auths`). Returns where.
pub fn store(host: &str, creds: &Credentials) -> Result<String, CredentialsError> {
    let mut config = load()?;
    let (user, secret, token) = match creds {
        Credentials::Basic { user, password } => (user.as_str(), password.as_str(), false),
        Credentials::IdentityToken { user, token } => (user.as_str(), token.as_str(), true),
    };
    if let Some(h) = helper(&config, host) {
        let helper_user = if token { "<token>" } else { user };
        let input = json!({ "ServerURL": host, "Username": helper_user, "Secret": secret }).to_string();
        run_helper(&h, "store", &input)?;
        return Ok(format!("credential helper docker-credential-{h}"));
    }
    let entry = if token {
        json!({ "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:")), "identitytoken": secret })
    } else {
        json!({ "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")) })
    };
    let auths = config.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    if let Some(m) = auths.as_object_mut() {
        for k in auth_keys(host) {
            m.remove(&k);
        }
        m.insert(host.to_owned(), entry);
    }
    save(&config)?;
    Ok(config_path().display().to_string())
}

/// Forgets `host`'s credentials; false if there were none.
pub fn erase(host: &str) -> Result<bool, CredentialsError> {
    let mut config = load()?;
    if let Some(h) = helper(&config, host) {
        return match run_helper(&h, "erase", host) {
            Ok(_) => Ok(true),
            Err(CredentialsError::Helper { reason, .. }) if reason.contains("not found") => Ok(false),
            Err(e) => Err(e),
        };
    }
    let mut removed = false;
    if let Some(m) = config.get_mut("auths").and_then(Value::as_object_mut) {
        for k in auth_keys(host) {
            removed |= m.remove(&k).is_some();
        }
    }
    if removed {
        save(&config)?;
    }
    Ok(removed)
}
