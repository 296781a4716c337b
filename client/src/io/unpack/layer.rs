//! One layer's entries, applied in stream order by the reader thread, with regular files handed to the pool.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::fsops::{list, remove_all, times};
use super::pool::{Content, FileMeta, Job, Pool, SMALL_FILE};
use super::resolve::clean;
use super::{create_new, finish_file, Budget, Form, LayerStats, UnpackError, UnpackOptions};

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

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Archive)?.into_owned();
        let Some(path) = clean(&raw)? else {
            // The root itself (`./`): its owner, mode and time apply to the root directory, last.
            if entry.header().entry_type() == tar::EntryType::Directory {
                let h = entry.header();
                let owner =
                    self.opts.preserve_ownership.then(|| (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
                let mode = h.mode().unwrap_or(0o755) & 0o7777;
                let (mtime, chown) = (h.mtime().unwrap_or(0), self.chown_for(owner));
                self.dirs.push(DirMeta { path: PathBuf::new(), mode, mtime, chown, chmod: true });
                self.stats.root_entry = true;
            }
            return Ok(());
        };
        // Invariant: `clean` returned a non-empty path of normal components, so it has a file name.
        let Some(name) = path.file_name().map(OsStr::to_owned) else { return Ok(()) };
        let parent_path = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let header = entry.header().clone();
        let kind = header.entry_type();

        if let Some(n) = name.to_str() {
            if n == OPAQUE {
                self.stats.whiteouts += 1;
                return self.opaque(&parent_path).map_err(|e| io(&path, e));
            }
            if let Some(victim) = n.strip_prefix(WHITEOUT_PREFIX) {
                self.stats.whiteouts += 1;
                if victim.is_empty() || victim == "." || victim == ".." {
                    return Err(UnpackError::PathTraversal { entry: raw.display().to_string() });
                }
                return self.whiteout(&parent_path, OsStr::new(victim)).map_err(|e| io(&path, e));
            }
        }

        let parent = self.parent_fd(&parent_path).map_err(|e| io(&path, e))?;
        let mut mode = header.mode().unwrap_or(0o644) & 0o7777;
        // setuid/setgid on something every user may rewrite is a privilege anyone can take: drop the bits.
        if kind != tar::EntryType::Directory && mode & 0o002 != 0 && mode & 0o6000 != 0 {
            mode &= !0o6000;
            self.stats.setid_dropped += 1;
        }
        let mtime = header.mtime().unwrap_or(0);
        let owner = if self.opts.preserve_ownership {
            Some((header.uid().unwrap_or(0) as u32, header.gid().unwrap_or(0) as u32))
        } else {
            None
        };
        let (exists, is_dir) = self.existing(&parent, &name, &path);

        match kind {
            tar::EntryType::Directory => {
                if exists && !is_dir {
                    self.make_room(&parent, &name, &path, false).map_err(|e| io(&path, e))?;
                }
                let chown = self.chown_for(owner);
                let chmod = if exists && is_dir {
                    true
                } else {
                    // Created with its final permissions when they let us fill it; the rest waits for the end.
                    let direct = mode & 0o700 == 0o700;
                    let create = if direct { mode & 0o777 } else { 0o700 };
                    rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(create)).map_err(|e| io(&path, e))?;
                    !direct || self.chmod_for(mode)
                };
                self.dirs.push(DirMeta { path: path.clone(), mode, mtime, chown, chmod });
                self.stats.dirs += 1;
                self.created.insert(path, true);
                return Ok(());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                if !self.budget.take(size) {
                    return Err(UnpackError::TooLarge { entry: raw.display().to_string(), max: self.budget.max });
                }
                self.stats.bytes += size;
                if exists {
                    self.make_room(&parent, &name, &path, is_dir).map_err(|e| io(&path, e))?;
                }
                let chown = self.chown_for(owner);
                let meta = FileMeta { mode, chown, chmod: self.chmod_for(mode), mtime, xattrs: xattrs(entry) };
                if size <= SMALL_FILE {
                    let mut data = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut data).map_err(UnpackError::Archive)?;
                    let job = Job { parent, name, path: path.clone(), content: Content::Bytes(data), meta };
                    self.pool.submit(job).map_err(pool_err)?;
                } else {
                    let mut file = create_new(&parent, &name, mode & 0o777).map_err(|e| io(&path, e))?;
                    std::io::copy(entry, &mut file).map_err(|e| io(&path, e))?;
                    finish_file(&file, &meta).map_err(|e| io(&path, e))?;
                }
                self.stats.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = header.link_name_bytes().map(|b| b.into_owned()).ok_or_else(|| {
                    UnpackError::Archive(std::io::Error::other(format!("symlink {} has no target", raw.display())))
                })?;
                if exists {
                    self.make_room(&parent, &name, &path, is_dir).map_err(|e| io(&path, e))?;
                }
                // The target is stored verbatim: it is only ever resolved inside the root.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, &name).map_err(|e| io(&path, e))?;
                if let Some(o) = self.chown_for(owner) {
                    let (u, g) = uid_gid(o);
                    let _ = rustix::fs::chownat(&parent, &name, u, g, AtFlags::SYMLINK_NOFOLLOW);
                }
                let _ = rustix::fs::utimensat(&parent, &name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
                self.stats.symlinks += 1;
            }
            tar::EntryType::Link => {
                let target_raw = header
                    .link_name()
                    .map_err(UnpackError::Archive)?
                    .ok_or_else(|| UnpackError::HardLinkOutside {
                        entry: raw.display().to_string(),
                        target: String::new(),
                    })?
                    .into_owned();
                let outside = || UnpackError::HardLinkOutside {
                    entry: raw.display().to_string(),
                    target: target_raw.display().to_string(),
                };
                let target = match clean(&target_raw) {
                    Ok(Some(t)) => t,
                    Ok(None) | Err(_) => return Err(outside()),
                };
                // The target may still be in the pool.
                self.pool.flush().map_err(pool_err)?;
                let tparent = self.open_dir(target.parent().unwrap_or(Path::new("")), false).map_err(|_| outside())?;
                // Invariant: `clean` returned a non-empty path, so it has a file name.
                let Some(tname) = target.file_name() else { return Err(outside()) };
                if exists {
                    self.make_room(&parent, &name, &path, is_dir).map_err(|e| io(&path, e))?;
                }
                // Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink itself, never what it points at.
                rustix::fs::linkat(&tparent, tname, &parent, &name, AtFlags::empty()).map_err(|e| io(&path, e))?;
                self.stats.hardlinks += 1;
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                if exists {
                    self.make_room(&parent, &name, &path, is_dir).map_err(|e| io(&path, e))?;
                }
                if kind != tar::EntryType::Fifo && !self.opts.devices {
                    let placeholder = create_new(&parent, &name, 0o600).map_err(|e| io(&path, e))?;
                    rustix::fs::fchmod(&placeholder, Mode::from_raw_mode(mode & 0o666)).map_err(|e| io(&path, e))?;
                    self.stats.placeholder_devices.push(path.display().to_string());
                    self.created.insert(path, false);
                    return Ok(());
                }
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent, &name, ft, Mode::from_raw_mode(mode), dev).map_err(|e| io(&path, e))?;
                if let Some(o) = owner {
                    let (u, g) = uid_gid(o);
                    let _ = rustix::fs::chownat(&parent, &name, u, g, AtFlags::SYMLINK_NOFOLLOW);
                }
            }
            // PAX and GNU metadata entries are consumed by the tar reader; anything else is ignored.
            _ => return Ok(()),
        }
        self.created.insert(path, false);
        Ok(())
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
