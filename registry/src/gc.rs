//! A collection run: retention rules first (tags, then untagged manifests), then the sweep of blob bytes nothing
//! references (`wharf_storage::Collector`), the expiry of abandoned uploads and, when asked, the reconciliation of
//! orphans. One run at a time across replicas, under the `gc` lease. The background task and `wharf admin gc`
//! both call [`Gc::run`]; every run logs what it removed and returns it as a [`Report`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wharf_format::tuf::{Envelope, Targets};
use wharf_format::{Digest, RepositoryName};
use wharf_storage::meta::TagRow;
use wharf_storage::{BlobStore, Change, Collector, Journal, Metadata, Origin, Recorder, Result, UnixTime, Uploads};

use crate::config::GcSettings;
use crate::retention::{Rule, TagInfo};

pub(crate) const LEASE: &str = "gc";
pub(crate) const LEASE_SECS: i64 = 30;

/// What a run should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Report what would go; remove nothing.
    pub dry_run: bool,
    /// Apply retention rules only (no sweep of bytes).
    pub retention_only: bool,
    /// Also list the store for orphans.
    pub reconcile: bool,
}

/// A tag or manifest a run removed (or would remove).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Removed {
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: String,
}

/// What a run removed, or (dry run) would remove. Read back as the web interface keeps it (`ui::admin`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub dry_run: bool,
    pub tags_removed: u64,
    pub manifests_removed: u64,
    /// Blob links removed from repositories (no manifest there references them).
    pub links_removed: u64,
    pub blobs_removed: u64,
    pub bytes_removed: u64,
    /// Tombstones of an interrupted run finished by this one.
    pub resumed: u64,
    /// Blobs whose bytes could not be deleted this time (retried next run).
    pub failed: u64,
    pub uploads_expired: u64,
    pub objects_listed: u64,
    pub orphans_removed: u64,
    pub orphan_bytes_removed: u64,
    /// Rows of the collector's queue of candidates the sweep looked at.
    pub candidates: u64,
    pub millis: u64,
    /// Where the sweep's time went, in milliseconds per step.
    pub phases: wharf_storage::Phases,
    pub tags: Vec<Removed>,
    pub manifests: Vec<Removed>,
    /// Dry run: the blobs that would go.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<String>,
    /// Dry run: the blobs nothing references that the grace period still keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// The blobs a dry run found waiting out the grace period: how many, their bytes, and when they become
/// collectible (Unix seconds; later if something touches them meanwhile).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Waiting {
    pub blobs: u64,
    pub bytes: u64,
    pub earliest_eligible_at: Option<UnixTime>,
    pub latest_eligible_at: Option<UnixTime>,
    pub list: Vec<WaitingBlob>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitingBlob {
    pub digest: String,
    pub size: u64,
    pub eligible_at: UnixTime,
}

/// The collector of a registry.
pub struct Gc {
    meta: Metadata,
    collector: Collector,
    uploads: Uploads,
    settings: GcSettings,
    holder: String,
    /// Told of every run that removed (not a dry run): the metrics.
    observer: Option<Observer>,
    /// What a removal records (its audit row), written in the removal's transaction.
    recorder: Arc<dyn Recorder>,
}

/// What [`Gc::observed`] calls with each run's report.
pub type Observer = Arc<dyn Fn(&Report) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("another collection is running (the gc lease is held)")]
    Busy,
    #[error(transparent)]
    Storage(#[from] wharf_storage::Error),
}

impl Gc {
    pub fn new(meta: Metadata, blobs: BlobStore, uploads: Uploads, settings: GcSettings) -> Gc {
        let holder = uuid_like();
        let collector = Collector::new(meta.clone(), blobs).with_delete_rate(settings.delete_rate);
        Gc {
            collector,
            meta,
            uploads,
            settings,
            holder,
            observer: None,
            recorder: Arc::new(wharf_storage::meta::Silent),
        }
    }

    /// The collector, telling `observer` of each run's report.
    pub fn observed(mut self, observer: Observer) -> Gc {
        self.observer = Some(observer);
        self
    }

