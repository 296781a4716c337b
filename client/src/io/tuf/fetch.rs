//! Where metadata and targets come from: the [`Fetcher`] trait the updater is written against, and its HTTP
//! implementation over the transport (size-bounded and paced). Tests implement it in memory (`super::sim`).

use std::future::Future;

use bytes::Bytes;

use crate::io::transport::{Transport, TransportError};

/// A repository as the updater sees it. Every answer is at most `max` bytes: an implementation refuses more with
/// [`TransportError::TooLarge`], and answers a file the repository does not have with a status error (404).
pub trait Fetcher {
    /// The metadata file `name` (`timestamp.json`, `3.snapshot.json`, `2.root.json`, `1.role%2Fname.json`).
    fn metadata(&self, name: &str, max: u64) -> impl Future<Output = Result<Bytes, TransportError>> + Send;

    /// The target file at `path` (URL-quoted, relative to the targets base).
    fn target(&self, path: &str, max: u64) -> impl Future<Output = Result<Bytes, TransportError>> + Send;
}

/// Whether a failed fetch of `N.root.json` ends the root chain rather than the refresh: the repository has no
/// such version (404), or will not say (403), as in python-tuf. Anything else (a 5xx, a timeout, an oversized
/// body) is an error: the walk must not stop early on a failure an attacker can provoke cheaply.
pub fn ends_root_chain(e: &TransportError) -> bool {
    matches!(e, TransportError::Status { status: 403 | 404, .. } | TransportError::Denied { status: 403, .. })
}

/// Metadata under `prefix` on one transport (`/v2/<name>/_tuf` for Wharf, empty for a metadata base URL), and
/// targets under another transport's base, if any.
#[derive(Clone)]
pub struct HttpFetcher {
    meta: Transport,
    prefix: String,
    targets: Option<Transport>,
}

impl HttpFetcher {
    /// Metadata at `<origin><prefix>/<name>`; `prefix` has no trailing slash.
    pub fn new(meta: Transport, prefix: impl Into<String>) -> HttpFetcher {
        HttpFetcher { meta, prefix: prefix.into(), targets: None }
    }

    /// Targets at `<base>/<path>`.
    pub fn with_targets(mut self, targets: Transport) -> HttpFetcher {
        self.targets = Some(targets);
        self
    }

    /// The URL a target path is fetched from, for messages.
    pub fn target_url(&self, path: &str) -> String {
        self.targets.as_ref().map_or_else(|| path.to_string(), |t| t.url(&format!("/{path}")))
    }
}

impl Fetcher for HttpFetcher {
    async fn metadata(&self, name: &str, max: u64) -> Result<Bytes, TransportError> {
        self.meta.get_bounded(&format!("{}/{name}", self.prefix), max).await
    }

    async fn target(&self, path: &str, max: u64) -> Result<Bytes, TransportError> {
        // A fetcher for metadata only has no targets: to the caller, the target is not there.
        let missing = || TransportError::Status { url: format!("(no target base)/{path}"), status: 404 };
        let t = self.targets.as_ref().ok_or_else(missing)?;
        t.get_bounded(&format!("/{path}"), max).await
    }
}
