//! Garbage collection of blob bytes, online, from the metadata alone.
//!
//! A sweep has three steps, each a page of rows at a time so that no transaction holds the writer for long:
//! 1. finish the tombstones an interrupted sweep left (delete their bytes, then their rows);
//! 2. remove blob links (`repository_blobs`) that no manifest of their repository references and that nothing
//!    touched (upload, mount, HEAD, reference) within the grace period;
//! 3. turn blobs that no repository links any more into tombstones, delete their bytes, then their rows.
//!
//! Every removal is conditional on the version of the row the collector saw (see `meta::collect`), and an upload
//! or mount never links a tombstone, so a push that needs a blob either keeps it or fails cleanly. The object store
//! is never listed here; [`reconcile`] is the separate, rate-limited pass that does.

mod reconcile;

use std::time::Instant;

use crate::blob::BlobStore;
use crate::meta::{StaleLink, Tombstone};
use crate::{Metadata, Result, UnixTime};

pub use reconcile::Reconciled;

/// Rows per page read (each written by statements of 500 rows).
const PAGE: u32 = 5000;
/// Blob deletions in flight at once.
const DELETES_IN_FLIGHT: usize = 32;

/// What a sweep removed, or (dry run) would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Blob links removed from repositories.
    pub links: u64,
    /// Blobs whose bytes went.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Tombstones of an interrupted sweep that this one finished (counted in `blobs` too).
    pub resumed: u64,
    /// Blobs whose bytes could not be deleted this time (their tombstones stay for the next sweep).
    pub failed: u64,
    pub millis: u64,
}

/// The collector of one registry's storage.
#[derive(Clone)]
pub struct Collector {
    meta: Metadata,
    blobs: BlobStore,
    /// Blob deletions per second at most (`None`: as fast as the store takes them).
    delete_rate: Option<u32>,
    /// What removing blobs records (their audit rows), written with the removal of their rows.
    removals: Option<Removals>,
}

/// The journal of the blobs (digests) a page of a sweep removed: see [`Collector::with_removals`].
pub type Removals = std::sync::Arc<dyn Fn(&[String]) -> crate::Journal + Send + Sync>;

impl Collector {
    pub fn new(meta: Metadata, blobs: BlobStore) -> Collector {
        Collector { meta, blobs, delete_rate: None, removals: None }
    }

    /// Paces deletions to `per_sec` blobs a second (for stores that bill or throttle requests); 0: unpaced.
    pub fn with_delete_rate(mut self, per_sec: u32) -> Collector {
        self.delete_rate = (per_sec > 0).then_some(per_sec);
        self
    }

    /// Records the blobs a sweep removes: `journal(digests)` is written in the transaction that forgets them.
    pub fn with_removals(mut self, journal: Removals) -> Collector {
        self.removals = Some(journal);
        self
    }

    /// Removes what is garbage at `cutoff` (links last touched at or before it): see the module's doc.
    pub async fn sweep(&self, cutoff: UnixTime) -> Result<Swept> {
        let started = Instant::now();
        let mut out = Swept::default();
        // 1. Interrupted work first: those bytes are already unreachable.
        loop {
            let left = self.meta.collect().tombstones(PAGE).await?;
            if left.is_empty() {
                break;
            }
            let before = out.failed;
            self.delete(&left, &mut out).await?;
            out.resumed += left.len() as u64 - (out.failed - before);
            if out.failed > before {
                break; // The store is failing; the rest waits for the next sweep.
            }
        }
        tracing::debug!(millis = started.elapsed().as_millis() as u64, "sweep: tombstones finished");
        // 2. Links.
        let mut after: Option<StaleLink> = None;
        loop {
            let page = self.meta.collect().unreferenced_links(cutoff, after.as_ref(), PAGE).await?;
            let Some(last) = page.last().cloned() else { break };
            out.links += self.meta.collect().remove_links(&page).await?;
            after = Some(last);
        }
        tracing::debug!(millis = started.elapsed().as_millis() as u64, links = out.links, "sweep: links removed");
        // 3. Blobs no repository links.
        let mut after = String::new();
        loop {
            let seen = self.meta.collect().unlinked_blobs(&after, PAGE).await?;
            let Some((last, _)) = seen.last() else { break };
            after = last.digest.to_string();
            let marked = self.meta.collect().mark_blobs(&seen).await?;
            self.delete(&marked, &mut out).await?;
        }
        out.millis = started.elapsed().as_millis() as u64;
        Ok(out)
    }

    /// What [`sweep`](Self::sweep) would remove at `cutoff`, removing nothing.
    pub async fn dry_run(&self, cutoff: UnixTime) -> Result<(Swept, Vec<Tombstone>)> {
        let started = Instant::now();
        let mut out = Swept::default();
        let mut after: Option<StaleLink> = None;
        loop {
            let page = self.meta.collect().unreferenced_links(cutoff, after.as_ref(), PAGE).await?;
            let Some(last) = page.last().cloned() else { break };
            out.links += page.len() as u64;
            after = Some(last);
        }
        let mut blobs = self.meta.collect().tombstones(u32::MAX / 2).await?;
        let mut after = String::new();
        loop {
            let page = self.meta.collect().collectible_blobs(cutoff, &after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.digest.to_string();
            blobs.extend(page);
        }
        out.blobs = blobs.len() as u64;
        out.bytes = blobs.iter().map(|b| b.size).sum();
        out.millis = started.elapsed().as_millis() as u64;
        Ok((out, blobs))
    }

    /// Deletes the bytes of tombstoned blobs, then the tombstones of those whose bytes went.
    async fn delete(&self, marked: &[Tombstone], out: &mut Swept) -> Result<()> {
        let blobs: Vec<_> = marked.iter().map(|t| (t.digest.clone(), t.location.clone())).collect();
        let results: Vec<Result<()>> = match self.delete_rate {
            None => self.blobs.delete_many(blobs, DELETES_IN_FLIGHT).await,
            Some(rate) => {
                let pace = std::time::Duration::from_secs(1) / rate;
                let mut done = Vec::with_capacity(blobs.len());
                for (d, at) in blobs {
                    done.push(self.blobs.delete_at(&d, at.as_deref()).await);
                    tokio::time::sleep(pace).await;
                }
                done
            }
        };
        let mut gone = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(()) => gone.push(&marked[i]),
                Err(e) => {
                    tracing::warn!(digest = %marked[i].digest, error = %e, "deleting a collected blob; will retry");
                    out.failed += 1;
                }
            }
        }
        let digests: Vec<_> = gone.iter().map(|t| &t.digest).collect();
        match &self.removals {
            Some(journal) => self.meta.collect().forget_blobs_recorded(&digests, &**journal).await?,
            None => self.meta.collect().forget_blobs(&digests).await?,
        };
        out.blobs += gone.len() as u64;
        out.bytes += gone.iter().map(|t| t.size).sum::<u64>();
        Ok(())
    }
}
