//! ed25519 public keys in TUF's key format, their key ids, and signing keys.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{canonical, TufError};

/// A key id: the lowercase hex sha256 of the key's canonical JSON.
pub type KeyId = String;

/// A public key as TUF metadata writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keytype: String,
    pub scheme: String,
    pub keyval: BTreeMap<String, String>,
}

impl PublicKey {
    pub fn ed25519(key: &ed25519_dalek::VerifyingKey) -> PublicKey {
        PublicKey {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: BTreeMap::from([("public".to_string(), hex::encode(key.as_bytes()))]),
        }
    }

    /// The key id the specification assigns this key.
    pub fn key_id(&self) -> KeyId {
        // Serializing a struct of strings to canonical JSON cannot fail.
        let bytes = canonical(self).unwrap_or_default();
        hex::encode(sha2::Sha256::digest(bytes))
    }

    /// The ed25519 key, if this is one.
    pub fn verifying_key(&self, role: &str) -> Result<ed25519_dalek::VerifyingKey, TufError> {
        let unsupported = || TufError::UnsupportedKey {
            role: role.to_string(),
            keytype: self.keytype.clone(),
            scheme: self.scheme.clone(),
        };
        if self.keytype != "ed25519" || self.scheme != "ed25519" {
            return Err(unsupported());
        }
        let raw = self.keyval.get("public").and_then(|h| hex::decode(h).ok()).ok_or_else(unsupported)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| unsupported())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| unsupported())
    }

    /// Whether `sig_hex` is a valid signature by this key over `message`. Malformed input is simply invalid.
    pub fn verifies(&self, message: &[u8], sig_hex: &str) -> bool {
        let Ok(key) = self.verifying_key("") else { return false };
        let Some(sig) = hex::decode(sig_hex).ok().and_then(|b| <[u8; 64]>::try_from(b).ok()) else { return false };
        key.verify(message, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
    }
}

/// A private ed25519 key with its public half in TUF form.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
    id: KeyId,
}

impl SigningKey {
    pub fn from_bytes(secret: &[u8; 32]) -> SigningKey {
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        let public = PublicKey::ed25519(&key.verifying_key());
        let id = public.key_id();
        SigningKey { key, public, id }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// The hex signature over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}
