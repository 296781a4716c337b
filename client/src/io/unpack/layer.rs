//! Applying image layers to a root filesystem, safely.
//!
//! Every path is resolved by the kernel inside the root (`openat2` with `RESOLVE_IN_ROOT`): a symlink in a layer,
//! absolute or relative, resolves as if the root were `/`, so no entry can reach outside it. Entries naming `..`
//! or an absolute path are refused outright; the final component of every operation is never followed. Whiteouts
//! and opaque whiteouts remove content of lower layers; directory modes and times are applied last, so that a
//! read-only directory can still receive its children.

mod fsops;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use fsops::{lexical_in_root, list, remove_all, set_xattrs, times};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?} climbs out of the root with '..'")]
    PathTraversal { entry: String },
    #[error("layer entry {entry:?} is an absolute path")]
    AbsolutePath { entry: String },
    #[error("layer entry {entry:?}: hard link target {target:?} is not inside the root")]
    HardLinkOutside { entry: String, target: String },
    #[error("layer entry {entry:?}")]
    Io {
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer entry {entry:?}: the image unpacks to more than the {max}-byte limit (a decompression bomb?)")]
    TooLarge { entry: String, max: u64 },
    #[error("reading the layer archive")]
    Archive(#[source] std::io::Error),
    #[error("opening the root directory {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Apply the owners recorded in the layer (needs root; default: when running as root).
    pub preserve_ownership: bool,
    /// Create character and block device nodes (`--allow-devices`, for trusted images; needs root). Off by
    /// default: each becomes an empty placeholder file and is named in a warning, as umoci's rootless unpack
    /// does, because a world-readable copy of a node such as `/dev/mem` hands every local user the machine.
    pub devices: bool,
    /// The most file bytes this unpack may still write (default 64 GiB): stops a decompression bomb before the
    /// disk fills. [`UnpackOptions::after`] carries what is left from one layer to the next.
    pub max_bytes: u64,
}

/// The default limit on unpacked bytes per image.
pub const DEFAULT_MAX_UNPACKED: u64 = 64 << 30;

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        UnpackOptions { preserve_ownership: root, devices: false, max_bytes: DEFAULT_MAX_UNPACKED }
    }
}

impl UnpackOptions {
    /// The options for the next layer: the byte budget less what `stats`' layer wrote.
    pub fn after(&self, stats: &LayerStats) -> UnpackOptions {
        UnpackOptions { max_bytes: self.max_bytes.saturating_sub(stats.bytes), ..*self }
    }
}

/// What a layer did to the tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayerStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub whiteouts: u64,
    /// File content bytes written.
    pub bytes: u64,
    /// Device entries written as empty placeholder files (devices not allowed).
    pub placeholder_devices: Vec<String>,
    /// Entries whose setuid/setgid bits were dropped because they were world-writable.
    pub setid_dropped: u64,
}

/// Decompresses (gzip, zstd or none, detected from the first bytes) and applies one layer to `root`.
pub fn apply_layer(root: &Path, layer: impl Read, opts: &UnpackOptions) -> Result<LayerStats, UnpackError> {
    let mut buffered = BufReader::with_capacity(1 << 20, layer);
    let head = buffered.fill_buf().map_err(UnpackError::Archive)?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(UnpackError::Archive)?)
    } else {
        Box::new(buffered)
    };
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| UnpackError::Root { path: root.into(), source: e.into() })?;
    let mut u =
        Layer { root: root_fd, opts: *opts, created: HashSet::new(), dirs: Vec::new(), stats: LayerStats::default() };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        u.apply(&mut entry)?;
    }
    u.finish_dirs()?;
    if !u.stats.placeholder_devices.is_empty() {
        let names = &u.stats.placeholder_devices;
        let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
        tracing::warn!(
            count = names.len(),
            entries = %shown.join(", "),
            "device nodes in the layer were written as empty placeholder files (--allow-devices creates them)"
        );
    }
    Ok(u.stats)
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: u64,
    owner: Option<(u32, u32)>,
}

struct Layer {
    root: OwnedFd,
    opts: UnpackOptions,
    /// Paths this layer created: an opaque whiteout removes only what lower layers left.
    created: HashSet<PathBuf>,
    dirs: Vec<DirMeta>,
    stats: LayerStats,
}

/// A relative, `..`-free path for a tar name; `None` for the root itself.
fn clean(raw: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let entry = || raw.display().to_string();
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(UnpackError::PathTraversal { entry: entry() }),
            Component::RootDir | Component::Prefix(_) => return Err(UnpackError::AbsolutePath { entry: entry() }),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Creates `name` in `parent` as a new regular file (mode 0600 until the entry's mode is applied), never following
/// or reusing what is there.
fn create_new(parent: &OwnedFd, name: &OsStr) -> rustix::io::Result<std::fs::File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600)).map(std::fs::File::from)
}

