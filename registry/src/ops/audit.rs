//! Audit rows: what each [`Change`] records in the audit log (one row per change; reads record none), and the
//! periodic pruning of rows older than `[audit] retention`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wharf_storage::{AuditRow, Change, Metadata, Origin, UnixTime};

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Audit rows older than this are pruned (default 1 year); 0 keeps them forever.
    pub retention_secs: i64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { retention_secs: 365 * 86_400 }
    }
}

/// The audit rows `change` records (none for reads).
pub fn rows(_settings: &AuditSettings, origin: &Origin, change: &Change, now: UnixTime) -> Vec<AuditRow> {
    let mut row = AuditRow {
        at: now,
        action: String::new(),
        actor: origin.actor.name().to_owned(),
        actor_kind: origin.actor.kind().to_owned(),
        address: origin.address.map(|a| a.to_string()),
        repository: None,
        digest: None,
        tag: None,
        detail: None,
    };
    let (action, repository, digest, tag, detail): (&str, _, _, _, _) = match change {
        Change::BlobPush { .. } | Change::ManifestPull { .. } | Change::BlobPull { .. } => return Vec::new(),
        Change::ManifestPush { repository, digest, media_type, size, tag } => {
            let detail = json!({ "media_type": media_type, "size": size });
            ("push", Some(repository), Some(digest.clone()), tag.clone(), Some(detail))
        }
        Change::ManifestDelete { repository, digest } => ("delete", Some(repository), Some(digest.clone()), None, None),
        Change::BlobDelete { repository, digest } => {
            ("delete_blob", Some(repository), Some(digest.clone()), None, None)
        }
        Change::TagDelete { repository, tag, digest } => {
            ("untag", Some(repository), digest.clone(), Some(tag.clone()), None)
        }
        Change::TagMove { repository, tag, from, to } => {
            ("tag", Some(repository), Some(to.clone()), Some(tag.clone()), Some(json!({ "from": from })))
        }
        Change::TrustPublish { repository, format, roles } => {
            let detail = json!({ "format": format.as_str(), "roles": roles });
            ("trust_publish", Some(repository), None, None, Some(detail))
        }
        Change::KeyRotation { repository, format, role } => {
            let detail = json!({ "format": format.as_str(), "role": role });
            ("key_rotation", Some(repository), None, None, Some(detail))
        }
        Change::TrustDelete { repository, format } => {
            ("trust_delete", Some(repository), None, None, Some(json!({ "format": format.as_str() })))
        }
        Change::Login { account, ok } => {
            // The name presented is the row's actor, verified or not: a failed login is looked up by it.
            row.actor.clone_from(account);
            (if *ok { "login" } else { "login_failed" }, None, None, None, None)
        }
        Change::Account { action, account, kind } => {
            let detail = json!({ "account": account, "kind": kind });
            return vec![AuditRow { action: format!("account_{action}"), detail: Some(detail.to_string()), ..row }];
        }
        Change::Grant { action, account, pattern, actions } => {
            let detail = json!({ "account": account, "pattern": pattern, "actions": actions });
            return vec![AuditRow { action: action.clone(), detail: Some(detail.to_string()), ..row }];
        }
        Change::Removal { what, repository, digest, tag } => {
            return vec![AuditRow {
                action: format!("remove_{what}"),
                repository: repository.clone(),
                digest: Some(digest.clone()),
                tag: tag.clone(),
                ..row
            }];
        }
        Change::Admin { action, detail } => {
            let detail = json!({ "action": action, "detail": detail });
            return vec![AuditRow { action: format!("admin_{action}"), detail: Some(detail.to_string()), ..row }];
        }
    };
    vec![AuditRow {
        action: action.to_owned(),
        repository: repository.cloned(),
        digest,
        tag,
        detail: detail.map(|d| d.to_string()),
        ..row
    }]
}

/// How often the pruner looks for expired rows, and how many it removes per statement.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
const PRUNE_BATCH: u32 = 1_000;
const LEASE: &str = "audit-prune";
const LEASE_SECS: i64 = 300;

/// Removes rows older than the retention, in batches of [`PRUNE_BATCH`]; returns how many went. Runs under the
/// `audit-prune` lease, so that one replica prunes at a time; a held lease is not an error (nothing is done).
pub async fn prune(
    meta: &Metadata,
    settings: &AuditSettings,
    holder: &str,
    now: UnixTime,
) -> wharf_storage::Result<u64> {
    if settings.retention_secs <= 0 || !meta.leases().acquire(LEASE, holder, now, now + LEASE_SECS).await? {
        return Ok(0);
    }
    let mut total = 0;
    let result = async {
        loop {
            let n = meta.audit().prune(now - settings.retention_secs, PRUNE_BATCH).await?;
            total += n;
            if n < u64::from(PRUNE_BATCH) {
                return Ok(total);
            }
            // Let writers in between batches.
            tokio::task::yield_now().await;
        }
    }
    .await;
    if let Err(e) = meta.leases().release(LEASE, holder).await {
        tracing::warn!(error = %e, "releasing the audit-prune lease");
    }
    result
}

