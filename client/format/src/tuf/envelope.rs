//! The signed-metadata envelope: `{"signed": {...}, "signatures": [...]}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{canonical, KeyId, SigningKey, TufError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: KeyId,
    pub sig: String,
}

/// Metadata as received: `signed` is kept as raw JSON so that signatures are checked over exactly what was signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub signed: serde_json::Value,
    pub signatures: Vec<Signature>,
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Envelope, TufError> {
        serde_json::from_slice(bytes).map_err(|e| TufError::Malformed(e.to_string()))
    }

    /// The canonical bytes the signatures cover.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, TufError> {
        canonical(&self.signed)
    }

    /// `signed._type`.
    pub fn type_name(&self) -> Option<&str> {
        self.signed.get("_type").and_then(|t| t.as_str())
    }

    /// The typed view of `signed`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, TufError> {
        T::deserialize(&self.signed).map_err(|e| TufError::Malformed(e.to_string()))
    }

    /// Signs `signed` with each key.
    pub fn sign<T: Serialize>(signed: &T, keys: &[&SigningKey]) -> Result<Envelope, TufError> {
        let value = serde_json::to_value(signed).map_err(|e| TufError::Malformed(e.to_string()))?;
        let bytes = canonical(&value)?;
        let signatures = keys.iter().map(|k| Signature { keyid: k.key_id().clone(), sig: k.sign(&bytes) }).collect();
        Ok(Envelope { signed: value, signatures })
    }

    /// The envelope as canonical JSON bytes, the form Wharf stores and serves.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TufError> {
        canonical(self)
    }
}
