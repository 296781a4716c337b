//! The local content store: blobs by digest, each verified while it streams in and renamed into place only when
//! its digest matches; partial downloads resume; tags pulled are recorded as refs.
//!
//! Every directory of the store is 0700 and every file Wharf writes in it 0600 (`modes`), as containerd keeps its
//! own; only extracted layer trees keep the image's modes.
//!
//! ```text
//! <store>/
//! ├── blobs/sha256/<hex>            verified content, immutable
//! ├── ingest/<hex>                  a download in progress (resumed with Range)
//! ├── refs/<host>/<repository>/<tag>   the manifest digest a tag was last verified to, then the reference
//! ├── trust/<host>/<repository>/    root.json, timestamp.json, snapshot.json last trusted (TUF 1.0), and
//! │                                 notary-v1/{root,seen}.json (a Notary v1 collection); `trust forget` removes them
//! ├── snapshots/                    layers extracted by diff_id (`snapshot`)
//! ├── containers/<id>/              running containers' bundles and overlay upper dirs (`runtime`)
//! └── lock                          shared by writers of new content, exclusive for image rm / prune (`images`)
//! ```

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::io::modes;
pub use crate::io::source::Source;
use crate::io::source::{Failure, Failures};
use crate::io::transport::TransportError;
use wharf_format::digest::{Digest, Hasher};
use wharf_format::image_ref::ImageRef;
use wharf_format::name::RepositoryName;

/// The store's own directories, closed to other users when the store is opened (a snapshot's `fs/` and a
/// container's `rootfs` are the image's, and left as they are).
const OWN_DIRS: &[&str] = &[
    "",
    "blobs",
    "blobs/sha256",
    "blobs/sha512",
    "ingest",
    "refs",
    "trust",
    "mounts",
    "snapshots",
    "snapshots/sha256",
    "snapshots/tmp",
    "containers",
];

/// How often one source may be resumed after a dropped connection within one fetch.
const RESUME_ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{source_name}")]
    Transport {
        source_name: String,
        #[source]
        error: TransportError,
    },
    #[error("{source_name}: sent more than the {expected} bytes the manifest declares for {digest}")]
    TooLong { source_name: String, digest: Digest, expected: u64 },
    #[error("{source_name}: sent {got} bytes for {digest}, the manifest declares {expected}")]
    TooShort { source_name: String, digest: Digest, expected: u64, got: u64 },
    #[error("{source_name}: content of {expected} hashes to {actual} (tampered)")]
    DigestMismatch { source_name: String, expected: Digest, actual: Digest },
    #[error("blob {digest}: {failures}")]
    AllSourcesFailed { digest: Digest, failures: Failures },
    #[error("local content store")]
    Io(#[from] std::io::Error),
}

impl FetchError {
    /// The class of this failure (for the exit code).
    pub fn failure(&self) -> Failure {
        match self {
            FetchError::Transport { error, .. } => error.failure(),
            FetchError::TooLong { .. } | FetchError::TooShort { .. } | FetchError::DigestMismatch { .. } => {
                Failure::Verification
            }
            FetchError::AllSourcesFailed { failures, .. } => failures.worst(),
            FetchError::Io(_) => Failure::Other,
        }
    }
}

#[derive(Clone)]
pub struct ContentStore {
    root: PathBuf,
    progress: crate::io::progress::ProgressSink,
}

impl ContentStore {
    /// Opens (creating) the store at `root`. A store an older version left open to other users (0755
    /// directories) has its own directories closed here; what is below them is then out of others' reach.
    pub fn open(root: &Path) -> std::io::Result<ContentStore> {
        modes::create_dir_all(root)?;
        for d in OWN_DIRS {
            modes::close_dir(&root.join(d))?;
        }
        for d in ["blobs/sha256", "blobs/sha512", "ingest", "refs", "trust"] {
            modes::create_dir_all(&root.join(d))?;
        }
        Ok(ContentStore { root: root.to_path_buf(), progress: None })
    }

    /// Reports downloaded bytes to `p`.
    pub fn set_progress(&mut self, p: crate::io::progress::ProgressSink) {
        self.progress = p;
    }

