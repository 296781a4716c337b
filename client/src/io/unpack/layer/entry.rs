//! One step per kind of layer entry: the root's own metadata, whiteouts, directories, regular files, symlinks,
//! hard links, FIFOs and device nodes (or their placeholders). [`Layer::apply`] picks the step.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode};

use super::{io, pool_err, uid_gid, DirMeta, Layer};
use crate::io::unpack::fsops::times;
use crate::io::unpack::pool::{Content, FileMeta, Job, SMALL_FILE};
use crate::io::unpack::resolve::clean;
use crate::io::unpack::{create_new, finish_file, UnpackError};

/// Where a new entry goes and what its header asks for, worked out before the step of its kind runs.
pub(super) struct Target {
    /// The directory it goes into, opened (or created) inside the root.
    parent: Arc<OwnedFd>,
    name: OsString,
    /// Its path relative to the root (for error messages and the record of what this layer created).
    path: PathBuf,
    /// Permission and special bits, setuid/setgid already dropped where anyone may rewrite it.
    mode: u32,
    mtime: u64,
    /// The owner recorded in the layer, when ownership is preserved.
    owner: Option<(u32, u32)>,
    /// Whether something is there already (in overlay form: something this layer created), and whether it is a
    /// directory.
    exists: bool,
    is_dir: bool,
}

impl Target {
    fn io(&self, e: impl Into<std::io::Error>) -> UnpackError {
        io(&self.path, e)
    }
}

