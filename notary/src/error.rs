//! The notary's errors, and the one place in the notary that knows status codes.
//!
//! Which error type belongs in which layer:
//! - [`Error`]: the TUF 1.0 service (`tuf/`) and the shared set-up (`kek`). Handlers return it and never pick a
//!   status; `Error::status_code` is the table. Refusals of the specification's rules carry the format's
//!   `wharf_format::tuf::TufError`.
//! - [`V1Error`]: the Notary v1 service (`v1/`), answered in notary-server's codes and shapes by `V1Error::answer`.
//!   The validator names a refusal of the format's rules (`wharf_format::notary::V1MetadataError`) by the role it
//!   was checking (`Invalid`), as notary-server does.
//! - Beneath both: `wharf_storage::Error` (the store), `SealError` (sealed keys), the format crate's errors. They are
//!   kept as `#[source]`, never flattened into strings: a server fault's chain of causes is logged by `log_faults`
//!   and never sent.
//! - A storage fault whose cause is the machine's (`wharf_storage::Condition`: a full disk or database, an I/O
//!   error) or a backend unavailable for now (S3 after its retries, a lost database connection) is answered by
//!   [`storage_condition`] in both dialects: 507 or 503 with a message that names it, as the registry's table
//!   does, never as a bare 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::task::JoinError;
use wharf_format::notary::V1MetadataError;
use wharf_format::seal::SealError;
use wharf_format::tuf::TufError;
use wharf_storage::{Condition, Unavailable};

/// The status, code and message of a storage fault caused by the machine underneath, if it was.
fn storage_condition(e: &wharf_storage::Error) -> Option<(StatusCode, &'static str, &'static str)> {
    let Some(condition) = e.condition() else {
        // A backend that is unavailable for now (S3 after its retries, a lost database connection), as the
        // registry's table answers it.
        return Some(match e.unavailable()? {
            Unavailable::ObjectStore => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the object store (S3) is unavailable; retry the request",
            ),
            Unavailable::Database => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the metadata database is unavailable; retry the request",
            ),
            Unavailable::Contended => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the metadata database gave way to a concurrent request; retry the request",
            ),
        });
    };
    Some(match condition {
        Condition::NoSpace => (
            StatusCode::INSUFFICIENT_STORAGE,
            "UNAVAILABLE",
            "the server's storage is full; try again once space is freed",
        ),
        Condition::IoFailed => (
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the server's storage failed to read or write (an I/O error)",
        ),
    })
}

