//! What backup and restore do to the object store: copy a committed object out into a file (a hard link from a
//! local store on the same file system, else a streamed copy hashed as it goes), write a file back as an object
//! (durably on a local store, never replacing one), and tell whether a store is empty. Keys are the store's own (`blobs/sha256/ab/<hex>`,
//! `blobs/uploaded/<id>`), from [`BlobStore::key`] only.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::WriteMultipart;
use tokio::io::AsyncReadExt;
use wharf_format::Digest;

use crate::{paths, BlobStore, Error, Result};

/// Bytes per part when a restore writes an object to a remote store.
const PART: usize = 16 << 20;

/// How [`BlobStore::export`] copied an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported {
    /// A hard link to the local store's file (same file system): no bytes copied.
    Linked(u64),
    /// The bytes streamed into a new file, and they hash to the digest.
    Copied(u64),
    /// The store has no such object.
    Missing,
}

impl BlobStore {
    /// The store's key of a committed blob: its recorded location, else its content address.
    pub fn key(digest: &Digest, location: Option<&str>) -> String {
        paths::stored_blob(digest, location).to_string()
    }

    /// Copies the committed object `key` to the new file `dest` (mode 0600, synced): a hard link when the store is
    /// local and `dest` is on its file system (its bytes not read), else the bytes streamed and hashed: bytes that
    /// do not hash to `digest` are [`Error::Corrupt`], so that a backup never holds what a restore would refuse.
    pub async fn export(&self, key: &str, digest: &Digest, dest: &Path) -> Result<Exported> {
        if let Some(root) = self.local_root() {
            let from = root.join(key);
            match std::fs::hard_link(&from, dest) {
                Ok(()) => {
                    let size = std::fs::metadata(dest).map_err(Error::io("reading", dest))?.len();
                    return Ok(Exported::Linked(size));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => return Ok(Exported::Missing),
                Err(_) => {} // Another file system (EXDEV), or one without links: copied below.
            }
        }
        self.export_streamed(key, digest, dest).await
    }

    /// [`export`](BlobStore::export)'s streamed copy.
    async fn export_streamed(&self, key: &str, digest: &Digest, dest: &Path) -> Result<Exported> {
        let Some((expected, mut body)) = self.read_counted(&Key::from(key)).await? else {
            return Ok(Exported::Missing);
        };
        let mut file = crate::modes::file_options()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(Error::io("creating", dest))?;
        let mut n = 0u64;
        let mut hash = digest.algorithm().hasher();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            hash.update(&chunk);
            file.write_all(&chunk).map_err(Error::io("writing", dest))?;
        }
        if n != expected {
            // A read cut short is never taken for the whole object.
            return Err(Error::Corrupt(format!("{key}: read {n} of {expected} bytes")));
        }
        let got = hash.finish();
        if got != *digest {
            return Err(Error::Corrupt(format!("{key}: its bytes hash to {got}, not {digest}")));
        }
        file.sync_all().map_err(Error::io("syncing", dest))?;
        Ok(Exported::Copied(n))
    }

    /// Writes the file `src` as the object `key`. On a local store: copied beside its place under a name that
    /// listings skip (see [`put_new_file`]), synced, renamed into place unless something is there, and its
    /// directory synced; elsewhere streamed in parts.
    pub async fn import(&self, key: &str, src: &Path) -> Result<()> {
        if let Some(root) = self.local_root() {
            let (s, to) = (src.to_path_buf(), root.join(key));
            return tokio::task::spawn_blocking(move || put_new_file(&s, &to))
                .await
                .map_err(Error::task("restore copy"))?;
        }
        let upload = self.object_store().put_multipart(&Key::from(key)).await.map_err(Error::Backend)?;
        let mut write = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut file = tokio::fs::File::open(src).await.map_err(Error::io("opening", src))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await.map_err(Error::io("reading", src))?;
            if n == 0 {
                break;
            }
            write.wait_for_capacity(4).await.map_err(Error::Backend)?;
            write.write(&buf[..n]);
        }
        write.finish().await.map_err(Error::Backend)?;
        Ok(())
    }

    /// Whether the store holds no object at all.
    pub async fn is_empty(&self) -> Result<bool> {
        if let Some(root) = self.local_root() {
            return match std::fs::read_dir(root) {
                Ok(mut entries) => Ok(entries.next().is_none()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(Error::io("listing", root)(e)),
            };
        }
        match self.object_store().list(None).next().await {
            None => Ok(true),
            Some(Ok(_)) => Ok(false),
            Some(Err(e)) => Err(Error::Backend(e)),
        }
    }

    /// The root directory of a local store.
    pub fn local_dir(&self) -> Option<PathBuf> {
        self.local_root().map(Path::to_path_buf)
    }
}

