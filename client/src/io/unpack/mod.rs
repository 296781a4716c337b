//! Applying image layers to a directory, safely: onto a tree (flattening) or alone, in overlayfs form (a snapshot).
//!
//! Every path is resolved by the kernel inside the root (`openat2` with `RESOLVE_IN_ROOT`): a symlink in a layer,
//! absolute or relative, resolves as if the root were `/`, so no entry can reach outside it. Entries naming `..`
//! or an absolute path are refused outright; the final component of every operation is never followed.
//!
//! [`Form::Flatten`] applies whiteouts and opaque whiteouts by removing content of lower layers.
//! [`Form::Overlay`] extracts a layer on its own into an empty directory and keeps them in overlayfs form: a
//! whiteout is a character device 0:0, an opaque directory carries `trusted.overlay.opaque` (or, when not root,
//! `user.overlay.opaque`) = `y`. Files are written by a bounded pool of threads while the stream is read
//! (`pool`); directory modes and times are applied last, so that a read-only directory can still receive its
//! children.

mod fsops;
mod layer;
mod pool;
mod resolve;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};

use wharf_format::digest::{Digest, Hasher};

pub(crate) use fsops::{list, times};

/// The opaque-directory attribute overlayfs reads when mounted by root, and in `userxattr` mounts.
pub const TRUSTED_OPAQUE: &str = "trusted.overlay.opaque";
pub const USER_OPAQUE: &str = "user.overlay.opaque";

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
    #[error("layer entry {entry:?}: a symlink without a target")]
    NoLinkTarget { entry: String },
    #[error("layer entry {entry:?}: the image unpacks to more than the {max}-byte limit (a decompression bomb?)")]
    TooLarge { entry: String, max: u64 },
    #[error("reading the layer archive")]
    Archive(#[source] std::io::Error),
    #[error("the uncompressed layer hashes to {actual}, the image config says {expected} (diff_id)")]
    DiffIdMismatch { expected: Digest, actual: Digest },
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

/// File bytes an image may still write, shared by layers extracting at once.
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
    max: u64,
}

impl Budget {
    pub fn new(max: u64) -> Budget {
        Budget { left: AtomicU64::new(max), max }
    }

    fn take(&self, n: u64) -> bool {
        self.left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| l.checked_sub(n)).is_ok()
    }
}

/// Where whiteouts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Onto the tree of the layers below: whiteouts remove, opaque whiteouts empty a directory.
    Flatten,
    /// Alone, into an empty directory, in overlayfs form; `opaque_xattr` marks opaque directories.
    Overlay { opaque_xattr: &'static str },
}

impl Form {
    /// The overlay form this process can write and mount: `trusted.*` as root, `user.*` otherwise.
    pub fn overlay() -> Form {
        let xattr = if rustix::process::geteuid().is_root() { TRUSTED_OPAQUE } else { USER_OPAQUE };
        Form::Overlay { opaque_xattr: xattr }
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
    /// Whether the layer has an entry for the root directory itself (`./`), whose metadata it then sets.
    pub root_entry: bool,
}

/// Decompresses (gzip, zstd or none, detected from the first bytes) and applies one layer onto `root`.
pub fn apply_layer(root: &Path, layer: impl Read, opts: &UnpackOptions) -> Result<LayerStats, UnpackError> {
    extract(root, layer, opts, Form::Flatten, &Budget::new(opts.max_bytes), None)
}

/// Decompresses and applies one layer into `root` in `form`, charging file bytes to `budget`. With `diff_id`,
/// the uncompressed stream must hash to it (checked after the last entry, before success is returned).
pub fn extract<'r>(
    root: &Path,
    layer: impl Read + 'r,
    opts: &UnpackOptions,
    form: Form,
    budget: &Budget,
    diff_id: Option<&Digest>,
) -> Result<LayerStats, UnpackError> {
    let mut buffered = BufReader::with_capacity(1 << 20, layer);
    let head = buffered.fill_buf().map_err(UnpackError::Archive)?;
    let reader: Box<dyn Read + 'r> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(UnpackError::Archive)?)
    } else {
        Box::new(buffered)
    };
    let hashing = Hashing { inner: reader, hasher: diff_id.map(|d| d.algorithm().hasher()) };
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| UnpackError::Root { path: root.into(), source: e.into() })?;
    let mut archive = tar::Archive::new(hashing);
    let stats = layer::Layer::new(root_fd, *opts, form, budget).run(&mut archive)?;
    if let Some(expected) = diff_id {
        // The tar end marker may be followed by padding that is still part of the hashed stream.
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(UnpackError::Archive)?;
        let actual = rest.hasher.take().map(Hasher::finish);
        if actual.as_ref() != Some(expected) {
            let actual = actual.unwrap_or_else(|| expected.clone());
            return Err(UnpackError::DiffIdMismatch { expected: expected.clone(), actual });
        }
    }
    if !stats.placeholder_devices.is_empty() {
        let names = &stats.placeholder_devices;
        let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
        tracing::warn!(
            count = names.len(),
            entries = %shown.join(", "),
            "device nodes in the layer were written as empty placeholder files (--allow-devices creates them)"
        );
    }
    Ok(stats)
}

/// Hashes what is read through it.
struct Hashing<'r> {
    inner: Box<dyn Read + 'r>,
    hasher: Option<Hasher>,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Creates `name` in `parent` as a new regular file with `mode` (less the umask), never following or reusing
/// what is there.
pub(crate) fn create_new(parent: &OwnedFd, name: &std::ffi::OsStr, mode: u32) -> rustix::io::Result<std::fs::File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(mode)).map(std::fs::File::from)
}

/// Owner, mode, xattrs and times of a file just written, each only when it changes something.
pub(crate) fn finish_file(file: &std::fs::File, m: &pool::FileMeta) -> std::io::Result<()> {
    if let Some((uid, gid)) = m.chown {
        rustix::fs::fchown(file, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))?;
    }
    if m.chmod {
        rustix::fs::fchmod(file, Mode::from_raw_mode(m.mode))?;
    }
    for (name, value) in &m.xattrs {
        let _ = rustix::fs::fsetxattr(file, name.as_str(), value, rustix::fs::XattrFlags::empty());
    }
    rustix::fs::futimens(file, &times(m.mtime))?;
    Ok(())
}

/// The process umask, read without changing it (`/proc/self/status`); all bits when unknown, so that every
/// mode is applied explicitly.
pub(crate) fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("Umask:").and_then(|v| u32::from_str_radix(v.trim(), 8).ok()))
            })
            .unwrap_or(0o777)
    })
}

pub(crate) use pool::{default_threads, Content, FileMeta, Job, Pool};
