//! Credentials at the edge: the `Authorization` header parsed into a type, Argon2id hashing, a cache of verified
//! Basic credentials (so Argon2 runs once per credential, not per request), and the failed-login throttle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The largest `Authorization` header looked at; a longer one is refused as malformed.
const MAX_HEADER: usize = 8 * 1024;

/// What the caller presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the Authorization header is not `Basic <base64 user:password>` or `Bearer <token>`")]
    Malformed,
    #[error("the Authorization header is longer than {MAX_HEADER} bytes")]
    TooLong,
}

/// Parses an `Authorization` header value (`None`: no header).
pub fn parse_authorization(value: Option<&[u8]>) -> Result<Presented, HeaderError> {
    let Some(raw) = value else { return Ok(Presented::None) };
    if raw.len() > MAX_HEADER {
        return Err(HeaderError::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| HeaderError::Malformed)?;
    let (scheme, rest) = text.split_once(' ').ok_or(HeaderError::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = basic(rest).ok_or(HeaderError::Malformed)?;
        Ok(Presented::Basic { user, password })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b)) {
            return Err(HeaderError::Malformed);
        }
        Ok(Presented::Bearer(rest.to_owned()))
    } else {
        Err(HeaderError::Malformed)
    }
}

/// Decodes `base64(user:password)`.
pub fn basic(b64: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    (!u.is_empty()).then(|| (u.to_owned(), p.to_owned()))
}

/// Hashes a password or robot secret with Argon2id (the crate's default parameters), as a PHC string.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default().hash_password(secret.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks `secret` against a PHC string; the comparison inside is constant-time. Slow by design: call it on the
/// blocking pool.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
}

/// A hash that stands in for a secret in the caches; the secret itself is never kept.
pub fn fingerprint(user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Verified Basic credentials, valid for one policy generation and at most `ttl`.
pub struct BasicCache {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], (String, i64, Instant)>>,
}

const CACHE_MAX: usize = 16 * 1024;

impl BasicCache {
    pub fn new(ttl: Duration) -> BasicCache {
        BasicCache { ttl, map: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &[u8; 32], generation: i64) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|(_, g, at)| *g == generation && at.elapsed() < self.ttl).map(|(n, _, _)| n.clone())
    }

    pub fn put(&self, key: [u8; 32], account: String, generation: i64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(key, (account, generation, Instant::now()));
    }
}

/// Failed-login throttling per account and per client address: after `after` failures, each further failure
/// doubles a lock-out (from `base`, at most `max`) during which every attempt, right or wrong, is answered `429`.
/// Failures are forgotten after `max` without one.
pub struct Throttle {
    after: u32,
    base: Duration,
    max: Duration,
    map: Mutex<HashMap<String, Strikes>>,
}

struct Strikes {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

const THROTTLE_MAX_ENTRIES: usize = 100_000;

impl Throttle {
    pub fn new(after: u32, base: Duration, max: Duration) -> Throttle {
        Throttle { after, base, max, map: Mutex::new(HashMap::new()) }
    }

    fn keys(account: Option<&str>, addr: Option<IpAddr>) -> Vec<String> {
        let mut k = Vec::with_capacity(2);
        if let Some(a) = account {
            k.push(format!("account:{a}"));
        }
        if let Some(ip) = addr {
            k.push(format!("address:{ip}"));
        }
        k
    }

    /// `Err(seconds)` while `account` or `addr` is locked out.
    pub fn check(&self, account: Option<&str>, addr: Option<IpAddr>) -> Result<(), u64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let wait = Throttle::keys(account, addr)
            .iter()
            .filter_map(|k| map.get(k).and_then(|s| s.until).filter(|u| *u > now).map(|u| u - now))
            .max();
        match wait {
            Some(w) => Err(w.as_secs_f64().ceil().max(1.0) as u64),
            None => Ok(()),
        }
    }

    /// Records a failure of `account` from `addr`.
    pub fn fail(&self, account: Option<&str>, addr: Option<IpAddr>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= THROTTLE_MAX_ENTRIES {
            let max = self.max;
            map.retain(|_, s| now.duration_since(s.last) < max);
            if map.len() >= THROTTLE_MAX_ENTRIES {
                map.clear();
            }
        }
        for k in Throttle::keys(account, addr) {
            let s = map.entry(k).or_insert(Strikes { failures: 0, last: now, until: None });
            if now.duration_since(s.last) >= self.max {
                s.failures = 0;
            }
            s.failures += 1;
            s.last = now;
            if s.failures >= self.after {
                let doublings = (s.failures - self.after).min(20);
                let delay = self.base.saturating_mul(1u32 << doublings).min(self.max);
                s.until = Some(now + delay);
            }
        }
    }

    /// A success clears the account's failures (not the address's: one valid account must not reset the count
    /// of guesses at others).
    pub fn succeed(&self, account: &str) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&format!("account:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let b = |s: &str| parse_authorization(Some(s.as_bytes()));
        assert_eq!(parse_authorization(None), Ok(Presented::None));
        assert_eq!(b("Basic dTpw"), Ok(Presented::Basic { user: "u".into(), password: "p".into() }));
        assert_eq!(b("basic dTpwOnE="), Ok(Presented::Basic { user: "u".into(), password: "p:q".into() }));
        assert_eq!(b("Bearer abc.def.ghi"), Ok(Presented::Bearer("abc.def.ghi".into())));
        for bad in ["Basic", "Basic !!!", "Basic dQ==", "Basic OnA=", "Bearer ", "Bearer a b", "Digest x", "x"] {
            assert_eq!(b(bad), Err(HeaderError::Malformed), "{bad}");
        }
        assert_eq!(b(&format!("Bearer {}", "a".repeat(9000))), Err(HeaderError::TooLong));
        assert_eq!(parse_authorization(Some(b"Basic \xff")), Err(HeaderError::Malformed));
    }

    #[test]
    fn hashing() {
        let h = hash_secret("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_secret("s3cret", &h));
        assert!(!verify_secret("s3cre", &h));
        assert!(!verify_secret("s3cret", "not a hash"));
    }

    #[test]
    fn throttle() {
        let t = Throttle::new(3, Duration::from_millis(200), Duration::from_secs(5));
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..2 {
            t.fail(Some("a"), ip);
        }
        assert!(t.check(Some("a"), ip).is_ok());
        t.fail(Some("a"), ip);
        assert!(t.check(Some("a"), ip).is_err());
        assert!(t.check(Some("b"), ip).is_err(), "the address is locked too");
        assert!(t.check(Some("a"), None).is_err(), "and the account from anywhere");
        assert!(t.check(Some("b"), Some("10.0.0.2".parse().unwrap())).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check(Some("a"), ip).is_ok());
        t.fail(Some("a"), ip);
        assert_eq!(t.check(Some("a"), ip), Err(1));
    }
}