    pub fn progress(&self) -> &crate::io::progress::ProgressSink {
        &self.progress
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm().as_str()).join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }

    pub fn read(&self, d: &Digest) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.blob_path(d))
    }

    /// Stores bytes already verified against `d` by the caller (checked again here).
    pub fn put_verified(&self, d: &Digest, bytes: &[u8]) -> std::io::Result<()> {
        if !d.matches(bytes) {
            return Err(std::io::Error::other(format!("refusing to store bytes that do not hash to {d}")));
        }
        let tmp = self.root.join("ingest").join(format!("{}.put", d.hex()));
        modes::write(&tmp, bytes)?;
        std::fs::rename(tmp, self.blob_path(d))
    }

    pub fn trust_dir(&self, host: &str, repo: &RepositoryName) -> PathBuf {
        self.root.join("trust").join(host_dir(host)).join(repo.as_str())
    }

    /// Pins `root` as the trusted root of `host/repo`, as the publisher's own `trust init` and root rotation do,
    /// so that the next pull verifies without `--trust-root`. A `fresh` root (a new trust repository) also forgets
    /// the timestamp and snapshot recorded for the old one, which its versions would otherwise count as rollbacks.
    pub fn pin_root(&self, host: &str, repo: &RepositoryName, root: &[u8], fresh: bool) -> std::io::Result<()> {
        let dir = self.trust_dir(host, repo);
        modes::create_dir_all(&dir)?;
        if fresh {
            for f in ["timestamp.json", "snapshot.json"] {
                match std::fs::remove_file(dir.join(f)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        let tmp = dir.join("root.json.tmp");
        modes::write(&tmp, root)?;
        std::fs::rename(&tmp, dir.join("root.json"))
    }

    /// Forgets the roots recorded for `host/repo` (either format) and the versions seen with them, so that the
    /// next pull trusts a root anew (`wharf trust forget`). Returns each format forgotten and its root's path.
    /// Only these files go: the directory also holds the trust state of repositories below this one.
    pub fn forget_trust(
        &self,
        host: &str,
        repo: &RepositoryName,
    ) -> std::io::Result<Vec<(crate::io::trust::TrustFormat, PathBuf)>> {
        use crate::io::trust::TrustFormat;
        let dir = self.trust_dir(host, repo);
        let notary = dir.join("notary-v1");
        let mut out = Vec::new();
        for (format, d, files) in [
            (TrustFormat::Tuf, &dir, &["root.json", "timestamp.json", "snapshot.json"][..]),
            (TrustFormat::NotaryV1, &notary, &["root.json", "seen.json"][..]),
        ] {
            // The root last: a forget cut short leaves the format recorded, to be forgotten again.
            let mut had_root = false;
            for f in files.iter().rev() {
                match std::fs::remove_file(d.join(f)) {
                    Ok(()) => had_root |= *f == "root.json",
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if had_root {
                out.push((format, d.join("root.json")));
            }
        }
        Ok(out)
    }

    fn ref_path(&self, image: &ImageRef) -> PathBuf {
        self.root
            .join("refs")
            .join(host_dir(&image.host))
            .join(image.repository.as_str())
            .join(image.reference.to_string())
    }

    pub fn set_ref(&self, image: &ImageRef, d: &Digest) -> std::io::Result<()> {
        let p = self.ref_path(image);
        if let Some(parent) = p.parent() {
            modes::create_dir_all(parent)?;
        }
        // The digest, then the reference as given (the directory names are lossy for `host:port`).
        modes::write(&p, format!("{d}\n{image}\n").as_bytes())
    }

    pub fn get_ref(&self, image: &ImageRef) -> Option<Digest> {
        match &image.reference {
            wharf_format::name::Reference::Digest(d) => Some(d.clone()),
            wharf_format::name::Reference::Tag(_) => {
                std::fs::read_to_string(self.ref_path(image)).ok()?.lines().next()?.trim().parse().ok()
            }
        }
    }

    /// Fetches blob `d` of `size` bytes from the first source that serves it intact; a source that fails is
    /// reported (a mirror once per pull) and skipped. Nothing unverified ever appears under `blobs/`.
    pub async fn fetch(&self, sources: &[Source], d: &Digest, size: u64) -> Result<PathBuf, FetchError> {
        let dest = self.blob_path(d);
        if dest.exists() {
            return Ok(dest);
        }
        let mut failures = Failures::default();
        for s in sources {
            if let Some((kind, why)) = s.given_up() {
                failures.push(kind, why);
                continue;
            }
            let mut attempts = 0;
            loop {
                attempts += 1;
                match self.fetch_from(s, d, size).await {
                    Ok(()) => return Ok(dest),
                    Err(FetchError::Io(e)) => return Err(FetchError::Io(e)),
                    // A connection that broke mid-body: resume from the partial file with a Range request.
                    Err(FetchError::Transport {
                        error: TransportError::Body { .. } | TransportError::Connect { .. },
                        ..
                    }) if attempts < RESUME_ATTEMPTS => {
                        tracing::info!(source = %s.name, digest = %d, "connection dropped; resuming");
                    }
                    Err(e) => {
                        failures.record(s, e.failure(), crate::io::transport::report(&e));
                        break;
                    }
                }
            }
        }
        Err(FetchError::AllSourcesFailed { digest: d.clone(), failures })
    }

    async fn fetch_from(&self, s: &Source, d: &Digest, size: u64) -> Result<(), FetchError> {
        let partial = self.root.join("ingest").join(d.hex());
        // Whatever ends this download (a refusal, or the task being cancelled when the process ends) removes
        // the partial file, except a connection that broke mid-body: that one is kept so the next pull resumes.
        let mut guard = PartialGuard { path: partial.clone(), keep: false };
        let mut hasher = d.algorithm().hasher();
        let mut have = match tokio::fs::metadata(&partial).await {
            Ok(m) if m.len() <= size => m.len(),
            Ok(_) => {
                tokio::fs::remove_file(&partial).await?;
                0
            }
            Err(_) => 0,
        };
        if have > 0 {
            hash_file(&partial, &mut hasher).await?;
        }
        let path = format!("/v2/{}/blobs/{d}", s.repo);
        let headers = if have > 0 && have < size { vec![("range", format!("bytes={have}-"))] } else { vec![] };
        let resp = s
            .transport
            .get(&path, &headers)
            .await
            .map_err(|error| FetchError::Transport { source_name: s.name.clone(), error })?;
        let mut file = if have > 0 && resp.status() == reqwest::StatusCode::PARTIAL_CONTENT {
            tokio::fs::OpenOptions::new().append(true).open(&partial).await?
        } else {
            // A full answer: start over.
            have = 0;
            hasher = d.algorithm().hasher();
            let mut o = tokio::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true).mode(modes::FILE_MODE).open(&partial).await?
        };
        let mut stream = s.transport.paced(resp, &s.transport.url(&path));
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(error @ TransportError::Body { .. }) => {
                    file.flush().await?;
                    // The partial file stays: the next attempt resumes from it.
                    guard.keep = true;
                    return Err(FetchError::Transport { source_name: s.name.clone(), error });
                }
                // A stalled or trickling source is abandoned, and its partial file removed (by the guard).
                Err(error) => return Err(FetchError::Transport { source_name: s.name.clone(), error }),
            };
            if have + chunk.len() as u64 > size {
                drop(file);
                tokio::fs::remove_file(&partial).await?;
                return Err(FetchError::TooLong { source_name: s.name.clone(), digest: d.clone(), expected: size });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            if let Some(p) = &self.progress {
                p.advance(chunk.len() as u64);
            }
            have += chunk.len() as u64;
        }
        file.flush().await?;
        drop(file);
        if have != size {
            tokio::fs::remove_file(&partial).await?;
            return Err(FetchError::TooShort {
                source_name: s.name.clone(),
                digest: d.clone(),
                expected: size,
                got: have,
            });
        }
        let actual = hasher.finish();
        if actual != *d {
            tokio::fs::remove_file(&partial).await?;
            return Err(FetchError::DigestMismatch { source_name: s.name.clone(), expected: d.clone(), actual });
        }
        tokio::fs::rename(&partial, self.blob_path(d)).await?;
        guard.keep = true;
        Ok(())
    }
}

/// Removes a partial download on drop unless told to keep it.
struct PartialGuard {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn hash_file(path: &Path, hasher: &mut Hasher) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// A host (`name:port`) as a single directory name.
pub(crate) fn host_dir(host: &str) -> String {
    host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}
