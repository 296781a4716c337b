//! One layer's entries, applied in stream order by the reader thread, with regular files handed to the pool.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::fsops::{list, remove_all, times};
use super::pool::Pool;
use super::resolve::clean;
use super::{Budget, Form, LayerStats, UnpackError, UnpackOptions};

mod entry;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: u64,
    chown: Option<(u32, u32)>,
    chmod: bool,
}

pub(super) struct Layer<'b> {
    pub(super) root: OwnedFd,
    opts: UnpackOptions,
    form: Form,
    budget: &'b Budget,
    /// Paths this layer created, and whether each is a directory: an opaque whiteout removes only what lower
    /// layers left; in overlay form (an empty root) it is also all that exists.
    pub(super) created: HashMap<PathBuf, bool>,
    dirs: Vec<DirMeta>,
    stats: LayerStats,
    pool: Pool,
    /// The parent directory of the last entry: consecutive entries mostly share it.
    pub(super) parent: Option<(PathBuf, Arc<OwnedFd>)>,
    ids: (u32, u32),
    umask: u32,
}

fn io(entry: &Path, e: impl Into<std::io::Error>) -> UnpackError {
    UnpackError::Io { entry: entry.display().to_string(), source: e.into() }
}

fn pool_err((path, e): (PathBuf, std::io::Error)) -> UnpackError {
    io(&path, e)
}

fn uid_gid(o: (u32, u32)) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (Some(rustix::fs::Uid::from_raw(o.0)), Some(rustix::fs::Gid::from_raw(o.1)))
}

impl<'b> Layer<'b> {
    pub fn new(root: OwnedFd, opts: UnpackOptions, form: Form, budget: &'b Budget) -> Layer<'b> {
        let ids = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        Layer {
            root,
            opts,
            form,
            budget,
            created: HashMap::new(),
            dirs: Vec::new(),
            stats: LayerStats::default(),
            pool: Pool::new(super::default_threads()),
            parent: None,
            ids,
            umask: super::umask(),
        }
    }

    pub fn run<R: Read>(mut self, archive: &mut tar::Archive<R>) -> Result<LayerStats, UnpackError> {
        for entry in archive.entries().map_err(UnpackError::Archive)? {
            let mut entry = entry.map_err(UnpackError::Archive)?;
            self.apply(&mut entry)?;
        }
        self.pool.flush().map_err(pool_err)?;
        self.finish_dirs()?;
        Ok(std::mem::take(&mut self.stats))
    }

    /// The owner to set on something this layer creates, unless it is created with it already: in overlay form
    /// every directory is this process's and has no setgid bit until the end, so new entries get its ids.
    fn chown_for(&self, owner: Option<(u32, u32)>) -> Option<(u32, u32)> {
        owner.filter(|o| !(matches!(self.form, Form::Overlay { .. }) && *o == self.ids))
    }

    /// Whether `mode` needs an explicit chmod after creation with `mode & 0o777`: special bits (which a chown
    /// also clears) or bits the umask took away.
    fn chmod_for(&self, mode: u32) -> bool {
        mode & 0o7000 != 0 || mode & 0o777 & self.umask != 0
    }

    /// What exists at `path` before this entry: `(exists, is_dir)`. In overlay form only this layer's entries.
    fn existing(&self, parent: &OwnedFd, name: &OsStr, path: &Path) -> (bool, bool) {
        if matches!(self.form, Form::Overlay { .. }) {
            return self.created.get(path).map_or((false, false), |d| (true, *d));
        }
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => (true, FileType::from_raw_mode(s.st_mode) == FileType::Directory),
            Err(_) => (false, false),
        }
    }