/// The periodic pruner of [`prune`], for `serve::run`; `None` when rows are kept forever.
pub fn spawn_pruner(
    meta: Metadata,
    settings: AuditSettings,
    clock: Arc<dyn Fn() -> UnixTime + Send + Sync>,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.retention_secs <= 0 {
        return None;
    }
    let mut id = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let holder = format!("audit-{}", hex::encode(id));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            match prune(&meta, &settings, &holder, clock()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "pruned audit rows past their retention"),
                Err(e) => tracing::warn!(error = %e, "pruning audit rows"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_storage::{Actor, TrustFormat};

    /// One row per change, rendered as `action actor/kind repo digest tag detail`; `-` for none.
    fn check(actor: Actor, change: Change, expect: &str) {
        let mut origin = Origin::system("x");
        origin.actor = actor;
        origin.address = "10.0.0.7".parse().ok();
        let got: Vec<String> = rows(&AuditSettings::default(), &origin, &change, 42)
            .iter()
            .map(|r| {
                assert_eq!(r.at, 42);
                assert_eq!(r.address.as_deref(), Some("10.0.0.7"));
                let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                format!(
                    "{} {}/{} {} {} {} {}",
                    r.action,
                    r.actor,
                    r.actor_kind,
                    o(&r.repository),
                    o(&r.digest),
                    o(&r.tag),
                    o(&r.detail)
                )
            })
            .collect();
        assert_eq!(got.join("\n"), expect);
    }

    #[test]
    fn rows_per_change() {
        let (alice, robot) = (Actor::Account("alice".into()), Actor::Robot("robot$ci".into()));
        let s = |v: &str| v.to_owned();
        check(
            alice.clone(),
            Change::ManifestPush {
                repository: s("a/b"),
                digest: s("sha256:1"),
                media_type: s("m"),
                size: 3,
                tag: Some(s("v1")),
            },
            r#"push alice/account a/b sha256:1 v1 {"media_type":"m","size":3}"#,
        );
        check(
            robot.clone(),
            Change::ManifestDelete { repository: s("a"), digest: s("sha256:1") },
            "delete robot$ci/robot a sha256:1 - -",
        );
        check(
            alice.clone(),
            Change::BlobDelete { repository: s("a"), digest: s("sha256:2") },
            "delete_blob alice/account a sha256:2 - -",
        );
        check(
            alice.clone(),
            Change::TagDelete { repository: s("a"), tag: s("t"), digest: None },
            "untag alice/account a - t -",
        );
        check(
            alice.clone(),
            Change::TagMove { repository: s("a"), tag: s("t"), from: Some(s("sha256:0")), to: s("sha256:1") },
            r#"tag alice/account a sha256:1 t {"from":"sha256:0"}"#,
        );
        check(
            alice.clone(),
            Change::TrustPublish { repository: s("a"), format: TrustFormat::NotaryV1, roles: vec![s("targets")] },
            r#"trust_publish alice/account a - - {"format":"notary_v1","roles":["targets"]}"#,
        );
        check(
            alice.clone(),
            Change::KeyRotation { repository: s("a"), format: TrustFormat::Tuf, role: s("root") },
            r#"key_rotation alice/account a - - {"format":"tuf","role":"root"}"#,
        );
        check(
            alice.clone(),
            Change::TrustDelete { repository: s("a"), format: TrustFormat::Tuf },
            r#"trust_delete alice/account a - - {"format":"tuf"}"#,
        );
        check(
            Actor::Anonymous,
            Change::Login { account: s("mallory"), ok: false },
            "login_failed mallory/anonymous - - - -",
        );
        check(alice.clone(), Change::Login { account: s("alice"), ok: true }, "login alice/account - - - -");
        check(
            Actor::System(s("admin")),
            Change::Account { action: s("add"), account: s("bob"), kind: s("user") },
            r#"account_add admin/system - - - {"account":"bob","kind":"user"}"#,
        );
        check(
            Actor::System(s("admin")),
            Change::Grant { action: s("revoke"), account: s("bob"), pattern: s("t/*"), actions: s("") },
            r#"revoke admin/system - - - {"account":"bob","actions":"","pattern":"t/*"}"#,
        );
        check(
            Actor::System(s("gc")),
            Change::Removal { what: s("blob"), repository: None, digest: s("sha256:9"), tag: None },
            "remove_blob gc/system - sha256:9 - -",
        );
        check(
            Actor::System(s("admin")),
            Change::Admin { action: s("gc"), detail: s("blobs=1") },
            r#"admin_gc admin/system - - - {"action":"gc","detail":"blobs=1"}"#,
        );
        check(robot, Change::BlobPull { repository: s("a"), digest: s("sha256:1"), size: 1 }, "");
    }
}
