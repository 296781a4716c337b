//! Blob downloads from an upstream, shared by every request that wants the same blob while it runs.
//!
//! The first request for a missing blob starts a download task. The task receives the upstream's body while a
//! blocking thread hashes it and writes it to a spool file, announcing progress. Each request (the first and any
//! that join later) is a reader from the start, as far as the download has got: the newest few MiB from memory,
//! older bytes from the spool file. So its first byte goes out long before the last one arrives. The last byte is
//! held back until the whole blob matches its digest: a client never receives a complete body that failed
//! verification (a failed download ends every response early). A verified blob is then stored like any pushed
//! blob, linked into the repository, and the download leaves the table. Memory per download is bounded:
//! `IN_FLIGHT_CHUNKS` received chunks waiting for the writer, and `WINDOW` bytes of recent ones.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{watch, Mutex};
use wharf_format::{Digest, RepositoryName};

use super::upstream::Upstream;

/// Where a download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running,
    /// Every byte arrived and matched the digest.
    Verified,
    /// The upstream failed, or its bytes did not match: nothing more will be served.
    Failed(String),
    /// The upstream has no such blob.
    NotFound,
}

#[derive(Debug, Clone)]
pub struct Progress {
    pub received: u64,
    /// The upstream's announced length, when it gave one.
    pub total: Option<u64>,
    /// The upstream answered with a body.
    pub responded: bool,
    pub state: State,
}

/// One download in flight.
pub struct Download {
    path: PathBuf,
    progress: watch::Receiver<Progress>,
    /// The most recently written chunks, so that readers keeping up need not read them back from the file.
    recent: Arc<Recent>,
}

/// Written chunks by offset, the newest `WINDOW` bytes of them.
#[derive(Default)]
pub struct Recent(std::sync::Mutex<(std::collections::VecDeque<(u64, Bytes)>, usize)>);

impl Recent {
    fn push(&self, offset: u64, chunk: Bytes) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.1 += chunk.len();
        g.0.push_back((offset, chunk));
        while g.1 > WINDOW {
            match g.0.pop_front() {
                Some((_, c)) => g.1 -= c.len(),
                None => break,
            }
        }
    }

    /// The bytes from `pos` up to `stop` (exclusive) of the chunk holding `pos`, if it is still here.
    fn get(&self, pos: u64, stop: u64) -> Option<Bytes> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (first, _) = g.0.front()?;
        if pos < *first {
            return None;
        }
        let (off, c) = g.0.iter().rev().find(|(off, _)| *off <= pos)?;
        let end = (*off + c.len() as u64).min(stop);
        (pos < end).then(|| c.slice((pos - off) as usize..(end - off) as usize))
    }
}

/// What a download task writes to: the progress it announces, the spool file, the recent chunks.
pub struct Sink {
    pub tx: Arc<watch::Sender<Progress>>,
    pub path: PathBuf,
    recent: Arc<Recent>,
}

