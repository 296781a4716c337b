//! `[auth]`: access control's settings, validated.

use std::path::PathBuf;

use serde::Deserialize;

use super::settings::whole_secs;
use super::{ConfigError, Millis, Secs};

/// Access control. Off by default; on, every `/v2/` request needs a grant (see README).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Turn access control on. `WHARF_AUTH_ENABLED` (or `WHARF_AUTH`), `--auth`.
    pub enabled: Option<bool>,
    /// The challenge's service and the tokens' audience (default `wharf`). `WHARF_AUTH_SERVICE`.
    pub service: Option<String>,
    /// The tokens' `iss` (default `wharf`). `WHARF_AUTH_ISSUER`.
    pub issuer: Option<String>,
    /// The token endpoint's public URL, for servers behind a proxy; default: `/auth/token` at the request's host.
    /// `WHARF_AUTH_REALM`.
    pub realm: Option<String>,
    /// How long an access token is valid (default 300 s, at least 10 s). `WHARF_AUTH_TOKEN_LIFETIME_SECS`.
    pub token_lifetime_secs: Option<Secs>,
    /// How long a refresh token (docker login's identity token) is valid (default 30 days).
    /// `WHARF_AUTH_REFRESH_LIFETIME_SECS`.
    pub refresh_lifetime_secs: Option<Secs>,
    /// Failed logins of one account from one address before their lock-out starts (default 5).
    /// `WHARF_AUTH_THROTTLE_AFTER`.
    pub throttle_after: Option<u32>,
    /// Failed logins from one address, over all accounts, before the address's lock-out (default twice
    /// `throttle_after`). `WHARF_AUTH_THROTTLE_ADDRESS_AFTER`.
    pub throttle_address_after: Option<u32>,
    /// The first lock-out, doubling with each further failure; a bare number is milliseconds (default 1000).
    /// `WHARF_AUTH_THROTTLE_BASE_MS`.
    pub throttle_base_ms: Option<Millis>,
    /// The longest lock-out (default 900 s). `WHARF_AUTH_THROTTLE_MAX_SECS`.
    pub throttle_max_secs: Option<Secs>,
    /// Password verifications under way at once for one account (default 2), from one address (default 2), and
    /// in all (default: the number of CPUs). Beyond these a login is answered `429` at once.
    /// `WHARF_AUTH_VERIFY_PER_ACCOUNT`.
    pub verify_per_account: Option<u32>,
    /// `WHARF_AUTH_VERIFY_PER_ADDRESS`.
    pub verify_per_address: Option<u32>,
    /// `WHARF_AUTH_VERIFY_MAX`.
    pub verify_max: Option<u32>,
    /// External token issuers (`[[auth.trusted_issuers]]`); no variable.
    #[serde(default)]
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Load balancers and proxies whose `X-Forwarded-For` is believed: addresses or networks.
    /// `WHARF_AUTH_TRUSTED_PROXIES` (comma-separated).
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
        let jwks = std::fs::read_to_string(&t.jwks).map_err(|source| ConfigError::File {
            name: "auth.trusted_issuers",
            path: t.jwks.clone(),
            source,
        })?;
        trusted_issuers.push(crate::auth::token::TrustedIssuer { issuer: t.issuer, jwks });
    }
    let trusted_proxies = a
        .trusted_proxies
        .iter()
        .map(|p| crate::auth::proxy::parse_net(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("auth.trusted_proxies", e))?;
    let throttle_after = a.throttle_after.unwrap_or(d.throttle_after).max(1);
    let at_least_one = |v: Option<u32>, default: u32| v.unwrap_or(default).max(1);
    let s = crate::auth::AuthSettings {
        service: a.service.unwrap_or(d.service),
        issuer: a.issuer.unwrap_or(d.issuer),
        realm: a.realm,
        token_lifetime_secs: whole_secs("auth.token_lifetime_secs", a.token_lifetime_secs, d.token_lifetime_secs)?,
        refresh_lifetime_secs: whole_secs(
            "auth.refresh_lifetime_secs",
            a.refresh_lifetime_secs,
            d.refresh_lifetime_secs,
        )?,
        throttle_after,
        throttle_address_after: at_least_one(a.throttle_address_after, throttle_after.saturating_mul(2)),
        throttle_base: a.throttle_base_ms.map_or(d.throttle_base, Millis::as_std),
        throttle_max: a.throttle_max_secs.map_or(d.throttle_max, Secs::as_std),
        verify_per_account: at_least_one(a.verify_per_account, d.verify_per_account),
        verify_per_address: at_least_one(a.verify_per_address, d.verify_per_address),
        verify_max: at_least_one(a.verify_max, d.verify_max),
        trusted_issuers,
        trusted_proxies,
        admin_password: a.admin_password,
        web_session_secs: d.web_session_secs,
    };
    if s.token_lifetime_secs < 10 || s.refresh_lifetime_secs < s.token_lifetime_secs {
        return Err(invalid("auth", "token lifetime at least 10 s, refresh lifetime at least that".into()));
    }
    if s.service.contains('"') || s.realm.as_deref().is_some_and(|r| r.contains('"')) {
        return Err(invalid("auth", "service and realm may not contain quotes".into()));
    }
    Ok(s)
}
