//! `[auth]`: access control's settings, validated.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Access control. Off by default; on, every `/v2/` request needs a grant (see README).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub enabled: Option<bool>,
    pub service: Option<String>,
    pub issuer: Option<String>,
    /// The token endpoint's public URL, for servers behind a proxy; default: `/auth/token` at the request's host.
    pub realm: Option<String>,
    pub token_lifetime_secs: Option<i64>,
    pub refresh_lifetime_secs: Option<i64>,
    /// Failed logins before the lock-out starts (default 5).
    pub throttle_after: Option<u32>,
    /// The first lock-out in milliseconds, doubling with each further failure (default 1000).
    pub throttle_base_ms: Option<u64>,
    /// The longest lock-out in seconds (default 900).
    pub throttle_max_secs: Option<u64>,
    #[serde(default)]
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Load balancers and proxies whose `X-Forwarded-For` is believed: addresses or networks.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Not read from the file: `WHARF_ADMIN_PASSWORD` only.
    #[serde(skip)]
    pub admin_password: Option<String>,
}

/// An external token issuer whose tokens are accepted: its `iss` and a JWKS file of its public keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    pub issuer: String,
    pub jwks: PathBuf,
}

pub(super) fn auth_settings(a: AuthConfig) -> Result<crate::auth::AuthSettings, ConfigError> {
    let d = crate::auth::AuthSettings::default();
    let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
    let mut trusted_issuers = Vec::new();
    for t in a.trusted_issuers {
        let jwks = std::fs::read_to_string(&t.jwks)
            .map_err(|e| invalid("auth.trusted_issuers", format!("{}: {e}", t.jwks.display())))?;
        trusted_issuers.push(crate::auth::token::TrustedIssuer { issuer: t.issuer, jwks });
    }
    let trusted_proxies = a
        .trusted_proxies
        .iter()
        .map(|p| crate::auth::proxy::parse_net(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("auth.trusted_proxies", e))?;
    let s = crate::auth::AuthSettings {
        service: a.service.unwrap_or(d.service),
        issuer: a.issuer.unwrap_or(d.issuer),
        realm: a.realm,
        token_lifetime_secs: a.token_lifetime_secs.unwrap_or(d.token_lifetime_secs),
        refresh_lifetime_secs: a.refresh_lifetime_secs.unwrap_or(d.refresh_lifetime_secs),
        throttle_after: a.throttle_after.unwrap_or(d.throttle_after).max(1),
        throttle_base: a.throttle_base_ms.map_or(d.throttle_base, std::time::Duration::from_millis),
        throttle_max: a.throttle_max_secs.map_or(d.throttle_max, std::time::Duration::from_secs),
        trusted_issuers,
        trusted_proxies,
        admin_password: a.admin_password,
    };
    if s.token_lifetime_secs < 10 || s.refresh_lifetime_secs < s.token_lifetime_secs {
        return Err(invalid("auth", "token lifetime at least 10 s, refresh lifetime at least that".into()));
    }
    if s.service.contains('"') || s.realm.as_deref().is_some_and(|r| r.contains('"')) {
        return Err(invalid("auth", "service and realm may not contain quotes".into()));
    }
    Ok(s)
}
