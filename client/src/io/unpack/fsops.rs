//! The file-system operations layer application builds on: lexical resolution inside the root, directory
//! listing and recursive removal through directory fds (never following a final symlink), times, xattrs.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// `target` (a symlink's text) taken from directory `base`, with the root as `/` and `..` stopping at the root.
pub(crate) fn lexical_in_root(base: &Path, target: &Path) -> PathBuf {
    let mut out: Vec<&OsStr> = if target.is_absolute() { Vec::new() } else { base.iter().collect() };
    for c in target.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.iter().collect()
}

pub(crate) fn times(mtime: u64) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 };
    rustix::fs::Timestamps { last_access: t, last_modification: t }
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn list(dir: &OwnedFd) -> rustix::io::Result<Vec<std::ffi::OsString>> {
    let fd = rustix::fs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut d = rustix::fs::Dir::read_from(&fd)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir`, recursively if it is a directory; never follows a symlink.
pub(crate) fn remove_all(dir: &impl AsFd, name: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list(&sub)? {
        remove_all(&sub, &child)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
