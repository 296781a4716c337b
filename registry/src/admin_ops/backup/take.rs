//! Taking a backup: see the module's doc for the order and why.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use wharf_storage::backup::Exported;
use wharf_storage::meta::{BackupBlob, Snapshot};
use wharf_storage::{BlobStore, Clock, Metadata, SystemClock};

use super::{pg, BackupArgs, BlobEntry, FileEntry, Record, Stack, FORMAT, RECORD, STORE};
use crate::config::{KekSource, Settings};
use crate::gc::{LEASE, LEASE_SECS};

/// Blob copies in flight at once (a remote store answers each request slowly; a local one links in microseconds).
const COPIES_IN_FLIGHT: usize = 16;

/// Writes a backup of the running registry into `args.dir`.
pub async fn backup(settings: &Settings, meta: &Metadata, args: BackupArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = std::path::absolute(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    prepare(&dir)?;
    let store = BlobStore::connect(&settings.storage_url, &settings.s3).context("opening the store")?;
    let hold = Hold::take(meta).await?;
    let result = take(settings, meta, &store, &dir, &hold).await;
    hold.release(meta).await;
    let record = result?;
    eprintln!(
        "backup of {} written to {} in {:.1} s",
        record.summary(),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    }
    Ok(())
}

/// Creates `dir` (mode 0700), refusing one that holds anything.
fn prepare(dir: &Path) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        anyhow::ensure!(entries.next().is_none(), "{} is not empty: a backup goes into a new directory", dir.display());
    }
    wharf_storage::modes::create_dir_all(&dir.join(STORE)).with_context(|| format!("creating {}", dir.display()))
}

/// The collector held off: the `gc` lease, taken (waiting out a run in progress) and renewed until released. No
/// collection, retention or reconciliation runs while it is held, so nothing the copied database names goes.
struct Hold {
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
}

impl Hold {
    async fn take(meta: &Metadata) -> anyhow::Result<Hold> {
        let mut b = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        let holder = format!("backup-{}", hex::encode(b));
        let waited = Instant::now();
        loop {
            let now = SystemClock.now();
            if meta.leases().acquire(LEASE, &holder, now, now + LEASE_SECS).await? {
                break;
            }
            // A collection in progress: wait for it to end (a lease outlives a dead holder by at most 30 s).
            anyhow::ensure!(
                waited.elapsed() < Duration::from_secs(120),
                "a collection has held the gc lease for 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (tx, lost) = tokio::sync::watch::channel(false);
        let (m, h) = (meta.clone(), holder.clone());
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(LEASE_SECS as u64 / 3)).await;
                let now = SystemClock.now();
                match m.leases().acquire(LEASE, &h, now, now + LEASE_SECS).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = tx.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing the gc lease for a backup"),
                }
            }
        });
        Ok(Hold { holder, renewal, lost })
    }

    /// Fails if the lease went to another holder (it ran out while this one could not renew it).
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!*self.lost.borrow(), "the gc lease was lost during the backup: the copy may be inconsistent");
        Ok(())
    }

    async fn release(self, meta: &Metadata) {
        self.renewal.abort();
        if let Err(e) = meta.leases().release(LEASE, &self.holder).await {
            tracing::warn!(error = %e, "releasing the gc lease after a backup");
        }
    }
}

async fn take(
    settings: &Settings,
    meta: &Metadata,
    store: &BlobStore,
    dir: &Path,
    hold: &Hold,
) -> anyhow::Result<Record> {
    let created_at = SystemClock.now();
    // 1. The database, one consistent state of it.
    let (database, mut snapshot) = match settings.database_url.starts_with("sqlite://") {
        true => {
            let copy = dir.join("wharf.db");
            meta.copy_into(&copy).await.context("copying the SQLite database (VACUUM INTO)")?;
            (copy.clone(), Snapshot::open_copy(&copy).await.context("opening the database copy")?)
        }
        false => {
            let snapshot = meta.snapshot().await.context("exporting a PostgreSQL snapshot")?;
            let dump = dir.join("database.pgdump");
            let name = snapshot.exported.clone().context("PostgreSQL exported no snapshot")?;
            pg::dump(&settings.database_url, &name, &dump).await?;
            (dump, snapshot)
        }
    };
    let rows = snapshot.blobs().await.context("reading the blob rows")?;
    let counts = snapshot.counts().await.context("counting what the database holds")?;
    snapshot.close().await.context("closing the database snapshot")?;
    let database = file_entry(dir, &database)?;
    // 2. The bytes of every blob those rows name.
    let blobs = copy_blobs(store, dir, rows).await?;
    // 3. What a restore needs from outside the database and the store.
    let (key_encryption_key, secrets) = secrets(settings, dir)?;
    let total_bytes =
        database.size + secrets.iter().map(|s| s.size).sum::<u64>() + blobs.iter().map(|b| b.size).sum::<u64>();
    let stack = Stack {
        database: super::database_kind(&settings.database_url).into(),
        storage: if settings.storage_url.scheme() == "s3" { "s3".into() } else { "file".into() },
    };
    let created = chrono::DateTime::from_timestamp(created_at, 0).context("the clock is out of range")?.to_rfc3339();
    let record = Record {
        format: FORMAT,
        created_at,
        created,
        wharf_version: env!("CARGO_PKG_VERSION").into(),
        stack,
        database,
        counts,
        total_bytes,
        key_encryption_key,
        secrets,
        blobs,
    };
    hold.check()?;
    write_record(dir, &record)?;
    Ok(record)
}

