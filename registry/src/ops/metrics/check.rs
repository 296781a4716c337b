//! The scrub's metrics (`wharf admin check` scheduled in the server, `[check]`): runs by outcome, findings by kind,
//! blob bytes verified, and when the last run finished.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::check::{Kind, Report};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `clean`, `damaged` or `failed`.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
    pub severity: String,
}

/// The check's families.
#[derive(Debug, Default)]
pub struct CheckMetrics {
    runs: Family<OutcomeLabels, Counter>,
    problems: Family<KindLabels, Counter>,
    bytes: Counter,
    last: Gauge,
}

impl CheckMetrics {
    pub fn register(r: &mut Registry) -> CheckMetrics {
        let m = CheckMetrics::default();
        r.register("wharf_check_runs", "Scheduled store checks by outcome: clean, damaged, failed", m.runs.clone());
        r.register(
            "wharf_check_problems",
            "What scheduled store checks found, by kind and severity",
            m.problems.clone(),
        );
        r.register("wharf_check_verified_bytes", "Blob bytes scheduled store checks read and hashed", m.bytes.clone());
        r.register(
            "wharf_check_last_completion_timestamp_seconds",
            "When the last scheduled store check finished (Unix seconds)",
            m.last.clone(),
        );
        // Every kind from the start, so that a dashboard's rate() has a series before the first finding.
        for kind in Kind::ALL {
            let _ = m.problems.get_or_create(&KindLabels { kind: kind.as_str().into(), severity: "damage".into() });
        }
        m
    }

    /// A run that finished at `now`.
    pub fn finished(&self, report: &Report, now: i64) {
        let outcome = if report.clean { "clean" } else { "damaged" };
        self.runs.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        // The counts, not the list: the list is capped.
        for (kind, c) in &report.counts {
            for (severity, n) in [("damage", c.damage), ("leftover", c.leftover)] {
                if n > 0 {
                    self.problems
                        .get_or_create(&KindLabels { kind: kind.clone(), severity: severity.into() })
                        .inc_by(n);
                }
            }
        }
        self.bytes.inc_by(report.bytes_verified);
        self.last.set(now);
    }

    /// A run that could not run.
    pub fn failed(&self) {
        self.runs.get_or_create(&OutcomeLabels { outcome: "failed".into() }).inc();
    }
}
