//! `[metrics]`: the file's shape and its validation. (Skeleton; issue 23's work fills it.)

use serde::Deserialize;

use super::ConfigError;
use crate::ops::metrics::MetricsSettings;

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {}

impl MetricsConfig {
    pub fn settings(self) -> Result<MetricsSettings, ConfigError> {
        Ok(MetricsSettings::default())
    }
}
