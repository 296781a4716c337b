//! Wharf's trust service: two services side by side over one store, one key-encryption key and one clock.
//!
//! - [`tuf`]: a TUF 1.0 repository per image repository, under `/v2/<name>/_tuf/`, for any TUF 1.0 client.
//! - [`v1`]: the Notary v1 API under `/v2/<gun>/_trust/`, for `docker trust`, `DOCKER_CONTENT_TRUST=1` and the
//!   `notary` CLI.
//!
//! A repository may have either or both; they share the sealed server keys' key-encryption key ([`kek`]), the
//! storage and the access rules, never documents. This file only composes the two and routes between them.

mod cache;
mod error;
pub mod kek;
#[cfg(test)]
mod testing;
pub mod tuf;
pub mod v1;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use wharf_format::seal::Kek;
use wharf_format::RepositoryName;
use wharf_storage::{Clock, Metadata};

pub use error::{Error, V1Error};

/// Lifetimes and limits of the trust service.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// Seconds a timestamp is valid (default one day).
    pub timestamp_lifetime: i64,
    /// Seconds a snapshot is valid (default seven days).
    pub snapshot_lifetime: i64,
    /// The largest metadata document accepted, in bytes.
    pub max_metadata_size: usize,
    /// How often expiring metadata is looked for, in seconds.
    pub renew_check_secs: u64,
    /// Seconds a Notary v1 timestamp is valid (default 14 days, as notary-server's).
    pub notary_timestamp_lifetime: i64,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            timestamp_lifetime: 86_400,
            snapshot_lifetime: 7 * 86_400,
            max_metadata_size: 1 << 20,
            renew_check_secs: 60,
            notary_timestamp_lifetime: v1::TIMESTAMP_LIFETIME,
        }
    }
}

/// The state both services share: storage, the key-encryption key, the clock, the settings, and each service's
/// cache of served documents.
pub struct Notary {
    pub meta: Metadata,
    pub kek: Kek,
    pub clock: Box<dyn Clock>,
    pub settings: TrustSettings,
    /// What a publish, a key rotation or a deletion records (audit row, webhook deliveries) in its transaction.
    pub recorder: std::sync::Arc<dyn wharf_storage::Recorder>,
    /// Renewals so far, for the registry's metrics.
    pub counters: Arc<TrustCounters>,
    cache: cache::DocCache<RepositoryName>,
    v1cache: cache::DocCache<wharf_format::notary::Gun>,
}

impl Notary {
    pub fn new(meta: Metadata, kek: Kek, clock: Box<dyn Clock>, settings: TrustSettings) -> Notary {
        Notary {
            meta,
            kek,
            clock,
            settings,
            recorder: std::sync::Arc::new(wharf_storage::meta::Silent),
            counters: Arc::default(),
            cache: cache::DocCache::default(),
            v1cache: cache::DocCache::default(),
        }
    }

    /// What `changes`, made by `origin` now, record (audit rows, webhook deliveries), for the write's transaction.
    pub(crate) fn journal(
        &self,
        origin: &wharf_storage::Origin,
        changes: &[wharf_storage::Change],
    ) -> wharf_storage::Journal {
        let now = self.clock.now();
        let mut journal = wharf_storage::Journal::default();
        for c in changes {
            journal.append(self.recorder.journal(origin, c, now));
        }
        journal
    }

    /// Drops cached TUF 1.0 documents of `repo` after a write.
    pub(crate) fn written(&self, repo: &RepositoryName) {
        self.cache.invalidate(repo);
    }
}

/// Renewals of server-signed metadata (TUF timestamps and snapshots by the schedule, Notary v1 timestamps when a
/// read finds them due) and the renewals that failed. The notary knows nothing of Prometheus: the registry reads
/// these when it is scraped.
#[derive(Debug, Default)]
pub struct TrustCounters {
    pub tuf_renewals: AtomicU64,
    pub tuf_failures: AtomicU64,
    pub v1_renewals: AtomicU64,
    pub v1_failures: AtomicU64,
}

impl TrustCounters {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Who made a request: the [`wharf_storage::Origin`] the registry's edge put in its extensions, or (the notary
/// served without that edge) an anonymous caller of unknown address.
pub(crate) fn origin(req: &axum::extract::Request) -> wharf_storage::Origin {
    req.extensions().get::<wharf_storage::Origin>().cloned().unwrap_or_else(|| wharf_storage::Origin {
        actor: wharf_storage::Actor::Anonymous,
        ..wharf_storage::Origin::system("")
    })
}

/// Whether the path tail after `/v2/` addresses the notary: a TUF 1.0 path (`tuf::route::is_tuf`) or a Notary v1
/// path (`v1::is_v1`).
pub fn is_trust(tail: &str) -> bool {
    tuf::route::is_tuf(tail) || v1::is_v1(tail)
}

/// The notary's router: every request under `/v2/` that `is_trust`, and notary-server's health check.
pub fn app(state: Arc<Notary>) -> Router {
    Router::new()
        .route("/v2/{*rest}", any(dispatch))
        .route(
            "/_notary_server/health",
            axum::routing::get(|| async { ([("content-type", "text/plain; charset=utf-8")], "{}") }),
        )
        .layer(axum::middleware::from_fn(error::log_faults))
        .with_state(state)
}

async fn dispatch(State(n): State<Arc<Notary>>, req: Request) -> Response {
    let tail = req.uri().path().strip_prefix("/v2/").unwrap_or("");
    if v1::is_v1(tail) {
        v1::dispatch(n, req).await
    } else {
        tuf::dispatch(n, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_paths() {
        for (tail, expect) in [
            ("a/_tuf/root.json", true),
            ("a/_trust/tuf/root.json", true),
            ("_trust/changefeed", true),
            ("a/manifests/_tuf", false),
            ("a/_tufx/b", false),
        ] {
            assert_eq!(is_trust(tail), expect, "{tail}");
        }
    }
}
