//! One page of a sweep decided in one go: its stale links removed, the blobs left with no link turned into
//! tombstones, and the candidates decided taken out of the queue. On SQLite that is one transaction (one commit,
//! one wait for the write lock) instead of three; on PostgreSQL each statement still commits on its own (see
//! `Batch`). The bytes of the tombstones are deleted only after this returns, when their marking is committed.

use std::collections::HashSet;
use std::time::Instant;

use wharf_format::{Digest, RepositoryName};

use super::{Batch, Candidate, Collect, StaleLink, Tombstone};
use crate::Result;

/// What a page decided, with the milliseconds of each step.
#[derive(Debug, Default)]
pub struct Decided {
    /// The links that went.
    pub links: u64,
    /// The blobs that became tombstones: their bytes may go now.
    pub marked: Vec<Tombstone>,
    pub links_millis: u64,
    pub mark_millis: u64,
    /// Taking the decided candidates out of the queue, and the commit.
    pub queue_millis: u64,
}

impl Collect<'_> {
    /// Removes `stale` links (at the versions seen), then marks those of `blobs` that no repository links any more,
    /// then takes out of the queue the candidates of `page` that are decided: `settled` (those decided whatever
    /// happens to their links) and those whose link went. A link a push claimed meanwhile stays queued.
    pub async fn decide(
        &self,
        page: &[Candidate],
        settled: &[&Candidate],
        stale: &[StaleLink],
        blobs: &[(Tombstone, i64)],
    ) -> Result<Decided> {
        let mut out = Decided::default();
        let mut batch = Batch::new(self.0);
        let at = Instant::now();
        let removed = self.remove_stale_in(&mut batch, stale).await?;
        out.links = removed.len() as u64;
        out.links_millis = at.elapsed().as_millis() as u64;
        // A link that went is decided (its blob is marked below, or some other link keeps it).
        let gone: HashSet<(&RepositoryName, &Digest)> = removed.iter().map(|l| (&l.repo, &l.digest)).collect();
        let mut decided = settled.to_vec();
        decided.extend(page.iter().filter(|c| c.repo.as_ref().is_some_and(|r| gone.contains(&(r, &c.digest)))));
        // One not marked has a link (which is queued or referenced), or a push claimed it: either way decided.
        let at = Instant::now();
        out.marked = self.mark_blobs_in(&mut batch, blobs).await?;
        out.mark_millis = at.elapsed().as_millis() as u64;
        let at = Instant::now();
        self.drop_candidates_in(&mut batch, &decided).await?;
        batch.finish().await?;
        out.queue_millis = at.elapsed().as_millis() as u64;
        Ok(out)
    }
}
