//! Durable commits on a local store: what a `201 Created` promises must survive a power cut, not only a crash.
//!
//! `object_store`'s local store never syncs, so a local commit is made here: the upload's file is synced, renamed
//! to its content address with `RENAME_NOREPLACE` (so concurrent uploads of one blob keep the first copy, and
//! nothing is ever overwritten), and the blob's directory is synced after the rename, all before the caller answers.

use std::fs::File;
use std::path::Path;

use rustix::fs::{renameat_with, RenameFlags, CWD};

use crate::{Error, Result};

/// What [`commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// `from` is now `to`.
    Moved,
    /// `to` was there already; `from` is left for the caller, who decides whether that copy may be trusted (the
    /// collector may be deleting it) before removing its own.
    Found,
}

/// Syncs `from`, renames it to `to` unless `to` exists, and syncs `to`'s directory (and the directories created
/// for it).
pub fn commit(from: &Path, to: &Path) -> Result<Commit> {
    File::open(from).and_then(|f| f.sync_all()).map_err(Error::io("syncing", from))?;
    let dir = to.parent().ok_or_else(|| Error::Config(format!("{} has no parent", to.display())))?;
    let created = !dir.exists();
    crate::modes::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {
            // The copy in place may be one whose commit failed after its rename (a directory sync that failed):
            // this commit promises it too, so its entry is synced now.
            sync_dir(dir)?;
            return Ok(Commit::Found);
        }
        Err(e) => return Err(Error::io("renaming to", to)(e.into())),
    }
    sync_dir(dir)?;
    if created {
        // A new directory's entry lives in its parent: sync up the `<algorithm>/<xx>` levels and `blobs/` itself
        // to the store root, as the first blob of a prefix may have created all three.
        for d in dir.ancestors().skip(1).take(3) {
            sync_dir(d)?;
        }
    }
    Ok(Commit::Moved)
}

/// Syncs a directory, so that entries renamed into it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(Error::io("syncing", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_keeps_the_first_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, to) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("x/y/blob"));
        std::fs::write(&a, b"first").unwrap();
        std::fs::write(&b, b"second").unwrap();
        assert_eq!(commit(&a, &to).unwrap(), Commit::Moved);
        assert_eq!(commit(&b, &to).unwrap(), Commit::Found);
        assert_eq!(std::fs::read(&to).unwrap(), b"first");
        assert!(!a.exists() && b.exists(), "the second copy is the caller's to remove");
    }
}
