//! Sealing private keys at rest: XChaCha20-Poly1305 under a key derived with Argon2id from a secret (the trust
//! service's configured key-encryption key, or a user's passphrase) and a salt. Each sealed key is bound to where it
//! belongs by associated data. Used by the trust service for its keys and by the client for publishers' keys.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::OsRng;

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("deriving the key-encryption key")]
    Kdf(#[source] argon2::Error),
    #[error("a sealed key does not open under this key-encryption key (wrong secret, or the data was altered)")]
    Open,
}

/// The key-encryption key. Its bytes are never logged or served.
pub struct Kek(XChaCha20Poly1305);

impl Kek {
    pub fn derive(secret: &[u8], salt: &[u8]) -> Result<Kek, SealError> {
        let mut key = [0u8; 32];
        argon2::Argon2::default().hash_password_into(secret, salt, &mut key).map_err(SealError::Kdf)?;
        let cipher = XChaCha20Poly1305::new((&key).into());
        key.fill(0);
        Ok(Kek(cipher))
    }

    /// `nonce || ciphertext` of `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Invariant: XChaCha20-Poly1305 encryption fails only for messages over 2^38 bytes; Wharf seals 32-byte keys.
        #[allow(clippy::expect_used)]
        let ct = self.0.encrypt(&nonce, Payload { msg: plaintext, aad }).expect("sealing a key-sized buffer");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.0.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| SealError::Open)
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refusals() {
        let kek = Kek::derive(b"secret", b"salt-salt-salt-1").unwrap();
        let sealed = kek.seal(b"private key bytes", b"repo/timestamp/id");
        assert_eq!(kek.open(&sealed, b"repo/timestamp/id").unwrap(), b"private key bytes");
        assert!(kek.open(&sealed, b"other/row").is_err(), "bound to its row");
        let other = Kek::derive(b"other secret", b"salt-salt-salt-1").unwrap();
        assert!(other.open(&sealed, b"repo/timestamp/id").is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(kek.open(&flipped, b"repo/timestamp/id").is_err());
        assert!(!sealed.windows(17).any(|w| w == b"private key bytes"), "not stored in the clear");
    }
}
