//! Where a layer entry goes: tar names cleaned into relative paths, and directories opened (or created) inside the
//! root by the kernel's resolution (`openat2` + `RESOLVE_IN_ROOT`), the last one cached for the next entry.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::fsops::lexical_in_root;
use super::layer::Layer;
use super::UnpackError;

/// A relative, `..`-free path for a tar name; `None` for the root itself.
pub(super) fn clean(raw: &Path) -> Result<Option<PathBuf>, UnpackError> {
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

impl Layer<'_> {
    /// The directory an entry goes into, created if missing; cached for the next entry.
    pub(super) fn parent_fd(&mut self, rel: &Path) -> rustix::io::Result<Arc<OwnedFd>> {
        if let Some((p, fd)) = &self.parent {
            if p == rel {
                return Ok(fd.clone());
            }
        }
        let fd = Arc::new(self.open_dir(rel, true)?);
        self.parent = Some((rel.to_path_buf(), fd.clone()));
        Ok(fd)
    }

    /// Opens a directory inside the root, resolving symlinks as if the root were `/`; creates missing ones.
    pub(super) fn open_dir(&mut self, rel: &Path, create: bool) -> rustix::io::Result<OwnedFd> {
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
                        self.created.insert(so_far.clone(), true);
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
