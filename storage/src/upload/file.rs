//! Sessions on a local store: one file per session, `uploads/<id>/data`, written at the session's offset under an
//! exclusive lock on the file (held by the open descriptor, so a crashed writer's lock goes with its process).
//! A request's bytes are written, not synced, before the session's size is recorded: a `202` promises that they
//! were received, and a crash of the process keeps what it wrote; only the commit syncs them (`durable::commit`).
//! Bytes past the recorded size (a writer that died mid-request) are cut off when the next writer opens the file.
//! A machine crash may lose written bytes: a session recorded under an earlier boot is checked against its hash
//! state first (see [`FileWriter::holds`]). Within one boot, a file shorter than the recorded size is corrupt.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::state::Sha256State;
use crate::{Error, Result};

/// Where Linux names the current boot of the machine.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The machine's current boot, if the kernel says: bytes written but not synced survive until it ends.
pub(super) fn boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Bytes gathered before one positioned write.
const WRITE_BATCH: usize = 1 << 20;

pub(super) struct FileWriter {
    file: Arc<File>,
    path: PathBuf,
    /// Where the next batch goes.
    pos: u64,
    buf: BytesMut,
    pending: Option<JoinHandle<std::io::Result<()>>>,
}

impl FileWriter {
    /// Creates a session's (empty) file.
    pub async fn create(path: PathBuf) -> Result<()> {
        blocking(move || {
            let dir = path.parent().unwrap_or(Path::new("."));
            crate::modes::create_dir_all(dir).map_err(Error::io("creating", dir))?;
            crate::modes::file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(Error::io("creating", &path))?;
            Ok(())
        })
        .await
    }

    /// Opens a session's file under its lock, waiting up to `wait` for another writer to let go; `Ok(None)` if it
    /// is still held then. [`start_at`](Self::start_at) must follow, once the caller has read the recorded size.
    pub async fn lock(path: PathBuf, wait: Duration) -> Result<Option<FileWriter>> {
        let p = path.clone();
        let file = blocking(move || {
            OpenOptions::new().read(true).write(true).open(&p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::UploadUnknown,
                _ => Error::io("opening", &p)(e),
            })
        })
        .await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", &path)(e)),
            }
        }
        Ok(Some(FileWriter { file: Arc::new(file), path, pos: 0, buf: BytesMut::new(), pending: None }))
    }

    /// Positions the writer at the recorded `size`, cutting off bytes a dead writer left past it.
    pub async fn start_at(&mut self, size: u64) -> Result<()> {
        let (f, p) = (Arc::clone(&self.file), self.path.clone());
        blocking(move || {
            let len = f.metadata().map_err(Error::io("reading", &p))?.len();
            if len < size {
                return Err(Error::Corrupt(format!("{} holds {len} bytes, the session recorded {size}", p.display())));
            }
            if len > size {
                f.set_len(size).map_err(Error::io("truncating", &p))?;
            }
            Ok(())
        })
        .await?;
        self.pos = size;
        Ok(())
    }

    /// Gives back what this writer added past `size` (the recorded size) after a failed write: on a full disk the
    /// space is free at once, not when the next writer opens the session.
    pub async fn cut_back(&mut self, size: u64) -> Result<()> {
        // The failed write is the one that stopped the request; whatever it left is cut off below.
        let _ = self.wait().await;
        self.buf.clear();
        let (f, p) = (Arc::clone(&self.file), self.path.clone());
        blocking(move || f.set_len(size).map_err(Error::io("truncating", &p))).await?;
        self.pos = size;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn feed(&mut self, chunk: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= WRITE_BATCH {
            self.write_out().await?;
        }
        Ok(())
    }

    /// Starts writing the gathered bytes, after the previous write has finished: one write in flight while the
    /// next batch arrives.
    async fn write_out(&mut self) -> Result<()> {
        self.wait().await?;
        let data = self.buf.split().freeze();
        let (file, at) = (Arc::clone(&self.file), self.pos);
        self.pos += data.len() as u64;
        self.pending = Some(tokio::task::spawn_blocking(move || file.write_all_at(&data, at)));
        Ok(())
    }

    async fn wait(&mut self) -> Result<()> {
        if let Some(p) = self.pending.take() {
            p.await.map_err(Error::task("write"))?.map_err(Error::io("writing", &self.path))?;
        }
        Ok(())
    }

    /// Writes everything received.
    pub async fn write_all(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.write_out().await?;
        }
        self.wait().await
    }

    /// Whether the file's first `size` bytes hash to the saved SHA-256 `state` (a session's row after `size`
    /// bytes): after a reboot, whether what was recorded survived. Reads them all.
    pub async fn holds(&self, size: u64, state: Vec<u8>) -> Result<bool> {
        let (file, path) = (Arc::clone(&self.file), self.path.clone());
        blocking(move || {
            let len = file.metadata().map_err(Error::io("reading", &path))?.len();
            if len < size {
                return Ok(false);
            }
            let mut hash = Sha256State::new();
            let mut buf = vec![0; WRITE_BATCH];
            let mut at = 0;
            while at < size {
                let n = buf.len().min(usize::try_from(size - at).unwrap_or(usize::MAX));
                file.read_exact_at(&mut buf[..n], at).map_err(Error::io("reading", &path))?;
                hash.update(&buf[..n]);
                at += n as u64;
            }
            Ok(hash.save() == state)
        })
        .await
    }

    /// Cuts the file to nothing: a session whose bytes did not survive starts again.
    pub async fn restart(&mut self) -> Result<()> {
        let (file, path) = (Arc::clone(&self.file), self.path.clone());
        blocking(move || file.set_len(0).map_err(Error::io("truncating", &path))).await?;
        self.pos = 0;
        Ok(())
    }

    /// Writes everything received and syncs it: for a machine that cannot tell its boots apart.
    pub async fn flush(&mut self) -> Result<()> {
        self.write_all().await?;
        let (file, path) = (Arc::clone(&self.file), self.path.clone());
        blocking(move || file.sync_data().map_err(Error::io("syncing", &path))).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::task("file"))?
}

/// Removes a session's directory; a missing one is already gone.
pub(super) async fn remove_dir(dir: PathBuf) -> Result<()> {
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", &dir)(e)),
    }
}