impl Drop for Download {
    fn drop(&mut self) {
        // The last reader is gone: the spool file goes (readers hold it open until then).
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Download {
    /// Waits until the length is known (the upstream answered), or the download ended.
    pub async fn started(&self) -> Progress {
        let mut rx = self.progress.clone();
        loop {
            let p = rx.borrow_and_update().clone();
            if p.responded || p.state != State::Running {
                return p;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    }

    /// The blob's bytes `[start, end]` (`end` inclusive, default the last byte), as the download delivers them.
    pub fn read(self: Arc<Self>, start: u64, end: Option<u64>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        struct Reader {
            dl: Arc<Download>,
            rx: watch::Receiver<Progress>,
            file: Option<tokio::fs::File>,
            pos: u64,
            end: Option<u64>,
        }
        let rx = self.progress.clone();
        let reader = Reader { dl: self, rx, file: None, pos: start, end };
        futures::stream::unfold(reader, |mut r| async move {
            loop {
                let p = r.rx.borrow_and_update().clone();
                let readable = match &p.state {
                    State::Verified => p.received,
                    State::Running => p.received.saturating_sub(1),
                    State::Failed(why) => {
                        return Some((Err(std::io::Error::other(format!("upstream download failed: {why}"))), r))
                    }
                    State::NotFound => return Some((Err(std::io::Error::other("upstream has no such blob")), r)),
                };
                let stop = r.end.map_or(readable, |e| readable.min(e + 1));
                if r.pos < stop {
                    if let Some(b) = r.dl.recent.get(r.pos, stop) {
                        r.pos += b.len() as u64;
                        r.file = None;
                        return Some((Ok(b), r));
                    }
                    if r.file.is_none() {
                        let mut f = match tokio::fs::File::open(&r.dl.path).await {
                            Ok(f) => f,
                            Err(e) => return Some((Err(e), r)),
                        };
                        if let Err(e) = f.seek(std::io::SeekFrom::Start(r.pos)).await {
                            return Some((Err(e), r));
                        }
                        r.file = Some(f);
                    }
                    let want = (stop - r.pos).min(CHUNK as u64) as usize;
                    let mut buf = vec![0u8; want];
                    let f = r.file.as_mut()?;
                    return match f.read_exact(&mut buf).await {
                        Ok(_) => {
                            r.pos += want as u64;
                            Some((Ok(Bytes::from(buf)), r))
                        }
                        Err(e) => Some((Err(e), r)),
                    };
                }
                let done = p.state == State::Verified || r.end.is_some_and(|e| r.pos > e);
                if done {
                    return None;
                }
                if r.rx.changed().await.is_err() && r.rx.borrow().state == State::Running {
                    return Some((Err(std::io::Error::other("upstream download stopped")), r));
                }
            }
        })
    }
}

const CHUNK: usize = 1 << 20;
/// Recent chunks kept in memory per download.
const WINDOW: usize = 4 << 20;
/// Chunks received and not yet written to the spool file, at most.
const IN_FLIGHT_CHUNKS: usize = 16;

/// The downloads in flight, by repository and digest.
pub struct Downloads {
    spool: PathBuf,
    inflight: Mutex<HashMap<(String, String), Arc<Download>>>,
}

impl Downloads {
    pub fn new(spool: PathBuf) -> Downloads {
        Downloads { spool, inflight: Mutex::new(HashMap::new()) }
    }

    /// Joins the download of `digest` for `repo`, or starts one with `start` (called under the table's lock
    /// after `still_missing` confirmed the blob is not stored yet). `None`: the blob is stored now.
    pub async fn join<F, Fut, C, CFut>(
        self: &Arc<Self>,
        repo: &RepositoryName,
        digest: &Digest,
        still_missing: C,
        start: F,
    ) -> Result<Option<Arc<Download>>, std::io::Error>
    where
        C: FnOnce() -> CFut,
        CFut: std::future::Future<Output = bool>,
        F: FnOnce(Sink) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let key = (repo.to_string(), digest.to_string());
        let mut table = self.inflight.lock().await;
        // A download whose task is gone without leaving the table (it panicked) is replaced.
        if let Some(dl) = table.get(&key).filter(|dl| dl.progress.has_changed().is_ok()) {
            return Ok(Some(Arc::clone(dl)));
        }
        // A download that finished a moment ago stored the blob and left the table.
        if !still_missing().await {
            return Ok(None);
        }
        // Spool files become blobs by a hard link: they are the server user's only, as blobs are.
        tokio::fs::DirBuilder::new().recursive(true).mode(wharf_storage::modes::DIR_MODE).create(&self.spool).await?;
        let path = self.spool.join(format!("{}-{}", digest.hex(), super::random_id()));
        tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(wharf_storage::modes::FILE_MODE)
            .open(&path)
            .await?;
        let (tx, rx) = watch::channel(Progress { received: 0, total: None, responded: false, state: State::Running });
        let recent = Arc::new(Recent::default());
        let dl = Arc::new(Download { path: path.clone(), progress: rx, recent: Arc::clone(&recent) });
        table.insert(key.clone(), Arc::clone(&dl));
        drop(table);
        let this = Arc::clone(self);
        let task = start(Sink { tx: Arc::new(tx), path, recent });
        tokio::spawn(async move {
            task.await;
            this.inflight.lock().await.remove(&key);
        });
        Ok(Some(dl))
    }
}

/// Streams the upstream's body for `digest` into `path` and announces progress. The body is received here while a
/// blocking thread hashes and writes it, so the two overlap. Returns the size once verified; on any failure the
/// state says why and `None` comes back.
pub async fn download(up: &Upstream, upstream_repo: &str, digest: &Digest, sink: &Sink) -> Option<u64> {
    let (tx, path) = (&sink.tx, &sink.path);
    let fail = |state: State| {
        tx.send_modify(|p| p.state = state);
        None
    };
    let url_path = format!("/v2/{upstream_repo}/blobs/{digest}");
    let mut resp = match up.send(reqwest::Method::GET, &url_path, upstream_repo, &[]).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return fail(State::NotFound),
        Err(e) => return fail(State::Failed(e.to_string())),
    };
    let max = up.settings.max_blob_bytes;
    let total = resp.content_length();
    if total.is_some_and(|n| n > max) {
        return fail(State::Failed(format!("the upstream's blob is larger than max_blob_bytes ({max})")));
    }
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) => return fail(State::Failed(format!("spool file: {e}"))),
    };
    tx.send_modify(|p| {
        p.total = total;
        p.responded = true;
    });
    let (chunks, mut incoming) = tokio::sync::mpsc::channel::<Bytes>(IN_FLIGHT_CHUNKS);
    let progress = Arc::clone(tx);
    let recent = Arc::clone(&sink.recent);
    let mut hasher = digest.algorithm().hasher();
    // Bytes count as received once written to the spool file.
    let writer = tokio::task::spawn_blocking(move || -> Result<(Digest, u64), std::io::Error> {
        let mut file = file;
        let mut received = 0u64;
        while let Some(chunk) = incoming.blocking_recv() {
            hasher.update(&chunk);
            std::io::Write::write_all(&mut file, &chunk)?;
            let at = received;
            received += chunk.len() as u64;
            recent.push(at, chunk);
            progress.send_modify(|p| p.received = received);
        }
        Ok((hasher.finish(), received))
    });
    let mut seen = 0u64;
    let received = loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                seen += c.len() as u64;
                if seen > max || total.is_some_and(|n| seen > n) {
                    return fail(State::Failed("the upstream sent more bytes than announced".into()));
                }
                if chunks.send(c).await.is_err() {
                    break None;
                }
            }
            Ok(None) => break Some(()),
            Err(e) => return fail(State::Failed(format!("{}: {e}", up.url(&url_path)))),
        }
    };
    drop(chunks);
    let (got, received) = match (received, writer.await) {
        (Some(()), Ok(Ok(done))) => done,
        (_, Ok(Err(e))) => return fail(State::Failed(format!("spool file: {e}"))),
        (_, Err(e)) => return fail(State::Failed(format!("spool writer: {e}"))),
        (None, Ok(Ok(_))) => return fail(State::Failed("spool writer stopped".into())),
    };
    if total.is_some_and(|n| received != n) {
        return fail(State::Failed(format!("the upstream sent {received} of {} bytes", total.unwrap_or(0))));
    }
    if &got != digest {
        tracing::warn!(upstream = %up.base, repository = upstream_repo, %digest, %got, "upstream fault: blob bytes do not match their digest; discarded");
        return fail(State::Failed(format!("the upstream's bytes hash to {got}, not {digest}")));
    }
    tx.send_modify(|p| {
        p.total = Some(received);
        p.state = State::Verified;
    });
    Some(received)
}
