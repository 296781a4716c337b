//! The local content store closed to other users, as containerd keeps its own: the store's directories (blobs,
//! downloads, refs, recorded trust state, snapshots, containers) are 0700 and the files Wharf writes there 0600,
//! whatever the umask. Extracted layer trees (a snapshot's `fs/`, a container's `rootfs`) keep the image's modes:
//! only the directories around them are closed.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of the store's own directories.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the files the store writes.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left alone).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Options that create files with mode 0600.
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Writes `bytes` to `path` as `std::fs::write` does, creating it with mode 0600 (a file that existed keeps its
/// mode, less what group and others could do with it).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = file_options().write(true).create(true).truncate(true).open(path)?;
    let mode = f.metadata()?.permissions().mode() & 0o7777;
    if mode & !0o700 != 0 {
        f.set_permissions(Permissions::from_mode(mode & 0o700))?;
    }
    f.write_all(bytes)
}

/// Removes group and other access from the directory `dir`, if it exists and is one (a symbolic link is left
/// alone).
pub fn close_dir(dir: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() && mode & !0o700 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_directories_and_files_are_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, file) = (tmp.path().join("d"), tmp.path().join("f"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        close_dir(&dir).unwrap();
        write(&file, b"new").unwrap();
        write(&tmp.path().join("g"), b"new").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&tmp.path().join("g")), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        close_dir(&tmp.path().join("missing")).unwrap();
    }
}
