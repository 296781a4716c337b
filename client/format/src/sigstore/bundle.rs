//! The sigstore bundle (protobuf-specs `Bundle` in its JSON form, v0.1 to v0.3): the verification material (a
//! certificate, a chain, or a public key hint), the transparency log entries, and the signed content (a message
//! signature or a DSSE envelope). Parsing only; `keyless` verifies.

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use super::error::SigstoreError;
use super::simple::BUNDLE_MEDIA_TYPES;

/// A bundle carries one log entry and one signature; a few more are tolerated, an attacker's thousands are not.
const MAX_LOG_ENTRIES: usize = 4;
const MAX_SIGNATURES: usize = 4;

/// Standard base64, as protobuf's JSON form writes `bytes`.
pub(crate) fn b64(s: &str) -> Result<Vec<u8>, SigstoreError> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| SigstoreError::Bundle(format!("bad base64 {s:?}")))
}

/// protobuf's JSON form writes 64-bit integers as strings; some writers use numbers.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        S(String),
        N(i64),
    }
    match Int::deserialize(d)? {
        Int::N(n) => Ok(n),
        Int::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBytes {
    pub raw_bytes: String,
}

/// A parsed bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub media_type: String,
    pub material: Material,
    pub tlog_entries: Vec<TlogEntry>,
    pub content: Content,
}

/// Who signed: a leaf certificate (DER; a v0.1/v0.2 chain's first), or a public key known to the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    Certificate(Vec<u8>),
    PublicKey { hint: Option<String> },
}

/// What was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A signature over an artifact whose SHA-256 is `digest`.
    MessageSignature { digest: Vec<u8>, signature: Vec<u8> },
    /// A DSSE envelope: its payload, its type and its signatures.
    Dsse { payload: Vec<u8>, payload_type: String, signatures: Vec<Vec<u8>> },
}

/// A Rekor entry as the bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    pub log_index: i64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub integrated_time: i64,
    pub set: Option<Vec<u8>>,
    pub proof: Option<InclusionProof>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub log_index: i64,
    pub root_hash: Vec<u8>,
    pub tree_size: i64,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    media_type: String,
    verification_material: RawMaterial,
    #[serde(default)]
    message_signature: Option<RawMessageSignature>,
    #[serde(default)]
    dsse_envelope: Option<RawEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<RawChain>,
    #[serde(default)]
    public_key: Option<RawHint>,
    #[serde(default)]
    tlog_entries: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
struct RawHint {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: RawDigest,
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawEnvelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<RawSig>,
}

#[derive(Deserialize)]
pub(crate) struct RawSig {
    pub sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    log_id: RawLogId,
    kind_version: RawKindVersion,
    #[serde(deserialize_with = "int64")]
    integrated_time: i64,
    #[serde(default)]
    inclusion_promise: Option<RawPromise>,
    #[serde(default)]
    inclusion_proof: Option<RawProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    // protobuf's JSON form leaves out zero values: the first leaf's index, an empty list of hashes.
    #[serde(default, deserialize_with = "int64")]
    log_index: i64,
    root_hash: String,
    #[serde(deserialize_with = "int64")]
    tree_size: i64,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: RawCheckpoint,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: String,
}

impl Bundle {
    pub fn parse(bytes: &[u8]) -> Result<Bundle, SigstoreError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| SigstoreError::Bundle(e.to_string()))?;
        if !BUNDLE_MEDIA_TYPES.contains(&raw.media_type.as_str()) {
            return Err(SigstoreError::BundleMediaType(raw.media_type));
        }
        let vm = raw.verification_material;
        let material = match (vm.certificate, vm.x509_certificate_chain, vm.public_key) {
            (Some(c), None, None) => Material::Certificate(b64(&c.raw_bytes)?),
            (None, Some(chain), None) => {
                let leaf = chain.certificates.first().ok_or_else(|| SigstoreError::Bundle("an empty chain".into()))?;
                Material::Certificate(b64(&leaf.raw_bytes)?)
            }
            (None, None, Some(k)) => Material::PublicKey { hint: k.hint },
            _ => return Err(SigstoreError::Bundle("not exactly one of certificate, chain, public key".into())),
        };
        let content = match (raw.message_signature, raw.dsse_envelope) {
            (Some(m), None) => {
                if m.message_digest.algorithm != "SHA2_256" {
                    return Err(SigstoreError::Bundle(format!("digest algorithm {}", m.message_digest.algorithm)));
                }
                Content::MessageSignature { digest: b64(&m.message_digest.digest)?, signature: b64(&m.signature)? }
            }
            (None, Some(e)) if e.signatures.len() > MAX_SIGNATURES => {
                return Err(SigstoreError::Bundle(format!("more than {MAX_SIGNATURES} DSSE signatures")));
            }
            (None, Some(e)) => Content::Dsse {
                payload: b64(&e.payload)?,
                payload_type: e.payload_type,
                signatures: e.signatures.iter().map(|s| b64(&s.sig)).collect::<Result<_, _>>()?,
            },
            _ => return Err(SigstoreError::Bundle("not exactly one of message signature, DSSE envelope".into())),
        };
        if vm.tlog_entries.len() > MAX_LOG_ENTRIES {
            return Err(SigstoreError::Bundle(format!("more than {MAX_LOG_ENTRIES} log entries")));
        }
        let mut tlog_entries = vec![];
        for e in vm.tlog_entries {
            let proof = match e.inclusion_proof {
                None => None,
                Some(p) => Some(InclusionProof {
                    log_index: p.log_index,
                    root_hash: b64(&p.root_hash)?,
                    tree_size: p.tree_size,
                    hashes: p.hashes.iter().map(|h| b64(h)).collect::<Result<_, _>>()?,
                    checkpoint: p.checkpoint.envelope,
                }),
            };
            tlog_entries.push(TlogEntry {
                log_index: e.log_index,
                log_id: b64(&e.log_id.key_id)?,
                kind: e.kind_version.kind,
                version: e.kind_version.version,
                integrated_time: e.integrated_time,
                set: e.inclusion_promise.map(|p| b64(&p.signed_entry_timestamp)).transpose()?,
                proof,
                body: b64(&e.canonicalized_body)?,
            });
        }
        Ok(Bundle { media_type: raw.media_type, material, tlog_entries, content })
    }
}
