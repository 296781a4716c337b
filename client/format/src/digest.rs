//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and a streaming hasher for them.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm Wharf accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest has no ':' separator")]
    Malformed,
    #[error("digest algorithm {0:?} is not supported (sha256, sha512)")]
    UnsupportedAlgorithm(String),
    #[error("digest encoding must be {expected} lowercase hex characters")]
    BadEncoding { expected: usize },
}

/// A validated content digest. Its text form is canonical, so two equal digests have equal strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    // Invariant: `hex` has exactly `algorithm.hex_len()` characters of [0-9a-f].
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part (lowercase hex), without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut h = Algorithm::Sha256.hasher();
        h.update(bytes);
        h.finish()
    }

    /// The digest of `bytes` under this digest's algorithm, compared with it.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut h = self.algorithm.hasher();
        h.update(bytes);
        h.finish() == *self
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, enc) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.chars().take(32).collect())),
        };
        let expected = algorithm.hex_len();
        if enc.len() != expected || !enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadEncoding { expected });
        }
        Ok(Digest { algorithm, hex: enc.to_owned() })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher producing a [`Digest`].
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), DigestError>) {
        let got = input.parse::<Digest>().map(|d| assert_eq!(d.to_string(), input));
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn grammar() {
        let h64 = "a".repeat(64);
        let h128 = "0".repeat(128);
        check(&format!("sha256:{h64}"), Ok(()));
        check(&format!("sha512:{h128}"), Ok(()));
        check(&format!("sha256:{}", "A".repeat(64)), Err(DigestError::BadEncoding { expected: 64 }));
        check(&format!("sha256:{}", "a".repeat(63)), Err(DigestError::BadEncoding { expected: 64 }));
        check(&format!("sha512:{h64}"), Err(DigestError::BadEncoding { expected: 128 }));
        check(&format!("md5:{h64}"), Err(DigestError::UnsupportedAlgorithm("md5".into())));
        check("sha256", Err(DigestError::Malformed));
        check("", Err(DigestError::Malformed));
    }

    #[test]
    fn hashing_known_vectors() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let d: Digest = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e".parse().unwrap();
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
    }
}