fn io(entry: &Path, e: impl Into<std::io::Error>) -> UnpackError {
    UnpackError::Io { entry: entry.display().to_string(), source: e.into() }
}

impl Layer {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Archive)?.into_owned();
        let Some(path) = clean(&raw)? else { return Ok(()) };
        // Invariant: `clean` returned a non-empty path of normal components, so it has a file name.
        let Some(name) = path.file_name().map(OsStr::to_owned) else { return Ok(()) };
        let parent_path = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let header = entry.header().clone();
        let kind = header.entry_type();

        if let Some(n) = name.to_str() {
            if n == OPAQUE {
                self.stats.whiteouts += 1;
                let dir = self.open_dir(&parent_path, true).map_err(|e| io(&path, e))?;
                return self.clear_dir(&dir, &parent_path).map_err(|e| io(&path, e));
            }
            if let Some(victim) = n.strip_prefix(WHITEOUT_PREFIX) {
                self.stats.whiteouts += 1;
                if victim.is_empty() || victim == "." || victim == ".." {
                    return Err(UnpackError::PathTraversal { entry: raw.display().to_string() });
                }
                let dir = match self.open_dir(&parent_path, false) {
                    Ok(d) => d,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
                    Err(e) => return Err(io(&path, e)),
                };
                return remove_all(&dir, OsStr::new(victim)).map_err(|e| io(&path, e));
            }
        }

        let parent = self.open_dir(&parent_path, true).map_err(|e| io(&path, e))?;
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
        let existing = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory);

        match kind {
            tar::EntryType::Directory => {
                if existing.is_some() && !existing_is_dir {
                    rustix::fs::unlinkat(&parent, &name, AtFlags::empty()).map_err(|e| io(&path, e))?;
                }
                if !existing_is_dir {
                    rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700)).map_err(|e| io(&path, e))?;
                }
                self.dirs.push(DirMeta { path: path.clone(), mode, mtime, owner });
                self.stats.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                if self.stats.bytes.saturating_add(size) > self.opts.max_bytes {
                    return Err(UnpackError::TooLarge { entry: raw.display().to_string(), max: self.opts.max_bytes });
                }
                self.stats.bytes += size;
                self.replace(&parent, &name, existing_is_dir, existing.is_some()).map_err(|e| io(&path, e))?;
                let mut file = create_new(&parent, &name).map_err(|e| io(&path, e))?;
                std::io::copy(entry, &mut file).map_err(|e| io(&path, e))?;
                if let Some((uid, gid)) = owner {
                    rustix::fs::fchown(
                        &file,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    )
                    .map_err(|e| io(&path, e))?;
                }
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(|e| io(&path, e))?;
                set_xattrs(&file, entry);
                rustix::fs::futimens(&file, &times(mtime)).map_err(|e| io(&path, e))?;
                self.stats.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = header.link_name_bytes().map(|b| b.into_owned()).ok_or_else(|| {
                    UnpackError::Archive(std::io::Error::other(format!("symlink {} has no target", raw.display())))
                })?;
                self.replace(&parent, &name, existing_is_dir, existing.is_some()).map_err(|e| io(&path, e))?;
                // The target is stored verbatim: it is only ever resolved inside the root.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, &name).map_err(|e| io(&path, e))?;
                if let Some((uid, gid)) = owner {
                    let _ = rustix::fs::chownat(
                        &parent,
                        &name,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    );
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
                let tparent = self.open_dir(target.parent().unwrap_or(Path::new("")), false).map_err(|_| outside())?;
                // Invariant: `clean` returned a non-empty path, so it has a file name.
                let Some(tname) = target.file_name() else { return Err(outside()) };
                self.replace(&parent, &name, existing_is_dir, existing.is_some()).map_err(|e| io(&path, e))?;
                // Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink itself, never what it points at.
                rustix::fs::linkat(&tparent, tname, &parent, &name, AtFlags::empty()).map_err(|e| io(&path, e))?;
                self.stats.hardlinks += 1;
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                if kind != tar::EntryType::Fifo && !self.opts.devices {
                    self.replace(&parent, &name, existing_is_dir, existing.is_some()).map_err(|e| io(&path, e))?;
                    let placeholder = create_new(&parent, &name).map_err(|e| io(&path, e))?;
                    rustix::fs::fchmod(&placeholder, Mode::from_raw_mode(mode & 0o666)).map_err(|e| io(&path, e))?;
                    self.stats.placeholder_devices.push(path.display().to_string());
                    self.created.insert(path);
                    return Ok(());
                }
                self.replace(&parent, &name, existing_is_dir, existing.is_some()).map_err(|e| io(&path, e))?;
                let ft = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent, &name, ft, Mode::from_raw_mode(mode), dev).map_err(|e| io(&path, e))?;
                if let Some((uid, gid)) = owner {
                    let _ = rustix::fs::chownat(
                        &parent,
                        &name,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
            }
            // PAX and GNU metadata entries are consumed by the tar reader; anything else is ignored.
            _ => return Ok(()),
        }
        self.created.insert(path);
        Ok(())
    }

    /// Removes what is in the way of a new non-directory entry.
    fn replace(&self, parent: &OwnedFd, name: &OsStr, is_dir: bool, exists: bool) -> rustix::io::Result<()> {
        if is_dir {
            remove_all(parent, name)
        } else if exists {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())
        } else {
            Ok(())
        }
    }

    /// Opens a directory inside the root, resolving symlinks as if the root were `/`; creates missing ones.
    fn open_dir(&mut self, rel: &Path, create: bool) -> rustix::io::Result<OwnedFd> {
        match self.open_in_root(rel) {
            Err(Errno::NOENT) if create => self.mkdir_all(rel, 0),
            other => other,
        }
    }

    fn open_in_root(&self, rel: &Path) -> rustix::io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let target: &Path = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        rustix::fs::openat2(&self.root, target, flags, Mode::empty(), resolve)
    }

    /// Creates `rel` and its missing ancestors inside the root. A dangling symlink on the way is followed (inside
    /// the root) and its target created, as a write through it would resolve.
    fn mkdir_all(&mut self, rel: &Path, depth: u32) -> rustix::io::Result<OwnedFd> {
        if depth > 40 {
            return Err(Errno::LOOP);
        }
        let mut fd = self.open_in_root(Path::new(""))?;
        let mut so_far = PathBuf::new();
        for comp in rel.components() {
            so_far.push(comp);
            match self.open_in_root(&so_far) {
                Ok(next) => fd = next,
                Err(Errno::NOENT) => match rustix::fs::mkdirat(&fd, comp.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        self.created.insert(so_far.clone());
                        fd = self.open_in_root(&so_far)?;
                    }
                    Err(Errno::EXIST) => {
                        let link = rustix::fs::readlinkat(&fd, comp.as_os_str(), Vec::new())?;
                        let link = Path::new(OsStr::from_bytes(link.as_bytes()));
                        let base = so_far.parent().unwrap_or(Path::new("")).to_path_buf();
                        self.mkdir_all(&lexical_in_root(&base, link), depth + 1)?;
                        fd = self.open_in_root(&so_far)?;
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(fd)
    }

    /// An opaque whiteout: removes every child of `dir` that this layer did not create.
    fn clear_dir(&self, dir: &OwnedFd, rel: &Path) -> rustix::io::Result<()> {
        for name in list(dir)? {
            if !self.created.contains(&rel.join(&name)) {
                remove_all(dir, &name)?;
            }
        }
        Ok(())
    }

    /// Applies directory modes, owners and times, deepest first.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for d in dirs {
            let fd = match self.open_dir(&d.path, false) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue, // Removed or replaced later in the layer.
                Err(e) => return Err(io(&d.path, e)),
            };
            let parent = self.open_dir(d.path.parent().unwrap_or(Path::new("")), false).map_err(|e| io(&d.path, e))?;
            // Invariant: directory entries come from `clean`, so each has a file name.
            let Some(name) = d.path.file_name() else { continue };
            if let Some((uid, gid)) = d.owner {
                rustix::fs::chownat(
                    &parent,
                    name,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&d.path, e))?;
            }
            rustix::fs::chmodat(&parent, name, Mode::from_raw_mode(d.mode), AtFlags::empty())
                .map_err(|e| io(&d.path, e))?;
            rustix::fs::utimensat(&fd, ".", &times(d.mtime), AtFlags::empty())
                .or_else(|_| rustix::fs::utimensat(&parent, name, &times(d.mtime), AtFlags::SYMLINK_NOFOLLOW))
                .map_err(|e| io(&d.path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::clean;
    use std::path::Path;

    #[test]
    fn names() {
        assert_eq!(clean(Path::new("./a/b")).unwrap().unwrap(), Path::new("a/b"));
        assert!(clean(Path::new("./")).unwrap().is_none());
        assert!(clean(Path::new("a/../b")).is_err());
        assert!(clean(Path::new("/etc/passwd")).is_err());
    }
}
