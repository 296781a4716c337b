//! One upstream registry over HTTP: requests with its credentials, Basic or the Docker token flow (a `401`'s
//! `Bearer` challenge names the token service; a token is fetched per scope and reused until shortly before it
//! expires).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use url::Url;
use wharf_format::challenge::{parse_challenge, Challenge};

use crate::config::mirror::MirrorSettings;

/// Why an upstream did not answer usefully.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("upstream {url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("upstream {url}: {reason}")]
    Fault { url: String, reason: String },
}

impl UpstreamError {
    /// The upstream said the thing does not exist (rather than failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

pub struct Upstream {
    pub base: Url,
    http: reqwest::Client,
    credentials: Option<(String, String)>,
    /// Bearer tokens by scope, with when to stop using them.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// Whether the upstream asked for Basic credentials (then they go with every request).
    basic: std::sync::atomic::AtomicBool,
    pub settings: MirrorSettings,
}

/// Longest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 << 10;

impl Upstream {
    pub fn new(settings: MirrorSettings) -> Result<Upstream, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(settings.stall_timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("wharf-mirror/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_cert {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("ca_cert: {e}"))? {
                b = b.add_root_certificate(cert);
            }
        }
        let http = b.build().map_err(|e| format!("HTTP client for {}: {e}", settings.upstream))?;
        let mut base = settings.upstream.clone();
        base.set_path("");
        Ok(Upstream {
            base,
            http,
            credentials: settings.credentials.clone(),
            tokens: Mutex::new(HashMap::new()),
            basic: std::sync::atomic::AtomicBool::new(false),
            settings,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// Sends `method path` for repository `repo` (the token scope), answering a challenge once. Returns any
    /// response whose status is below 400, or 404 as `Status`; other statuses and network faults are errors.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Response, UpstreamError> {
        let url = self.url(path);
        let scope = format!("repository:{repo}:pull");
        let mut challenged = false;
        loop {
            let mut req = self.http.request(method.clone(), &url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(auth) = self.authorization(&scope) {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req.send().await.map_err(|e| unreachable(&url, &e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                self.answer(resp.headers(), &scope, &url).await?;
                continue;
            }
            if status.as_u16() >= 400 {
                return Err(UpstreamError::Status { url, status });
            }
            return Ok(resp);
        }
    }

    fn authorization(&self, scope: &str) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, until)) = tokens.get(scope) {
            if Instant::now() < *until {
                return HeaderValue::from_str(&format!("Bearer {token}")).ok();
            }
        }
        drop(tokens);
        if self.basic.load(std::sync::atomic::Ordering::Relaxed) {
            let (u, p) = self.credentials.as_ref()?;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            return HeaderValue::from_str(&format!("Basic {b}")).ok();
        }
        None
    }

    /// Meets a `401`'s challenge: Basic (send the credentials from now on) or Bearer (fetch a token for `scope`).
    async fn answer(&self, headers: &HeaderMap, scope: &str, url: &str) -> Result<(), UpstreamError> {
        let fault = |reason: String| UpstreamError::Fault { url: url.to_string(), reason };
        let header = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_challenge)
            .ok_or_else(|| fault("401 without a challenge this mirror can answer".into()))?;
        match header {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(fault("the upstream wants credentials and none are configured".into()));
                }
                self.basic.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Challenge::Bearer { realm, service, scope: _ } => {
                // The token asked for is always this request's own scope, whatever the challenge names: a mirror
                // fetches one repository per request, and its account reaches nothing else through it.
                let (token, lifetime) = self.fetch_token(&realm, service.as_deref(), scope).await?;
                // Keep a margin so a token never expires in flight.
                let until =
                    Instant::now() + lifetime.saturating_sub(Duration::from_secs(10)).max(Duration::from_secs(1));
                let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                if tokens.len() > 10_000 {
                    tokens.clear();
                }
                tokens.insert(scope.to_string(), (token, until));
                Ok(())
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), UpstreamError> {
        let fault = |reason: String| UpstreamError::Fault { url: realm.to_string(), reason };
        let mut url: Url = realm.parse().map_err(|e| fault(format!("token realm: {e}")))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(fault("token realm is not http(s)".into()));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut req = self.http.get(url.clone());
        if let Some((u, p)) = &self.credentials {
            if self.settings.may_send_credentials(&url) {
                req = req.basic_auth(u, Some(p));
            } else {
                tracing::warn!(
                    realm = %url.origin().ascii_serialization(),
                    upstream = %self.base,
                    "token realm is neither on the upstream's host nor in token_realms (or is plain HTTP): asking it without credentials; list it in token_realms to send them"
                );
            }
        }
        let resp = req.send().await.map_err(|e| unreachable(url.as_str(), &e))?;
        if !resp.status().is_success() {
            return Err(fault(format!("token service answered {}", resp.status())));
        }
        let body = read_bounded(resp, MAX_TOKEN_RESPONSE, url.as_str()).await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| fault(format!("token response: {e}")))?;
        let token = t.token.or(t.access_token).ok_or_else(|| fault("token response without a token".into()))?;
        // The token spec's default lifetime is 60 seconds.
        Ok((token, Duration::from_secs(t.expires_in.unwrap_or(60).min(86_400))))
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> UpstreamError {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    UpstreamError::Unreachable { url: url.to_string(), reason }
}

/// Reads a whole response of at most `max` bytes.
pub async fn read_bounded(mut resp: Response, max: usize, url: &str) -> Result<Vec<u8>, UpstreamError> {
    let too_big = || UpstreamError::Fault { url: url.to_string(), reason: format!("response exceeds {max} bytes") };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(url, &e))? {
        if out.len() + chunk.len() > max {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
