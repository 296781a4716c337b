//! Restoring a backup: into an empty data directory, database and store only; every file verified against
//! `backup.json` (size, and SHA-256 or the blob's digest) before anything is written; then the secrets, the store,
//! and the database last, so that an interrupted restore never leaves a database naming bytes that are not there.
//!
//! `backup.json` certifies nothing by itself: a blob's key must be its digest's content address, or an uploaded
//! object's key that the backup's database records for that digest, and every live blob row must be in the record
//! (SQLite: checked in the backup's copy before it is put in place; PostgreSQL: in the restored database, which a
//! failed check leaves for the operator to drop).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use wharf_storage::meta::{BackupBlob, Snapshot};
use wharf_storage::{BlobStore, Metadata};

use super::{pg, BlobEntry, FileEntry, Record, RestoreArgs, FORMAT, RECORD};
use crate::config::{KekSource, Settings};

/// Blobs verified or written at once.
const IN_FLIGHT: usize = 8;

/// Restores the backup in `args.dir` into this configuration's data directory, database and store.
pub async fn restore(settings: &Settings, args: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = std::path::absolute(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let text = std::fs::read(dir.join(RECORD))
        .with_context(|| format!("reading {}: a complete backup has one", dir.join(RECORD).display()))?;
    let record: Record = serde_json::from_slice(&text).context("backup.json does not parse")?;
    anyhow::ensure!(record.format == FORMAT, "backup.json has format {}; this wharf reads {FORMAT}", record.format);
    let kind = super::database_kind(&settings.database_url);
    anyhow::ensure!(
        record.stack.database == kind,
        "the backup holds a {} database; this configuration's is {kind}",
        record.stack.database
    );
    // 1. Only into emptiness: nothing of another registry is ever overwritten or mixed in.
    let data = &settings.data_dir;
    if let Ok(mut entries) = std::fs::read_dir(data) {
        anyhow::ensure!(entries.next().is_none(), "{} is not empty: a restore goes into an empty one", data.display());
    }
    if let Some(db) = super::sqlite_path(&settings.database_url) {
        anyhow::ensure!(!db.exists(), "{} exists: a restore writes a new database", db.display());
    } else {
        let empty = Metadata::postgres_is_empty(&settings.database_url).await.context("looking at the database")?;
        anyhow::ensure!(empty, "the configured PostgreSQL database has tables: a restore goes into an empty one");
    }
    // A local store is looked at, not opened (opening creates it): a refused restore leaves the target as it was.
    match settings.storage_url.scheme() {
        "file" => {
            let root = settings.storage_url.to_file_path().map_err(|()| anyhow::anyhow!("a bad storage URL"))?;
            if let Ok(mut entries) = std::fs::read_dir(&root) {
                anyhow::ensure!(
                    entries.next().is_none(),
                    "{} is not empty: a restore goes into an empty store",
                    root.display()
                );
            }
        }
        _ => {
            let store = BlobStore::connect(&settings.storage_url, &settings.s3).context("opening the store")?;
            anyhow::ensure!(
                store.is_empty().await?,
                "the configured store holds objects: a restore goes into an empty one"
            );
        }
    }
    // 2. Every file checked before anything is written.
    verify(&dir, &record).await?;
    let db = dir.join(&record.database.path);
    let sqlite = super::sqlite_path(&settings.database_url);
    if sqlite.is_some() {
        covered(&record.blobs, &rows_of(&format!("sqlite://{}?mode=ro", db.display())).await?)?;
    }
    wharf_storage::modes::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let store = BlobStore::connect(&settings.storage_url, &settings.s3).context("opening the store")?;
    // 3. The secrets, the store, then the database.
    for s in &record.secrets {
        put_file(&dir.join(&s.path), &data.join(&s.path)).with_context(|| format!("restoring {}", s.path))?;
    }
    if record.key_encryption_key == "external" || !matches!(settings.kek, KekSource::DataDir) {
        eprintln!(
            "note: the backup's key-encryption key was {}; the restored server needs the same key to open its \
             sealed trust and token keys",
            if record.key_encryption_key == "external" { "configured outside it" } else { "in trust.kek" }
        );
    }
    stream::iter(&record.blobs)
        .map(|b| {
            let (store, src) = (&store, b.file(&dir));
            async move { store.import(&b.key, &src).await.with_context(|| format!("restoring {}", b.key)) }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    match sqlite {
        Some(path) => put_file(&db, &path).context("restoring the database")?,
        None => {
            pg::restore(&settings.database_url, &db).await?;
            covered(&record.blobs, &rows_of(&settings.database_url).await?).context(
                "the restored database names blobs the backup does not hold: drop its tables before serving it",
            )?;
        }
    }
    eprintln!(
        "restored {} from {} (taken {}) in {:.1} s",
        record.summary(),
        dir.display(),
        record.created,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Checks every file the record lists: the database and secrets by size and SHA-256, each blob by size and its
/// digest. The first that differs refuses the restore, naming it.
async fn verify(dir: &Path, record: &Record) -> anyhow::Result<()> {
    for f in std::iter::once(&record.database).chain(&record.secrets) {
        anyhow::ensure!(super::safe_relative(&f.path), "backup.json names {:?}, outside the backup", f.path);
        check_file(dir, f)?;
    }
    stream::iter(&record.blobs)
        .map(|b| async move {
            anyhow::ensure!(super::safe_key(&b.key), "backup.json names {:?}, outside the backup's store", b.key);
            let digest: wharf_format::Digest = b.digest.parse().with_context(|| format!("{}: a bad digest", b.key))?;
            anyhow::ensure!(
                b.key == BlobStore::key(&digest, None) || b.key.starts_with("blobs/uploaded/"),
                "backup.json lists {} as {}, which is not that digest's key; refusing to restore",
                b.key,
                b.digest
            );
            let path = b.file(dir);
            let (got, size) = tokio::task::spawn_blocking(move || hash_as(&path, &digest))
                .await
                .context("a verification task failed")?
                .with_context(|| format!("reading {}", b.key))?;
            anyhow::ensure!(
                size == b.size,
                "{}: {size} bytes, backup.json says {}; refusing to restore",
                b.key,
                b.size
            );
            anyhow::ensure!(
                got == b.digest,
                "{}: its bytes hash to {got}, backup.json says {}; refusing to restore{}",
                b.key,
                b.digest,
                if b.linked { LINKED } else { "" }
            );
            Ok(())
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Why a linked blob may be damaged in a backup that verified when it was taken.
const LINKED: &str = " (it is a hard link to the backed-up store's file, whose bytes the backup did not re-read: \
                      the store was damaged then or since; wharf admin check there says which blobs)";

/// Every blob row of the database at `url`.
async fn rows_of(url: &str) -> anyhow::Result<Vec<BackupBlob>> {
    let mut snap = Snapshot::open_url(url).await.context("opening the backup's database")?;
    let rows = snap.blobs().await.context("reading the backup's blob rows")?;
    snap.close().await?;
    Ok(rows)
}

/// Whether the record and the database agree: each listed blob is a row's (by its key, with its digest), and each
/// live row's bytes are listed.
fn covered(blobs: &[BlobEntry], rows: &[BackupBlob]) -> anyhow::Result<()> {
    let mut keys = BTreeMap::new();
    for r in rows {
        let digest: wharf_format::Digest = r.digest.parse().with_context(|| format!("a blob row's {:?}", r.digest))?;
        keys.insert(BlobStore::key(&digest, r.location.as_deref()), r);
    }
    let listed: BTreeMap<&str, &BlobEntry> = blobs.iter().map(|b| (b.key.as_str(), b)).collect();
    for b in blobs {
        anyhow::ensure!(
            keys.get(&b.key).is_some_and(|r| r.digest == b.digest),
            "backup.json lists {} as {}, and the backup's database has no such blob there; refusing to restore",
            b.key,
            b.digest
        );
    }
    for (key, r) in keys.iter().filter(|(_, r)| r.live) {
        anyhow::ensure!(
            listed.contains_key(key.as_str()),
            "the backup's database names {} at {key}, and backup.json does not list it; refusing to restore",
            r.digest
        );
    }
    Ok(())
}

fn check_file(dir: &Path, f: &FileEntry) -> anyhow::Result<()> {
    let (sha256, size) = super::sha256_file(&dir.join(&f.path)).with_context(|| format!("reading {}", f.path))?;
    anyhow::ensure!(size == f.size, "{}: {size} bytes, backup.json says {}; refusing to restore", f.path, f.size);
    anyhow::ensure!(
        sha256 == f.sha256,
        "{}: SHA-256 {sha256}, backup.json says {}; refusing to restore",
        f.path,
        f.sha256
    );
    Ok(())
}

/// The digest of a file's bytes by `like`'s algorithm, and its size.
fn hash_as(path: &Path, like: &wharf_format::Digest) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = like.algorithm().hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = std::io::Read::read(&mut f, &mut buf)?;
        if got == 0 {
            return Ok((h.finish().to_string(), n));
        }
        h.update(&buf[..got]);
        n += got as u64;
    }
}

/// Copies `from` to the new file `to` (mode 0600, its directories 0700): written under a temporary name, synced,
/// renamed into place unless something is there already (a database another process made since the emptiness
/// check is refused, never replaced), and its directory synced.
fn put_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    wharf_storage::backup::put_new_file(from, to).with_context(|| format!("writing {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, digest: &str) -> BlobEntry {
        BlobEntry { key: key.into(), digest: digest.into(), size: 1, linked: false }
    }

    fn row(digest: &str, location: Option<&str>, live: bool) -> BackupBlob {
        BackupBlob { digest: digest.into(), size: 1, location: location.map(Into::into), live }
    }

    /// The record is tied to the database: no blob listed under a key its row does not give it, and no live row
    /// left out.
    #[test]
    fn the_record_must_match_the_rows() {
        let (x, y) = (wharf_format::Digest::sha256_of(b"x"), wharf_format::Digest::sha256_of(b"y"));
        let (xs, ys) = (x.to_string(), y.to_string());
        let (kx, ky) = (BlobStore::key(&x, None), BlobStore::key(&y, None));
        let up = "blobs/uploaded/0123456789abcdef";
        assert!(covered(&[entry(&kx, &xs)], &[row(&xs, None, true)]).is_ok());
        assert!(covered(&[entry(up, &ys)], &[row(&ys, Some(up), true)]).is_ok());
        // Y's bytes listed under X's key: refused.
        assert!(covered(&[entry(&kx, &ys)], &[row(&ys, None, true)]).is_err());
        // An uploaded key no row records for that digest: refused.
        assert!(covered(&[entry(up, &ys)], &[row(&ys, None, true)]).is_err());
        assert!(covered(&[entry(up, &xs)], &[row(&ys, Some(up), true)]).is_err());
        // A live row left out: refused; a tombstone's bytes may be absent.
        assert!(covered(&[], &[row(&ys, None, true)]).is_err());
        assert!(covered(&[entry(&kx, &xs)], &[row(&xs, None, true), row(&ys, None, false)]).is_ok());
        assert_ne!(kx, ky);
    }
}
