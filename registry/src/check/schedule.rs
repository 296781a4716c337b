//! Scheduled checks in the server (`[check] interval`): one replica at a time runs one, under the `check` lease
//! (kept by renewing it while the run lasts), each resuming where an interrupted one stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wharf_storage::UnixTime;

use super::{CheckError, Checker, Options, Report};

/// The lease's name.
const LEASE: &str = "check";
/// How long a lease lasts unless renewed.
const LEASE_SECS: i64 = 60;

/// What the scheduler tells of each run: its report and when it ended, or `None` when it could not run.
pub type Observer = Arc<dyn Fn(Option<&Report>, UnixTime) + Send + Sync>;

/// Runs a check every `interval` until aborted.
pub fn spawn(
    checker: Arc<Checker>,
    interval: Duration,
    opts: Options,
    clock: Arc<dyn Fn() -> UnixTime + Send + Sync>,
    observer: Observer,
) -> tokio::task::JoinHandle<()> {
    let holder = crate::mirror::random_id();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let now = clock();
            match checker.meta.leases().acquire(LEASE, &holder, now, now + LEASE_SECS).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("check: another replica is checking");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "check: taking the lease");
                    continue;
                }
            }
            let lost = Arc::new(AtomicBool::new(false));
            let renewer = renew(Arc::clone(&checker), holder.clone(), Arc::clone(&clock), Arc::clone(&lost));
            let result = checker.run_until(&opts, now, &lost).await;
            renewer.abort();
            if let Err(e) = checker.meta.leases().release(LEASE, &holder).await {
                tracing::warn!(error = %e, "check: releasing the lease");
            }
            match result {
                Ok(report) => observer(Some(&report), clock()),
                // Another replica holds the lease now: it resumes from the saved cursor.
                Err(CheckError::Stopped) => tracing::warn!("check: the lease was lost; this replica stopped its run"),
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "scheduled check failed");
                    observer(None, clock());
                }
            }
        }
    })
}

/// Renews the lease every third of its term; sets `lost` and ends when another replica holds it (it expired).
fn renew(
    checker: Arc<Checker>,
    holder: String,
    clock: Arc<dyn Fn() -> UnixTime + Send + Sync>,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(LEASE_SECS as u64 / 3)).await;
            let now = clock();
            match checker.meta.leases().acquire(LEASE, &holder, now, now + LEASE_SECS).await {
                Ok(true) => {}
                Ok(false) => {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "check: renewing the lease"),
            }
        }
    })
}

/// The server's scheduled checks under `settings` (`None`: none are configured), with their metrics.
pub fn start(state: &crate::AppState, settings: &crate::config::CheckSettings) -> Option<tokio::task::JoinHandle<()>> {
    let interval = settings.interval?;
    let recorder = Arc::clone(&state.ops.recorder) as Arc<dyn wharf_storage::Recorder>;
    let (meta, blobs, mirrors) = (state.meta.clone(), state.blobs.clone(), state.mirror.clone());
    let checker = Checker::new(meta, blobs, mirrors, recorder, super::SCHEDULED_CURSOR);
    let opts = Options { repair: settings.repair, rate: settings.rate, restart: false };
    let ops = Arc::clone(&state.ops);
    let observer: Observer = Arc::new(move |report, now| match report {
        Some(r) => ops.metrics.check.finished(r, now),
        None => ops.metrics.check.failed(),
    });
    let clock = Arc::new(|| wharf_storage::Clock::now(&crate::SystemClock));
    Some(spawn(Arc::new(checker), interval, opts, clock, observer))
}