/// An error of the TUF 1.0 service, answered as `{"errors":[{"code","message"}]}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refused: {0}")]
    Refused(#[from] TufError),
    #[error("{what} exceeds the {max}-byte limit")]
    TooLarge { what: String, max: usize },
    #[error("malformed upload: {0}")]
    Malformed(String),
    #[error("malformed upload: {0}")]
    UploadJson(#[source] serde_json::Error),
    #[error("reading the upload: {0}")]
    Body(#[source] axum::Error),
    #[error("the service has no {0} key for this repository: POST /v2/<name>/_tuf/keys first")]
    NoServiceKey(&'static str),
    #[error("not found")]
    NotFound,
    #[error("invalid repository name")]
    NameInvalid,
    #[error("method not allowed here")]
    Method,
    /// Stored metadata that no longer parses: the store, not the request, is at fault.
    #[error("stored {role} metadata")]
    Stored { role: String, source: TufError },
    #[error("storage")]
    Storage(#[from] wharf_storage::Error),
    #[error("key sealing")]
    Seal(#[from] SealError),
    #[error("encoding a key")]
    Encode(#[source] serde_json::Error),
    #[error("a blocking task")]
    Task(#[source] JoinError),
    /// A broken invariant, named.
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl Error {
    fn status_code(&self) -> (StatusCode, &'static str) {
        use wharf_storage::Error as S;
        if let Some((status, code, _)) = self.condition() {
            return (status, code);
        }
        match self {
            Error::Refused(_) => (StatusCode::BAD_REQUEST, "TUF_REFUSED"),
            Error::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            Error::Malformed(_) | Error::UploadJson(_) | Error::Body(_) => (StatusCode::BAD_REQUEST, "TUF_MALFORMED"),
            Error::NoServiceKey(_) => (StatusCode::BAD_REQUEST, "TUF_NO_SERVICE_KEY"),
            Error::NotFound | Error::Storage(S::ManifestUnknown) => (StatusCode::NOT_FOUND, "TUF_UNKNOWN"),
            Error::NameInvalid => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            Error::Method => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            Error::Storage(S::Conflict(_)) => (StatusCode::CONFLICT, "TUF_CONFLICT"),
            Error::Stored { .. }
            | Error::Storage(_)
            | Error::Seal(_)
            | Error::Encode(_)
            | Error::Task(_)
            | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }

    fn condition(&self) -> Option<(StatusCode, &'static str, &'static str)> {
        match self {
            Error::Storage(e) => storage_condition(e),
            _ => None,
        }
    }
}

/// Errors of the Notary v1 API, answered in notary-server's codes and shapes (what the `notary` CLI and docker
/// parse: at most one error, `detail` naming the validation error for `INVALID_UPDATE`).
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    #[error("metadata not found")]
    NotFound,
    #[error("malformed upload: {0}")]
    MalformedUpload(String),
    #[error("malformed upload: {0}")]
    Multipart(#[source] multer::Error),
    #[error("a part has no file name")]
    NoFilename,
    #[error("invalid role {0:?}")]
    InvalidRole(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(#[source] V1MetadataError),
    /// `INVALID_UPDATE`: `name` is notary's validation error (`ErrValidation`, `ErrBadRoot`, `ErrBadTargets`,
    /// `ErrBadSnapshot`, `ErrBadHierarchy`); `missing` only for `ErrBadHierarchy`.
    #[error("{name}: {msg}")]
    Invalid { name: &'static str, msg: String, missing: Option<&'static str> },
    #[error("a newer version of metadata is already available")]
    Version,
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    #[error("storage")]
    Storage(#[from] wharf_storage::Error),
    #[error("key sealing")]
    Seal(#[from] SealError),
    /// A stored document that no longer parses: the store, not the request, is at fault.
    #[error("stored {role}")]
    Stored { role: String, source: V1MetadataError },
    #[error("signing {role}")]
    Sign { role: &'static str, source: V1MetadataError },
    #[error("encoding a key")]
    Encode(#[source] serde_json::Error),
    #[error("a blocking task")]
    Task(#[source] JoinError),
    /// A broken invariant, named.
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl V1Error {
    fn answer(&self) -> (StatusCode, &'static str, &'static str, Option<serde_json::Value>) {
        use serde_json::json;
        use wharf_storage::Error as S;
        let bad = StatusCode::BAD_REQUEST;
        if let Some((status, code, message)) = self.condition() {
            return (status, code, message, None);
        }
        match self {
            V1Error::NotFound | V1Error::Storage(S::ManifestUnknown) => (
                StatusCode::NOT_FOUND,
                "METADATA_NOT_FOUND",
                "You have requested metadata that does not exist.",
                Some(json!({})),
            ),
            V1Error::MalformedUpload(_) | V1Error::Multipart(_) => {
                (bad, "MALFORMED_UPLOAD", "The body of your request is malformed.", None)
            }
            V1Error::NoFilename => (bad, "NO_FILENAME", "No file/role name provided.", None),
            V1Error::InvalidRole(r) => {
                (bad, "INVALID_ROLE", "The role you are attempting to operate on is invalid.", Some(json!(r)))
            }
            V1Error::MalformedJson(_) => {
                (bad, "MALFORMED_JSON", "JSON sent by the client could not be parsed by the server", None)
            }
            V1Error::Invalid { name, msg, missing } => {
                let error = match missing {
                    Some(m) => json!({ "Missing": m, "Msg": msg }),
                    None => json!({ "Msg": msg }),
                };
                (
                    bad,
                    "INVALID_UPDATE",
                    "Update sent by the client is invalid.",
                    Some(json!({ "Name": name, "Error": error })),
                )
            }
            V1Error::Version | V1Error::Storage(S::Conflict(_)) => {
                (bad, "VERSION", "A newer version of metadata is already available.", Some(json!({})))
            }
            V1Error::InvalidParameters(d) => {
                (bad, "INVALID_PARAMETERS", "The parameters provided are not valid.", Some(json!(d)))
            }
            V1Error::Storage(_)
            | V1Error::Seal(_)
            | V1Error::Stored { .. }
            | V1Error::Sign { .. }
            | V1Error::Encode(_)
            | V1Error::Task(_)
            | V1Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", "unknown error", None),
        }
    }

    fn condition(&self) -> Option<(StatusCode, &'static str, &'static str)> {
        match self {
            V1Error::Storage(e) => storage_condition(e),
            _ => None,
        }
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let (status, code, message, detail) = self.answer();
        let mut error = serde_json::json!({ "code": code, "message": message });
        if let Some(d) = detail {
            error["detail"] = d;
        }
        let body = format!("{}\n", serde_json::json!({ "errors": [error] }));
        let mut resp = (status, [("content-type", "application/json; charset=utf-8")], body).into_response();
        if status.is_server_error() {
            resp.extensions_mut().insert(FaultCause::of(&self));
        }
        resp
    }
}

/// Carried in a response's extensions so that the logging middleware can report a server fault's cause; never
/// sent (it may name paths or key ids).
#[derive(Clone, Debug)]
pub struct FaultCause(pub String);

impl FaultCause {
    fn of(e: &dyn std::error::Error) -> FaultCause {
        FaultCause(chain(e))
    }
}

/// The error and its chain of sources, as one line: what a log line about a fault shows.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        src = s.source();
    }
    cause
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let fault = status.is_server_error().then(|| FaultCause::of(&self));
        let message = match (self.condition(), &fault) {
            (Some((_, _, message)), _) => message.to_string(),
            (None, Some(_)) => "internal server error".to_string(),
            (None, None) => self.to_string(),
        };
        let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
        let mut resp = (status, [("content-type", "application/json")], body.to_string()).into_response();
        if let Some(f) = fault {
            resp.extensions_mut().insert(f);
        }
        resp
    }
}

/// Middleware: logs each trust request at debug level and server faults, with their cause, at error level.
pub async fn log_faults(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    if let Some(FaultCause(cause)) = resp.extensions().get::<FaultCause>() {
        tracing::error!(%method, %path, status, %cause, "trust request failed");
    } else {
        tracing::debug!(%method, %path, status, "trust request");
    }
    resp
}
