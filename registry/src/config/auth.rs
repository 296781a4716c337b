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
    /// Failed logins of one account from one address before their lock-out starts (default 5).
    pub throttle_after: Option<u32>,
    /// Failed logins from one address, over all accounts, before the address's lock-out (default twice
    /// `throttle_after`).
    pub throttle_address_after: Option<u32>,
    /// The first lock-out in milliseconds, doubling with each further failure (default 1000).
    pub throttle_base_ms: Option<u64>,
    /// The longest lock-out in seconds (default 900).
    pub throttle_max_secs: Option<u64>,
    /// Password verifications under way at once for one account (default 2), from one address (default 2), and
    /// in all (default: the number of CPUs). Beyond these a login is answered `429` at once.
    pub verify_per_account: Option<u32>,
    pub verify_per_address: Option<u32>,
    pub verify_max: Option<u32>,
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

impl AuthConfig {
    /// The `WHARF_AUTH*` and `WHARF_ADMIN_PASSWORD` environment overrides.
    pub(super) fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Invalid { name, reason: format!("{v:?} is not a number") })
        }
        if let Some(v) = env("WHARF_AUTH") {
            self.enabled = Some(super::boolean("WHARF_AUTH", &v)?);
        }
        if let Some(v) = env("WHARF_AUTH_TRUSTED_PROXIES") {
            self.trusted_proxies = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = env("WHARF_AUTH_REALM") {
            self.realm = Some(v);
        }
        if let Some(v) = env("WHARF_AUTH_SERVICE") {
            self.service = Some(v);
        }
        if let Some(v) = env("WHARF_AUTH_TOKEN_LIFETIME_SECS") {
            self.token_lifetime_secs = Some(num("WHARF_AUTH_TOKEN_LIFETIME_SECS", v)?);
        }
        if let Some(v) = env("WHARF_AUTH_THROTTLE_AFTER") {
            self.throttle_after = Some(num("WHARF_AUTH_THROTTLE_AFTER", v)?);
        }
        if let Some(v) = env("WHARF_AUTH_THROTTLE_ADDRESS_AFTER") {
            self.throttle_address_after = Some(num("WHARF_AUTH_THROTTLE_ADDRESS_AFTER", v)?);
        }
        if let Some(v) = env("WHARF_AUTH_THROTTLE_BASE_MS") {
            self.throttle_base_ms = Some(num("WHARF_AUTH_THROTTLE_BASE_MS", v)?);
        }
        if let Some(v) = env("WHARF_AUTH_VERIFY_PER_ACCOUNT") {
            self.verify_per_account = Some(num("WHARF_AUTH_VERIFY_PER_ACCOUNT", v)?);
        }
        if let Some(v) = env("WHARF_AUTH_VERIFY_PER_ADDRESS") {
            self.verify_per_address = Some(num("WHARF_AUTH_VERIFY_PER_ADDRESS", v)?);
        }
        if let Some(v) = env("WHARF_AUTH_VERIFY_MAX") {
            self.verify_max = Some(num("WHARF_AUTH_VERIFY_MAX", v)?);
        }
        if let Some(v) = env("WHARF_ADMIN_PASSWORD") {
            self.admin_password = Some(v);
        }
        Ok(())
    }
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
    let throttle_after = a.throttle_after.unwrap_or(d.throttle_after).max(1);
    let at_least_one = |v: Option<u32>, default: u32| v.unwrap_or(default).max(1);
    let s = crate::auth::AuthSettings {
        service: a.service.unwrap_or(d.service),
        issuer: a.issuer.unwrap_or(d.issuer),
        realm: a.realm,
        token_lifetime_secs: a.token_lifetime_secs.unwrap_or(d.token_lifetime_secs),
        refresh_lifetime_secs: a.refresh_lifetime_secs.unwrap_or(d.refresh_lifetime_secs),
        throttle_after,
        throttle_address_after: at_least_one(a.throttle_address_after, throttle_after.saturating_mul(2)),
        throttle_base: a.throttle_base_ms.map_or(d.throttle_base, std::time::Duration::from_millis),
        throttle_max: a.throttle_max_secs.map_or(d.throttle_max, std::time::Duration::from_secs),
        verify_per_account: at_least_one(a.verify_per_account, d.verify_per_account),
        verify_per_address: at_least_one(a.verify_per_address, d.verify_per_address),
        verify_max: at_least_one(a.verify_max, d.verify_max),
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