    /// Applies one entry: the root's own metadata, a whiteout, or a new file system object, each by its own step
    /// (in `entry`).
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Archive)?.into_owned();
        let Some(path) = clean(&raw)? else {
            if entry.header().entry_type() == tar::EntryType::Directory {
                self.root_dir(entry.header());
            }
            return Ok(());
        };
        // Invariant: `clean` returned a non-empty path of normal components, so it has a file name.
        let Some(name) = path.file_name().map(OsStr::to_owned) else { return Ok(()) };
        let parent_path = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if let Some(n) = name.to_str() {
            if n == OPAQUE {
                return self.opaque_entry(&parent_path, &path);
            }
            if let Some(victim) = n.strip_prefix(WHITEOUT_PREFIX) {
                return self.whiteout_entry(&raw, &path, &parent_path, victim);
            }
        }
        let header = entry.header().clone();
        let target = self.target(&header, path, &parent_path, name)?;
        match header.entry_type() {
            tar::EntryType::Directory => self.directory(target),
            tar::EntryType::Regular | tar::EntryType::Continuous => self.regular(entry, &raw, target),
            tar::EntryType::Symlink => self.symlink(&header, &raw, target),
            tar::EntryType::Link => self.hard_link(&header, &raw, target),
            tar::EntryType::Fifo => self.node(&header, FileType::Fifo, target),
            tar::EntryType::Char if self.opts.devices => self.node(&header, FileType::CharacterDevice, target),
            tar::EntryType::Block if self.opts.devices => self.node(&header, FileType::BlockDevice, target),
            tar::EntryType::Char | tar::EntryType::Block => self.placeholder(target),
            // PAX and GNU metadata entries are consumed by the tar reader; anything else is ignored.
            _ => Ok(()),
        }
    }

    /// Removes what is in the way of a new entry (after the pool has written anything queued for it). The parent
    /// cache is dropped: the removal may have taken a cached directory with it.
    fn make_room(&mut self, parent: &OwnedFd, name: &OsStr, path: &Path, is_dir: bool) -> rustix::io::Result<()> {
        // Only something this layer created can still be in the pool (a directory may hold such files).
        if is_dir || self.created.contains_key(path) {
            self.flush()?;
        }
        if is_dir {
            self.parent = None;
        }
        self.forget_below(path);
        if is_dir {
            remove_all(parent, name)
        } else {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())
        }
    }

    /// Forgets created paths at and below `path` (they were removed).
    fn forget_below(&mut self, path: &Path) {
        if matches!(self.form, Form::Overlay { .. }) {
            self.created.retain(|p, _| !p.starts_with(path));
            self.dirs.retain(|d| !d.path.starts_with(path));
        }
    }

    /// A whiteout: in flatten form removes `victim` from the tree; in overlay form records it as a 0:0 device.
    fn whiteout(&mut self, parent_path: &Path, victim: &OsStr) -> rustix::io::Result<()> {
        let path = parent_path.join(victim);
        match self.form {
            Form::Flatten => {
                let dir = match self.open_dir(parent_path, false) {
                    Ok(d) => d,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
                    Err(e) => return Err(e),
                };
                self.flush()?;
                self.parent = None;
                remove_all(&dir, victim)
            }
            Form::Overlay { .. } => {
                let parent = self.parent_fd(parent_path)?;
                if let Some(is_dir) = self.created.get(&path).copied() {
                    self.make_room(&parent, victim, &path, is_dir)?;
                }
                let dev = rustix::fs::makedev(0, 0);
                rustix::fs::mknodat(&parent, victim, FileType::CharacterDevice, Mode::empty(), dev)?;
                self.created.insert(path, false);
                Ok(())
            }
        }
    }

    /// An opaque whiteout: in flatten form removes every child of the directory that this layer did not create;
    /// in overlay form marks the directory opaque.
    fn opaque(&mut self, rel: &Path) -> rustix::io::Result<()> {
        self.flush()?;
        let dir = self.open_dir(rel, true)?;
        match self.form {
            Form::Flatten => {
                self.parent = None;
                for name in list(&dir)? {
                    if !self.created.contains_key(&rel.join(&name)) {
                        remove_all(&dir, &name)?;
                    }
                }
                Ok(())
            }
            Form::Overlay { opaque_xattr } => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&dir, ".", flags, Mode::empty())?;
                rustix::fs::fsetxattr(&fd, opaque_xattr, b"y", rustix::fs::XattrFlags::empty())
            }
        }
    }

    /// Waits for the pool; its first error as an errno.
    fn flush(&self) -> rustix::io::Result<()> {
        self.pool.flush().map_err(|(_, e)| Errno::from_io_error(&e).unwrap_or(Errno::IO))
    }

    /// Applies directory owners, modes and times, deepest first, each through the directory itself opened
    /// without following a symlink (a directory replaced later in the layer by a symlink is skipped).
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for d in dirs {
            if d.path.as_os_str().is_empty() {
                let fd = rustix::fs::openat(
                    &self.root,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io(&d.path, e))?;
                self.finish_dir(&fd, &d)?;
                continue;
            }
            let parent = match self.open_dir(d.path.parent().unwrap_or(Path::new("")), false) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue, // Removed or replaced later in the layer.
                Err(e) => return Err(io(&d.path, e)),
            };
            // Invariant: directory entries come from `clean`, so each has a file name.
            let Some(name) = d.path.file_name() else { continue };
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match rustix::fs::openat(&parent, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => continue,
                Err(e) => return Err(io(&d.path, e)),
            };
            self.finish_dir(&fd, &d)?;
        }
        Ok(())
    }

    fn finish_dir(&self, fd: &OwnedFd, d: &DirMeta) -> Result<(), UnpackError> {
        if let Some(o) = d.chown {
            let (u, g) = uid_gid(o);
            rustix::fs::fchown(fd, u, g).map_err(|e| io(&d.path, e))?;
        }
        if d.chmod {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(d.mode)).map_err(|e| io(&d.path, e))?;
        }
        rustix::fs::futimens(fd, &times(d.mtime)).map_err(|e| io(&d.path, e))
    }
}

/// Extended attributes recorded as PAX `SCHILY.xattr.*`.
fn xattrs<R: Read>(entry: &mut tar::Entry<R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(exts)) = entry.pax_extensions() else { return Vec::new() };
    exts.flatten()
        .filter_map(|ext| {
            let name = ext.key().ok()?.strip_prefix("SCHILY.xattr.")?;
            Some((name.to_string(), ext.value_bytes().to_vec()))
        })
        .collect()
}
