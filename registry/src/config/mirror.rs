//! `[[mirror]]`: upstream registries this server caches, each under a local namespace.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;
use wharf_format::RepositoryName;

use super::{ConfigError, Secs};

/// One upstream as written (no variables: entries live in the file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The upstream registry's base URL (`https://registry.example.com`; `http://` only for loopback or when
    /// `insecure_http` is set).
    pub upstream: String,
    /// Where its repositories appear here: `docker.io` serves upstream `library/x` as `docker.io/library/x`; `*`
    /// serves every repository no other entry claims under its own name, as docker's `registry-mirrors` asks.
    pub prefix: String,
    /// Basic credentials for the upstream, also sent to its token service.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The password in a file (a mounted secret) instead.
    pub password_file: Option<PathBuf>,
    /// With `prefix = "*"`: namespaces that stay local (`team` keeps `team/...` for pushes here).
    #[serde(default)]
    pub except: Vec<String>,
    /// Extra PEM certificate authorities the upstream's certificate may chain to.
    pub ca_cert: Option<PathBuf>,
    /// Allow a plain-HTTP upstream (and token service) that is not on loopback.
    #[serde(default)]
    pub insecure_http: bool,
    /// Token services, besides the upstream's own host, that may receive the credentials (`https://auth.docker.io`).
    /// A challenge naming any other realm gets an anonymous token request.
    #[serde(default)]
    pub token_realms: Vec<String>,
    /// How long a tag (and an unversioned trust file such as `timestamp.json`) is served before the upstream is
    /// asked again (default 60 s).
    pub tag_freshness_secs: Option<Secs>,
    /// Time without a byte from the upstream before a transfer is abandoned (default 30 s).
    pub stall_timeout_secs: Option<Secs>,
    /// The largest blob fetched from this upstream, in bytes (default 64 GiB).
    pub max_blob_bytes: Option<u64>,
}

/// Where an entry's repositories appear locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    /// Every repository no other entry claims, under its upstream name, except those under these local
    /// namespaces.
    Any(Vec<String>),
    /// `prefix/<upstream name>`.
    Path(String),
}

/// One upstream, validated.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    pub upstream: Url,
    pub prefix: Prefix,
    pub credentials: Option<(String, String)>,
    /// PEM bytes of extra roots.
    pub ca_cert: Option<Vec<u8>>,
    pub freshness: Duration,
    pub stall_timeout: Duration,
    pub max_blob_bytes: u64,
    /// Token services besides the upstream's host that may receive the credentials.
    pub token_realms: Vec<Url>,
    pub insecure_http: bool,
}

/// Whether `url` is on loopback.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl MirrorSettings {
    /// Whether the upstream's credentials may go to the token service at `realm`: on the upstream's host or listed
    /// in `token_realms`, and over HTTPS (plain HTTP only on loopback or with `insecure_http`).
    pub fn may_send_credentials(&self, realm: &Url) -> bool {
        let transport = match realm.scheme() {
            "https" => true,
            "http" => self.insecure_http || is_loopback(realm),
            _ => false,
        };
        let origin = |u: &Url| (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port_or_known_default());
        let ours = realm.host_str().is_some() && realm.host_str() == self.upstream.host_str();
        let listed = self.token_realms.iter().any(|l| origin(l) == origin(realm));
        transport && (ours || listed)
    }
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid { name: "mirror", reason }
}

