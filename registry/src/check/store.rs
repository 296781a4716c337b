//! The store's phases: every blob row's bytes read and hashed (several blobs in flight, paced together), then every
//! stored object accounted for by a row, an upload, or a crash (a leftover).

use futures::stream::{self, StreamExt};
use wharf_format::Digest;
use wharf_storage::meta::CheckedBlob;
use wharf_storage::scrub::{Hashed, StoredKey, StoredObject};

use super::repair::Outcome;
use super::report::{Kind, Problem};
use super::{CheckError, Run};

/// Blob rows per page.
const PAGE: u32 = 256;
/// Blobs read at once: enough to keep a remote store's latency hidden and a local disk's queue full.
const IN_FLIGHT: usize = 4;

impl Run<'_> {
    /// Every live blob row: its bytes are there, hash to its digest, and have its size.
    pub(super) async fn blobs(&mut self) -> Result<(), CheckError> {
        loop {
            let page = self.meta().check().blobs(&self.cur.after, PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            let (store, pace) = (self.checker.blobs.clone(), self.pace.clone());
            let mut read = stream::iter(page)
                .map(|b| {
                    let (store, pace) = (store.clone(), pace.clone());
                    async move {
                        if b.deleting {
                            return (b, Ok(None));
                        }
                        let key = store.blob_key(&b.digest, b.location.as_deref());
                        let hashed = store.hash_object(&key, b.digest.algorithm(), &pace).await;
                        (b, hashed.map(Some))
                    }
                })
                .buffered(IN_FLIGHT);
            while let Some((b, hashed)) = read.next().await {
                match hashed {
                    Ok(Some(hashed)) => self.judge_blob(&b, hashed).await?,
                    Ok(None) => {}
                    // One unreadable blob is a finding, not the end of the run (which would resume at it forever).
                    Err(e) => {
                        self.cur.report.blobs_checked += 1;
                        self.unreadable(&b, &e).await?
                    }
                }
                self.progress(b.digest.to_string()).await?;
            }
        }
    }

    /// What reading blob `b` found (`None`: no object). Bytes that disagree with the row are read a second time
    /// (a read may go wrong where the bytes are right); only two reads alike are damage. The row is re-read before
    /// damage is reported: the collector may have removed it (and its bytes) since the page was read.
    async fn judge_blob(&mut self, b: &CheckedBlob, hashed: Option<Hashed>) -> Result<(), CheckError> {
        self.cur.report.blobs_checked += 1;
        let key = self.checker.blobs.blob_key(&b.digest, b.location.as_deref());
        let mut hashed = hashed;
        if let Some(h) = &hashed {
            self.cur.report.bytes_verified += h.size;
            if h.digest == b.digest && h.size == b.size {
                return Ok(());
            }
            let again = match self.checker.blobs.hash_object(&key, b.digest.algorithm(), &self.pace).await {
                Ok(again) => again,
                Err(e) => return self.unreadable(b, &e).await,
            };
            match again {
                Some(a) if a.digest == b.digest && a.size == b.size => return Ok(()),
                Some(a) if a != *h => {
                    let detail = format!(
                        "two reads disagree: {} bytes hashing to {}, then {} to {}",
                        h.size, h.digest, a.size, a.digest
                    );
                    return self.unreadable_because(b, detail).await;
                }
                again => hashed = again,
            }
        }
        let kind = match &hashed {
            Some(h) => {
                if h.digest == b.digest {
                    Kind::SizeMismatch
                } else {
                    Kind::DigestMismatch
                }
            }
            None => Kind::BytesMissing,
        };
        match self.meta().check().blob(&b.digest).await? {
            Some(now) if !now.deleting && now.location == b.location => {}
            // Collected (or moved) while this run read it: not damage.
            _ => return Ok(()),
        }
        let detail = match (&hashed, kind) {
            (Some(h), Kind::SizeMismatch) => format!("the row says {} bytes; the object has {}", b.size, h.size),
            (Some(h), _) => format!("the {} bytes stored hash to {}", h.size, h.digest),
            (None, _) => format!("the row ({} bytes) has no object", b.size),
        };
        let mut p = Problem::damage(kind, detail).digest(&b.digest).path(&key);
        if self.opts.repair && kind != Kind::SizeMismatch {
            match self.repair_blob(b, kind == Kind::DigestMismatch).await? {
                Outcome::Repaired(r) => p.repair = Some(r),
                Outcome::NotRepaired => {}
                Outcome::Healed => return Ok(()),
            }
        }
        self.found(p);
        Ok(())
    }

    /// Blob `b`'s bytes could not be read: a finding of its own, never repaired (the bytes may well be good).
    async fn unreadable(&mut self, b: &CheckedBlob, e: &wharf_storage::Error) -> Result<(), CheckError> {
        self.unreadable_because(b, unreadable_detail(e)).await
    }

    async fn unreadable_because(&mut self, b: &CheckedBlob, detail: String) -> Result<(), CheckError> {
        match self.meta().check().blob(&b.digest).await? {
            Some(now) if !now.deleting && now.location == b.location => {}
            _ => return Ok(()),
        }
        let key = self.checker.blobs.blob_key(&b.digest, b.location.as_deref());
        self.found(Problem::damage(Kind::Unreadable, detail).digest(&b.digest).path(&key));
        Ok(())
    }

    /// Every stored object: a blob's bytes, an upload's, or a finding (a leftover when a crash may leave it).
    pub(super) async fn objects(&mut self) -> Result<(), CheckError> {
        // A listing comes in no promised order, so this phase restarts whole when a run resumes.
        let mut listing = self.checker.blobs.list_objects();
        while let Some(o) = listing.next().await {
            let o = o?;
            self.stop_if_asked()?;
            self.judge_object(&o).await?;
        }
        Ok(())
    }

    async fn judge_object(&mut self, o: &StoredObject) -> Result<(), CheckError> {
        let meta = self.checker.meta.clone();
        let check = meta.check();
        let leftover = |detail: &str| Problem::leftover(Kind::OrphanObject, detail).path(&o.key);
        let p = match StoredKey::of(&o.key) {
            StoredKey::Quarantined => return Ok(()),
            StoredKey::Content(d) => match check.blob_read(&d).await? {
                Some(row) if row.location.is_none() => return Ok(()),
                Some(row) => leftover(&format!(
                    "a surplus copy: the blob lies at {} (the collector's reconcile removes it)",
                    row.location.unwrap_or_default()
                ))
                .digest(&d),
                None => match self.orphan_read(&o.key, &d).await {
                    Read::Gone => return Ok(()),
                    Read::Failed(detail) => Problem::damage(Kind::Unreadable, detail).digest(&d).path(&o.key),
                    Read::Matches => leftover(
                        "no row, bytes match their address: a crash leftover the collector's reconcile removes",
                    )
                    .digest(&d),
                    Read::Differs(_) if check.blob(&d).await?.is_some() => {
                        // Recorded meanwhile (a push writes the bytes, then the row): the next run reads it.
                        return Ok(());
                    }
                    Read::Differs(h) => {
                        let detail = format!("no row, and the {} bytes hash to {} (read twice)", h.size, h.digest);
                        Problem::damage(Kind::OrphanObject, detail).digest(&d).path(&o.key)
                    }
                },
            },
            StoredKey::Uploaded(id) => {
                if check.location_recorded(&o.key).await? || check.session_exists(id.as_str()).await? {
                    return Ok(());
                }
                leftover("a completed multipart upload no row records (the collector's reconcile removes it)")
            }
            StoredKey::Session(id) => {
                if self.checker.blobs.local_sessions() || check.session_exists(id.as_str()).await? {
                    return Ok(());
                }
                leftover("an upload's bytes with no session: it expired (the collector's reconcile removes them)")
            }
            StoredKey::Foreign => {
                Problem::damage(Kind::OrphanObject, format!("not a key of the store's layout ({} bytes)", o.size))
                    .path(&o.key)
            }
        };
        let mut p = p;
        if self.opts.repair && p.remains() && p.kind != Kind::Unreadable {
            p.repair = self.quarantine(&o.key).await?;
        }
        self.found(p);
        Ok(())
    }
}

