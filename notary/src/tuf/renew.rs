//! Snapshot and timestamp: written by the service after each publish, and renewed before they expire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wharf_format::tuf::{
    Envelope, Expires, MetaFile, Role, RoleName, Root, Snapshot, Targets, Timestamp, SPEC_VERSION,
};
use wharf_format::RepositoryName;
use wharf_storage::MetadataRow;

use super::keys::{self, ServiceKey};
use super::stored;
use crate::{Error, Notary, TrustCounters};

pub fn snapshot(version: u64, expires: i64, targets_version: u64, delegated: &BTreeMap<String, u64>) -> Snapshot {
    let mut meta = BTreeMap::from([(
        "targets.json".to_string(),
        MetaFile { version: targets_version, length: None, hashes: None },
    )]);
    for (name, v) in delegated {
        meta.insert(format!("{name}.json"), MetaFile { version: *v, length: None, hashes: None });
    }
    Snapshot { type_: "snapshot".into(), spec_version: SPEC_VERSION.into(), version, expires: Expires(expires), meta }
}

pub fn timestamp(version: u64, expires: i64, snapshot_version: u64, snapshot_bytes: &[u8]) -> Timestamp {
    let file = MetaFile {
        version: snapshot_version,
        length: Some(snapshot_bytes.len() as u64),
        hashes: Some(BTreeMap::from([(
            "sha256".to_string(),
            wharf_format::Digest::sha256_of(snapshot_bytes).hex().to_string(),
        )])),
    };
    Timestamp {
        type_: "timestamp".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires(expires),
        meta: BTreeMap::from([("snapshot.json".to_string(), file)]),
    }
}

/// Signs `doc` with the service keys `root` names for `role`.
pub fn sign<T: serde::Serialize>(doc: &T, keys: &[ServiceKey], root: &Root, role: Role) -> Result<Vec<u8>, Error> {
    let signers = keys::signers(keys, root, role);
    if signers.is_empty() {
        return Err(Error::NoServiceKey(role.as_str()));
    }
    Ok(Envelope::sign(doc, &signers)?.to_bytes()?)
}

/// A stored row for signed bytes.
pub fn row(role: RoleName, version: u64, content: Vec<u8>, expires: i64) -> MetadataRow {
    MetadataRow { role, version, content, expires }
}

/// Re-signs what is about to expire, for one repository. Returns whether anything was written.
pub async fn renew(n: &Notary, repo: &RepositoryName) -> Result<bool, Error> {
    let now = n.clock.now();
    let s = &n.settings;
    let (Some(root_row), Some(ts_row), Some(snap_row)) = (
        n.meta.trust().latest(repo, &RoleName::TopLevel(Role::Root)).await?,
        n.meta.trust().latest(repo, &RoleName::TopLevel(Role::Timestamp)).await?,
        n.meta.trust().latest(repo, &RoleName::TopLevel(Role::Snapshot)).await?,
    ) else {
        return Ok(false);
    };
    let ts_due = ts_row.expires - now <= s.timestamp_lifetime / 2;
    let snap_due = snap_row.expires - now <= s.snapshot_lifetime / 2;
    if !ts_due && !snap_due {
        return Ok(false);
    }
    let root: Root = Envelope::parse(&root_row.content).and_then(|e| e.decode()).map_err(stored("root"))?;
    let keys = keys::load(&n.meta, &n.kek, repo).await?;
    let mut rows = Vec::new();
    let (snap_version, snap_bytes) = if snap_due {
        let old: Snapshot = Envelope::parse(&snap_row.content).and_then(|e| e.decode()).map_err(stored("snapshot"))?;
        let mut new = old.clone();
        new.version += 1;
        new.expires = Expires(now + s.snapshot_lifetime);
        let bytes = sign(&new, &keys, &root, Role::Snapshot)?;
        rows.push(row(RoleName::TopLevel(Role::Snapshot), new.version, bytes.clone(), now + s.snapshot_lifetime));
        (new.version, bytes)
    } else {
        (snap_row.version, snap_row.content.clone())
    };
    let ts = timestamp(ts_row.version + 1, now + s.timestamp_lifetime, snap_version, &snap_bytes);
    rows.push(row(
        RoleName::TopLevel(Role::Timestamp),
        ts.version,
        sign(&ts, &keys, &root, Role::Timestamp)?,
        now + s.timestamp_lifetime,
    ));
    n.meta.trust().commit(repo, &rows, now).await?;
    n.written(repo);
    tracing::info!(repository = %repo, timestamp = ts.version, snapshot = snap_version, "renewed trust metadata");
    Ok(true)
}

/// Checks every repository on a schedule and renews what is due. The schedule is derived from stored expiry
/// times, so it survives restarts.
/// The lease that makes one replica at a time renew trust metadata.
pub const RENEWAL_LEASE: &str = "trust.renewal";

pub fn spawn_renewal(n: Arc<Notary>) -> tokio::task::JoinHandle<()> {
    // Replicas on one database renew in turn, not together: the one holding the lease renews, and keeps the lease
    // while it runs; if it stops, another takes over once the lease (three check periods) has run out.
    let mut id = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let holder = hex::encode(id);
    let period = n.settings.renew_check_secs.max(1);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(period));
        loop {
            tick.tick().await;
            let now = n.clock.now();
            match n.meta.leases().acquire(RENEWAL_LEASE, &holder, now, now + 3 * period as i64).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "taking the renewal lease");
                    continue;
                }
            }
            let repos = match n.meta.trust().repositories().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "listing trust repositories for renewal");
                    continue;
                }
            };
            for repo in repos {
                match renew(&n, &repo).await {
                    Ok(true) => TrustCounters::count(&n.counters.tuf_renewals),
                    Ok(false) => {}
                    // A publish won the race: its fresh metadata makes renewal unnecessary.
                    Err(Error::Storage(wharf_storage::Error::Conflict(_))) => {}
                    Err(e) => {
                        TrustCounters::count(&n.counters.tuf_failures);
                        tracing::error!(repository = %repo, error = %crate::error::chain(&e), "renewing trust metadata")
                    }
                }
            }
        }
    })
}

/// The top-level targets, typed, with its version.
pub fn parse_targets(row: &MetadataRow) -> Result<Targets, Error> {
    Envelope::parse(&row.content).and_then(|e| e.decode()).map_err(stored(row.role.as_str()))
}
