//! A flattened root filesystem built from snapshots: the union overlayfs shows, computed in user space, each file
//! copied once (`copy_file_range`) from the topmost layer that has it, on the file pool.
//!
//! Per directory the layers that contribute are taken from the top down, stopping below an opaque directory or
//! below a layer where the name is not a directory; a 0:0 character device hides the name in the layers below.
//! Directory metadata comes from the topmost layer that has the directory, as overlayfs does. Hard links within
//! a layer stay hard links. The destination is created fresh, every operation relative to a directory fd this
//! function created, never following a symlink.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::Snapshot;
use crate::io::unpack::{default_threads, times, umask, Content, FileMeta, Job, Pool};

/// What a flatten wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlattenStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

struct DirMeta {
    path: PathBuf,
    stat: Stat,
}

struct Walk {
    pool: Pool,
    dirs: Vec<DirMeta>,
    /// (layer, inode) of a multiply linked file → where it was first written.
    links: HashMap<(usize, u64), (Arc<OwnedFd>, OsString)>,
    stats: FlattenStats,
    root: bool,
    ids: (u32, u32),
    umask: u32,
}

fn io(path: &Path, e: impl Into<std::io::Error>) -> std::io::Error {
    crate::io::error::IoContext::wrap(path.display(), e)
}

fn open_dir(dir: &OwnedFd, name: &std::ffi::OsStr) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let mut v = [0u8; 8];
    [crate::io::unpack::TRUSTED_OPAQUE, crate::io::unpack::USER_OPAQUE]
        .iter()
        .any(|x| matches!(rustix::fs::fgetxattr(dir, *x, &mut v[..]), Ok(1) if v[0] == b'y'))
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn is_whiteout(st: &Stat) -> bool {
    kind(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Builds the union of `layers` (bottom first) into `dest`, which must not exist or be empty.
pub fn flatten(layers: &[Snapshot], dest: &Path) -> std::io::Result<FlattenStats> {
    std::fs::create_dir_all(dest)?;
    if std::fs::read_dir(dest)?.next().is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} is not empty: unpack into a new directory", dest.display()),
        ));
    }
    let dest_fd = rustix::fs::open(dest, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut srcs = Vec::new();
    for (i, s) in layers.iter().enumerate().rev() {
        let fd = rustix::fs::open(&s.fs, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io(&s.fs, e))?;
        let opaque = is_opaque(&fd);
        srcs.push((i, Arc::new(fd)));
        if opaque {
            break;
        }
    }
    let mut w = Walk {
        pool: Pool::new(default_threads()),
        dirs: Vec::new(),
        links: HashMap::new(),
        stats: FlattenStats::default(),
        root: rustix::process::geteuid().is_root(),
        ids: (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw()),
        umask: umask(),
    };
    let dest_fd = Arc::new(dest_fd);
    w.dir(&srcs, &dest_fd, Path::new(""))?;
    // The root takes the metadata of the topmost layer that sets it (has a `./` entry).
    if let Some(top) = layers.iter().rev().find(|s| s.root_entry) {
        let stat = rustix::fs::stat(&top.fs)?;
        w.dirs.push(DirMeta { path: PathBuf::new(), stat });
    }
    w.pool.flush().map_err(|(p, e)| io(&p, e))?;
    // Directory owners, modes and times last, deepest first, when nothing more is written into them.
    let mut dirs = std::mem::take(&mut w.dirs);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in dirs {
        // Reopened by path (holding every directory open could exceed the fd limit), beneath the destination and
        // through no symlink: it is our own tree.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
        let rel: &Path = if d.path.as_os_str().is_empty() { Path::new(".") } else { &d.path };
        let fd = rustix::fs::openat2(&*dest_fd, rel, flags, Mode::empty(), resolve).map_err(|e| io(&d.path, e))?;
        let mode = d.stat.st_mode & 0o7777;
        if w.root && (d.stat.st_uid, d.stat.st_gid) != w.ids {
            let (u, g) = (rustix::fs::Uid::from_raw(d.stat.st_uid), rustix::fs::Gid::from_raw(d.stat.st_gid));
            rustix::fs::fchown(&fd, Some(u), Some(g)).map_err(|e| io(&d.path, e))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| io(&d.path, e))?;
        rustix::fs::futimens(&fd, &times(d.stat.st_mtime as u64)).map_err(|e| io(&d.path, e))?;
    }
    Ok(w.stats)
}

