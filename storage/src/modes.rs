//! Files closed to other local users. The data directory holds the database (every account's password hash), the
//! key-encryption key, blobs and uploads: all of it is for the server's own user only, directories 0700 and files
//! 0600, whatever the umask.
//!
//! What Wharf creates, it creates with those modes (the umask can only remove bits, so an explicit mode holds);
//! the files SQLite creates take their database file's mode, and the database file is made here first. What an
//! older version (or another tool) left open is narrowed once at start-up by [`tighten`].

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// The mode of every directory Wharf creates in its data.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file Wharf creates in its data.
pub const FILE_MODE: u32 = 0o600;

/// How deep [`tighten`] walks below each root. The store's layout is five levels deep (`store/blobs/sha256/ab/
/// <hex>`); deeper directories are not Wharf's and are left as they are.
pub const MAX_DEPTH: usize = 16;

/// Creates `dir` and its missing parents, each with mode 0700 (existing ones are left alone).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Options that create files with mode 0600 (set what else is needed: `write`, `create`, ...).
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Creates the SQLite database file at `path` with mode 0600 unless it exists, and narrows it and its `-wal` and
/// `-shm` files if they are open to others. SQLite creates the `-wal` and `-shm` files with the database file's
/// mode, so they stay closed too.
pub fn private_database(path: &Path) -> io::Result<()> {
    file_options().write(true).create(true).truncate(false).open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match narrow(Path::new(&p)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes the group, other and set-id bits of the directory or regular file at `path` (a symbolic link is not
/// followed and left alone). Returns whether the mode changed.
pub fn narrow(path: &Path) -> io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    let mode = meta.permissions().mode() & 0o7777;
    if !(meta.is_dir() || meta.is_file()) || mode & !0o700 == 0 {
        return Ok(false);
    }
    // Changed through a descriptor opened without following links, so a path swapped for a link since the check
    // cannot redirect the change.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let file = std::fs::File::from(fd);
    file.set_permissions(Permissions::from_mode(mode & 0o700))?;
    Ok(true)
}

/// What [`tighten`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tightened {
    pub dirs: u64,
    pub files: u64,
    /// Entries whose mode could not be changed (another owner, a read-only file system), and the first error.
    pub failed: u64,
    pub first_error: Option<String>,
}

impl Tightened {
    pub fn changed(&self) -> u64 {
        self.dirs + self.files
    }
}

/// Narrows every directory and regular file under `root` (and `root` itself) to its owner, as [`narrow`] does: one
/// walk, at most [`MAX_DEPTH`] levels down, never following a symbolic link. A missing `root` changes nothing.
pub fn tighten(root: &Path) -> Tightened {
    let mut out = Tightened::default();
    let fail = |out: &mut Tightened, p: &Path, e: io::Error| {
        out.failed += 1;
        out.first_error.get_or_insert_with(|| format!("{}: {e}", p.display()));
    };
    // The root itself may be a link an operator made (`/var/lib/wharf` on another disk): it is followed.
    let root = match std::fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
        Err(e) => {
            fail(&mut out, root, e);
            return out;
        }
    };
    let mut stack: Vec<(PathBuf, usize)> = vec![(root, 0)];
    while let Some((path, depth)) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                fail(&mut out, &path, e);
                continue;
            }
        };
        match narrow(&path) {
            Ok(true) if meta.is_dir() => out.dirs += 1,
            Ok(true) => out.files += 1,
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => fail(&mut out, &path, e),
        }
        if !meta.is_dir() || depth >= MAX_DEPTH {
            continue;
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => {
                fail(&mut out, &path, e);
                continue;
            }
        };
        for entry in entries {
            match entry {
                Ok(e) => stack.push((e.path(), depth + 1)),
                Err(e) => fail(&mut out, &path, e),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn tighten_narrows_dirs_and_files_and_leaves_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("store/blobs/sha256/ab")).unwrap();
        std::fs::write(root.join("wharf.db"), b"db").unwrap();
        std::fs::write(root.join("store/blobs/sha256/ab/abcd"), b"blob").unwrap();
        std::fs::write(root.join("already"), b"x").unwrap();
        std::fs::set_permissions(root.join("already"), Permissions::from_mode(0o400)).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"not ours").unwrap();
        std::fs::set_permissions(&outside, Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        for d in ["", "store", "store/blobs", "store/blobs/sha256", "store/blobs/sha256/ab"] {
            std::fs::set_permissions(root.join(d), Permissions::from_mode(0o2755)).unwrap();
        }
        for f in ["wharf.db", "store/blobs/sha256/ab/abcd"] {
            std::fs::set_permissions(root.join(f), Permissions::from_mode(0o664)).unwrap();
        }

        let t = tighten(&root);
        assert_eq!((t.dirs, t.files, t.failed), (5, 2, 0), "{t:?}");
        for d in ["", "store", "store/blobs", "store/blobs/sha256", "store/blobs/sha256/ab"] {
            assert_eq!(mode(&root.join(d)), 0o700, "{d}");
        }
        assert_eq!(mode(&root.join("wharf.db")), 0o600);
        assert_eq!(mode(&root.join("already")), 0o400, "never widened");
        assert_eq!(mode(&outside), 0o644, "links are not followed");
        assert_eq!(tighten(&root), Tightened::default(), "a second walk finds nothing to change");
        assert_eq!(tighten(&tmp.path().join("missing")), Tightened::default());
    }

    #[test]
    fn created_modes_ignore_a_permissive_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let old = rustix::process::umask(Mode::empty());
        let dir = tmp.path().join("a/b");
        let made = create_dir_all(&dir);
        let db = tmp.path().join("a/wharf.db");
        let file = private_database(&db);
        rustix::process::umask(old);
        made.unwrap();
        file.unwrap();
        assert_eq!((mode(&tmp.path().join("a")), mode(&dir)), (0o700, 0o700));
        assert_eq!(mode(&db), 0o600);
    }
}