/// Copies `from` to the new file `to` (mode 0600, its directories 0700): written as `to#0` in `to`'s own directory
/// (on its file system, whatever is mounted where; a name with `#` and digits is what the store's listings skip, so
/// neither the scrub nor the collector sees a half-written copy), synced, renamed into place unless `to` exists
/// ([`Error::Conflict`]: never replacing), and the directory synced.
pub fn put_new_file(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().ok_or_else(|| Error::Config(format!("{} has no directory", to.display())))?;
    crate::modes::create_dir_all(parent).map_err(Error::io("creating", parent))?;
    let tmp = PathBuf::from(format!("{}#0", to.display()));
    let mut src = std::fs::File::open(from).map_err(Error::io("opening", from))?;
    let mut dst =
        crate::modes::file_options().write(true).create_new(true).open(&tmp).map_err(Error::io("creating", &tmp))?;
    std::io::copy(&mut src, &mut dst).map_err(Error::io("copying to", &tmp))?;
    drop(dst);
    match crate::durable::commit(&tmp, to)? {
        crate::durable::Commit::Moved => Ok(()),
        crate::durable::Commit::Found => Err(Error::Conflict(format!("{} exists already", to.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Snapshot;
    use crate::Metadata;

    fn store(dir: &Path) -> BlobStore {
        BlobStore::from_url(&url::Url::from_directory_path(dir).unwrap()).unwrap()
    }

    /// A blob linked in a database goes out through a copy of that database and `export`, and comes back through
    /// `import` into an empty store; what is not there is `Missing`, and a store with anything in it is not empty.
    #[tokio::test]
    async fn a_blob_and_its_row_go_out_and_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (store(&tmp.path().join("src")), store(&tmp.path().join("dst")));
        let bytes = b"backed up bytes".to_vec();
        let digest = Digest::sha256_of(&bytes);
        let key = BlobStore::key(&digest, None);
        src.object_store().put(&Key::from(key.as_str()), bytes.clone().into()).await.unwrap();
        let meta = Metadata::open_sqlite(&tmp.path().join("wharf.db")).await.unwrap();
        let repo = "r/app".parse().unwrap();
        meta.blobs().link(&repo, &digest, bytes.len() as u64, None, 100).await.unwrap();

        let copy = tmp.path().join("copy.db");
        meta.copy_into(&copy).await.unwrap();
        let mut snap = Snapshot::open_copy(&copy).await.unwrap();
        let rows = snap.blobs().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].digest.as_str(), rows[0].size, rows[0].live), (digest.to_string().as_str(), 15, true));
        let counts = snap.counts().await.unwrap();
        assert_eq!((counts.repositories, counts.blobs, counts.manifests), (1, 1, 0));
        snap.close().await.unwrap();

        let out = tmp.path().join("out");
        assert!(matches!(src.export(&key, &digest, &out).await.unwrap(), Exported::Linked(15)));
        let absent = Digest::sha256_of(b"absent");
        let other = BlobStore::key(&absent, None);
        assert_eq!(src.export(&other, &absent, &tmp.path().join("absent")).await.unwrap(), Exported::Missing);
        assert!(dst.is_empty().await.unwrap());
        dst.import(&key, &out).await.unwrap();
        assert!(!dst.is_empty().await.unwrap());
        assert_eq!(std::fs::read(tmp.path().join("dst").join(&key)).unwrap(), bytes);
        // Nothing of the copy is left beside it, and a second import of one key is refused, never overwriting.
        let dir = tmp.path().join("dst").join(&key).parent().unwrap().to_path_buf();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(matches!(dst.import(&key, &out).await, Err(Error::Conflict(_))));
    }

    /// A streamed copy is hashed: bytes that are not the digest's fail the export, naming the key.
    #[tokio::test]
    async fn a_streamed_copy_of_damaged_bytes_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let src = store(&tmp.path().join("src"));
        let digest = Digest::sha256_of(b"the right bytes");
        let key = BlobStore::key(&digest, None);
        src.object_store().put(&Key::from(key.as_str()), b"the wrong bytes".to_vec().into()).await.unwrap();
        // (A local store links when it can: the streamed copy, what another file system or S3 gets, is tested.)
        let out = tmp.path().join("out");
        let err = src.export_streamed(&key, &digest, &out).await.unwrap_err();
        assert!(matches!(&err, Error::Corrupt(m) if m.contains(&key) && m.contains("hash to")), "{err}");
    }

    /// What a restore writes into a local store is staged under a name the store's listings skip.
    #[tokio::test]
    async fn a_staged_copy_is_not_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = store(&tmp.path().join("dst"));
        let key = BlobStore::key(&Digest::sha256_of(b"x"), None);
        let staged = tmp.path().join("dst").join(format!("{key}#0"));
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::fs::write(&staged, b"x").unwrap();
        let listed: Vec<_> = dst.list_objects().collect().await;
        assert!(listed.is_empty(), "{listed:?}");
    }
}
