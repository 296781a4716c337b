//! The engine's view of the local store: images (the refs pulled), what they use, and removing what nothing uses.
//!
//! Nothing is counted by hand: an image's blobs and snapshots are derived from its ref (manifest → config →
//! `diff_ids`), and a snapshot's reference count is the number of images (and running containers) whose derived set
//! holds it. `prune` removes exactly what that count leaves at zero. Writers that create new content (pull, unpack,
//! run) hold the store lock shared while they work; `image rm` and `prune` hold it exclusively, so a blob fetched but
//! not yet referenced is never collected under a pull.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::io::snapshot::{diff_ids, remove_tree, SnapshotStore};
use crate::io::store::ContentStore;
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;
use wharf_format::manifest::ParsedManifest;

/// The store lock: shared for writers of new content, exclusive for removal. Released when dropped.
pub struct StoreLock(#[allow(dead_code)] OwnedFd);

impl StoreLock {
    fn take(store: &ContentStore, op: rustix::fs::FlockOperation) -> std::io::Result<StoreLock> {
        let f = crate::io::modes::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(store.root().join("lock"))?;
        let fd = OwnedFd::from(f);
        rustix::fs::flock(&fd, op)?;
        Ok(StoreLock(fd))
    }
    pub fn shared(store: &ContentStore) -> std::io::Result<StoreLock> {
        Self::take(store, rustix::fs::FlockOperation::LockShared)
    }
    pub fn exclusive(store: &ContentStore) -> std::io::Result<StoreLock> {
        Self::take(store, rustix::fs::FlockOperation::LockExclusive)
    }
}

/// One pulled image as `wharf images` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub reference: String,
    pub digest: Digest,
    /// Blobs of the image present in the store (manifests, config, layers).
    pub blobs: Vec<Digest>,
    /// Snapshot keys of its layers (bottom first), extracted or not.
    pub snapshots: Vec<String>,
    /// Bytes of its blobs in the store.
    pub content_bytes: u64,
    /// File bytes of its extracted snapshots.
    pub unpacked_bytes: u64,
    /// Of those, bytes in snapshots another image also uses.
    pub shared_bytes: u64,
    /// Whether every layer has a snapshot.
    pub extracted: bool,
}

/// Every ref in the store: (the reference as recorded, its file, the digest).
fn refs(store: &ContentStore) -> std::io::Result<Vec<(String, PathBuf, Digest)>> {
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<(String, PathBuf, Digest)>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(&p, &rel.join(e.file_name()), out)?;
                continue;
            }
            let text = std::fs::read_to_string(&p)?;
            let mut lines = text.lines();
            let Some(Ok(d)) = lines.next().map(|l| l.trim().parse::<Digest>()) else { continue };
            // Refs written before the reference was recorded: the path, host directory first.
            let name = lines.next().map(str::to_string).unwrap_or_else(|| {
                let r = rel.join(e.file_name()).to_string_lossy().into_owned();
                match r.rsplit_once('/') {
                    Some((repo, tag)) => format!("{repo}:{tag}"),
                    None => r,
                }
            });
            out.push((name, p, d));
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&store.root().join("refs"), Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

/// Blobs and snapshot keys an image uses: its manifests (every platform present), configs and layers.
fn uses(store: &ContentStore, top: &Digest) -> (Vec<Digest>, Vec<String>) {
    let (mut blobs, mut snaps) = (Vec::new(), Vec::new());
    let mut manifests = vec![top.clone()];
    while let Some(m) = manifests.pop() {
        let Ok(bytes) = store.read(&m) else { continue };
        blobs.push(m.clone());
        let Ok(parsed) = ParsedManifest::parse_inferred(&bytes) else { continue };
        manifests.extend(parsed.manifests.iter().filter(|c| store.has(&c.digest)).map(|c| c.digest.clone()));
        let Some(config) = parsed.config else { continue };
        blobs.push(config.digest.clone());
        blobs.extend(parsed.layers.iter().map(|l| l.digest.clone()));
        if let Ok(ids) = diff_ids(store, &config, parsed.layers.len()) {
            for id in ids {
                snaps.push(id.hex().to_string());
                snaps.push(format!("{}+devices", id.hex()));
            }
        }
    }
    (blobs, snaps)
}

