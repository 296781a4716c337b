//! `[notifications]` and `[[notifications.endpoint]]`: the file's shape and its validation into
//! [`NotifySettings`]. A bad URL, header, pattern or action, or two endpoints with one name, stop the start.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::settings::whole_secs;
use super::{ConfigError, Secs};
use crate::ops::notify::{Action, Endpoint, Masked, NotifySettings};

/// Webhooks (see README "Webhooks"). The section's keys are the endpoints' defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// An endpoint's request timeout, connecting included (default 10 s). `WHARF_NOTIFICATIONS_TIMEOUT_SECS`.
    pub timeout_secs: Option<Secs>,
    /// The first retry's delay after a failed delivery (default 1 s), doubled per failure.
    /// `WHARF_NOTIFICATIONS_BACKOFF_MIN_SECS`.
    pub backoff_min_secs: Option<Secs>,
    /// The longest delay between retries (default 5 min). `WHARF_NOTIFICATIONS_BACKOFF_MAX_SECS`.
    pub backoff_max_secs: Option<Secs>,
    /// Events in one request at most (default 10). `WHARF_NOTIFICATIONS_BATCH`.
    pub batch: Option<usize>,
    /// How long a replica holds an endpoint's delivery lease (default 30 s): a dead replica's endpoints are taken
    /// over after at most this. At least every endpoint's timeout plus 3 s. `WHARF_NOTIFICATIONS_LEASE_SECS`.
    pub lease_secs: Option<Secs>,
    /// The endpoints (file only; no variable).
    #[serde(default)]
    pub endpoint: Vec<EndpointConfig>,
}

/// One `[[notifications.endpoint]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub actions: Option<Vec<String>>,
    #[serde(default)]
    pub repositories: Vec<String>,
    pub timeout_secs: Option<Secs>,
    pub backoff_min_secs: Option<Secs>,
    pub backoff_max_secs: Option<Secs>,
    pub batch: Option<usize>,
}

impl NotificationsConfig {
    /// The validated settings; `addr` and `tls` are the server's, for the events' `source` and `target.url`.
    pub fn settings(self, addr: SocketAddr, tls: bool) -> Result<NotifySettings, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let defaults = Defaults {
            timeout: self.timeout_secs.map_or(std::time::Duration::from_secs(10), Secs::as_std),
            backoff_min: whole_secs("notifications.backoff_min_secs", self.backoff_min_secs, 1)?,
            backoff_max: whole_secs("notifications.backoff_max_secs", self.backoff_max_secs, 300)?,
            batch: self.batch.unwrap_or(10),
        };
        let lease_secs = whole_secs("notifications.lease_secs", self.lease_secs, 30)?;
        let mut names = HashSet::new();
        let mut endpoints = Vec::new();
        for c in self.endpoint {
            if !names.insert(c.name.clone()) {
                return Err(invalid("notifications.endpoint", format!("two endpoints are named {:?}", c.name)));
            }
            let e = endpoint(c, &defaults)?;
            if lease_secs < e.timeout.as_secs() as i64 + 3 {
                return Err(invalid(
                    "notifications.lease_secs",
                    format!("{lease_secs} s: at least endpoint {:?}'s timeout plus 3 s", e.name),
                ));
            }
            endpoints.push(e);
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| addr.ip().to_string());
        Ok(NotifySettings {
            endpoints,
            lease_secs,
            // Distribution's form, host name and port; with port 0 (picked at the start), the host name alone.
            source_addr: if addr.port() == 0 { host } else { format!("{host}:{}", addr.port()) },
            tls,
            ..NotifySettings::default()
        })
    }
}

struct Defaults {
    timeout: std::time::Duration,
    backoff_min: i64,
    backoff_max: i64,
    batch: usize,
}

fn endpoint(c: EndpointConfig, d: &Defaults) -> Result<Endpoint, ConfigError> {
    let name = c.name;
    let invalid = |reason: String| ConfigError::Invalid { name: "notifications.endpoint", reason };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(invalid(format!("name {name:?}: letters, digits, `-`, `_` and `.` only")));
    }
    let url = url::Url::parse(&c.url).map_err(|source| ConfigError::Url {
        name: "notifications.endpoint.url",
        text: c.url.clone(),
        source,
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!("endpoint {name}: the URL must be http:// or https:// with a host")));
    }
    let mut headers = Vec::new();
    for (k, v) in c.headers {
        let key = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| invalid(format!("endpoint {name}: {k:?} is not a header name")))?;
        let value = HeaderValue::from_str(&v)
            .map_err(|_| invalid(format!("endpoint {name}: header {k}'s value is not a header value")))?;
        headers.push((key, Masked(value)));
    }
    let secret = match (c.secret, c.secret_file) {
        (Some(s), None) => Some(s),
        (None, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .map_err(|source| ConfigError::File { name: "notifications.endpoint.secret_file", path: f, source })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(invalid(format!("endpoint {name}: give secret or secret_file, not both"))),
    };
    if secret.as_ref().is_some_and(String::is_empty) {
        return Err(invalid(format!("endpoint {name}: the secret is empty")));
    }
    let actions = match c.actions {
        None => Action::defaults(),
        Some(list) => list
            .iter()
            .map(|a| a.parse())
            .collect::<Result<Vec<Action>, _>>()
            .map_err(|e| invalid(format!("{name}: {e}")))?,
    };
    let repositories = c
        .repositories
        .iter()
        .map(|p| p.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("endpoint {name}: {e}")))?;
    let timeout = c.timeout_secs.map_or(d.timeout, Secs::as_std);
    if timeout.is_zero() || timeout > std::time::Duration::from_secs(300) {
        return Err(invalid(format!("endpoint {name}: timeout_secs {timeout:?}: more than 0, at most 5 minutes")));
    }
    let backoff_min = whole_secs("notifications.endpoint.backoff_min_secs", c.backoff_min_secs, d.backoff_min)?;
    let backoff_max = whole_secs("notifications.endpoint.backoff_max_secs", c.backoff_max_secs, d.backoff_max)?;
    if backoff_min < 1 || backoff_max < backoff_min {
        return Err(invalid(format!("endpoint {name}: backoff: at least 1 s, and the maximum at least the minimum")));
    }
    let batch = c.batch.unwrap_or(d.batch);
    if !(1..=100).contains(&batch) {
        return Err(invalid(format!("endpoint {name}: batch {batch}: between 1 and 100")));
    }
    Ok(Endpoint {
        name,
        url: Masked(url),
        headers,
        secret: secret.map(|s| Masked(s.into_bytes())),
        actions,
        repositories,
        timeout,
        backoff_min_secs: backoff_min,
        backoff_max_secs: backoff_max,
        batch,
    })
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
