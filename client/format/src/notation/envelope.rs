//! What a signature envelope (JWS or COSE) says, in one form for the verification workflow: the signed attributes,
//! the payload, the certificate chain, and the bytes the signature covers.

use serde::Deserialize;
use x509_cert::Certificate;

/// The Notary Project's signed attributes, as JWS header names and COSE text labels.
pub const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
pub const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
pub const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
pub const EXPIRY: &str = "io.cncf.notary.expiry";

/// A parsed envelope; its signature is not verified yet.
pub struct Envelope {
    /// The JWS name of the signature algorithm (`PS256`, `ES384`, ...), COSE's mapped to it.
    pub alg: String,
    pub scheme: SigningScheme,
    /// Unix seconds. The signer's claim: never used in a trust decision.
    pub signing_time: Option<i64>,
    /// Unix seconds, for `notary.x509.signingAuthority`: the time the chain is judged at.
    pub authentic_signing_time: Option<i64>,
    /// Unix seconds: the signer's "best by" time.
    pub expiry: Option<i64>,
    pub payload: Vec<u8>,
    /// Leaf first: DER and parsed.
    pub chain: Vec<(Vec<u8>, Certificate)>,
    /// The bytes the signature is over.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The Notary Project signing schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: a chain to a CA of a `ca` trust store, judged at verification time.
    X509,
    /// `notary.x509.signingAuthority`: a chain to a `signingAuthority` store, judged at the authentic signing time.
    X509SigningAuthority,
}

impl SigningScheme {
    pub fn parse(s: &str) -> Result<SigningScheme, EnvelopeError> {
        match s {
            "notary.x509" => Ok(SigningScheme::X509),
            "notary.x509.signingAuthority" => Ok(SigningScheme::X509SigningAuthority),
            other => Err(EnvelopeError::SigningScheme(other.to_string())),
        }
    }
}

/// Why an envelope could not be read (all integrity failures).
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("unsupported envelope media type {0:?}")]
    MediaType(String),
    #[error("malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0} is not canonical base64")]
    Base64(&'static str),
    #[error("the signed attributes have no {0}")]
    Missing(&'static str),
    #[error("signed attribute {name} {reason}")]
    Header { name: &'static str, reason: &'static str },
    #[error("content type {0:?} is not the Notary Project payload's")]
    ContentType(String),
    #[error("unsupported signing scheme {0:?}")]
    SigningScheme(String),
    #[error("critical attribute {0:?} is not one this verifier understands, or is absent")]
    UnknownCritical(String),
    #[error("attribute {0} is present but not marked critical")]
    NotCritical(&'static str),
    #[error("attribute {name}: {value:?} is not an RFC 3339 time")]
    Time { name: &'static str, value: String },
    #[error("the envelope has no certificate chain")]
    NoCertificates,
    #[error("{0} certificates in the chain, over the limit")]
    TooManyCertificates(usize),
    #[error("certificate {index} is not DER X.509: {source}")]
    Certificate {
        index: usize,
        #[source]
        source: x509_cert::der::Error,
    },
    #[error("the payload is not a Notary Project payload: {0}")]
    Payload(#[source] serde_json::Error),
    #[error("malformed COSE_Sign1: {0}")]
    Cose(&'static str),
}

/// The signed payload's descriptor of the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetArtifact {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: TargetArtifact,
}

/// The `targetArtifact` of a Notary Project payload (`application/vnd.cncf.notary.payload.v1+json`).
pub fn target_artifact(payload: &[u8]) -> Result<TargetArtifact, EnvelopeError> {
    serde_json::from_slice::<Payload>(payload).map(|p| p.target_artifact).map_err(EnvelopeError::Payload)
}

/// An RFC 3339 time as Unix seconds.
pub fn rfc3339(name: &'static str, value: &str) -> Result<i64, EnvelopeError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp())
        .map_err(|_| EnvelopeError::Time { name, value: value.to_string() })
}

/// The critical attributes (`crit`) are not empty, list the signing scheme (and the expiry and the authentic signing
/// time when present), and list nothing this verifier does not understand or that is absent (RFC 7515 section
/// 4.1.11, RFC 9052 section 3.1): a plugin's attributes, for one, make the signature unverifiable here.
pub fn check_critical(
    crit: &[&str],
    present: &dyn Fn(&str) -> bool,
    scheme: SigningScheme,
    has_expiry: bool,
) -> Result<(), EnvelopeError> {
    if crit.is_empty() {
        return Err(EnvelopeError::Header { name: "crit", reason: "is empty" });
    }
    for name in crit {
        if ![SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY].contains(name) || !present(name) {
            return Err(EnvelopeError::UnknownCritical(name.to_string()));
        }
    }
    let mut must = vec![SIGNING_SCHEME];
    if has_expiry {
        must.push(EXPIRY);
    }
    if scheme == SigningScheme::X509SigningAuthority {
        must.push(AUTHENTIC_SIGNING_TIME);
    }
    match must.into_iter().find(|m| !crit.contains(m)) {
        Some(m) => Err(EnvelopeError::NotCritical(m)),
        None => Ok(()),
    }
}