pub fn images(store: &ContentStore) -> std::io::Result<Vec<ImageSummary>> {
    let snaps = SnapshotStore::open(store)?;
    let mut out = Vec::new();
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    // Each snapshot's file bytes, read once (`None`: not extracted).
    let mut sizes: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for (reference, _, digest) in refs(store)? {
        let (blobs, keys) = uses(store, &digest);
        // `uses` names each layer's snapshot under both device policies.
        let layers = keys.len() / 2;
        let blobs: Vec<Digest> =
            blobs.into_iter().filter(|b| store.has(b)).collect::<BTreeSet<_>>().into_iter().collect();
        let present: Vec<String> = keys
            .into_iter()
            .filter(|k| sizes.entry(k.clone()).or_insert_with(|| snaps.info(k).map(|i| i.bytes)).is_some())
            .collect();
        for k in &present {
            *users.entry(k.clone()).or_default() += 1;
        }
        let content_bytes =
            blobs.iter().filter_map(|b| std::fs::metadata(store.blob_path(b)).ok()).map(|m| m.len()).sum();
        let extracted = layers > 0 && present.len() >= layers;
        out.push(ImageSummary {
            reference,
            digest,
            blobs,
            snapshots: present,
            content_bytes,
            unpacked_bytes: 0,
            shared_bytes: 0,
            extracted,
        });
    }
    for img in &mut out {
        for k in &img.snapshots {
            let bytes = sizes.get(k).copied().flatten().unwrap_or(0);
            img.unpacked_bytes += bytes;
            if users.get(k).copied().unwrap_or(0) > 1 {
                img.shared_bytes += bytes;
            }
        }
    }
    Ok(out)
}

/// What `image rm` or `prune` removed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub blobs: Vec<Digest>,
    pub blob_bytes: u64,
    pub snapshots: Vec<String>,
    pub snapshot_bytes: u64,
    /// Leftovers of interrupted extractions and containers whose process is gone.
    pub stale: usize,
}

/// Removes the refs named (`host/repository:tag` as pulled) and the snapshots no remaining image or running
/// container uses; blobs stay until `prune`.
pub fn remove_images(store: &ContentStore, names: &[ImageRef]) -> std::io::Result<Removed> {
    let _lock = StoreLock::exclusive(store)?;
    let mut removed = Removed::default();
    for name in names {
        let wanted = name.to_string();
        let found = refs(store)?.into_iter().find(|(r, _, _)| *r == wanted);
        let Some((r, path, _)) = found else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no such image: {wanted}")));
        };
        std::fs::remove_file(path)?;
        removed.untagged.push(r);
    }
    collect(store, false, &mut removed)?;
    Ok(removed)
}

/// Removes every blob and snapshot no image or running container uses, and stale leftovers.
pub fn prune(store: &ContentStore) -> std::io::Result<Removed> {
    let _lock = StoreLock::exclusive(store)?;
    let mut removed = Removed::default();
    collect(store, true, &mut removed)?;
    Ok(removed)
}

fn collect(store: &ContentStore, blobs_too: bool, removed: &mut Removed) -> std::io::Result<()> {
    let snaps = SnapshotStore::open(store)?;
    let (mut live_blobs, mut live_snaps) = (BTreeSet::new(), BTreeSet::new());
    for (_, _, digest) in refs(store)? {
        let (b, s) = uses(store, &digest);
        live_blobs.extend(b);
        live_snaps.extend(s);
    }
    let (containers, stale) = containers(store)?;
    live_snaps.extend(containers);
    removed.stale += stale;
    removed.stale += snaps.clean_stale()?;
    for key in snaps.keys()? {
        if !live_snaps.contains(&key) {
            removed.snapshot_bytes += snaps.info(&key).map_or(0, |i| i.bytes);
            snaps.remove(&key)?;
            removed.snapshots.push(key);
        }
    }
    if blobs_too {
        for alg in ["sha256", "sha512"] {
            let dir = store.root().join("blobs").join(alg);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries {
                let e = e?;
                let Ok(d) = format!("{alg}:{}", e.file_name().to_string_lossy()).parse::<Digest>() else { continue };
                if !live_blobs.contains(&d) {
                    removed.blob_bytes += e.metadata()?.len();
                    std::fs::remove_file(e.path())?;
                    removed.blobs.push(d);
                }
            }
        }
    }
    Ok(())
}

/// A running container's record: the snapshots it has mounted, and the process that runs it.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ContainerRecord {
    pub pid: u32,
    pub snapshots: Vec<String>,
}

pub fn containers_dir(store: &ContentStore) -> PathBuf {
    store.root().join("containers")
}

/// The snapshot keys running containers use; containers whose process is gone are unmounted and removed
/// (returned as the stale count).
fn containers(store: &ContentStore) -> std::io::Result<(BTreeSet<String>, usize)> {
    let (mut live, mut stale) = (BTreeSet::new(), 0);
    let Ok(entries) = std::fs::read_dir(containers_dir(store)) else { return Ok((live, 0)) };
    for e in entries {
        let dir = e?.path();
        let record: Option<ContainerRecord> =
            std::fs::read(dir.join("container.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match record {
            Some(r) if Path::new(&format!("/proc/{}", r.pid)).exists() => live.extend(r.snapshots),
            _ => {
                let _ = crate::io::snapshot::unmount(&dir.join("rootfs"));
                remove_tree(&dir)?;
                stale += 1;
            }
        }
    }
    Ok((live, stale))
}