impl Layer<'_> {
    /// The root itself (`./`): its owner, mode and time apply to the root directory, last.
    pub(super) fn root_dir(&mut self, h: &tar::Header) {
        let owner = self.opts.preserve_ownership.then(|| (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let mode = h.mode().unwrap_or(0o755) & 0o7777;
        let (mtime, chown) = (h.mtime().unwrap_or(0), self.chown_for(owner));
        self.dirs.push(DirMeta { path: PathBuf::new(), mode, mtime, chown, chmod: true });
        self.stats.root_entry = true;
    }

    /// An opaque whiteout (`.wh..wh..opq`) for the directory `parent_path`.
    pub(super) fn opaque_entry(&mut self, parent_path: &Path, path: &Path) -> Result<(), UnpackError> {
        self.stats.whiteouts += 1;
        self.opaque(parent_path).map_err(|e| io(path, e))
    }

    /// A whiteout (`.wh.NAME`) of `victim` in `parent_path`; a victim naming no entry (`.`, `..`, nothing) is
    /// refused.
    pub(super) fn whiteout_entry(
        &mut self,
        raw: &Path,
        path: &Path,
        parent_path: &Path,
        victim: &str,
    ) -> Result<(), UnpackError> {
        self.stats.whiteouts += 1;
        if victim.is_empty() || victim == "." || victim == ".." {
            return Err(UnpackError::PathTraversal { entry: raw.display().to_string() });
        }
        self.whiteout(parent_path, OsStr::new(victim)).map_err(|e| io(path, e))
    }

    /// Opens the parent of a new entry and reads what its header asks for.
    pub(super) fn target(
        &mut self,
        header: &tar::Header,
        path: PathBuf,
        parent_path: &Path,
        name: OsString,
    ) -> Result<Target, UnpackError> {
        let parent = self.parent_fd(parent_path).map_err(|e| io(&path, e))?;
        let mut mode = header.mode().unwrap_or(0o644) & 0o7777;
        // setuid/setgid on something every user may rewrite is a privilege anyone can take: drop the bits.
        if header.entry_type() != tar::EntryType::Directory && mode & 0o002 != 0 && mode & 0o6000 != 0 {
            mode &= !0o6000;
            self.stats.setid_dropped += 1;
        }
        let mtime = header.mtime().unwrap_or(0);
        let owner =
            self.opts.preserve_ownership.then(|| (header.uid().unwrap_or(0) as u32, header.gid().unwrap_or(0) as u32));
        let (exists, is_dir) = self.existing(&parent, &name, &path);
        Ok(Target { parent, name, path, mode, mtime, owner, exists, is_dir })
    }

    /// Removes whatever is at the target, if anything is.
    fn clear(&mut self, t: &Target) -> Result<(), UnpackError> {
        if t.exists {
            self.make_room(&t.parent, &t.name, &t.path, t.is_dir).map_err(|e| t.io(e))?;
        }
        Ok(())
    }

    /// A directory: an existing one is kept (its metadata replaced at the end); anything else there is removed.
    pub(super) fn directory(&mut self, t: Target) -> Result<(), UnpackError> {
        if t.exists && !t.is_dir {
            self.make_room(&t.parent, &t.name, &t.path, false).map_err(|e| t.io(e))?;
        }
        let chown = self.chown_for(t.owner);
        let chmod = if t.exists && t.is_dir {
            true
        } else {
            // Created with its final permissions when they let us fill it; the rest waits for the end.
            let direct = t.mode & 0o700 == 0o700;
            let create = if direct { t.mode & 0o777 } else { 0o700 };
            rustix::fs::mkdirat(&t.parent, &t.name, Mode::from_raw_mode(create)).map_err(|e| t.io(e))?;
            !direct || self.chmod_for(t.mode)
        };
        self.dirs.push(DirMeta { path: t.path.clone(), mode: t.mode, mtime: t.mtime, chown, chmod });
        self.stats.dirs += 1;
        self.created.insert(t.path, true);
        Ok(())
    }

    /// A regular file, charged to the budget: a small one is handed to the pool with its bytes, a large one
    /// written here from the stream.
    pub(super) fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        raw: &Path,
        t: Target,
    ) -> Result<(), UnpackError> {
        let size = entry.size();
        if !self.budget.take(size) {
            return Err(UnpackError::TooLarge { entry: raw.display().to_string(), max: self.budget.max });
        }
        self.stats.bytes += size;
        self.clear(&t)?;
        let chown = self.chown_for(t.owner);
        let meta = FileMeta {
            mode: t.mode,
            chown,
            chmod: self.chmod_for(t.mode),
            mtime: t.mtime,
            xattrs: super::xattrs(entry),
        };
        // Moved, not cloned, into the pool's job: this runs once per file.
        let Target { parent, name, path, mode, .. } = t;
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
        self.created.insert(path, false);
        Ok(())
    }

    /// A symlink. Its target is stored verbatim: it is only ever resolved inside the root.
    pub(super) fn symlink(&mut self, header: &tar::Header, raw: &Path, t: Target) -> Result<(), UnpackError> {
        let target = header
            .link_name_bytes()
            .map(|b| b.into_owned())
            .ok_or_else(|| UnpackError::NoLinkTarget { entry: raw.display().to_string() })?;
        self.clear(&t)?;
        rustix::fs::symlinkat(OsStr::from_bytes(&target), &t.parent, &t.name).map_err(|e| t.io(e))?;
        if let Some(o) = self.chown_for(t.owner) {
            let (u, g) = uid_gid(o);
            let _ = rustix::fs::chownat(&t.parent, &t.name, u, g, AtFlags::SYMLINK_NOFOLLOW);
        }
        let _ = rustix::fs::utimensat(&t.parent, &t.name, &times(t.mtime), AtFlags::SYMLINK_NOFOLLOW);
        self.stats.symlinks += 1;
        self.created.insert(t.path, false);
        Ok(())
    }

    /// A hard link to an earlier entry, which must be inside the root.
    pub(super) fn hard_link(&mut self, header: &tar::Header, raw: &Path, t: Target) -> Result<(), UnpackError> {
        let target_raw = header
            .link_name()
            .map_err(UnpackError::Archive)?
            .ok_or_else(|| UnpackError::HardLinkOutside { entry: raw.display().to_string(), target: String::new() })?
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
        self.clear(&t)?;
        // Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink itself, never what it points at.
        rustix::fs::linkat(&tparent, tname, &t.parent, &t.name, AtFlags::empty()).map_err(|e| t.io(e))?;
        self.stats.hardlinks += 1;
        self.created.insert(t.path, false);
        Ok(())
    }

    /// A FIFO, or a device node when devices are allowed.
    pub(super) fn node(&mut self, header: &tar::Header, kind: FileType, t: Target) -> Result<(), UnpackError> {
        self.clear(&t)?;
        let dev = rustix::fs::makedev(
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        rustix::fs::mknodat(&t.parent, &t.name, kind, Mode::from_raw_mode(t.mode), dev).map_err(|e| t.io(e))?;
        if let Some(o) = t.owner {
            let (u, g) = uid_gid(o);
            let _ = rustix::fs::chownat(&t.parent, &t.name, u, g, AtFlags::SYMLINK_NOFOLLOW);
        }
        self.created.insert(t.path, false);
        Ok(())
    }

    /// A device node when devices are not allowed: an empty file with the node's read and write bits, named in
    /// the layer's stats (and so in a warning).
    pub(super) fn placeholder(&mut self, t: Target) -> Result<(), UnpackError> {
        self.clear(&t)?;
        let file = create_new(&t.parent, &t.name, 0o600).map_err(|e| t.io(e))?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(t.mode & 0o666)).map_err(|e| t.io(e))?;
        self.stats.placeholder_devices.push(t.path.display().to_string());
        self.created.insert(t.path, false);
        Ok(())
    }
}
