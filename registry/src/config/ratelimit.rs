//! `[rate_limit]`: the file's shape and its validation. (Skeleton; issue 23's work fills it.)

use serde::Deserialize;

use super::ConfigError;
use crate::ops::limit::RateLimitSettings;

/// `[rate_limit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {}

impl RateLimitConfig {
    pub fn settings(self) -> Result<RateLimitSettings, ConfigError> {
        Ok(RateLimitSettings::default())
    }
}
