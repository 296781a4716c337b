//! The scrub (`wharf admin check`, and the server's scheduled runs): every blob's bytes hashed against its digest,
//! rows against stored objects, manifests' references and tags, and each repository's trust data. It runs online,
//! beside serving replicas and a running collector: a finding about a blob is re-read before it is reported (the
//! collector may have removed the row meanwhile), and an upload's objects are never orphans.
//!
//! A run goes through phases in order ([`Phase`]): blob rows in digest order (the long one: bytes read through a
//! token bucket, `rate`), the store's objects, manifests, tags, repositories' trust data. Where it is, with what it
//! found so far, is saved in the `settings` table every few seconds ([`Cursor`]), so that an interrupted run
//! resumes there; a finished run clears it. The store's side (listing, hashing, quarantine) is
//! `wharf_storage::scrub`, the rows' `meta.check()`; what is damage and what `repair` may do is decided here.

mod refs;
mod repair;
pub mod report;
pub mod schedule;
mod store;
mod trust;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wharf_storage::scrub::Pace;
use wharf_storage::{BlobStore, Metadata, Recorder, UnixTime};

pub use report::{IncompleteTag, Kind, Problem, Repair, Report, Severity};

/// How often a run saves where it is.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// How a run goes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Repair what is safe.
    pub repair: bool,
    /// Blob bytes verified a second at most (`None`: unpaced).
    pub rate: Option<u64>,
    /// Ignore a saved cursor and start over.
    pub restart: bool,
}

/// Why a check could not run (not: what it found).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Storage(#[from] wharf_storage::Error),
    #[error("the saved position of an interrupted check does not parse; run with --restart")]
    Cursor(#[source] serde_json::Error),
    /// Asked to stop (a scheduled run whose lease went to another replica): where it was is saved.
    #[error("the check stopped: its lease was lost")]
    Stopped,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Blobs,
    Objects,
    Manifests,
    Tags,
    Trust,
}

/// A run's saved state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cursor {
    phase: Phase,
    /// The last key of the phase done (a digest, a repository name, ...).
    after: String,
    report: Report,
    /// Blobs whose rows a repair removed this run (their references are listed as incomplete tags instead).
    removed: Vec<String>,
}

impl Cursor {
    fn new() -> Cursor {
        Cursor { phase: Phase::Blobs, after: String::new(), report: Report::default(), removed: Vec::new() }
    }
}

/// The checker of one registry's metadata and store.
pub struct Checker {
    meta: Metadata,
    blobs: BlobStore,
    /// The upstreams of a mirror, for refetching blobs (`None`: not a mirror).
    mirrors: Option<Arc<crate::mirror::Mirrors>>,
    recorder: Arc<dyn Recorder>,
    /// The `settings` row the cursor lives in (scheduled runs and operators' runs each have their own).
    cursor_name: &'static str,
}

/// The `settings` row of `wharf admin check`'s cursor.
pub const ADMIN_CURSOR: &str = "check.cursor";
/// The `settings` row of the scheduled runs' cursor.
pub const SCHEDULED_CURSOR: &str = "check.cursor.scheduled";

impl Checker {
    pub fn new(
        meta: Metadata,
        blobs: BlobStore,
        mirrors: Option<Arc<crate::mirror::Mirrors>>,
        recorder: Arc<dyn Recorder>,
        cursor_name: &'static str,
    ) -> Checker {
        Checker { meta, blobs, mirrors, recorder, cursor_name }
    }

    /// One run at time `now` (trust data is judged then).
    pub async fn run(&self, opts: &Options, now: UnixTime) -> Result<Report, CheckError> {
        self.run_until(opts, now, &AtomicBool::new(false)).await
    }