    /// Records every tag, manifest (actor `retention`) and blob (actor `gc`) a run removes through `recorder`.
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder>) -> Gc {
        let rec = Arc::clone(&recorder);
        let removals: wharf_storage::gc::Removals = Arc::new(move |digests: &[String]| {
            let (origin, now) = (Origin::system("gc"), wharf_storage::Clock::now(&crate::SystemClock));
            let mut journal = Journal::default();
            for d in digests {
                let change = Change::Removal { what: "blob".into(), repository: None, digest: d.clone(), tag: None };
                journal.append(rec.journal(&origin, &change, now));
            }
            journal
        });
        self.collector = self.collector.with_removals(removals);
        self.recorder = recorder;
        self
    }

    /// The journal of a removal by retention.
    fn removal(&self, what: &str, repo: &RepositoryName, digest: &Digest, tag: Option<&str>, now: UnixTime) -> Journal {
        let change = Change::Removal {
            what: what.into(),
            repository: Some(repo.to_string()),
            digest: digest.to_string(),
            tag: tag.map(str::to_owned),
        };
        self.recorder.journal(&Origin::system("retention"), &change, now)
    }

    pub fn settings(&self) -> &GcSettings {
        &self.settings
    }

    /// One run with `rules` (the configured ones, or those given on a command line), at time `now`.
    pub async fn run(&self, opts: RunOptions, rules: &[Rule], now: UnixTime) -> Result<Report, GcError> {
        if !opts.dry_run && !self.meta.leases().acquire(LEASE, &self.holder, now, now + LEASE_SECS).await? {
            return Err(GcError::Busy);
        }
        let renewer = (!opts.dry_run).then(|| self.spawn_renewal(now));
        let result = self.run_held(opts, rules, now).await;
        if let Some(r) = renewer {
            r.abort();
            if let Err(e) = self.meta.leases().release(LEASE, &self.holder).await {
                tracing::warn!(error = %e, "releasing the gc lease");
            }
        }
        let report = result?;
        tracing::info!(
            dry_run = report.dry_run,
            tags = report.tags_removed,
            manifests = report.manifests_removed,
            links = report.links_removed,
            blobs = report.blobs_removed,
            bytes = report.bytes_removed,
            resumed = report.resumed,
            failed = report.failed,
            uploads = report.uploads_expired,
            orphans = report.orphans_removed,
            millis = report.millis,
            "garbage collection"
        );
        if let (false, Some(o)) = (report.dry_run, &self.observer) {
            o(&report);
        }
        if !report.dry_run {
            // The last collection's report, for the web interface's administrators (`/ui/admin/gc`).
            crate::ui::keep_gc_report(&self.meta, &report, now).await;
        }
        Ok(report)
    }

    async fn run_held(&self, opts: RunOptions, rules: &[Rule], now: UnixTime) -> Result<Report> {
        let started = Instant::now();
        let mut report = Report { dry_run: opts.dry_run, ..Report::default() };
        if !rules.is_empty() {
            self.retention(rules, now, opts.dry_run, &mut report).await?;
        }
        if !opts.retention_only {
            let cutoff = now - self.settings.grace_secs;
            let swept = if opts.dry_run {
                let (s, which) = self.collector.dry_run(cutoff).await?;
                report.blobs = which.iter().map(|t| t.digest.to_string()).collect();
                report.waiting = Some(self.waiting(cutoff).await?);
                s
            } else {
                self.collector.sweep(cutoff).await?
            };
            report.links_removed = swept.links;
            report.blobs_removed = swept.blobs;
            report.bytes_removed = swept.bytes;
            report.resumed = swept.resumed;
            report.failed = swept.failed;
            report.candidates = swept.candidates;
            report.phases = swept.phases;
            tracing::debug!(millis = started.elapsed().as_millis() as u64, "gc: swept");
            if !opts.dry_run {
                report.uploads_expired = self.uploads.expire(now).await as u64;
            }
        }
        if opts.reconcile && !opts.dry_run {
            let s = &self.settings;
            let r = self.collector.reconcile(now, s.orphan_age_secs, s.reconcile_rate).await?;
            report.objects_listed = r.listed;
            report.orphans_removed = r.orphans;
            report.orphan_bytes_removed = r.bytes;
        }
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The blobs the grace period keeps at `cutoff`, each eligible a grace period after its latest touch.
    async fn waiting(&self, cutoff: UnixTime) -> Result<Waiting> {
        let mut w = Waiting::default();
        let mut after = String::new();
        loop {
            let page = self.meta.collect().waiting_blobs(cutoff, &after, 500).await?;
            let Some(last) = page.last() else { break };
            after = last.digest.to_string();
            for b in page {
                let eligible_at = b.touched_at + self.settings.grace_secs;
                w.blobs += 1;
                w.bytes += b.size;
                w.earliest_eligible_at = Some(w.earliest_eligible_at.map_or(eligible_at, |e| e.min(eligible_at)));
                w.latest_eligible_at = Some(w.latest_eligible_at.map_or(eligible_at, |e| e.max(eligible_at)));
                w.list.push(WaitingBlob { digest: b.digest.to_string(), size: b.size, eligible_at });
            }
        }
        Ok(w)
    }

    /// Applies `rules`: per repository, the tags some rule removes, then untagged manifests older than a rule
    /// says (an index first, then the children it no longer holds). Signed tags and manifests a signed target
    /// names stay unless the rule includes them.
    async fn retention(&self, rules: &[Rule], now: UnixTime, dry_run: bool, report: &mut Report) -> Result<()> {
        for repo in self.meta.catalog().all().await? {
            let applying: Vec<&Rule> = rules.iter().filter(|r| r.applies_to(repo.as_str())).collect();
            if applying.is_empty() {
                continue;
            }
            let signed = self.signed(&repo).await;
            let rows = self.meta.collect().tag_rows(&repo).await?;
            let infos: Vec<TagInfo> = rows
                .iter()
                .map(|t| TagInfo {
                    name: t.tag.to_string(),
                    pushed_at: t.updated_at,
                    signed: signed.tags.contains(t.tag.as_str()),
                })
                .collect();
            let mut doomed = BTreeSet::new();
            for rule in &applying {
                doomed.extend(rule.plan(&infos, now).remove);
            }
            let mut untagged_by_plan = BTreeMap::new();
            let going: Vec<&TagRow> = rows.iter().filter(|t| doomed.contains(t.tag.as_str())).collect();
            for row in going {
                let gone = dry_run || {
                    let journal = self.removal("tag", &repo, &row.digest, Some(row.tag.as_str()), now);
                    self.meta.collect().remove_tag_seen_recorded(&repo, row, &journal).await?
                };
                if gone {
                    report.tags_removed += 1;
                    report.tags.push(removed(&repo, Some(row.tag.to_string()), &row.digest));
                    untagged_by_plan.insert(row.digest.to_string(), ());
                }
            }
            // Untagged manifests: the shortest age any applying rule gives, and whether it may take signed ones.
            let Some((age, include_signed)) = applying
                .iter()
                .filter_map(|r| r.untagged_older_than_secs.map(|a| (a, r.include_signed)))
                .min_by_key(|(a, _)| *a)
            else {
                continue;
            };
            if dry_run {
                // What would be untagged after the tags above went (when no kept tag names it), and what is now.
                let kept: BTreeSet<String> =
                    rows.iter().filter(|t| !doomed.contains(t.tag.as_str())).map(|t| t.digest.to_string()).collect();
                let mut would: BTreeSet<String> = BTreeSet::new();
                for m in self.meta.collect().untagged_manifests(&repo, now - age).await? {
                    if !keep_signed(&signed, include_signed, &m.digest) {
                        would.insert(m.digest.to_string());
                    }
                }
                for (d, ()) in untagged_by_plan {
                    let digest: Digest = d.parse().map_err(|_| wharf_storage::Error::Corrupt(d.clone()))?;
                    if !kept.contains(&d)
                        && !keep_signed(&signed, include_signed, &digest)
                        && self.meta.collect().manifest_created_before(&repo, &digest, now - age).await?
                    {
                        would.insert(d);
                    }
                }
                for d in would {
                    report.manifests_removed += 1;
                    report.manifests.push(Removed { repository: repo.to_string(), tag: None, digest: d });
                }
                continue;
            }
            // An index goes first; the manifests it held become untagged roots for the next pass.
            for _ in 0..4 {
                let mut progress = false;
                for m in self.meta.collect().untagged_manifests(&repo, now - age).await? {
                    if !keep_signed(&signed, include_signed, &m.digest)
                        && self
                            .meta
                            .collect()
                            .remove_manifest_seen_recorded(
                                &repo,
                                &m,
                                &self.removal("manifest", &repo, &m.digest, None, now),
                            )
                            .await?
                    {
                        report.manifests_removed += 1;
                        report.manifests.push(removed(&repo, None, &m.digest));
                        progress = true;
                    }
                }
                if !progress {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The tags and manifest digests that signed targets name in `repo`'s trust data (none when it has none or
    /// it does not parse: then retention treats nothing as signed, and says so).
    async fn signed(&self, repo: &RepositoryName) -> Signed {
        let mut s = Signed::default();
        let rows = match self.meta.trust().latest_all(repo).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%repo, error = %e, "reading trust data for retention");
                return s;
            }
        };
        for row in rows.iter().filter(|r| !matches!(r.role.as_str(), "root" | "snapshot" | "timestamp")) {
            let Ok(targets) = Envelope::parse(&row.content).and_then(|e| e.decode::<Targets>()) else {
                tracing::warn!(%repo, role = %row.role.as_str(), "trust metadata does not parse; not counted as signed");
                continue;
            };
            for (name, file) in targets.targets {
                if let Some(d) = file.hashes.get("sha256").and_then(|h| format!("sha256:{h}").parse().ok()) {
                    s.digests.insert(d);
                }
                s.tags.insert(name);
            }
        }
        s
    }

    fn spawn_renewal(&self, started: UnixTime) -> tokio::task::JoinHandle<()> {
        let (meta, holder) = (self.meta.clone(), self.holder.clone());
        let clock = Instant::now();
        tokio::spawn(async move {
            let every = Duration::from_secs(LEASE_SECS as u64 / 3);
            loop {
                tokio::time::sleep(every).await;
                let now = started + clock.elapsed().as_secs() as i64;
                if let Err(e) = meta.leases().acquire(LEASE, &holder, now, now + LEASE_SECS).await {
                    tracing::warn!(error = %e, "renewing the gc lease");
                }
            }
        })
    }
}

fn keep_signed(signed: &Signed, include_signed: bool, d: &Digest) -> bool {
    !include_signed && signed.digests.contains(d)
}

#[derive(Default)]
struct Signed {
    tags: BTreeSet<String>,
    digests: BTreeSet<Digest>,
}

fn removed(repo: &RepositoryName, tag: Option<String>, digest: &Digest) -> Removed {
    Removed { repository: repo.to_string(), tag, digest: digest.to_string() }
}

pub(crate) fn uuid_like() -> String {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

/// Runs the collector every `interval` (and a reconciliation every `reconcile_every`) until aborted.
pub fn spawn(gc: Arc<Gc>, clock: Arc<dyn Fn() -> UnixTime + Send + Sync>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = gc.settings.interval?;
    Some(tokio::spawn(async move {
        let mut last_reconcile = Instant::now();
        loop {
            tokio::time::sleep(interval).await;
            let reconcile = gc.settings.reconcile_every.is_some_and(|e| last_reconcile.elapsed() >= e);
            let opts = RunOptions { reconcile, ..RunOptions::default() };
            match gc.run(opts, &gc.settings.rules, clock()).await {
                Ok(_) if reconcile => last_reconcile = Instant::now(),
                Ok(_) => {}
                Err(GcError::Busy) => tracing::debug!("garbage collection: another replica is collecting"),
                Err(e) => tracing::error!(error = %e, "garbage collection failed"),
            }
        }
    }))
}
