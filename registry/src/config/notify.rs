//! `[notifications]`: the file's shape and its validation. (Skeleton; issue 23's work fills it.)

use serde::Deserialize;

use super::ConfigError;
use crate::ops::notify::NotifySettings;

/// `[notifications]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {}

impl NotificationsConfig {
    pub fn settings(self) -> Result<NotifySettings, ConfigError> {
        Ok(NotifySettings::default())
    }
}
