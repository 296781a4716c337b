//! `[audit]`: the file's shape and its validation. (Skeleton; issue 23's work fills it.)

use serde::Deserialize;

use super::ConfigError;
use crate::ops::audit::AuditSettings;

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {}

impl AuditConfig {
    pub fn settings(self) -> Result<AuditSettings, ConfigError> {
        Ok(AuditSettings::default())
    }
}
