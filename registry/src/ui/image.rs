//! What the tag list shows of an image or index: its size, platforms and creation time, from the manifest stored
//! in SQL and its image config read through the blob store.
//!
//! Configs are read bounded ([`MAX_CONFIG`]) and digest-checked, and their summaries kept in a small process-wide
//! cache keyed by digest: content-addressed, so never stale, and a page reads only the configs it has not seen.
//! A config whose bytes are not a config shows as unknown, and that is cached too (its digest names those bytes);
//! one that could not be read (a store failure) shows as unknown and is read again next time. A page reads at most
//! [`PAGE_BUDGET`] bytes of configs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use futures::StreamExt;
use serde::Deserialize;
use wharf_format::{Digest, RepositoryName};

use crate::Registry;

/// The largest config read (the ones Docker and BuildKit write are a few KiB).
pub const MAX_CONFIG: u64 = 1 << 20;
/// The most config summaries kept.
const CACHE_ENTRIES: usize = 4096;
/// The most config bytes one page reads (what it has not seen before): the rest show as unknown until a later
/// view, so a repository of large configs cannot make each anonymous view read megabytes.
pub const PAGE_BUDGET: u64 = 4 << 20;

/// What the list shows of an image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSummary {
    /// `os/architecture[/variant]`, when the config names them.
    pub platform: Option<String>,
    /// `created`, Unix seconds.
    pub created: Option<i64>,
}

/// The parts of a manifest or index the list reads (anything else is ignored; a manifest the registry accepted
/// parses, and one that does not shows nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture[/variant]`; `None` for BuildKit's attestation entries (`unknown/unknown`) and blanks.
    pub fn text(&self) -> Option<String> {
        if self.os.is_empty() || self.architecture.is_empty() || self.os == "unknown" {
            return None;
        }
        Some(match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        })
    }
}

impl Doc {
    pub fn parse(content: &[u8]) -> Doc {
        serde_json::from_slice(content).unwrap_or_default()
    }

    /// Whether this is an index (or a Docker manifest list).
    pub fn is_index(&self) -> bool {
        !self.manifests.is_empty()
            || self.media_type.as_deref().is_some_and(|m| m.contains("index") || m.contains("list"))
    }

    /// The config's digest, if it has one that parses.
    pub fn config_digest(&self) -> Option<Digest> {
        self.config.as_ref().and_then(|c| c.digest.parse().ok())
    }

    /// The blobs an image pulls (config and layers), by digest, with their sizes.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, u64)> {
        self.config.iter().chain(&self.layers).map(|d| (d.digest.as_str(), d.size))
    }

    /// The platforms an index lists, in order, without repeats.
    pub fn platforms(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.manifests.iter().filter_map(|m| m.platform.as_ref()?.text()).filter(|p| seen.insert(p.clone())).collect()
    }
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
}

/// Summarises an image config's bytes; `None` if they are not a config.
pub fn summarize(bytes: &[u8]) -> Option<ConfigSummary> {
    let c: Config = serde_json::from_slice(bytes).ok()?;
    let created = c.created.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.timestamp());
    let platform = Platform { os: c.os, architecture: c.architecture, variant: c.variant }.text();
    Some(ConfigSummary { platform, created })
}

static CACHE: LazyLock<Mutex<HashMap<Digest, Arc<ConfigSummary>>>> = LazyLock::new(Default::default);

fn cached(d: &Digest) -> Option<Arc<ConfigSummary>> {
    CACHE.lock().ok()?.get(d).cloned()
}

fn remember(d: Digest, s: Arc<ConfigSummary>) {
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= CACHE_ENTRIES {
            // Bounded, not clever: any entry may go (a page reads it again at worst).
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(&k);
            }
        }
        cache.insert(d, s);
    }
}

