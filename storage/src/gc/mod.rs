//! Garbage collection of blob bytes, online, from the metadata alone.
//!
//! A sweep looks only at the collector's queue of candidates (`meta::collect::queue`): the links and blobs that a
//! change since the last sweep may have made garbage (a new link, a manifest deleted, a blob unlinked), never at
//! every link and blob. It has two steps, each a page of rows at a time so that no transaction holds the writer
//! for long:
//! 1. finish the tombstones an interrupted sweep left (delete their bytes, then their rows);
//! 2. per page of candidates, in one transaction on SQLite (`meta::collect::decide`): remove the links that no
//!    manifest of their repository references and that nothing touched (upload, mount, HEAD, reference) within
//!    the grace period; turn the candidates' blobs that no repository links any more into tombstones; take the
//!    decided candidates out of the queue (those in their grace period stay for the next sweep). Once that is
//!    committed, the tombstones' bytes are deleted while the next page is read and decided, and the rows of those
//!    whose bytes went are removed a few pages at a time (one pass over `blobs` rather than one a page).
//!
//! Every removal is conditional on the version of the row the collector saw (see `meta::collect`), and an upload
//! or mount never links a tombstone, so a push that needs a blob either keeps it or fails cleanly. The object store
//! is never listed here; [`reconcile`] is the separate, rate-limited pass that does (and requeues every link and
//! blob a full scan finds unreferenced, should the queue ever have missed one).

pub(crate) mod reconcile;

use std::time::Instant;

use crate::blob::BlobStore;
use crate::meta::{Candidate, Decided, LinkState, StaleLink, Tombstone};
use crate::{Metadata, Result, UnixTime};

pub use reconcile::Reconciled;

/// Rows per page read (each written by statements of 500 rows).
const PAGE: u32 = 5000;
/// Blob deletions in flight at once.
const DELETES_IN_FLIGHT: usize = 32;
/// Tombstones whose bytes went that a sweep forgets in one go (one pass over the blob rows instead of one a page).
const FORGET_ROWS: usize = 50_000;

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
    /// Rows of the candidate queue this sweep read.
    pub candidates: u64,
    pub millis: u64,
    /// Where the time went.
    pub phases: Phases,
}

