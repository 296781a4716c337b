//! The signed envelope and the four role documents, as Notary writes them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

use super::{key::Key, key::Signer, parse_time, V1MetadataError};
use crate::tuf::canonical;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One signature: key id, method (`ecdsa`, `eddsa`, `rsapss`, `rsapkcs1v15`) and base64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub method: String,
    pub sig: String,
}

#[derive(Deserialize)]
struct Envelope {
    signed: Value,
    signatures: Vec<Signature>,
}

/// A signed document: the exact bytes received, the canonical bytes its signatures cover, and the fields every
/// role has. The role itself is read with [`Signed::role`].
#[derive(Debug, Clone)]
pub struct Signed {
    pub raw: Vec<u8>,
    pub canonical: Vec<u8>,
    pub signed: Value,
    pub signatures: Vec<Signature>,
    pub type_name: String,
    pub version: i64,
    pub expires: i64,
}

impl Signed {
    /// Parses an envelope: `signed` must be an object with a string `_type`, an integer `version` and an RFC 3339
    /// `expires`; `signatures` a list. Anything else is `Malformed`.
    pub fn parse(raw: &[u8]) -> Result<Signed, V1MetadataError> {
        let env: Envelope = serde_json::from_slice(raw)
            .map_err(|e| V1MetadataError::Malformed(format!("not a signed envelope: {e}")))?;
        let field = |name: &str| env.signed.get(name);
        let type_name = field("_type").and_then(Value::as_str).ok_or_else(|| malformed("_type"))?.to_owned();
        let version = field("version").and_then(Value::as_i64).ok_or_else(|| malformed("version"))?;
        let expires = parse_time(field("expires").and_then(Value::as_str).ok_or_else(|| malformed("expires"))?)?;
        let canonical = canonical(&env.signed).map_err(|e| V1MetadataError::Malformed(e.to_string()))?;
        Ok(Signed {
            raw: raw.to_vec(),
            canonical,
            signed: env.signed,
            signatures: env.signatures,
            type_name,
            version,
            expires,
        })
    }

    /// The role document, after checking `_type` is exactly `expected` (`Root`, `Targets`, `Snapshot`, `Timestamp`).
    pub fn role<T: DeserializeOwned>(&self, role: &str, expected: &str) -> Result<T, V1MetadataError> {
        if self.type_name != expected {
            return Err(super::invalid(format!(
                "{role} type metadata invalid: expected type {expected}, not {}",
                self.type_name
            )));
        }
        serde_json::from_value(self.signed.clone())
            .map_err(|e| super::invalid(format!("{role} type metadata invalid: {e}")))
    }

    /// Signs `value` with every signer and writes the envelope as Notary does: `signed` (canonical) first.
    pub fn sign<T: Serialize>(value: &T, signers: &[&Signer]) -> Result<Vec<u8>, V1MetadataError> {
        let canon = canonical(value).map_err(|e| V1MetadataError::Malformed(e.to_string()))?;
        let sigs: Vec<Signature> = signers.iter().map(|s| s.sign(&canon)).collect();
        let sigs = serde_json::to_vec(&sigs).map_err(|e| V1MetadataError::Malformed(e.to_string()))?;
        let mut out = Vec::with_capacity(canon.len() + sigs.len() + 32);
        out.extend_from_slice(b"{\"signed\":");
        out.extend_from_slice(&canon);
        out.extend_from_slice(b",\"signatures\":");
        out.extend_from_slice(&sigs);
        out.push(b'}');
        Ok(out)
    }
}

fn malformed(field: &str) -> V1MetadataError {
    V1MetadataError::Malformed(format!("signed metadata has no valid {field:?}"))
}

/// Hashes (base64, by algorithm name) and length of a file: a target, or a role in snapshot/timestamp meta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub hashes: BTreeMap<String, String>,
    pub length: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// SHA-256, SHA-512 and length of `bytes`, as the notary CLI and server write them.
pub fn file_meta(bytes: &[u8]) -> FileMeta {
    let mut hashes = BTreeMap::new();
    hashes.insert("sha256".into(), B64.encode(sha2::Sha256::digest(bytes)));
    hashes.insert("sha512".into(), B64.encode(sha2::Sha512::digest(bytes)));
    FileMeta { hashes, length: bytes.len() as i64, custom: None }
}

