//! One request's hold on a session: taking it (lock or lease), streaming a body into it while hashing, and
//! recording, committing or ending it.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use wharf_format::{Algorithm, Digest, RepositoryName};

use super::file::{self, FileWriter};
use super::parts::{self, Lease, PartsWriter};
use super::row::{self, Fence, Row};
use super::state::{Behind, Sha256State};
use super::{Committed, Open, Stop, UploadId, Uploads, Writer, LEASE_SECS, RENEW_EVERY};
use crate::{paths, Error, Metadata, Result, UnixTime};

impl Uploads {
    /// Takes a session for one request, waiting up to `wait` while another request writes into it. With `check`,
    /// a local session recorded under an earlier boot is checked first (see [`check`](Self::check)).
    pub(super) async fn open(
        &self,
        id: &UploadId,
        repo: Option<&RepositoryName>,
        now: UnixTime,
        wait: Duration,
        check: bool,
    ) -> Result<Open> {
        if let Some(root) = self.blobs.local_root() {
            // The lock first, then the row as it is under the lock: one read of the row per request.
            let path = root.join(paths::upload_data(id).as_ref());
            let Some(mut w) = FileWriter::lock(path, wait).await? else {
                return Err(Error::RangeInvalid { offset: self.row(id, repo).await?.size });
            };
            let mut row = self.row(id, repo).await?;
            match (check, self.unchecked(&row)) {
                (true, true) => {
                    row = self.check(id, &mut w, row).await?;
                    w.start_at(row.size).await?;
                }
                // Taken only to end it (cancel, expiry): what survived a machine crash does not matter.
                (false, true) => {}
                (_, false) => w.start_at(row.size).await?,
            }
            let state = Sha256State::restore(&row.hash_state)?;
            return Ok(Open {
                id: id.clone(),
                row,
                state,
                received: 0,
                writer: Writer::File(w),
                holder: None,
                renewer: None,
                shared: true,
            });
        }
        let seen = self.row(id, repo).await?;
        let busy = || Error::RangeInvalid { offset: seen.size };
        let Some((api, prefix)) = self.blobs.multipart() else {
            return Err(Error::Config("the store has neither files nor multipart uploads".into()));
        };
        let holder = uuid::Uuid::new_v4().simple().to_string();
        let started = tokio::time::Instant::now();
        loop {
            let t = now + started.elapsed().as_secs() as UnixTime;
            if row::acquire(&self.meta, id.as_str(), &holder, t, t + LEASE_SECS).await? {
                break;
            }
            self.row(id, repo).await?;
            if started.elapsed() >= wait {
                return Err(busy());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let taken = async {
            let row = self.row(id, repo).await?;
            let lease = Lease { meta: self.meta.clone(), id: id.as_str().to_owned(), holder: holder.clone() };
            let w = PartsWriter::open(api, prefix, self.blobs.object_store(), id, &row, Some(lease)).await?;
            let state = Sha256State::restore(&row.hash_state)?;
            Ok::<_, Error>((row, w, state))
        };
        match taken.await {
            Ok((row, w, state)) => {
                let renewer = Renewer::spawn(self.meta.clone(), id.as_str().to_owned(), holder.clone(), now, started);
                let (writer, holder, renewer) = (Writer::Parts(Box::new(w)), Some(holder), Some(renewer));
                Ok(Open { id: id.clone(), row, state, received: 0, writer, holder, renewer, shared: true })
            }
            Err(e) => {
                let _ = row::release(&self.meta, id.as_str(), &holder).await;
                Err(e)
            }
        }
    }

    /// Whether a local session's recorded bytes were written under an earlier boot and not synced since.
    pub(super) fn unchecked(&self, row: &Row) -> bool {
        row.boot_id.is_some() && row.boot_id != self.boot
    }

    /// After a reboot: keeps a session whose file still holds exactly the recorded bytes, or else starts it again
    /// from nothing (a machine crash lost some of what was not synced). Either way what it holds is now durable
    /// (read back from disk after the reboot, or nothing), and the row says so.
    async fn check(&self, id: &UploadId, w: &mut FileWriter, row: Row) -> Result<Row> {
        let mut next = row.clone();
        next.boot_id = None;
        if !w.holds(row.size, row.hash_state.clone()).await? {
            tracing::warn!(upload = %id, recorded = row.size, "upload session lost bytes in a machine crash");
            w.restart().await?;
            (next.size, next.hash_state) = (0, Sha256State::new().save());
        }
        // Synced before the row calls it durable: the cut above, and anything of the file only in the page cache.
        w.flush().await?;
        if !row::checked(&self.meta, id.as_str(), row.size, next.size, &next.hash_state).await? {
            return Err(Error::Conflict("an upload session changed while it was checked".into()));
        }
        Ok(next)
    }

    /// Streams a body into an open session, hashing it.
    pub(super) async fn receive<S, E>(
        &self,
        open: &mut Open,
        start: Option<u64>,
        declared_len: Option<u64>,
        body: S,
    ) -> std::result::Result<(), Stop>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let base = open.row.size;
        if start.is_some_and(|s| s != base) {
            return Err(Stop::Abandon(Error::RangeInvalid { offset: base }));
        }
        let max = self.limits.max_blob_size;
        if declared_len.is_some_and(|n| base.saturating_add(n) > max) {
            return Err(Stop::End(Error::TooLarge { max }));
        }
        // Hashed on a blocking thread one batch behind; whatever stops the body, the state goes back to the session
        // with exactly the bytes received hashed (a kept session continues from them).
        let mut hash = Behind::new(std::mem::replace(&mut open.state, Sha256State::new()));
        let received = Self::stream(open, &mut hash, base, max, declared_len, body).await;
        match hash.catch_up().await {
            Ok(state) => open.state = state,
            Err(e) => return Err(Stop::Abandon(e)),
        }
        received?;
        match declared_len {
            Some(expected) if open.received != expected => {
                Err(Stop::Keep(Error::SizeMismatch { expected, actual: open.received }))
            }
            _ => Ok(()),
        }
    }

    /// [`receive`](Self::receive)'s loop: each chunk checked against the limits, then hashed and written.
    async fn stream<S, E>(
        open: &mut Open,
        hash: &mut Behind,
        base: u64,
        max: u64,
        declared_len: Option<u64>,
        body: S,
    ) -> std::result::Result<(), Stop>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut body = std::pin::pin!(body);
        loop {
            let chunk = body.next().await;
            if open.renewer.as_ref().is_some_and(Renewer::lost) {
                return Err(Stop::Abandon(Error::Conflict("the upload session's writer lease was lost".into())));
            }
            let chunk = match chunk {
                None => break,
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    let received = base + open.received;
                    return Err(Stop::Keep(Error::BodyInterrupted { received, source: Box::new(e) }));
                }
            };
            let len = chunk.len() as u64;
            if base + open.received + len > max {
                return Err(Stop::End(Error::TooLarge { max }));
            }
            if let Some(n) = declared_len.filter(|n| open.received + len > *n) {
                return Err(Stop::Keep(Error::SizeMismatch { expected: n, actual: open.received + len }));
            }
            hash.feed(chunk.clone()).await.map_err(Stop::Abandon)?;
            let fed = match &mut open.writer {
                Writer::File(w) => w.feed(chunk).await,
                Writer::Parts(w) => w.feed(chunk).await,
            };
            fed.map_err(Stop::Abandon)?;
            open.received += len;
        }
        Ok(())
    }

    /// Records what a request added and lets the session go; returns the session's size.
    pub(super) async fn save(&self, mut open: Open, now: UnixTime) -> Result<u64> {
        let id = open.id.as_str().to_owned();
        let mut next = open.row.clone();
        next.size = open.row.size + open.received;
        next.hash_state = open.state.save();
        let flushed = match (&mut open.writer, &open.holder) {
            // Written, not synced, under this boot (see `file`); where boots cannot be told apart, synced.
            (Writer::File(w), _) if self.boot.is_some() => {
                next.boot_id = self.boot.clone();
                w.write_all().await.map(|()| Fence::Size(open.row.size))
            }
            (Writer::File(w), _) => w.flush().await.map(|()| Fence::Size(open.row.size)),
            (Writer::Parts(w), Some(holder)) => w.flush(&open.id, holder).await.map(|tail| {
                next.tail_key = tail;
                next.multipart_id = w.multipart_id.clone();
                next.parts = w.parts.clone();
                Fence::Holder(holder)
            }),
            (Writer::Parts(_), None) => Err(Error::Conflict("a multipart session written without a lease".into())),
        };
        let fence = match flushed {
            Ok(f) => f,
            Err(e) => {
                self.release(open).await;
                return Err(e);
            }
        };
        if !row::save(&self.meta, &id, &next, fence, now).await? {
            // Another writer took the session (this one's lease lapsed): what this request wrote is not recorded.
            if let Some(tail) = &next.tail_key {
                let _ = self.blobs.object_store().delete(&tail.as_str().into()).await;
            }
            let offset = self.row(&open.id, None).await.map_or(0, |r| r.size);
            return Err(Error::RangeInvalid { offset });
        }
        if let Some(old) = open.row.tail_key.as_ref().filter(|old| Some(*old) != next.tail_key.as_ref()) {
            let _ = self.blobs.object_store().delete(&old.as_str().into()).await;
        }
        Ok(next.size)
    }

    /// Ends a request that stopped early, as `stop` says; returns the error to report.
    pub(super) async fn stopped(&self, open: Open, stop: Stop, now: UnixTime) -> Error {
        match stop {
            Stop::Keep(e) => match self.save(open, now).await {
                Ok(_) => e,
                Err(saving) => saving,
            },
            Stop::End(e) => {
                self.end(open, false).await;
                e
            }
            Stop::Abandon(e) => {
                self.release(open).await;
                e
            }
        }
    }

    /// Lets a session go without recording anything.
    async fn release(&self, mut open: Open) {
        if let Writer::File(w) = &mut open.writer {
            if let Err(e) = w.cut_back(open.row.size).await {
                tracing::warn!(error = %e, upload = %open.id, "cutting an upload session back to its recorded size");
            }
        }
        if let Some(holder) = &open.holder {
            if let Err(e) = row::release(&self.meta, open.id.as_str(), holder).await {
                tracing::warn!(error = %e, upload = %open.id, "releasing an upload session's lease");
            }
        }
    }

    /// Ends a session: its bytes and its row go. After a commit only the recorded tail is left to delete; otherwise
    /// everything under the session's prefix goes, including what a writer that lost its lease left. Failures are
    /// logged; idle expiry retries what is left.
    pub(super) async fn end(&self, open: Open, committed: bool) {
        let gone = match (&open.writer, self.blobs.local_root(), self.blobs.multipart()) {
            (Writer::File(_), Some(root), _) => file::remove_dir(root.join(paths::upload_dir(&open.id).as_ref())).await,
            (Writer::Parts(_), _, Some(_)) if committed => match &open.row.tail_key {
                Some(tail) => match self.blobs.object_store().delete(&tail.as_str().into()).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(Error::Backend(e)),
                },
                None => Ok(()),
            },
            (Writer::Parts(w), _, Some((api, prefix))) => {
                let store = self.blobs.object_store();
                parts::destroy(api, prefix, store, &open.id, w.multipart_id.as_deref()).await
            }
            _ => Ok(()),
        };
        let gone = match gone {
            Ok(()) if open.shared => row::delete(&self.meta, open.id.as_str()).await,
            other => other,
        };
        if let Err(e) = gone {
            tracing::warn!(error = %e, upload = %open.id, "removing an upload session");
        }
    }

    /// Checks the session's digest and commits its bytes under it; then the session ends.
    pub(super) async fn commit(&self, mut open: Open, digest: &Digest) -> Result<Committed> {
        let size = open.row.size + open.received;
        let sha256 = std::mem::replace(&mut open.state, Sha256State::new()).finish();
        let committed = match &mut open.writer {
            Writer::File(w) => self.commit_file(w, &open.id, digest, sha256).await.map(|()| None),
            Writer::Parts(w) => w.commit(digest, sha256).await,
        };
        self.end(open, committed.is_ok()).await;
        committed.map(|location| Committed { size, location })
    }

    async fn commit_file(&self, w: &mut FileWriter, id: &UploadId, digest: &Digest, sha256: Digest) -> Result<()> {
        w.write_all().await?;
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => sha256,
            other => parts::rehash(self.blobs.object_store().as_ref(), &paths::upload_data(id), other).await?,
        };
        if actual != *digest {
            return Err(Error::DigestMismatch { expected: digest.clone(), actual });
        }
        let root = self.blobs.local_root().ok_or_else(|| Error::Config("a file session on a remote store".into()))?;
        let (from, to) = (w.path().to_owned(), root.join(paths::blob(digest).as_ref()));
        let waited = tokio::time::Instant::now();
        loop {
            let (f, t) = (from.clone(), to.clone());
            let done = tokio::task::spawn_blocking(move || crate::durable::commit(&f, &t))
                .await
                .map_err(Error::task("commit"))??;
            if done == crate::durable::Commit::Moved {
                return Ok(());
            }
            // A copy is in place. If the collector is deleting it, this upload's own copy must not go: wait until
            // the tombstone is gone (and the old copy with it), then commit again.
            if waited.elapsed() < super::WAIT_FOR_WRITER && self.meta.blobs().deleting(digest).await? {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            return tokio::fs::remove_file(&from).await.map_err(Error::io("removing", &from));
        }
    }
}

/// Renews a request's lease every `RENEW_EVERY` from its own task until dropped; if a renewal fails the lease
/// counts as lost, and the request records nothing.
pub(super) struct Renewer {
    task: tokio::task::JoinHandle<()>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Renewer {
    fn spawn(meta: Metadata, id: String, holder: String, now: UnixTime, started: tokio::time::Instant) -> Renewer {
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&lost);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
            loop {
                tick.tick().await;
                let t = now + started.elapsed().as_secs() as UnixTime;
                if !matches!(row::renew(&meta, &id, &holder, t + LEASE_SECS).await, Ok(true)) {
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    return;
                }
            }
        });
        Renewer { task, lost }
    }

    fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
