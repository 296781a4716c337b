//! The reconciliation of orphans: bytes in the store that no metadata row accounts for, left by a crash between
//! writing bytes and recording them (or by an old copy that a location made surplus). This pass lists the store,
//! so it is slow and paced (`max_per_sec` keys), and run rarely; it only removes objects older than `min_age`, so
//! that an upload between its commit and its record is never mistaken for an orphan. It also puts back into the
//! collector's queue every link and blob that a full scan of the metadata finds unreferenced (as the migration
//! that made the queue seeded it), so that a candidate the queue ever missed is collected by the next sweep.

use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::path::Path;
use wharf_format::Digest;

use super::Collector;
use crate::upload::{row, UploadId};
use crate::{Result, UnixTime};

/// What a reconciliation found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Objects listed.
    pub listed: u64,
    /// Orphans removed.
    pub orphans: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Unreferenced links and unlinked blobs the full scan put back into the queue (already queued: not counted).
    pub requeued: u64,
    pub millis: u64,
}

/// What a stored key is, by the layout of `paths`.
pub(crate) enum Key {
    /// `blobs/<algorithm>/<xx>/<hex>`.
    Content(Digest),
    /// `blobs/uploaded/<id>`: a multipart upload completed in place.
    Uploaded(UploadId),
    /// `uploads/<id>/...`: a session's bytes.
    Session(UploadId),
    Other,
}

pub(crate) fn classify(key: &Path) -> Key {
    let parts: Vec<&str> = key.as_ref().split('/').collect();
    match parts.as_slice() {
        ["blobs", "uploaded", id] => id.parse().map_or(Key::Other, Key::Uploaded),
        ["blobs", alg, prefix, hex] if hex.starts_with(prefix) => {
            format!("{alg}:{hex}").parse().map_or(Key::Other, Key::Content)
        }
        ["uploads", id, ..] => id.parse().map_or(Key::Other, Key::Session),
        _ => Key::Other,
    }
}

impl Collector {
    /// Lists the store and removes objects older than `now - min_age` that no row accounts for, at most
    /// `max_per_sec` keys a second.
    pub async fn reconcile(&self, now: UnixTime, min_age: i64, max_per_sec: u32) -> Result<Reconciled> {
        let started = Instant::now();
        let mut out = Reconciled { requeued: self.meta.collect().requeue_all().await?, ..Reconciled::default() };
        if out.requeued > 0 {
            tracing::info!(requeued = out.requeued, "queued unreferenced links or blobs a full scan found");
        }
        let pace = Duration::from_secs(1) / max_per_sec.max(1);
        // A local store's sessions are files under a lock: the upload reaper removes those (sweep_orphans).
        let prefixes: &[&str] = if self.blobs.local_root().is_some() { &["blobs"] } else { &["blobs", "uploads"] };
        for prefix in prefixes {
            let mut listing = self.blobs.object_store().list(Some(&Path::from(*prefix)));
            while let Some(item) = listing.next().await {
                let meta = item?;
                out.listed += 1;
                tokio::time::sleep(pace).await;
                if meta.last_modified.timestamp() > now - min_age {
                    continue;
                }
                if self.orphaned(&meta.location, meta.size, now).await? {
                    match self.blobs.object_store().delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            out.orphans += 1;
                            out.bytes += meta.size;
                            tracing::info!(key = %meta.location, size = meta.size, "removed an orphaned object");
                        }
                        Err(e) => tracing::warn!(key = %meta.location, error = %e, "removing an orphaned object"),
                    }
                    if let Key::Content(d) = classify(&meta.location) {
                        self.meta.collect().forget_blobs(&[&d]).await?;
                    }
                }
            }
        }
        out.millis = started.elapsed().as_millis() as u64;
        Ok(out)
    }

    /// Whether the object at `key` is an orphan; a content-addressed one is then claimed by a tombstone, so that
    /// no upload links it while it goes.
    async fn orphaned(&self, key: &Path, size: u64, now: UnixTime) -> Result<bool> {
        Ok(match classify(key) {
            Key::Content(d) => match self.meta.collect().blob_row(&d).await? {
                None => self.meta.collect().claim_orphan(&d, size, now).await?,
                // The blob lies elsewhere: this copy is surplus, and nothing reads it.
                Some(r) => r.location.is_some() && !r.deleting,
            },
            Key::Uploaded(id) => {
                !self.meta.collect().location_recorded(key.as_ref()).await?
                    && row::load(&self.meta, id.as_str()).await?.is_none()
            }
            Key::Session(id) => row::load(&self.meta, id.as_str()).await?.is_none(),
            Key::Other => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_the_layout() {
        let hex = "ab".to_string() + &"0".repeat(62);
        assert!(matches!(classify(&Path::from(format!("blobs/sha256/ab/{hex}"))), Key::Content(_)));
        assert!(matches!(classify(&Path::from(format!("blobs/sha256/cd/{hex}"))), Key::Other));
        assert!(matches!(classify(&Path::from("blobs/uploaded/0123456789abcdef0123456789abcdef")), Key::Uploaded(_)));
        assert!(matches!(classify(&Path::from("blobs/uploaded/../x")), Key::Other));
        assert!(matches!(classify(&Path::from("uploads/0123456789abcdef0123456789abcdef/tail-x")), Key::Session(_)));
        assert!(matches!(classify(&Path::from("blobs/sha256/ab")), Key::Other));
    }
}