    /// [`Checker::run`], stopping with [`CheckError::Stopped`] once `stop` is set (checked between findings and
    /// pages, never inside a repair).
    pub async fn run_until(&self, opts: &Options, now: UnixTime, stop: &AtomicBool) -> Result<Report, CheckError> {
        let started = Instant::now();
        let mut cur = if opts.restart { None } else { self.load().await? };
        if let Some(c) = &mut cur {
            c.report.resumed = true;
            tracing::info!(phase = ?c.phase, after = %c.after, "check: resuming an interrupted run");
        }
        let mut run = Run {
            checker: self,
            opts,
            pace: Arc::new(Pace::new(opts.rate)),
            cur: cur.unwrap_or_else(Cursor::new),
            saved: Instant::now(),
            prior_millis: 0,
            started,
            now,
            stop,
        };
        run.prior_millis = run.cur.report.millis;
        self.save(&run.cur).await?;
        for phase in [Phase::Blobs, Phase::Objects, Phase::Manifests, Phase::Tags, Phase::Trust] {
            if phase < run.cur.phase {
                continue;
            }
            if phase > run.cur.phase {
                run.cur.phase = phase;
                run.cur.after.clear();
            }
            match phase {
                Phase::Blobs => run.blobs().await?,
                Phase::Objects => run.objects().await?,
                Phase::Manifests => run.manifests().await?,
                Phase::Tags => run.tags().await?,
                Phase::Trust => run.trust().await?,
            }
            run.save_now().await?;
        }
        self.meta.settings().remove(self.cursor_name).await?;
        let mut report = run.cur.report;
        report.millis = run.prior_millis + started.elapsed().as_millis() as u64;
        report.clean = report.remaining() == 0;
        tracing::info!(
            clean = report.clean,
            blobs = report.blobs_checked,
            bytes = report.bytes_verified,
            problems = report.problems.len() as u64 + report.problems_omitted,
            millis = report.millis,
            "check finished"
        );
        Ok(report)
    }

    async fn load(&self) -> Result<Option<Cursor>, CheckError> {
        match self.meta.settings().get(self.cursor_name).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(CheckError::Cursor),
        }
    }

    async fn save(&self, c: &Cursor) -> Result<(), CheckError> {
        let bytes = serde_json::to_vec(c).map_err(CheckError::Cursor)?;
        self.meta.settings().set(self.cursor_name, &bytes).await?;
        Ok(())
    }
}

/// One run in progress.
struct Run<'a> {
    checker: &'a Checker,
    opts: &'a Options,
    pace: Arc<Pace>,
    cur: Cursor,
    saved: Instant,
    /// Time spent by the runs this one resumes.
    prior_millis: u64,
    started: Instant,
    now: UnixTime,
    stop: &'a AtomicBool,
}

impl Run<'_> {
    fn meta(&self) -> &Metadata {
        &self.checker.meta
    }

    fn found(&mut self, p: Problem) {
        tracing::warn!(kind = p.kind.as_str(), severity = ?p.severity, detail = %p.detail, "check found a problem");
        self.cur.report.add(p);
    }

    fn stop_if_asked(&self) -> Result<(), CheckError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(CheckError::Stopped);
        }
        Ok(())
    }

    /// Saves the cursor if the last save is a few seconds old; stops the run if asked to.
    async fn progress(&mut self, after: String) -> Result<(), CheckError> {
        self.cur.after = after;
        if self.stop.load(Ordering::Relaxed) {
            self.save_now().await?;
            return Err(CheckError::Stopped);
        }
        if self.saved.elapsed() >= SAVE_EVERY {
            self.save_now().await?;
        }
        Ok(())
    }

    async fn save_now(&mut self) -> Result<(), CheckError> {
        self.cur.report.millis = self.prior_millis + self.started.elapsed().as_millis() as u64;
        self.checker.save(&self.cur).await?;
        self.saved = Instant::now();
        Ok(())
    }
}

/// `200M`, `1G`, `512K`, `1000`: bytes a second (K, M, G are powers of 1024).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = num.parse().map_err(|_| format!("{text:?}: give bytes a second, as 200M, 1G or 512K"))?;
    let scale: u64 = match unit.trim_end_matches(['B', 'b']).to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("{text:?}: the unit is K, M or G")),
    };
    match n.checked_mul(scale) {
        Some(0) | None => Err(format!("{text:?}: between 1 byte and 16 EiB a second")),
        Some(r) => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let rows: &[(&str, Result<u64, ()>)] = &[
            ("1000", Ok(1000)),
            ("512K", Ok(512 << 10)),
            ("200M", Ok(200 << 20)),
            ("1G", Ok(1 << 30)),
            ("2MB", Ok(2 << 20)),
            ("0", Err(())),
            ("fast", Err(())),
            ("5T", Err(())),
            ("", Err(())),
        ];
        for (text, want) in rows {
            assert_eq!(parse_rate(text).map_err(|_| ()), *want, "{text}");
        }
    }
}
