//! HTTP transport for registries and trust services: HTTPS (rustls) by default; plain HTTP only for loopback
//! hosts, as docker does, and for hosts the caller names insecure. Every download is size-bounded, and every
//! response must keep a minimum pace ([`SpeedLimit`]): a source that stalls or trickles (the TUF specification's
//! slow retrieval attack) fails like any other failing source, so the caller moves on to the next one.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use url::Url;

use crate::io::source::Failure;

// Messages never repeat their `#[source]`: callers print the chain (`{:#}`), which names each cause once.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid registry address {0:?}")]
    BadHost(String),
    #[error("could not reach {url}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: access denied (HTTP {status}): log in with `wharf login HOST`, or ask for a grant")]
    Denied { url: String, status: u16 },
    #[error("{url}: more than the {max}-byte limit")]
    TooLarge { url: String, max: u64 },
    #[error("{url}: body ended early")]
    Body {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: under {min_bytes_per_sec} bytes/s for {secs} s (stalled or trickling source)")]
    TooSlow { url: String, min_bytes_per_sec: u64, secs: u64 },
    #[error("authenticating to {host}: {reason}")]
    Auth { host: String, reason: String },
    /// The token service refused the credentials (or their absence), or throttled the login.
    #[error("authenticating to {host}: access denied: {reason}")]
    LoginRefused { host: String, reason: String },
    #[error("authenticating to {host}: reading the stored credentials")]
    Credentials {
        host: String,
        #[source]
        source: crate::io::credentials::CredentialsError,
    },
    #[error("authenticating to {host}: reading the token service's answer")]
    TokenBody {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("CA file {}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {}: not a PEM certificate bundle", path.display())]
    CaPem {
        path: std::path::PathBuf,
        #[source]
        source: reqwest::Error,
    },
}

/// An error and each of its causes, once each: for messages that hold another error as text (a list of failed
/// sources, a log field).
pub fn report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

impl TransportError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, TransportError::Status { status: 404, .. })
    }

    /// The class of this failure (what a pull reports when every source failed, and the exit code).
    pub fn failure(&self) -> Failure {
        match self {
            TransportError::Connect { .. } | TransportError::Body { .. } | TransportError::TooSlow { .. } => {
                Failure::Unreachable
            }
            TransportError::Status { status: 500 | 502 | 503 | 504, .. } => Failure::Unreachable,
            TransportError::Denied { .. } | TransportError::LoginRefused { .. } => Failure::Denied,
            // More than the size limit of what is being verified (signed lengths, metadata limits).
            TransportError::TooLarge { .. } => Failure::Verification,
            TransportError::BadHost(_) | TransportError::Status { .. } | TransportError::Auth { .. } => Failure::Other,
            TransportError::Credentials { .. }
            | TransportError::TokenBody { .. }
            | TransportError::CaFile { .. }
            | TransportError::CaPem { .. } => Failure::Other,
        }
    }
}

/// The slowest pace a download may keep: fewer than `min_bytes_per_sec` on average over any `window` (or no
/// answer at all within `window`) ends it. Default: 1 KiB/s over 30 s, as curl's `--speed-limit`/`--speed-time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeedLimit {
    pub min_bytes_per_sec: u64,
    pub window: Duration,
}

impl Default for SpeedLimit {
    fn default() -> Self {
        SpeedLimit { min_bytes_per_sec: 1024, window: Duration::from_secs(30) }
    }
}

/// A registry (or mirror) at one origin.
#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    origin: Url,
    speed: SpeedLimit,
    auth: std::sync::Arc<crate::io::auth::Session>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("origin", &self.origin.as_str()).finish()
    }
}

/// CA files trusted for every registry besides the system roots (`--ca-cert`), set once at start-up.
static EXTRA_CA: std::sync::OnceLock<Vec<std::path::PathBuf>> = std::sync::OnceLock::new();

/// Trusts the CA certificates in `files` (PEM) for every registry this process talks to.
pub fn trust_ca_files(files: Vec<std::path::PathBuf>) {
    let _ = EXTRA_CA.set(files);
}

/// The CA files for `host` (`HOST[:PORT]`): `--ca-cert`, then `*.crt` in docker's `certs.d/HOST` directories
/// (`/etc/docker/certs.d`, and `certs.d` in the user's docker configuration directory).
pub fn ca_files(host: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = EXTRA_CA.get().cloned().unwrap_or_default();
    let dirs =
        [std::path::PathBuf::from("/etc/docker/certs.d"), crate::io::credentials::docker_config_dir().join("certs.d")];
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d.join(host)) else { continue };
        let mut crts: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        crts.sort();
        out.extend(crts);
    }
    out
}

