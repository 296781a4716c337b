//! What a check found: the report `wharf admin check --json` prints (its shape is a contract other tools read),
//! and the readable form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Stored bytes (a blob's object, an orphan at a content address, a manifest's content) do not hash to their
    /// digest.
    DigestMismatch,
    /// A blob row whose bytes are not in the store.
    BytesMissing,
    /// An object no row accounts for.
    OrphanObject,
    /// A manifest references a blob or child manifest its repository does not have.
    ManifestReferenceMissing,
    /// A tag points at a manifest that is not there.
    TagDangling,
    /// A repository's trust data does not verify against its own root.
    TrustInvalid,
    /// A repository's trust data has expired.
    TrustExpired,
    /// Two sizes of one blob disagree (its row, its object, a manifest's descriptor).
    SizeMismatch,
    /// Stored bytes could not be read (the device failed, the store did not answer after its retries, or two reads
    /// disagreed): not verified, never repaired; the next run reads them again.
    Unreadable,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::DigestMismatch,
        Kind::BytesMissing,
        Kind::OrphanObject,
        Kind::ManifestReferenceMissing,
        Kind::TagDangling,
        Kind::TrustInvalid,
        Kind::TrustExpired,
        Kind::SizeMismatch,
        Kind::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DigestMismatch => "digest_mismatch",
            Kind::BytesMissing => "bytes_missing",
            Kind::OrphanObject => "orphan_object",
            Kind::ManifestReferenceMissing => "manifest_reference_missing",
            Kind::TagDangling => "tag_dangling",
            Kind::TrustInvalid => "trust_invalid",
            Kind::TrustExpired => "trust_expired",
            Kind::SizeMismatch => "size_mismatch",
            Kind::Unreadable => "unreadable",
        }
    }
}

/// Whether a finding is damage or what a crash may legitimately leave (and the collector's reconcile removes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Damage,
    Leftover,
}

/// What `--repair` did about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    /// The object was moved under `quarantine/` (and the blob's row removed, if it had one).
    Quarantined,
    /// Verified bytes from a mirror's upstream replaced the damaged or missing ones.
    Refetched,
    /// The row of bytes that are gone was removed (clients get 404; a push heals it).
    RowRemoved,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: Kind,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The object's key in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub detail: String,
    pub repair: Option<Repair>,
}

impl Problem {
    pub fn damage(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            severity: Severity::Damage,
            digest: None,
            repository: None,
            tag: None,
            path: None,
            detail: detail.into(),
            repair: None,
        }
    }

    pub fn leftover(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem { severity: Severity::Leftover, ..Problem::damage(kind, detail) }
    }

    pub fn digest(mut self, d: impl ToString) -> Problem {
        self.digest = Some(d.to_string());
        self
    }

    pub fn repository(mut self, r: impl ToString) -> Problem {
        self.repository = Some(r.to_string());
        self
    }

    pub fn tag(mut self, t: impl ToString) -> Problem {
        self.tag = Some(t.to_string());
        self
    }

    pub fn path(mut self, p: impl ToString) -> Problem {
        self.path = Some(p.to_string());
        self
    }

    /// Damage that no repair dealt with.
    pub fn remains(&self) -> bool {
        self.severity == Severity::Damage && self.repair.is_none()
    }
}

/// A tag whose manifest needs a blob whose row a repair removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteTag {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

/// A run's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// No damage remains.
    pub clean: bool,
    pub blobs_checked: u64,
    pub bytes_verified: u64,
    pub manifests_checked: u64,
    pub tags_checked: u64,
    pub repositories_checked: u64,
    pub millis: u64,
    /// The run continued one that was interrupted.
    pub resumed: bool,
    /// The first [`MAX_PROBLEMS`] findings (the report is saved in the cursor every few seconds).
    pub problems: Vec<Problem>,
    pub incomplete_tags: Vec<IncompleteTag>,
    /// Every finding counted by kind, those past `problems`' cap included.
    #[serde(default)]
    pub counts: BTreeMap<String, KindCount>,
    /// Findings counted but left out of `problems`.
    #[serde(default)]
    pub problems_omitted: u64,
    /// Damage no repair dealt with, counted over every finding.
    #[serde(default)]
    pub damage_remaining: u64,
}

/// How many findings of one kind a run made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount {
    pub damage: u64,
    pub leftover: u64,
    /// Of the damage, what a repair dealt with.
    pub repaired: u64,
}

