//! Committing a file whose bytes a caller already verified (a mirror's finished download): on a local store it is
//! hard-linked into the upload area and committed like an upload's file (synced, renamed into place without
//! replacing, directory synced), with no second read, hash or copy; elsewhere its bytes are uploaded and checked
//! as any monolithic upload.

use std::path::Path;

use wharf_format::Digest;

use super::{Committed, UploadId, Uploads, WAIT_FOR_WRITER};
use crate::durable::{self, Commit};
use crate::{paths, Error, Result};

impl Uploads {
    /// Commits the `size` bytes in `file`, whose digest the caller checked is `digest`. `file` itself stays (its
    /// readers keep reading it).
    pub async fn adopt_verified(&self, file: &Path, digest: &Digest, size: u64) -> Result<Committed> {
        if let Some(root) = self.blobs.local_root() {
            let staged = root.join(paths::upload_data(&UploadId::random()).as_ref());
            let to = root.join(paths::blob(digest).as_ref());
            let (f, s) = (file.to_owned(), staged.clone());
            let linked = tokio::task::spawn_blocking(move || {
                if let Some(dir) = s.parent() {
                    crate::modes::create_dir_all(dir)?;
                }
                std::fs::hard_link(&f, &s)
            })
            .await
            .map_err(Error::task("adopt"))?;
            match linked {
                Ok(()) => return self.commit_staged(&staged, &to, digest, size).await,
                // Another file system: copy the bytes instead.
                Err(e) if e.raw_os_error() == Some(18) => {}
                Err(e) => return Err(Error::io("linking", &staged)(e)),
            }
        }
        let f = tokio::fs::File::open(file).await.map_err(Error::io("opening", file))?;
        self.put_whole(Some(size), tokio_util::io::ReaderStream::with_capacity(f, 1 << 20), digest).await
    }

    async fn commit_staged(&self, staged: &Path, to: &Path, digest: &Digest, size: u64) -> Result<Committed> {
        let waited = tokio::time::Instant::now();
        loop {
            let (f, t) = (staged.to_owned(), to.to_owned());
            let done =
                tokio::task::spawn_blocking(move || durable::commit(&f, &t)).await.map_err(Error::task("commit"))??;
            if done == Commit::Moved {
                return Ok(Committed { size, location: None });
            }
            // A copy is in place; if the collector is deleting it, wait until it is gone and commit this one.
            if waited.elapsed() < WAIT_FOR_WRITER && self.meta.blobs().deleting(digest).await? {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            tokio::fs::remove_file(staged).await.map_err(Error::io("removing", staged))?;
            return Ok(Committed { size, location: None });
        }
    }
}