/// The milliseconds a sweep spent in each of its steps (the rest is its own bookkeeping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Phases {
    /// Finishing the tombstones of an interrupted sweep (deletes included).
    pub tombstones: u64,
    /// Reading the queue of candidates.
    pub read: u64,
    /// Removing stale links.
    pub links: u64,
    /// Finding unlinked blobs among the candidates and turning them into tombstones.
    pub mark: u64,
    /// Deleting bytes.
    pub delete: u64,
    /// Removing the tombstones' rows (with their audit rows).
    pub forget: u64,
    /// Taking decided candidates out of the queue.
    pub queue: u64,
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
        out.phases.tombstones = started.elapsed().as_millis() as u64;
        // 2. The candidates, a page at a time. The bytes of one page's tombstones are deleted while the next page
        // is read and decided (its marking was committed first); the rows of tombstones whose bytes went are
        // forgotten a few pages at a time (until then they are interrupted work a later sweep would finish).
        let mut after = (String::new(), String::new());
        let mut marked: Vec<Tombstone> = Vec::new();
        let mut deleted: Vec<Tombstone> = Vec::new();
        loop {
            let next = async {
                let at = Instant::now();
                let page = self.meta.collect().candidates(&after, PAGE).await?;
                let read = at.elapsed().as_millis() as u64;
                let decided = match page.is_empty() {
                    true => Decided::default(),
                    false => self.decide_page(&page, cutoff).await?,
                };
                Ok::<_, crate::Error>((page, read, decided))
            };
            let (next, gone) = tokio::join!(next, self.delete_bytes(std::mem::take(&mut marked), &mut out.failed));
            let (page, read, decided) = next?;
            out.phases.read += read;
            out.phases.delete += gone.1;
            deleted.extend(gone.0);
            if deleted.len() >= FORGET_ROWS {
                self.forget(&std::mem::take(&mut deleted), &mut out).await?;
            }
            let Some(last) = page.last() else { break };
            after = last.key();
            out.candidates += page.len() as u64;
            out.links += decided.links;
            out.phases.links += decided.links_millis;
            out.phases.mark += decided.mark_millis;
            out.phases.queue += decided.queue_millis;
            marked = decided.marked;
        }
        self.forget(&deleted, &mut out).await?;
        out.millis = started.elapsed().as_millis() as u64;
        Ok(out)
    }

    /// Decides a page of candidates: stale links go, then the blobs left with no link become tombstones, and each
    /// candidate decided leaves the queue, while those the grace period keeps (or a push claimed meanwhile) stay
    /// for the next sweep. Returns the tombstones, whose bytes may go.
    async fn decide_page(&self, page: &[Candidate], cutoff: UnixTime) -> Result<Decided> {
        let mut settled: Vec<&Candidate> = Vec::new();
        let mut stale = Vec::new();
        // The blobs that may be left with no link: a tombstone's statement checks that none is left.
        let mut blobs: Vec<(Tombstone, i64)> = Vec::new();
        for c in page {
            match (&c.repo, c.link) {
                (Some(repo), LinkState::Unreferenced { version, touched_at }) if touched_at <= cutoff => {
                    stale.push(StaleLink { repo: repo.clone(), digest: c.digest.clone(), version });
                    blobs.extend(c.blob.clone());
                }
                // Inside the grace period: the next sweep looks again.
                (_, LinkState::Unreferenced { .. }) => {}
                (_, LinkState::Referenced) => settled.push(c),
                (_, LinkState::Absent) => {
                    blobs.extend(c.blob.clone());
                    settled.push(c);
                }
            }
        }
        blobs.sort_by(|a, b| a.0.digest.cmp(&b.0.digest));
        blobs.dedup_by(|a, b| a.0.digest == b.0.digest);
        self.meta.collect().decide(page, &settled, &stale, &blobs).await
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
        let (gone, millis) = self.delete_bytes(marked.to_vec(), &mut out.failed).await;
        out.phases.delete += millis;
        self.forget(&gone, out).await
    }

    /// Deletes the bytes of tombstoned blobs: returns those whose bytes went (the others are counted in `failed`;
    /// their tombstones stay for the next sweep), and the milliseconds it took.
    async fn delete_bytes(&self, marked: Vec<Tombstone>, failed: &mut u64) -> (Vec<Tombstone>, u64) {
        if marked.is_empty() {
            return (marked, 0);
        }
        let at = Instant::now();
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
        let mut gone = Vec::with_capacity(marked.len());
        for (t, r) in marked.into_iter().zip(results) {
            match r {
                Ok(()) => gone.push(t),
                Err(e) => {
                    tracing::warn!(digest = %t.digest, error = %e, "deleting a collected blob; will retry");
                    *failed += 1;
                }
            }
        }
        (gone, at.elapsed().as_millis() as u64)
    }

    /// Removes the tombstones of blobs whose bytes went (with their audit rows), and counts them.
    async fn forget(&self, gone: &[Tombstone], out: &mut Swept) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let at = Instant::now();
        let digests: Vec<_> = gone.iter().map(|t| &t.digest).collect();
        tracing::debug!(?digests, "forgetting the tombstones of deleted blobs");
        match &self.removals {
            Some(journal) => self.meta.collect().forget_blobs_recorded(&digests, &**journal).await?,
            None => self.meta.collect().forget_blobs(&digests).await?,
        };
        out.phases.forget += at.elapsed().as_millis() as u64;
        out.blobs += gone.len() as u64;
        out.bytes += gone.iter().map(|t| t.size).sum::<u64>();
        Ok(())
    }
}
