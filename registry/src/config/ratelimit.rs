//! `[rate_limit]`: the file's shape and its validation into [`RateLimitSettings`].
//!
//! Every limit is off unless its rate is given; a rate without a burst gets one second's worth (at least one
//! request). Requests per second may be fractional (`0.5`: one every two seconds); byte figures are whole bytes.

use serde::Deserialize;

use super::ConfigError;
use crate::ops::limit::{Rate, RateLimitSettings, Scoped};

/// `[rate_limit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second from one client address (IPv6: one /64), before access control.
    /// `WHARF_RATE_LIMIT_ADDRESS_REQUESTS_PER_SECOND`.
    pub address_requests_per_second: Option<f64>,
    /// Requests one address may make at once. `WHARF_RATE_LIMIT_ADDRESS_BURST`.
    pub address_burst: Option<u64>,
    /// Bytes per second of blob pulls to one address. `WHARF_RATE_LIMIT_ADDRESS_PULL_BYTES_PER_SECOND`.
    pub address_pull_bytes_per_second: Option<u64>,
    /// Bytes of blob pulls one address may take at once. `WHARF_RATE_LIMIT_ADDRESS_PULL_BURST_BYTES`.
    pub address_pull_burst_bytes: Option<u64>,
    /// Requests per second of one account or robot, from any address. `WHARF_RATE_LIMIT_ACCOUNT_REQUESTS_PER_SECOND`.
    pub account_requests_per_second: Option<f64>,
    /// `WHARF_RATE_LIMIT_ACCOUNT_BURST`.
    pub account_burst: Option<u64>,
    /// `WHARF_RATE_LIMIT_ACCOUNT_PULL_BYTES_PER_SECOND`.
    pub account_pull_bytes_per_second: Option<u64>,
    /// `WHARF_RATE_LIMIT_ACCOUNT_PULL_BURST_BYTES`.
    pub account_pull_burst_bytes: Option<u64>,
    /// Accounts and robots (`robot$ci`) free of the per-account limits. `WHARF_RATE_LIMIT_EXEMPT`.
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Addresses or networks free of the per-address limits. `WHARF_RATE_LIMIT_EXEMPT_ADDRESSES`.
    #[serde(default)]
    pub exempt_addresses: Vec<String>,
    /// Keep the buckets in the database, shared by every replica (default: in each replica's memory).
    /// `WHARF_RATE_LIMIT_SHARED`.
    pub shared: Option<bool>,
    /// Buckets kept in memory at most (default 100000); idle ones go first. `WHARF_RATE_LIMIT_MAX_BUCKETS`.
    pub max_buckets: Option<usize>,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

/// A rate and its burst: `None` when no rate is given (or it is 0).
fn rate(name: &'static str, per_sec: Option<f64>, burst: Option<u64>) -> Result<Option<Rate>, ConfigError> {
    let per_sec = match per_sec {
        None => return Ok(None),
        Some(0.0) => return Ok(None),
        Some(r) if !(0.0..=1e9).contains(&r) => {
            return Err(invalid(name, format!("{r}: give a rate between 0 and 1e9 per second")))
        }
        Some(r) => r,
    };
    let burst = burst.map_or(per_sec.ceil().max(1.0), |b| b as f64);
    if burst < 1.0 {
        return Err(invalid(name, "the burst must be at least 1"));
    }
    Ok(Some(Rate { per_sec, burst }))
}

impl RateLimitConfig {
    pub fn settings(self) -> Result<RateLimitSettings, ConfigError> {
        let bytes = |v: Option<u64>| v.map(|b| b as f64);
        let address = Scoped {
            requests: rate(
                "rate_limit.address_requests_per_second",
                self.address_requests_per_second,
                self.address_burst,
            )?,
            bytes: rate(
                "rate_limit.address_pull_bytes_per_second",
                bytes(self.address_pull_bytes_per_second),
                self.address_pull_burst_bytes,
            )?,
        };
        let account = Scoped {
            requests: rate(
                "rate_limit.account_requests_per_second",
                self.account_requests_per_second,
                self.account_burst,
            )?,
            bytes: rate(
                "rate_limit.account_pull_bytes_per_second",
                bytes(self.account_pull_bytes_per_second),
                self.account_pull_burst_bytes,
            )?,
        };
        let exempt_addresses = self
            .exempt_addresses
            .iter()
            .map(|p| crate::auth::proxy::parse_net(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("rate_limit.exempt_addresses", e))?;
        let max_buckets = self.max_buckets.unwrap_or(100_000);
        if max_buckets < 16 {
            return Err(invalid("rate_limit.max_buckets", "keep at least 16 buckets"));
        }
        Ok(RateLimitSettings {
            address,
            account,
            exempt: self.exempt,
            exempt_addresses,
            trusted_proxies: Vec::new(),
            shared: self.shared.unwrap_or(false),
            max_buckets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str, want: Result<(&str, &str), &str>) {
        let c: RateLimitConfig = toml::from_str(toml).unwrap();
        match (c.settings(), want) {
            (Ok(s), Ok((address, account))) => {
                assert_eq!(format!("{:?}/{:?}", s.address.requests, s.address.bytes), address, "{toml}");
                assert_eq!(format!("{:?}/{:?}", s.account.requests, s.account.bytes), account, "{toml}");
            }
            (Err(ConfigError::Invalid { name, .. }), Err(key)) => assert_eq!(name, key, "{toml}"),
            (got, want) => panic!("{toml}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn rows() {
        check("", Ok(("None/None", "None/None")));
        check("address_requests_per_second = 0.0", Ok(("None/None", "None/None")));
        check("address_requests_per_second = 2.5", Ok(("Some(Rate { per_sec: 2.5, burst: 3.0 })/None", "None/None")));
        check(
            "account_requests_per_second = 0.5\naccount_burst = 4",
            Ok(("None/None", "Some(Rate { per_sec: 0.5, burst: 4.0 })/None")),
        );
        check(
            "address_pull_bytes_per_second = 1000",
            Ok(("None/Some(Rate { per_sec: 1000.0, burst: 1000.0 })", "None/None")),
        );
        check("address_requests_per_second = -1.0", Err("rate_limit.address_requests_per_second"));
        check("account_requests_per_second = 1.0\naccount_burst = 0", Err("rate_limit.account_requests_per_second"));
        check("exempt_addresses = [\"10.0.0.0/33\"]", Err("rate_limit.exempt_addresses"));
        check("max_buckets = 3", Err("rate_limit.max_buckets"));
    }
}