/// Whether `host` (without port) is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn client(origin: &Url, pool: bool) -> Result<reqwest::Client, TransportError> {
    let mut b = reqwest::Client::builder().user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")));
    if !pool {
        b = b.pool_max_idle_per_host(0);
    }
    for f in ca_files(&host_port(origin)) {
        let pem = std::fs::read(&f).map_err(|source| TransportError::CaFile { path: f.clone(), source })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|source| TransportError::CaPem { path: f.clone(), source })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| TransportError::Connect { url: origin.to_string(), source: e.without_url() })
}

/// `HOST[:PORT]` of a URL, as docker names registries.
fn host_port(u: &Url) -> String {
    let host = u.host_str().unwrap_or("");
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

impl Transport {
    /// `host` is `HOST[:PORT]`; plain HTTP is used for loopback hosts and for those in `insecure`.
    pub fn new(host: &str, insecure: &[String]) -> Result<Transport, TransportError> {
        let name =
            host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        // A loopback registry is reached over HTTPS when a CA is configured for it (as a TLS test setup has).
        let plain = (is_loopback(name) && ca_files(host).is_empty()) || insecure.iter().any(|i| i == host || i == name);
        let scheme = if plain { "http" } else { "https" };
        let origin = Url::parse(&format!("{scheme}://{host}/")).map_err(|_| TransportError::BadHost(host.into()))?;
        Transport::build(origin, true)
    }

    fn build(origin: Url, pool: bool) -> Result<Transport, TransportError> {
        let auth = std::sync::Arc::new(crate::io::auth::Session::new(&host_port(&origin)));
        Ok(Transport { http: client(&origin, pool)?, origin, speed: SpeedLimit::default(), auth })
    }

    /// A transport for an explicit base URL (a mirror, or a test server).
    pub fn with_origin(origin: Url) -> Result<Transport, TransportError> {
        Transport::build(origin, true)
    }

    /// A transport that opens a fresh connection for each request and keeps none idle, for servers that answer
    /// one request at a time.
    pub fn one_at_a_time(origin: Url) -> Result<Transport, TransportError> {
        Transport::build(origin, false)
    }

    /// Declares scopes (`repository:NAME:pull,push`) to ask for with the first token.
    pub async fn want_scopes(&self, scopes: &[String]) {
        self.auth.want(scopes).await;
    }

    /// Sends a request built by `make`, with authorization; after a `401` that names a new challenge or scope,
    /// fetches a token and sends it once more. For requests whose body can be built again.
    pub async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> Result<reqwest::Response, TransportError> {
        let resp = self.send_once(make()).await?;
        if resp.status().as_u16() == 401 {
            if let Some(c) = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()) {
                if self.auth.challenged(c).await {
                    return self.send_once(make()).await;
                }
            }
        }
        Ok(resp)
    }

    /// Sends `req` once with the current authorization (for streamed bodies, which cannot be sent twice).
    pub async fn send_once(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, TransportError> {
        let req = match self.auth.header(&self.http, &self.origin).await? {
            Some(h) => req.header("authorization", h),
            None => req,
        };
        let (client, req) = req.build_split();
        let req = req.map_err(|e| TransportError::Connect { url: self.origin.to_string(), source: e.without_url() })?;
        let url = req.url().to_string();
        client.execute(req).await.map_err(|e| TransportError::Connect { url, source: e.without_url() })
    }

    /// Checks `user` and `password` with the registry and returns what `wharf login` stores.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
    ) -> Result<crate::io::credentials::Credentials, TransportError> {
        crate::io::auth::login(&self.http, &self.origin, &host_port(&self.origin), user, password).await
    }

    /// The same transport with another pace limit.
    pub fn with_speed_limit(mut self, speed: SpeedLimit) -> Transport {
        self.speed = speed;
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin.as_str().trim_end_matches('/'), path)
    }

    /// GETs `path` with extra headers; any non-success status is an error. The answer's headers must arrive
    /// within the pace window.
    pub async fn get(&self, path: &str, headers: &[(&str, String)]) -> Result<reqwest::Response, TransportError> {
        let url = self.url(path);
        let make = || {
            let mut req = self.http.get(&url);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            req
        };
        let resp = match tokio::time::timeout(self.speed.window, self.send(make)).await {
            Ok(r) => r?,
            Err(_) => return Err(self.too_slow(&url)),
        };
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(TransportError::Denied { url, status });
        }
        if !resp.status().is_success() {
            return Err(TransportError::Status { url, status });
        }
        Ok(resp)
    }

    /// The underlying HTTP client, for requests the helpers here do not cover (uploads).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The origin, for messages.
    pub fn origin(&self) -> &str {
        self.origin.as_str()
    }

    /// GETs `path`, refusing bodies larger than `max` bytes (checked as the bytes arrive, not only by header).
    pub async fn get_bounded(&self, path: &str, max: u64) -> Result<Bytes, TransportError> {
        let resp = self.get(path, &[]).await?;
        self.read_bounded(resp, &self.url(path), max).await
    }

    /// Reads a response body, refusing more than `max` bytes (by header, and as the bytes arrive) and a pace
    /// under the limit.
    pub async fn read_bounded(&self, resp: reqwest::Response, url: &str, max: u64) -> Result<Bytes, TransportError> {
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(TransportError::TooLarge { url: url.into(), max });
        }
        let mut out = Vec::new();
        let mut body = self.paced(resp, url);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if out.len() as u64 + chunk.len() as u64 > max {
                return Err(TransportError::TooLarge { url: url.into(), max });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    /// The body of `resp` as chunks that fail with [`TransportError::TooSlow`] when the pace drops under the limit,
    /// and with [`TransportError::Body`] when the connection breaks.
    pub fn paced(&self, resp: reqwest::Response, url: &str) -> Paced<impl Stream<Item = reqwest::Result<Bytes>>> {
        Paced {
            stream: Box::pin(resp.bytes_stream()),
            limit: self.speed,
            url: url.into(),
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn too_slow(&self, url: &str) -> TransportError {
        TransportError::TooSlow {
            url: url.into(),
            min_bytes_per_sec: self.speed.min_bytes_per_sec,
            secs: self.speed.window.as_secs(),
        }
    }
}

/// A response body read under a [`SpeedLimit`]: measured over consecutive windows.
pub struct Paced<S> {
    stream: std::pin::Pin<Box<S>>,
    limit: SpeedLimit,
    url: String,
    started: Instant,
    bytes: u64,
}

impl<S: Stream<Item = reqwest::Result<Bytes>>> Paced<S> {
    pub async fn next(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            let deadline = self.started + self.limit.window;
            if Instant::now() >= deadline {
                let needed = self.limit.min_bytes_per_sec.saturating_mul(self.limit.window.as_secs().max(1));
                if self.bytes < needed {
                    return Some(Err(TransportError::TooSlow {
                        url: self.url.clone(),
                        min_bytes_per_sec: self.limit.min_bytes_per_sec,
                        secs: self.limit.window.as_secs(),
                    }));
                }
                self.started = Instant::now();
                self.bytes = 0;
                continue;
            }
            match tokio::time::timeout_at(deadline.into(), self.stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.bytes += chunk.len() as u64;
                    return Some(Ok(chunk));
                }
                Ok(Some(Err(e))) => {
                    return Some(Err(TransportError::Body { url: self.url.clone(), source: e.without_url() }))
                }
                Ok(None) => return None,
                // The window ended with the stream silent: judged at the top of the loop.
                Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_choice() {
        assert!(Transport::new("127.0.0.1:5000", &[]).unwrap().url("/v2/").starts_with("http://"));
        assert!(Transport::new("localhost:5000", &[]).unwrap().url("/v2/").starts_with("http://"));
        assert!(Transport::new("[::1]:5000", &[]).unwrap().url("/v2/").starts_with("http://"));
        assert!(Transport::new("registry.example:5000", &[]).unwrap().url("/v2/").starts_with("https://"));
        let insecure = vec!["registry.example:5000".to_string()];
        assert!(Transport::new("registry.example:5000", &insecure).unwrap().url("/v2/").starts_with("http://"));
    }

    #[test]
    fn failure_classes() {
        let url = || "http://r/v2/".to_string();
        let rows = [
            (TransportError::Status { url: url(), status: 404 }, Failure::Other),
            (TransportError::Status { url: url(), status: 503 }, Failure::Unreachable),
            (TransportError::TooSlow { url: url(), min_bytes_per_sec: 1, secs: 1 }, Failure::Unreachable),
            (TransportError::Denied { url: url(), status: 401 }, Failure::Denied),
            (TransportError::Denied { url: url(), status: 403 }, Failure::Denied),
            (TransportError::LoginRefused { host: "r".into(), reason: "no".into() }, Failure::Denied),
            (TransportError::Auth { host: "r".into(), reason: "not JSON".into() }, Failure::Other),
            (TransportError::TooLarge { url: url(), max: 1 }, Failure::Verification),
            (TransportError::BadHost("r r".into()), Failure::Other),
        ];
        for (e, want) in rows {
            assert_eq!(e.failure(), want, "{e}");
        }
    }
}