/// The summaries of `configs` (of `repo`): those cached, and the rest read through the blob store, with one SQL
/// statement for their sizes and locations.
pub async fn configs(st: &Registry, repo: &RepositoryName, configs: &[Digest]) -> HashMap<Digest, Arc<ConfigSummary>> {
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for d in configs {
        match cached(d) {
            Some(s) => {
                out.insert(d.clone(), s);
            }
            None if !missing.contains(d) => missing.push(d.clone()),
            None => {}
        }
    }
    if missing.is_empty() {
        return out;
    }
    let linked = match st.meta.ui().blobs(repo, &missing).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, repository = %repo, "reading config locations for the tag page");
            return out;
        }
    };
    let mut budget = PAGE_BUDGET;
    let within = linked.into_iter().filter(|b| b.size <= MAX_CONFIG).filter(|b| {
        let fits = b.size <= budget;
        budget = budget.saturating_sub(b.size);
        fits
    });
    let reads = futures::stream::iter(within.collect::<Vec<_>>())
        .map(|b| async move {
            let bytes = read_config(st, &b.digest, b.location.as_deref()).await.ok();
            (b.digest, bytes)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for (d, bytes) in reads {
        let Some(bytes) = bytes else {
            tracing::warn!(repository = %repo, config = %d, "an image config could not be read");
            continue;
        };
        // Bytes that match their digest but are no config stay no config: remembered as unknown.
        let s = Arc::new(summarize(&bytes).unwrap_or(ConfigSummary { platform: None, created: None }));
        remember(d.clone(), s.clone());
        out.insert(d, s);
    }
    out
}

/// Why [`read_config`] returned no bytes.
#[derive(Debug)]
pub enum Unread {
    /// The store holds no such blob.
    Unknown,
    /// More than [`MAX_CONFIG`] bytes (whatever the store said the size was: the read stops past the limit).
    TooLarge,
    /// The bytes do not match their digest.
    Mismatch,
    /// The store failed.
    Store(wharf_storage::Error),
}

/// A config blob's bytes (the tag list's and the manifest page's one reader): at most [`MAX_CONFIG`], and only if
/// they match the digest.
pub async fn read_config(st: &Registry, digest: &Digest, location: Option<&str>) -> Result<Vec<u8>, Unread> {
    let mut r = match st.blobs.open_at(digest, location, None).await {
        Ok(r) => r,
        Err(wharf_storage::Error::BlobUnknown) => return Err(Unread::Unknown),
        Err(e) => return Err(Unread::Store(e)),
    };
    let mut out = Vec::new();
    while let Some(chunk) = r.body.next().await {
        let chunk = chunk.map_err(Unread::Store)?;
        if (out.len() + chunk.len()) as u64 > MAX_CONFIG {
            return Err(Unread::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    if digest.matches(&out) {
        Ok(out)
    } else {
        Err(Unread::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_summaries() {
        let check = |json: &str, platform: Option<&str>, created: Option<i64>| {
            let s = summarize(json.as_bytes());
            assert_eq!(s, Some(ConfigSummary { platform: platform.map(str::to_owned), created }), "{json}");
        };
        check(
            r#"{"os":"linux","architecture":"amd64","created":"1970-01-01T00:01:00Z"}"#,
            Some("linux/amd64"),
            Some(60),
        );
        check(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#, Some("linux/arm64/v8"), None);
        check(r#"{"os":"linux","architecture":"arm","variant":"","created":"bad"}"#, Some("linux/arm"), None);
        check(r#"{"architecture":"amd64"}"#, None, None);
        assert_eq!(summarize(b"not json"), None);
    }

    #[test]
    fn index_platforms() {
        let doc = Doc::parse(
            br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:c","size":1,"platform":{"os":"unknown","architecture":"unknown"}},
            {"digest":"sha256:d","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#,
        );
        assert!(doc.is_index());
        assert_eq!(doc.platforms(), ["linux/amd64", "linux/arm64/v8"]);
        let image =
            Doc::parse(br#"{"config":{"digest":"sha256:c","size":3},"layers":[{"digest":"sha256:l","size":5}]}"#);
        assert!(!image.is_index());
        assert_eq!(image.blobs().map(|(_, s)| s).sum::<u64>(), 8);
    }
}