/// What reading an object with no row found.
enum Read {
    /// No object any more.
    Gone,
    /// The read failed, or two reads disagreed.
    Failed(String),
    /// The bytes match their content address: a leftover.
    Matches,
    /// Two reads alike, not matching their address.
    Differs(Hashed),
}

impl Run<'_> {
    /// Reads the object at `key` (content address `d`, no row); bytes that do not match are read again, and only
    /// two reads alike count (an in-flight push's object read short must not be quarantined).
    async fn orphan_read(&mut self, key: &str, d: &Digest) -> Read {
        let mut first: Option<Hashed> = None;
        loop {
            let h = match self.checker.blobs.hash_object(key, d.algorithm(), &self.pace).await {
                Ok(Some(h)) => h,
                Ok(None) => return Read::Gone,
                Err(e) => return Read::Failed(unreadable_detail(&e)),
            };
            self.cur.report.bytes_verified += h.size;
            if h.digest == *d {
                return Read::Matches;
            }
            match first {
                None => first = Some(h),
                Some(f) if f == h => return Read::Differs(h),
                Some(f) => {
                    return Read::Failed(format!(
                        "two reads disagree: {} bytes hashing to {}, then {} to {}",
                        f.size, f.digest, h.size, h.digest
                    ))
                }
            }
        }
    }
}

/// Why a read failed, for the report: a device's failure (damage to look at) or a store that did not answer after
/// its retries (still reported as damage, since the bytes went unverified; the next run reads them again).
fn unreadable_detail(e: &wharf_storage::Error) -> String {
    let chain = crate::error::chain(e);
    if e.unavailable().is_some() {
        format!("the store failed the read, after its retries (run the check again): {chain}")
    } else {
        format!("reading it failed: {chain}")
    }
}
