//! `[ui]`: the web interface's keys and their validation.

use serde::Deserialize;

use super::settings::whole_secs;
use super::{ConfigError, Secs};

/// `[ui]`. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Whether `/ui/` serves the web interface (default true; `docker search` answers either way).
    /// `WHARF_UI_ENABLED`.
    pub enabled: Option<bool>,
    /// How long a web sign-in lasts (default `"12h"`). `WHARF_UI_SESSION_LIFETIME`.
    pub session_lifetime: Option<Secs>,
}

impl UiConfig {
    /// The interface's settings, and the session lifetime for access control.
    pub fn settings(self, tls: bool) -> Result<(crate::ui::UiSettings, i64), ConfigError> {
        let lifetime = whole_secs("ui.session_lifetime", self.session_lifetime, 12 * 3600)?;
        if lifetime <= 0 {
            return Err(ConfigError::Invalid { name: "ui.session_lifetime", reason: "must be positive".into() });
        }
        Ok((crate::ui::UiSettings { enabled: self.enabled.unwrap_or(true), tls }, lifetime))
    }
}
