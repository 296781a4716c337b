//! Audit rows: what each [`Change`] records in the audit log. (Skeleton: one row per change with the basics; issue
//! 23's audit work completes it.)

use wharf_storage::{AuditRow, Change, Origin, UnixTime};

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Audit rows older than this are pruned (default 1 year).
    pub retention_secs: i64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { retention_secs: 365 * 86_400 }
    }
}

/// The audit rows `change` records (none for reads).
pub fn rows(_settings: &AuditSettings, origin: &Origin, change: &Change, now: UnixTime) -> Vec<AuditRow> {
    let (action, repository, digest, tag) = match change {
        Change::ManifestPush { repository, digest, tag, .. } => ("push", Some(repository), Some(digest), tag.as_ref()),
        Change::ManifestDelete { repository, digest } => ("delete", Some(repository), Some(digest), None),
        Change::TagDelete { repository, tag, digest } => ("untag", Some(repository), digest.as_ref(), Some(tag)),
        _ => return Vec::new(),
    };
    vec![AuditRow {
        at: now,
        action: action.to_owned(),
        actor: origin.actor.name().to_owned(),
        actor_kind: origin.actor.kind().to_owned(),
        address: origin.address.map(|a| a.to_string()),
        repository: repository.cloned(),
        digest: digest.cloned(),
        tag: tag.cloned(),
        detail: None,
    }]
}