/// Findings kept in a report's list; past it they are counted only.
pub const MAX_PROBLEMS: usize = 1000;

impl Report {
    /// Adds a finding: counted, and listed while the list is under its cap.
    pub fn add(&mut self, p: Problem) {
        let c = self.counts.entry(p.kind.as_str().to_string()).or_default();
        match p.severity {
            Severity::Damage => c.damage += 1,
            Severity::Leftover => c.leftover += 1,
        }
        if p.repair.is_some() && p.severity == Severity::Damage {
            c.repaired += 1;
        }
        if p.remains() {
            self.damage_remaining += 1;
        }
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.problems_omitted += 1;
        }
    }

    /// Damage that remains after repairs.
    pub fn remaining(&self) -> usize {
        self.damage_remaining as usize
    }

    /// The report for people: a summary line, then one line per finding.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: {} blobs ({} bytes verified), {} manifests, {} tags, {} repositories in {:.1}s{}\n",
            if self.clean { "clean" } else { "DAMAGED" },
            self.blobs_checked,
            self.bytes_verified,
            self.manifests_checked,
            self.tags_checked,
            self.repositories_checked,
            self.millis as f64 / 1000.0,
            if self.resumed { " (resumed an interrupted run)" } else { "" },
        );
        for p in &self.problems {
            let what = [&p.repository, &p.tag, &p.digest, &p.path]
                .iter()
                .filter_map(|v| v.as_deref())
                .collect::<Vec<_>>()
                .join(" ");
            let severity = match p.severity {
                Severity::Damage => "damage",
                Severity::Leftover => "leftover",
            };
            let repair = match p.repair {
                Some(Repair::Quarantined) => " [repaired: quarantined]",
                Some(Repair::Refetched) => " [repaired: refetched]",
                Some(Repair::RowRemoved) => " [repaired: row removed]",
                None => "",
            };
            out.push_str(&format!("{severity} {} {what}: {}{repair}\n", p.kind.as_str(), p.detail));
        }
        if self.problems_omitted > 0 {
            out.push_str(&format!("... and {} more findings (counted by kind in --json)\n", self.problems_omitted));
        }
        for t in &self.incomplete_tags {
            out.push_str(&format!("incomplete tag {}:{} ({}): push it again\n", t.repository, t.tag, t.digest));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_has_the_contracts_shape() {
        let mut r = Report { blobs_checked: 2, ..Report::default() };
        r.add(Problem::damage(Kind::BytesMissing, "gone").digest("sha256:ab").path("blobs/x"));
        r.add(Problem::leftover(Kind::OrphanObject, "crash leftover").path("blobs/y"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["problems"][0]["kind"], "bytes_missing");
        assert_eq!(v["problems"][0]["severity"], "damage");
        assert_eq!(v["problems"][0]["repair"], serde_json::Value::Null);
        assert_eq!(v["problems"][1]["severity"], "leftover");
        assert!(v["problems"][1].get("digest").is_none());
        for k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(r.remaining(), 1);
        assert_eq!(serde_json::from_value::<Report>(v).unwrap(), r);
    }

    #[test]
    fn the_list_is_capped_and_every_finding_counted() {
        let mut r = Report::default();
        for i in 0..MAX_PROBLEMS + 5 {
            r.add(Problem::damage(Kind::Unreadable, format!("read {i} failed")));
        }
        let mut repaired = Problem::damage(Kind::DigestMismatch, "bad");
        repaired.repair = Some(Repair::Quarantined);
        r.add(repaired);
        r.add(Problem::leftover(Kind::OrphanObject, "leftover"));
        assert_eq!(r.problems.len(), MAX_PROBLEMS);
        assert_eq!(r.problems_omitted, 7);
        assert_eq!(r.remaining(), MAX_PROBLEMS + 5);
        assert_eq!(r.counts["unreadable"], KindCount { damage: MAX_PROBLEMS as u64 + 5, leftover: 0, repaired: 0 });
        assert_eq!(r.counts["digest_mismatch"], KindCount { damage: 1, leftover: 0, repaired: 1 });
        assert_eq!(r.counts["orphan_object"].leftover, 1);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["counts"]["unreadable"]["damage"], MAX_PROBLEMS as u64 + 5);
        assert_eq!(serde_json::from_value::<Report>(v).unwrap(), r);
    }
}