/// Go writes an empty slice or map as `null`: read it as empty.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    #[serde(default, deserialize_with = "null_default")]
    pub keyids: Vec<String>,
    pub threshold: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_name: String,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub expires: String,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, RoleKeys>,
    pub version: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delegations {
    #[serde(default, deserialize_with = "null_default")]
    pub keys: BTreeMap<String, Key>,
    #[serde(default, deserialize_with = "null_default")]
    pub roles: Vec<DelegationRole>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRole {
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub keyids: Vec<String>,
    pub threshold: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub delegations: Delegations,
    pub expires: String,
    #[serde(default, deserialize_with = "null_default")]
    pub targets: BTreeMap<String, FileMeta>,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_name: String,
    pub expires: String,
    pub meta: BTreeMap<String, FileMeta>,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_name: String,
    pub expires: String,
    pub meta: BTreeMap<String, FileMeta>,
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMESTAMP: &str = r#"{"signed":{"_type":"Timestamp","expires":"2026-12-06T06:03:48.798647745Z","meta":{"snapshot":{"hashes":{"sha256":"vmVoFbZExOfJhEGfKQ6zeUNx4izbs7WdZEHL39m3hjA=","sha512":"8E1Nh699QSAqZw7v6bUsk1p3X/ZKyAIbrwku4f33G11LEhfi6FNi4AJHXrCokiBpSzn4DYqWgMyvfcguplwiJg=="},"length":886}},"version":10},"signatures":[{"keyid":"444df696c39761cada40afd0e199e25178b4bc95be1a10fa1ff283f2f6ace19c","method":"eddsa","sig":"E/r1gt8jktuAbhkF9XUAJLFWTkcn/LRe1gGyLItRXFzWQITxXUUSmAwD/2LxqbC5nd7BPvjMsUhYhP+ueXCIAA=="}]}"#;

    /// notary-server's own timestamp (PROTOCOL.md §9) verifies with the key its root listed.
    #[test]
    fn captured_timestamp_verifies() {
        let s = Signed::parse(TIMESTAMP.as_bytes()).unwrap();
        assert_eq!((s.type_name.as_str(), s.version), ("Timestamp", 10));
        let t: Timestamp = s.role("timestamp", "Timestamp").unwrap();
        assert_eq!(t.meta["snapshot"].length, 886);
        let key = Key::new("ed25519", "D0h9ypopZ6VZsqsv6g+4Kwg+ZiW7Ku57QFg+QsO9D48=".into());
        assert!(key.verifies(&s.canonical, &s.signatures[0]));
        assert!(s.role::<Timestamp>("timestamp", "timestamp").is_err());
        let tampered = TIMESTAMP.replace("\"version\":10", "\"version\":11");
        assert!(!key.verifies(&Signed::parse(tampered.as_bytes()).unwrap().canonical, &s.signatures[0]));
    }

    /// docker's `trust signer remove` uploads a delegation with `"keyids":null` (Go's empty slice).
    #[test]
    fn go_nulls_read_as_empty() {
        let t: Targets = serde_json::from_value(serde_json::json!({"_type":"Targets","expires":"2030-01-01T00:00:00Z",
            "version":2,"targets":null,"delegations":{"keys":null,"roles":[{"name":"targets/releases","keyids":null,
            "threshold":1,"paths":null}]}}))
        .unwrap();
        assert!(t.targets.is_empty() && t.delegations.keys.is_empty());
        assert!(t.delegations.roles[0].keyids.is_empty() && t.delegations.roles[0].paths.is_empty());
    }

    #[test]
    fn sign_writes_signed_first_and_round_trips() {
        let signer = Signer::ed25519(&[9u8; 32]);
        let doc = serde_json::json!({"_type":"Timestamp","expires":"2030-01-01T00:00:00Z","meta":{},"version":1});
        let raw = Signed::sign(&doc, &[&signer]).unwrap();
        assert!(raw.starts_with(b"{\"signed\":{\"_type\":\"Timestamp\""));
        let s = Signed::parse(&raw).unwrap();
        assert!(signer.public().verifies(&s.canonical, &s.signatures[0]));
        for bad in [
            &b"[]"[..],
            b"{\"signed\":{},\"signatures\":[]}",
            b"{\"signed\":{\"_type\":\"Root\",\"version\":1,\"expires\":\"x\"},\"signatures\":[]}",
        ] {
            assert!(matches!(Signed::parse(bad), Err(V1MetadataError::Malformed(_))));
        }
    }
}
