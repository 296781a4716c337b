//! Why a sigstore signature was refused: one variant per rule, so tests name the rule they expect to fail and
//! messages say what is missing.

/// Which signature failed to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// The simple-signing payload, the message digest or the DSSE envelope, under the signer's key.
    Content,
    /// A certificate, under its issuer's key.
    Certificate,
    /// Rekor's signed entry timestamp.
    EntryTimestamp,
    /// Rekor's signed checkpoint.
    Checkpoint,
}

impl std::fmt::Display for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signed::Content => "the signed content",
            Signed::Certificate => "a certificate",
            Signed::EntryTimestamp => "the log's signed entry timestamp",
            Signed::Checkpoint => "the log's checkpoint",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigstoreError {
    #[error("public key: {0}")]
    Key(String),
    #[error("unsupported key algorithm {0}")]
    KeyAlgorithm(String),
    #[error("the signature over {0} does not verify")]
    BadSignature(Signed),
    #[error("the signature is not valid base64")]
    SignatureEncoding,
    #[error("the simple-signing payload is malformed: {0}")]
    Payload(String),
    #[error("the payload's type is {0:?}, not cosign's")]
    PayloadType(String),
    #[error("the signature is for {signed}, not {subject}")]
    OtherDigest { signed: String, subject: String },
    #[error("the payload blob's digest is not the layer's {0}")]
    PayloadDigest(String),
    #[error("not a cosign signature manifest: {0}")]
    SigManifest(String),
    #[error("the bundle is malformed: {0}")]
    Bundle(String),
    #[error("unsupported bundle media type {0:?}")]
    BundleMediaType(String),
    #[error("the trusted root is malformed: {0}")]
    TrustedRoot(String),
    #[error("the certificate is malformed: {0}")]
    Certificate(String),
    #[error("the certificate does not chain to a Fulcio CA of the trusted root")]
    UntrustedCertificate,
    #[error("the certificate is not for code signing")]
    NotCodeSigning,
    #[error("the certificate names no OIDC issuer")]
    NoIssuer,
    #[error("issued for issuer {got}, not {want}")]
    OtherIssuer { want: String, got: String },
    #[error("the certificate names no e-mail or URI subject")]
    NoSubject,
    #[error("issued to {got}, which does not match {want}")]
    OtherSubject { want: String, got: String },
    #[error("no transparency log entry")]
    NoLogEntry,
    #[error("the log entry is from log {0}, which the trusted root does not name")]
    UnknownLog(String),
    #[error("the log entry carries neither an inclusion proof nor a signed entry timestamp")]
    Unproven,
    #[error(
        "the log entry carries no signed entry timestamp, so its integrated time is not authenticated (an inclusion \
         proof does not cover it, and RFC 3161 timestamps are not read)"
    )]
    UntimedEntry,
    #[error("the inclusion proof does not verify: {0}")]
    InclusionProof(String),
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(String),
    #[error("the log entry does not record this signature: {0}")]
    EntryMismatch(String),
    #[error("unsupported log entry kind {0}")]
    EntryKind(String),
    #[error("signed at {time}, outside the certificate's validity {not_before}..{not_after}")]
    OutsideValidity { time: i64, not_before: i64, not_after: i64 },
    #[error("the log's time {time} is after now ({now})")]
    FutureEntry { time: i64, now: i64 },
    #[error("the DSSE statement is malformed: {0}")]
    Statement(String),
    #[error("the keyless requirement names no {0}")]
    Requirement(&'static str),
    #[error("policy file {0} was not gathered")]
    Material(String),
    #[error("{0} signatures are not accepted by this requirement")]
    Unaccepted(&'static str),
}
