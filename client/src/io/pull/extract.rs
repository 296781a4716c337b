//! Layers extracted into the snapshot store as their downloads complete, as many at once as there are cores.

use std::path::PathBuf;
use std::sync::Arc;

use super::{joined, PullError};
use crate::io::snapshot::{Snapshot, SnapshotStore};
use crate::io::store::{ContentStore, FetchError};
use crate::io::unpack::{Budget, UnpackOptions};
use wharf_format::digest::Digest;

type Download = tokio::task::JoinHandle<Result<PathBuf, FetchError>>;

/// Waits for every download to end on its own (none is cut off mid-write when a pull fails); the first error.
pub(super) async fn all(downloads: Vec<Download>) -> Result<(), PullError> {
    let mut first = None;
    for d in downloads {
        if let Err(e) = joined(d.await).and_then(|r| r.map_err(PullError::from)) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Waits for each layer's download (`downloads[i]` fetches `layers[i]`) and starts its extraction, checked against
/// `diff_ids[i]`, while later ones still download; the snapshots, bottom first.
pub(super) async fn as_they_arrive(
    store: &ContentStore,
    downloads: Vec<Download>,
    layers: &[Digest],
    diff_ids: &[Digest],
    uopts: UnpackOptions,
) -> Result<Vec<Snapshot>, PullError> {
    let snaps = SnapshotStore::open(store)?;
    let budget = Arc::new(Budget::new(uopts.max_bytes));
    let cores = Arc::new(tokio::sync::Semaphore::new(crate::io::unpack::default_threads()));
    let mut pending: futures::stream::FuturesUnordered<_> =
        downloads.into_iter().enumerate().map(|(i, t)| async move { (i, t.await) }).collect();
    let mut extracting = Vec::new();
    while let Some((i, fetched)) = futures::StreamExt::next(&mut pending).await {
        let path = match joined(fetched).and_then(|r| r.map_err(PullError::from)) {
            Ok(p) => p,
            Err(e) => {
                // The other downloads end on their own (each removes its partial file when it fails): returning
                // now would leave them to be cut off mid-write when the process exits.
                while futures::StreamExt::next(&mut pending).await.is_some() {}
                return Err(e);
            }
        };
        let (snaps, layer, diff_id, budget, cores) =
            (snaps.clone(), layers[i].clone(), diff_ids[i].clone(), budget.clone(), cores.clone());
        extracting.push(tokio::spawn(async move {
            let _core = cores.acquire_owned().await;
            let out = tokio::task::spawn_blocking(move || {
                snaps.extract(&path, &layer, &diff_id, &uopts, &budget).map(|(s, _)| s)
            })
            .await;
            (i, out)
        }));
    }
    let mut done = vec![None; layers.len()];
    for h in extracting {
        let (i, out) = joined(h.await)?;
        done[i] = Some(joined(out)??);
    }
    done.into_iter().collect::<Option<Vec<_>>>().ok_or(PullError::Invariant("a layer was not extracted"))
}
