//! `trusted_root.json` (sigstore's protobuf-specs `TrustedRoot` in its JSON form): the Fulcio CAs whose certificates
//! are trusted, and the Rekor keys whose log entries are, each for a period.

use serde::Deserialize;
use sha2::Digest as _;
use x509_cert::der::Decode;

use super::bundle::{b64, RawBytes};
use super::error::SigstoreError;
use super::keys::PublicKey;

/// A period of trust: `start` and an optional `end`, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Validity {
    pub fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }
}

/// A transparency log's key, by its log ID (the SHA-256 of the key's DER, as Rekor names it).
#[derive(Debug, Clone)]
pub struct LogKey {
    pub log_id: Vec<u8>,
    pub key: PublicKey,
    pub valid: Validity,
}

/// A certificate authority: its chain from the issuing certificate up to the root, each with its DER.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub chain: Vec<(Vec<u8>, x509_cert::Certificate)>,
    pub valid: Validity,
}

/// The parts of a trusted root that verification uses.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub tlogs: Vec<LogKey>,
    pub certificate_authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    public_key: RawKey,
    #[serde(default)]
    log_id: Option<RawLogId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    #[serde(default)]
    raw_bytes: Option<String>,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    cert_chain: RawChain,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
struct RawValidity {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

fn validity(v: Option<RawValidity>) -> Result<Validity, SigstoreError> {
    let time = |s: Option<String>| -> Result<Option<i64>, SigstoreError> {
        s.map(|s| {
            chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| t.timestamp())
                .map_err(|e| SigstoreError::TrustedRoot(format!("time {s:?}: {e}")))
        })
        .transpose()
    };
    let v = v.unwrap_or(RawValidity { start: None, end: None });
    Ok(Validity { start: time(v.start)?, end: time(v.end)? })
}

impl TrustedRoot {
    /// Parses a `trusted_root.json`. A log key of an algorithm this verifier lacks is left out (it could only ever
    /// fail to verify); anything malformed is an error.
    pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, SigstoreError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| SigstoreError::TrustedRoot(e.to_string()))?;
        let mut tlogs = vec![];
        for log in raw.tlogs {
            let Some(der) = log.public_key.raw_bytes.as_deref().map(b64).transpose()? else { continue };
            let key = match PublicKey::from_spki_der(&der) {
                Ok(k) => k,
                Err(SigstoreError::KeyAlgorithm(_)) => continue,
                Err(e) => return Err(SigstoreError::TrustedRoot(format!("log key: {e}"))),
            };
            let log_id = match log.log_id {
                Some(id) => b64(&id.key_id)?,
                None => sha2::Sha256::digest(&der).to_vec(),
            };
            tlogs.push(LogKey { log_id, key, valid: validity(log.public_key.valid_for)? });
        }
        let mut certificate_authorities = vec![];
        for ca in raw.certificate_authorities {
            let mut chain = vec![];
            for c in ca.cert_chain.certificates {
                let der = b64(&c.raw_bytes)?;
                let cert = x509_cert::Certificate::from_der(&der)
                    .map_err(|e| SigstoreError::TrustedRoot(format!("CA certificate: {e}")))?;
                chain.push((der, cert));
            }
            if chain.is_empty() {
                return Err(SigstoreError::TrustedRoot("a CA without certificates".into()));
            }
            certificate_authorities.push(CertificateAuthority { chain, valid: validity(ca.valid_for)? });
        }
        Ok(TrustedRoot { tlogs, certificate_authorities })
    }

    /// The key of the log `log_id`.
    pub fn log(&self, log_id: &[u8]) -> Option<&LogKey> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }
}
