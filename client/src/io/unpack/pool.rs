//! A bounded pool of blocking threads that create files while the tar stream is still being read.
//!
//! The reader thread keeps every ordering the stream needs: it creates directories and symlinks itself (a later
//! entry may resolve through them), waits for the pool (`flush`) before anything that could touch a file still in
//! flight (a hard link, a removal, a replacement), and applies directory modes and times only after the last file.
//! A job owns its bytes (small files only), so memory in flight is bounded by `QUEUE` × `SMALL_FILE`.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// Files up to this size are handed to the pool with their bytes; larger ones are written by the reader.
pub(crate) const SMALL_FILE: u64 = 1 << 20;
/// Jobs queued at most: bounds memory to 64 MiB per layer.
const QUEUE: usize = 64;

/// How a new file is finished, decided by the reader so that the worker only makes the syscalls that change
/// something.
pub(crate) struct FileMeta {
    pub mode: u32,
    /// `fchown` to this owner (left out when the file is created with it already).
    pub chown: Option<(u32, u32)>,
    /// `fchmod` after writing (left out when `openat`'s mode, after the umask, is already the final one).
    pub chmod: bool,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub(crate) enum Content {
    Bytes(Vec<u8>),
    /// Copied, with its extended attributes (overlayfs' own left out), from `name` in `dir` (flattening
    /// snapshots): `copy_file_range` in the kernel.
    Copy {
        dir: Arc<OwnedFd>,
        name: OsString,
    },
}

pub(crate) struct Job {
    pub parent: Arc<OwnedFd>,
    pub name: OsString,
    /// For error messages.
    pub path: PathBuf,
    pub content: Content,
    pub meta: FileMeta,
}

#[derive(Default)]
struct State {
    pending: usize,
    failed: Option<(PathBuf, std::io::Error)>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub(crate) struct Pool {
    tx: Option<SyncSender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    state: Shared,
}

/// Threads per pool: the cores, at least 2 (file creation waits on the kernel as much as it computes).
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

impl Pool {
    pub fn new(threads: usize) -> Pool {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let state: Shared = Arc::default();
        let workers = (0..threads.max(1))
            .map(|_| {
                let (rx, state) = (rx.clone(), state.clone());
                std::thread::spawn(move || work(&rx, &state))
            })
            .collect();
        Pool { tx: Some(tx), workers, state }
    }

    /// Queues a file; fails fast with the first error any worker met.
    pub fn submit(&self, job: Job) -> Result<(), (PathBuf, std::io::Error)> {
        {
            let mut s = lock(&self.state.0);
            if let Some(e) = s.failed.take() {
                return Err(e);
            }
            s.pending += 1;
        }
        // Invariant: the sender lives until `drop`, and workers only stop when it is gone.
        if let Some(tx) = &self.tx {
            if tx.send(job).is_err() {
                return Err((PathBuf::new(), std::io::Error::other("the file pool stopped")));
            }
        }
        Ok(())
    }

    /// Waits until every queued file is written; the first error, if any.
    pub fn flush(&self) -> Result<(), (PathBuf, std::io::Error)> {
        let (m, cv) = &*self.state;
        let mut s = lock(m);
        while s.pending > 0 {
            s = cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.failed.take().map_or(Ok(()), Err)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn work(rx: &Mutex<Receiver<Job>>, state: &Shared) {
    loop {
        let job = match lock(rx).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let path = job.path.clone();
        let result = write(job);
        let (m, cv) = &**state;
        let mut s = lock(m);
        if let Err(e) = result {
            s.failed.get_or_insert((path, e));
        }
        s.pending -= 1;
        if s.pending == 0 {
            cv.notify_all();
        }
    }
}

fn write(job: Job) -> std::io::Result<()> {
    use std::io::Write;
    let m = &job.meta;
    match job.content {
        Content::Bytes(b) => {
            let mut file = super::create_new(&job.parent, &job.name, m.mode & 0o777)?;
            file.write_all(&b)?;
            super::finish_file(&file, m)
        }
        Content::Copy { dir, name } => {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let mut src = std::fs::File::from(rustix::fs::openat(&*dir, &name, flags, Mode::empty())?);
            let mut file = super::create_new(&job.parent, &job.name, m.mode & 0o777)?;
            std::io::copy(&mut src, &mut file)?;
            copy_xattrs(&src, &file)?;
            super::finish_file(&file, m)
        }
    }
}

/// Extended attributes of `src` onto `dst`, except overlayfs' own.
fn copy_xattrs(src: &std::fs::File, dst: &std::fs::File) -> std::io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(src, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else { continue };
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::fgetxattr(src, name, &mut value) {
            let _ = rustix::fs::fsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty());
        }
    }
    Ok(())
}
