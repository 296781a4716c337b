//! Credentials at the edge: the `Authorization` header parsed into a type, Argon2id hashing, a cache of verified
//! Basic credentials (so Argon2 runs once per credential, not per request). The throttle is in `throttle`.

use std::collections::HashMap;
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
}
