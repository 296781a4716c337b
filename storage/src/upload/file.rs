//! Sessions on a local store: one file per session, `uploads/<id>/data`, written at the session's offset under an
//! exclusive lock on the file (held by the open descriptor, so a crashed writer's lock goes with its process), and
//! synced before the session's size is recorded. Bytes past the recorded size (a writer that died mid-request) are
//! cut off when the next writer opens the file; a file shorter than the recorded size is corrupt.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use crate::{Error, Result};

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

    /// Writes everything received and syncs it, so that the size about to be recorded is on disk.
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