impl MirrorConfig {
    pub fn settings(self) -> Result<MirrorSettings, ConfigError> {
        let upstream: Url = self.upstream.parse().map_err(|source| ConfigError::Url {
            name: "mirror.upstream",
            text: self.upstream.clone(),
            source,
        })?;
        let loopback = is_loopback(&upstream);
        match upstream.scheme() {
            "https" => {}
            "http" if loopback || self.insecure_http => {}
            "http" => {
                return Err(invalid(format!(
                    "upstream {upstream} is plain HTTP beyond loopback: use https, or set insecure_http = true"
                )))
            }
            other => return Err(invalid(format!("upstream {upstream}: scheme {other} is not http or https"))),
        }
        if upstream.host().is_none() || upstream.query().is_some() || !upstream.username().is_empty() {
            return Err(invalid(format!("upstream {upstream}: give a host, and no query or user name in the URL")));
        }
        let name_prefix = |p: &str| {
            p.parse::<RepositoryName>()
                .map(|_| p.to_string())
                .map_err(|_| invalid(format!("{p:?} is not a repository-name prefix")))
        };
        let prefix = match self.prefix.trim_matches('/') {
            "*" => Prefix::Any(self.except.iter().map(|p| name_prefix(p.trim_matches('/'))).collect::<Result<_, _>>()?),
            _ if !self.except.is_empty() => return Err(invalid("except goes only with prefix = \"*\"".into())),
            p => {
                p.parse::<RepositoryName>()
                    .map_err(|_| invalid(format!("prefix {p:?} is neither `*` nor a repository-name prefix")))?;
                Prefix::Path(p.to_string())
            }
        };
        let password = match (self.password, self.password_file) {
            (Some(p), None) => Some(p),
            (None, Some(f)) => Some(
                std::fs::read_to_string(&f)
                    .map_err(|source| ConfigError::File { name: "mirror.password_file", path: f, source })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(invalid("give password or password_file, not both".into())),
        };
        let credentials = match (self.username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err(invalid(format!("upstream {upstream}: give both username and password"))),
        };
        let ca_cert = match self.ca_cert {
            Some(path) => Some(std::fs::read(&path).map_err(|source| ConfigError::File {
                name: "mirror.ca_cert",
                path,
                source,
            })?),
            None => None,
        };
        let mut token_realms = Vec::new();
        for r in &self.token_realms {
            let url: Url = r.parse().map_err(|source| ConfigError::Url {
                name: "mirror.token_realms",
                text: r.clone(),
                source,
            })?;
            let plain_ok = self.insecure_http || is_loopback(&url);
            if url.host().is_none() || !(url.scheme() == "https" || url.scheme() == "http" && plain_ok) {
                return Err(invalid(format!("token_realms {r:?}: an https URL (http only with insecure_http)")));
            }
            token_realms.push(url);
        }
        Ok(MirrorSettings {
            upstream,
            prefix,
            credentials,
            ca_cert,
            freshness: self.tag_freshness_secs.map_or(Duration::from_secs(60), Secs::as_std),
            stall_timeout: self
                .stall_timeout_secs
                .map_or(Duration::from_secs(30), Secs::as_std)
                .max(Duration::from_secs(1)),
            max_blob_bytes: self.max_blob_bytes.unwrap_or(64 << 30),
            token_realms,
            insecure_http: self.insecure_http,
        })
    }
}

/// Validates every entry: at most one `*`, and no two entries with the same prefix.
pub fn settings(entries: Vec<MirrorConfig>) -> Result<Vec<MirrorSettings>, ConfigError> {
    let mut out: Vec<MirrorSettings> = Vec::with_capacity(entries.len());
    for e in entries {
        let s = e.settings()?;
        let same = |a: &Prefix, b: &Prefix| matches!((a, b), (Prefix::Any(_), Prefix::Any(_))) || a == b;
        if out.iter().any(|o| same(&o.prefix, &s.prefix)) {
            return Err(invalid(format!("two entries have the prefix {:?}", s.prefix)));
        }
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<MirrorSettings>, String> {
        #[derive(Deserialize)]
        struct F {
            mirror: Vec<MirrorConfig>,
        }
        let f: F = toml::from_str(text).map_err(|e| e.to_string())?;
        settings(f.mirror).map_err(|e| e.to_string())
    }

    #[test]
    fn entries() {
        let m = parse(
            "[[mirror]]\nupstream = \"https://r.example\"\nprefix = \"docker.io\"\ntag_freshness_secs = 5\n\
             [[mirror]]\nupstream = \"http://127.0.0.1:5000\"\nprefix = \"*\"\nusername = \"u\"\npassword = \"p\"\nexcept = [\"team\"]\n",
        )
        .unwrap();
        assert_eq!(m[0].prefix, Prefix::Path("docker.io".into()));
        assert_eq!(m[0].freshness, Duration::from_secs(5));
        assert_eq!(m[1].prefix, Prefix::Any(vec!["team".into()]));
        assert_eq!(m[1].credentials, Some(("u".into(), "p".into())));
    }

    #[test]
    fn refusals() {
        let one = |body: &str| parse(&format!("[[mirror]]\n{body}\n")).unwrap_err();
        assert!(one("upstream = \"http://r.example\"\nprefix = \"*\"").contains("plain HTTP"));
        assert!(one("upstream = \"ftp://r.example\"\nprefix = \"*\"").contains("scheme"));
        assert!(one("upstream = \"https://r.example\"\nprefix = \"Docker.IO\"").contains("prefix"));
        assert!(one("upstream = \"https://r.example\"\nprefix = \"x\"\nusername = \"u\"").contains("both"));
        assert!(one("upstream = \"https://r.example\"\nprefix = \"x\"\nexcept = [\"t\"]").contains("except"));
        let two = parse(
            "[[mirror]]\nupstream = \"https://a.example\"\nprefix = \"*\"\n\
             [[mirror]]\nupstream = \"https://b.example\"\nprefix = \"*\"\n",
        )
        .unwrap_err();
        assert!(two.contains("two entries"), "{two}");
        assert!(one("upstream = \"https://r.example\"\nprefix = \"x\"\ntoken_realms = [\"http://auth.example\"]")
            .contains("token_realms"));
    }

    #[test]
    fn credentials_go_only_to_allowed_realms() {
        let m = parse(
            "[[mirror]]\nupstream = \"https://registry.example:5000\"\nprefix = \"x\"\n\
             token_realms = [\"https://auth.example\"]\n",
        )
        .unwrap();
        let may = |u: &str| m[0].may_send_credentials(&u.parse().unwrap());
        assert!(may("https://registry.example/token"), "the upstream's host, any port");
        assert!(may("https://registry.example:5001/token"));
        assert!(may("https://auth.example/token"), "listed");
        assert!(!may("https://auth.example:8443/token"), "listed origins include the port");
        assert!(!may("https://evil.example/token"), "any other host");
        assert!(!may("http://registry.example/token"), "plain HTTP beyond loopback");
        assert!(!may("ftp://registry.example/token"));
        let local = parse("[[mirror]]\nupstream = \"http://127.0.0.1:5000\"\nprefix = \"*\"\n").unwrap();
        assert!(local[0].may_send_credentials(&"http://127.0.0.1:5000/auth/token".parse().unwrap()));
        assert!(!local[0].may_send_credentials(&"http://127.0.0.2:5000/auth/token".parse().unwrap()));
    }
}