impl Walk {
    /// Writes the union of directory `rel` from `srcs` (topmost first, each with its layer index) into `dest`.
    fn dir(&mut self, srcs: &[(usize, Arc<OwnedFd>)], dest: &Arc<OwnedFd>, rel: &Path) -> std::io::Result<()> {
        // name → (position in srcs of the topmost layer that has it, its stat); whiteouts included, to hide.
        let mut names: BTreeMap<OsString, (usize, Stat)> = BTreeMap::new();
        for (k, (_, fd)) in srcs.iter().enumerate() {
            for name in crate::io::unpack::list(fd).map_err(|e| io(rel, e))? {
                if names.contains_key(&name) {
                    continue;
                }
                let st = rustix::fs::statat(&**fd, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(rel, e))?;
                names.insert(name, (k, st));
            }
        }
        for (name, (k, st)) in names {
            let path = rel.join(&name);
            if is_whiteout(&st) {
                continue;
            }
            let (layer, src) = (srcs[k].0, &srcs[k].1);
            match kind(&st) {
                FileType::Directory => self.subdir(srcs, k, dest, &name, &path, st)?,
                FileType::RegularFile => self.file(layer, src, dest, name, path, &st)?,
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&**src, &name, Vec::new()).map_err(|e| io(&path, e))?;
                    rustix::fs::symlinkat(target.as_c_str(), &**dest, &name).map_err(|e| io(&path, e))?;
                    self.chown_at(dest, &name, &st);
                    let _ =
                        rustix::fs::utimensat(&**dest, &name, &times(st.st_mtime as u64), AtFlags::SYMLINK_NOFOLLOW);
                }
                ft => {
                    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
                    rustix::fs::mknodat(&**dest, &name, ft, mode, st.st_rdev).map_err(|e| io(&path, e))?;
                    self.chown_at(dest, &name, &st);
                }
            }
        }
        Ok(())
    }

    fn chown_at(&self, dest: &OwnedFd, name: &std::ffi::OsStr, st: &Stat) {
        if self.root && (st.st_uid, st.st_gid) != self.ids {
            let (u, g) = (rustix::fs::Uid::from_raw(st.st_uid), rustix::fs::Gid::from_raw(st.st_gid));
            let _ = rustix::fs::chownat(dest, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW);
        }
    }

    /// A directory whose topmost layer is `srcs[k]`: merged with the same directory in the layers below it, down
    /// to an opaque one or a layer where the name is something else.
    fn subdir(
        &mut self,
        srcs: &[(usize, Arc<OwnedFd>)],
        k: usize,
        dest: &Arc<OwnedFd>,
        name: &std::ffi::OsStr,
        path: &Path,
        st: Stat,
    ) -> std::io::Result<()> {
        let mut below = Vec::new();
        for (layer, fd) in &srcs[k..] {
            let sub = match open_dir(fd, name) {
                Ok(sub) => sub,
                Err(Errno::NOENT) => continue,
                // Not a directory here (a file, a symlink or a whiteout): it hides the layers below.
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => break,
                Err(e) => return Err(io(path, e)),
            };
            let opaque = is_opaque(&sub);
            below.push((*layer, Arc::new(sub)));
            if opaque {
                break;
            }
        }
        rustix::fs::mkdirat(&**dest, name, Mode::from_raw_mode(0o700)).map_err(|e| io(path, e))?;
        let made = Arc::new(open_dir(dest, name).map_err(|e| io(path, e))?);
        self.dir(&below, &made, path)?;
        self.dirs.push(DirMeta { path: path.to_path_buf(), stat: st });
        self.stats.dirs += 1;
        Ok(())
    }

    fn file(
        &mut self,
        layer: usize,
        src: &Arc<OwnedFd>,
        dest: &Arc<OwnedFd>,
        name: OsString,
        path: PathBuf,
        st: &Stat,
    ) -> std::io::Result<()> {
        if st.st_nlink > 1 {
            if let Some((first_dir, first)) = self.links.get(&(layer, st.st_ino)) {
                // The first name may still be in the pool.
                self.pool.flush().map_err(|(p, e)| io(&p, e))?;
                rustix::fs::linkat(&**first_dir, first, &**dest, &name, AtFlags::empty()).map_err(|e| io(&path, e))?;
                return Ok(());
            }
            self.links.insert((layer, st.st_ino), (dest.clone(), name.clone()));
        }
        let mode = st.st_mode & 0o7777;
        let chown = (self.root && (st.st_uid, st.st_gid) != self.ids).then_some((st.st_uid, st.st_gid));
        let meta = FileMeta {
            mode,
            chown,
            chmod: mode & 0o7000 != 0 || mode & 0o777 & self.umask != 0,
            mtime: st.st_mtime as u64,
            xattrs: Vec::new(),
        };
        self.stats.files += 1;
        self.stats.bytes += st.st_size as u64;
        let content = Content::Copy { dir: src.clone(), name: name.clone() };
        self.pool.submit(Job { parent: dest.clone(), name, path, content, meta }).map_err(|(p, e)| io(&p, e))
    }
}