/// Copies (or links) the bytes of `rows` into `dir/store/`. A live blob whose bytes are missing, or (copied) do not
/// hash to its digest, fails the backup (the store is damaged: `wharf admin check` says where); a tombstone's may
/// be gone already and is skipped. A link's bytes are not read (hashing them all would make a backup that takes
/// seconds take as long as reading the store): its entry says so.
async fn copy_blobs(store: &BlobStore, dir: &Path, rows: Vec<BackupBlob>) -> anyhow::Result<Vec<BlobEntry>> {
    let mut parents = BTreeSet::new();
    let mut work = Vec::with_capacity(rows.len());
    for row in rows {
        let digest: wharf_format::Digest =
            row.digest.parse().with_context(|| format!("a blob row's digest {:?}", row.digest))?;
        let key = BlobStore::key(&digest, row.location.as_deref());
        anyhow::ensure!(super::safe_key(&key), "a blob row's location {key:?} is outside blobs/");
        let dest = dir.join(STORE).join(&key);
        let parent = dest.parent().context("a blob's key has no directory")?.to_path_buf();
        if parents.insert(parent.clone()) {
            wharf_storage::modes::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        work.push((row, digest, key, dest));
    }
    let copied: Vec<Option<BlobEntry>> = stream::iter(work)
        .map(|(row, digest, key, dest)| async move {
            let exported = match store.export(&key, &digest, &dest).await {
                Err(e @ wharf_storage::Error::Corrupt(_)) => {
                    return Err(anyhow::Error::new(e).context(format!("copying {key}: run wharf admin check")))
                }
                other => other.with_context(|| format!("copying {key}"))?,
            };
            match exported {
                Exported::Linked(n) if n == row.size => {
                    Ok(Some(BlobEntry { key, digest: row.digest, size: n, linked: true }))
                }
                Exported::Copied(n) if n == row.size => {
                    Ok(Some(BlobEntry { key, digest: row.digest, size: n, linked: false }))
                }
                Exported::Linked(n) | Exported::Copied(n) => {
                    anyhow::bail!("{key}: {n} bytes stored, {} recorded; run wharf admin check", row.size)
                }
                Exported::Missing if !row.live => Ok(None),
                Exported::Missing => anyhow::bail!("{key}: the blob's bytes are missing; run wharf admin check"),
            }
        })
        .buffer_unordered(COPIES_IN_FLIGHT)
        .try_collect()
        .await?;
    for d in parents.iter().chain([dir.join(STORE)].iter()) {
        sync_dir(d)?;
    }
    let mut blobs: Vec<BlobEntry> = copied.into_iter().flatten().collect();
    blobs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(blobs)
}

/// The key-encryption key when it lives in the data directory, and TLS files kept there: copied with mode 0600.
fn secrets(settings: &Settings, dir: &Path) -> anyhow::Result<(String, Vec<FileEntry>)> {
    let data = &settings.data_dir;
    let mut wanted: Vec<PathBuf> = Vec::new();
    let kek = match settings.kek {
        KekSource::DataDir => {
            wanted.push(data.join("trust.kek"));
            "data_dir"
        }
        KekSource::Secret(_) | KekSource::File(_) => "external",
    };
    if let Some((cert, key)) = &settings.tls {
        wanted.extend([cert, key].into_iter().filter(|p| p.starts_with(data)).cloned());
    }
    let mut out = Vec::new();
    for from in wanted {
        let rel = from.strip_prefix(data).context("a secret outside the data directory")?;
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            wharf_storage::modes::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut src = std::fs::File::open(&from).with_context(|| format!("reading {}", from.display()))?;
        let mut dst = wharf_storage::modes::file_options()
            .write(true)
            .create_new(true)
            .open(&to)
            .with_context(|| format!("creating {}", to.display()))?;
        std::io::copy(&mut src, &mut dst).with_context(|| format!("copying {}", from.display()))?;
        dst.sync_all().with_context(|| format!("syncing {}", to.display()))?;
        out.push(file_entry(dir, &to)?);
    }
    Ok((kek.into(), out))
}

/// A file of the backup as the record lists it.
fn file_entry(dir: &Path, path: &Path) -> anyhow::Result<FileEntry> {
    let (sha256, size) = super::sha256_file(path).with_context(|| format!("reading {}", path.display()))?;
    let rel = path.strip_prefix(dir).context("a backup file outside the backup")?;
    Ok(FileEntry { path: rel.to_string_lossy().into_owned(), size, sha256 })
}

/// Writes `backup.json` (synced, then renamed into place, then its directory synced): the mark of a complete
/// backup.
fn write_record(dir: &Path, record: &Record) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{RECORD}.tmp"));
    let mut f = wharf_storage::modes::file_options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut f, record)?;
    std::io::Write::write_all(&mut f, b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(RECORD)).context("renaming backup.json into place")?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}
