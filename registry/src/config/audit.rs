//! `[audit]`: the file's shape and its validation.

use serde::Deserialize;

use super::settings::whole_secs;
use super::{ConfigError, Secs};
use crate::ops::audit::AuditSettings;

/// `[audit]`. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Audit rows older than this are pruned (default 1 year, `"365d"`; 0 keeps them forever).
    /// `WHARF_AUDIT_RETENTION`.
    pub retention: Option<Secs>,
}

impl AuditConfig {
    pub fn settings(self) -> Result<AuditSettings, ConfigError> {
        let default = AuditSettings::default();
        Ok(AuditSettings { retention_secs: whole_secs("audit.retention", self.retention, default.retention_secs)? })
    }
}
