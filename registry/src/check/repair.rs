//! What `--repair` may do, and nothing more: move objects whose bytes do not match under `quarantine/` (never
//! delete them), fetch a damaged or missing blob again from a mirror's upstream (verified before it replaces
//! anything), and remove the row of bytes that are gone, saying which tags that leaves incomplete. Each repair
//! writes an audit row (`Change::Admin`, action `check`).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use wharf_storage::meta::CheckedBlob;
use wharf_storage::{Change, Journal, Origin};

use super::report::{IncompleteTag, Repair};
use super::{CheckError, Run};

/// What a repair of a blob came to.
pub(super) enum Outcome {
    Repaired(Repair),
    /// Left as found (the row changed since it was judged, or the bytes could not be read): the next run judges it.
    NotRepaired,
    /// The blob's bytes are present and good after all (a push put them back): no finding.
    Healed,
}

/// What a blob's object is now.
enum Now {
    Good,
    Absent,
    Bad,
    Unreadable,
}

impl Run<'_> {
    /// Repairs blob `b`, whose bytes are damaged (`damaged`) or missing: refetched if a mirror's upstream has
    /// them, else its object quarantined and its row removed. The removal is made under the row's tombstone, set
    /// only on the version judged (a push since is left alone), and only when the object, read again under it, is
    /// still absent or bad; else the tombstone comes off.
    pub(super) async fn repair_blob(&mut self, b: &CheckedBlob, damaged: bool) -> Result<Outcome, CheckError> {
        let key = self.checker.blobs.blob_key(&b.digest, b.location.as_deref());
        if let Some(file) = self.refetch(b).await {
            if damaged {
                self.checker.blobs.quarantine(&key).await?;
            }
            let restored = self.checker.blobs.restore_verified(&file, &b.digest, b.location.as_deref()).await;
            let _ = tokio::fs::remove_file(&file).await;
            restored?;
            let moved = if damaged { format!("quarantined {key}, then ") } else { String::new() };
            self.audit(format!("{moved}refetched {} from the mirror's upstream", b.digest)).await?;
            return Ok(Outcome::Repaired(Repair::Refetched));
        }
        // The collector deletes the bytes of every tombstone it finds and forgets the row later; this tombstone is
        // the check's, so no collection may run while it stands (else a push recorded after the check removed or
        // unmarked the row would lose its bytes to the collector): the repair holds the collector's lease.
        let holder = format!("check-{}", crate::gc::uuid_like());
        if !self.take_gc_lease(&holder).await? {
            return Ok(Outcome::NotRepaired);
        }
        let result = self.repair_under_lease(b, &key, damaged).await;
        if let Err(e) = self.meta().leases().release(crate::gc::LEASE, &holder).await {
            tracing::warn!(error = %e, "check: releasing the collector's lease");
        }
        result
    }

    /// Waits up to 30 s for the collector's lease (a running collection ends, or its lease lapses); false if
    /// another holder kept it.
    async fn take_gc_lease(&self, holder: &str) -> Result<bool, CheckError> {
        let started = std::time::Instant::now();
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as wharf_storage::UnixTime);
            if self.meta().leases().acquire(crate::gc::LEASE, holder, now, now + crate::gc::LEASE_SECS).await? {
                return Ok(true);
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                tracing::warn!("check: a collection kept the collector's lease; the repair waits for the next run");
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn repair_under_lease(&mut self, b: &CheckedBlob, key: &str, damaged: bool) -> Result<Outcome, CheckError> {
        if !self.meta().check().mark_blob(&b.digest, b.version).await? {
            // Pushed, mounted or collected since it was judged.
            return Ok(Outcome::NotRepaired);
        }
        // Under the tombstone nothing links the blob; a push's bytes may still land (it waits for the tombstone).
        let result = self.remove_marked(b, key, damaged).await;
        if !matches!(result, Ok((_, true))) {
            // Whatever stopped the removal, the row must not stay marked: the collector would delete its bytes.
            if let Err(e) = self.meta().check().unmark_blob(&b.digest).await {
                tracing::error!(error = %e, digest = %b.digest, "check: taking a repair's tombstone off");
            }
        }
        Ok(result?.0)
    }

    /// The removal under the tombstone; with whether the row went (else the caller takes the tombstone off).
    async fn remove_marked(
        &mut self,
        b: &CheckedBlob,
        key: &str,
        damaged: bool,
    ) -> Result<(Outcome, bool), CheckError> {
        let quarantined = if damaged {
            match self.object_now(b, key).await {
                Now::Good => return Ok((Outcome::Healed, false)),
                Now::Unreadable => return Ok((Outcome::NotRepaired, false)),
                Now::Bad => self.checker.blobs.quarantine(key).await?,
                Now::Absent => None,
            }
        } else {
            None
        };
        // A push may have put the bytes back meanwhile (before the tombstone, or between quarantine and here).
        match self.object_now(b, key).await {
            Now::Absent => {}
            Now::Good => {
                let outcome =
                    if quarantined.is_some() { Outcome::Repaired(Repair::Quarantined) } else { Outcome::Healed };
                return Ok((outcome, false));
            }
            Now::Bad | Now::Unreadable => return Ok((Outcome::NotRepaired, false)),
        }
        let what = match &quarantined {
            Some(to) => format!("quarantined {key} as {to}; removed the row of {}", b.digest),
            None => format!("removed the row of {}, whose bytes are gone", b.digest),
        };
        let journal = self.journal(what);
        if !self.meta().check().remove_marked(&b.digest, &journal).await? {
            // Collected meanwhile: nothing of this blob is wrong any more.
            let outcome = if quarantined.is_some() { Outcome::Repaired(Repair::Quarantined) } else { Outcome::Healed };
            return Ok((outcome, true));
        }
        self.cur.removed.push(b.digest.to_string());
        for t in self.meta().check().tags_needing(&b.digest).await? {
            let t =
                IncompleteTag { repository: t.repo.to_string(), tag: t.tag.to_string(), digest: t.digest.to_string() };
            if !self.cur.report.incomplete_tags.contains(&t) {
                self.cur.report.incomplete_tags.push(t);
            }
        }
        Ok((Outcome::Repaired(if quarantined.is_some() { Repair::Quarantined } else { Repair::RowRemoved }), true))
    }

    /// Blob `b`'s object at `key`, read again.
    async fn object_now(&self, b: &CheckedBlob, key: &str) -> Now {
        match self.checker.blobs.hash_object(key, b.digest.algorithm(), &self.pace).await {
            Ok(None) => Now::Absent,
            Ok(Some(h)) if h.digest == b.digest && h.size == b.size => Now::Good,
            Ok(Some(_)) => Now::Bad,
            Err(e) => {
                tracing::warn!(error = %e, digest = %b.digest, "check: reading a blob again before repairing it");
                Now::Unreadable
            }
        }
    }

    /// Moves the object at `key` (no row's bytes) under `quarantine/`.
    pub(super) async fn quarantine(&mut self, key: &str) -> Result<Option<Repair>, CheckError> {
        let Some(to) = self.checker.blobs.quarantine(key).await? else { return Ok(None) };
        self.audit(format!("quarantined {key} as {to}")).await?;
        Ok(Some(Repair::Quarantined))
    }

    fn journal(&self, detail: String) -> Journal {
        let change = Change::Admin { action: "check".into(), detail };
        self.checker.recorder.journal(&Origin::system("check"), &change, self.now)
    }

    async fn audit(&self, detail: String) -> Result<(), CheckError> {
        Ok(self.meta().journals().record(&self.journal(detail)).await?)
    }

    /// `b`'s bytes from the upstream of a mirrored repository that links it, verified, in a local file; `None`
    /// when this is not a mirror or no upstream has them.
    async fn refetch(&self, b: &CheckedBlob) -> Option<PathBuf> {
        let mirrors = self.checker.mirrors.as_ref()?;
        let repos = match self.meta().check().linked_in(&b.digest).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, digest = %b.digest, "check: reading the blob's repositories");
                return None;
            }
        };
        let spool = self.checker.blobs.spool_dir().unwrap_or_else(std::env::temp_dir);
        for repo in repos {
            let Some(route) = mirrors.route(&repo) else { continue };
            let file = spool.join(format!(".check-{}", crate::mirror::random_id()));
            match fetch(&route, b, &file).await {
                Ok(()) => return Some(file),
                Err(why) => {
                    let _ = tokio::fs::remove_file(&file).await;
                    tracing::warn!(digest = %b.digest, %repo, "check: refetching from the upstream: {why}");
                }
            }
        }
        None
    }
}

/// Streams `b` from `route`'s upstream into `file`, hashing as it writes; refuses more bytes than the row's size
/// and anything that does not hash to its digest.
async fn fetch(route: &crate::mirror::Route, b: &CheckedBlob, file: &Path) -> Result<(), String> {
    let path = format!("/v2/{}/blobs/{}", route.repo, b.digest);
    let mut resp =
        route.upstream.send(reqwest::Method::GET, &path, &route.repo, &[]).await.map_err(|e| e.to_string())?;
    if let Some(dir) = file.parent() {
        wharf_storage::modes::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut out = tokio::fs::File::create(file).await.map_err(|e| format!("{}: {e}", file.display()))?;
    let mut hasher = b.digest.algorithm().hasher();
    let mut size = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading the body: {e}"))? {
        size += chunk.len() as u64;
        if size > b.size {
            return Err(format!("the upstream sent more than the blob's {} bytes", b.size));
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(|e| format!("{}: {e}", file.display()))?;
    }
    out.flush().await.map_err(|e| format!("{}: {e}", file.display()))?;
    let got = hasher.finish();
    if got != b.digest || size != b.size {
        return Err(format!("the upstream's {size} bytes hash to {got}"));
    }
    Ok(())
}
