//! HTTP transport for registries and trust services: HTTPS (rustls) by default; plain HTTP only for loopback
//! hosts, as docker does, and for hosts the caller names insecure. Every download is size-bounded.

use bytes::Bytes;
use futures::StreamExt;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid registry address {0:?}")]
    BadHost(String),
    #[error("could not reach {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: more than the {max}-byte limit")]
    TooLarge { url: String, max: u64 },
    #[error("{url}: body ended early: {source}")]
    Body {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl TransportError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, TransportError::Status { status: 404, .. })
    }
}

/// A registry (or mirror) at one origin.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    origin: Url,
}

/// Whether `host` (without port) is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Transport {
    /// `host` is `HOST[:PORT]`; plain HTTP is used for loopback hosts and for those in `insecure`.
    pub fn new(host: &str, insecure: &[String]) -> Result<Transport, TransportError> {
        let name =
            host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        let scheme =
            if is_loopback(name) || insecure.iter().any(|i| i == host || i == name) { "http" } else { "https" };
        let origin = Url::parse(&format!("{scheme}://{host}/")).map_err(|_| TransportError::BadHost(host.into()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Connect { url: origin.to_string(), source: e })?;
        Ok(Transport { http, origin })
    }

    /// A transport for an explicit base URL (a mirror, or a test server).
    pub fn with_origin(origin: Url) -> Transport {
        Transport { http: reqwest::Client::new(), origin }
    }

    /// A transport that opens a fresh connection for each request and keeps none idle, for servers that answer
    /// one request at a time.
    pub fn one_at_a_time(origin: Url) -> Result<Transport, TransportError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| TransportError::Connect { url: origin.to_string(), source: e })?;
        Ok(Transport { http, origin })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin.as_str().trim_end_matches('/'), path)
    }

    /// GETs `path` with extra headers; any non-success status is an error.
    pub async fn get(&self, path: &str, headers: &[(&str, String)]) -> Result<reqwest::Response, TransportError> {
        let url = self.url(path);
        let mut req = self.http.get(&url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.map_err(|e| TransportError::Connect { url: url.clone(), source: e })?;
        if !resp.status().is_success() {
            return Err(TransportError::Status { url, status: resp.status().as_u16() });
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
        let url = self.url(path);
        let resp =
            self.http.get(&url).send().await.map_err(|e| TransportError::Connect { url: url.clone(), source: e })?;
        if !resp.status().is_success() {
            return Err(TransportError::Status { url, status: resp.status().as_u16() });
        }
        read_bounded(resp, &url, max).await
    }
}

/// Reads a response body, refusing more than `max` bytes (by header, and as the bytes arrive).
pub async fn read_bounded(resp: reqwest::Response, url: &str, max: u64) -> Result<Bytes, TransportError> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(TransportError::TooLarge { url: url.into(), max });
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TransportError::Body { url: url.into(), source: e })?;
        if out.len() as u64 + chunk.len() as u64 > max {
            return Err(TransportError::TooLarge { url: url.into(), max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
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
}
