//! The one place that knows HTTP status codes: every error becomes the spec's JSON envelope here.
//!
//! Which error belongs where:
//! - parsing a request (`endpoint::EndpointError`, `wharf_format::{NameError, DigestError, ManifestError}`) and
//!   storage (`wharf_storage::Error`) keep their own types, with their causes as `#[source]`; they become an
//!   [`ApiError`] only here, by `From`, so a handler writes `?`;
//! - a handler that refuses on its own names a [`Kind`] (`ApiError::new(kind, message)`); the message is what the
//!   client reads, never a secret or a path on the server;
//! - subsystems with errors of their own (`auth::AuthError`, `mirror`'s upstream errors, `config::ConfigError`) keep
//!   them inside the subsystem and map to a `Kind` at its edge;
//! - a server fault (`ApiError::internal`) carries its whole cause chain (`chain`) to the `observe` middleware,
//!   which logs it; the client gets a bare 500;
//! - a backend fault whose cause is the machine's (`wharf_storage::Condition`: a full disk or database, an I/O
//!   error) is answered as such, 507 or 503 with a message that names it, never as a 500; its cause is logged the
//!   same way.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use wharf_format::ManifestError;
use wharf_storage::{Condition, Error as StorageError};

use crate::endpoint::EndpointError;

/// The OCI Distribution error codes (plus Distribution's `UNKNOWN` and `PAGINATION_NUMBER_INVALID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unsupported,
    PaginationNumberInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    /// The spec spells it as one word (Distribution too), not as the other codes' snake case.
    #[serde(rename = "TOOMANYREQUESTS")]
    TooManyRequests,
    Unavailable,
    Unknown,
}

/// What went wrong, in the registry's terms. Handlers name a kind; [`Kind::answer`] is the one table from kind to
/// HTTP status and OCI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BlobUnknown,
    BlobRangeInvalid,
    UploadUnknown,
    UploadInvalid,
    UploadRangeInvalid,
    DigestInvalid,
    SizeInvalid,
    TooLarge,
    ManifestUnknown,
    ManifestInvalid,
    ManifestBlobUnknown,
    TagInvalid,
    NameInvalid,
    NameUnknown,
    PaginationInvalid,
    Conflict,
    NoSuchEndpoint,
    MethodNotAllowed,
    Unauthorized,
    Denied,
    Throttled,
    RequestInvalid,
    NotReady,
    /// A mirror's upstream could not be used and nothing was cached (or it sent bad content).
    UpstreamUnavailable,
    /// The disk or the database is full: nothing more fits until space is freed.
    StorageFull,
    /// The disk failed a read, write or sync; the next request may succeed.
    StorageFailed,
    Internal,
}

impl Kind {
    /// The table.
    pub fn answer(self) -> (StatusCode, Code) {
        use StatusCode as S;
        match self {
            Kind::BlobUnknown => (S::NOT_FOUND, Code::BlobUnknown),
            Kind::BlobRangeInvalid => (S::RANGE_NOT_SATISFIABLE, Code::BlobUnknown),
            Kind::UploadUnknown => (S::NOT_FOUND, Code::BlobUploadUnknown),
            Kind::UploadInvalid => (S::BAD_REQUEST, Code::BlobUploadInvalid),
            Kind::UploadRangeInvalid => (S::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid),
            Kind::DigestInvalid => (S::BAD_REQUEST, Code::DigestInvalid),
            Kind::SizeInvalid => (S::BAD_REQUEST, Code::SizeInvalid),
            Kind::TooLarge => (S::PAYLOAD_TOO_LARGE, Code::SizeInvalid),
            Kind::ManifestUnknown => (S::NOT_FOUND, Code::ManifestUnknown),
            Kind::ManifestInvalid => (S::BAD_REQUEST, Code::ManifestInvalid),
            Kind::ManifestBlobUnknown => (S::BAD_REQUEST, Code::ManifestBlobUnknown),
            Kind::TagInvalid => (S::BAD_REQUEST, Code::TagInvalid),
            Kind::NameInvalid => (S::BAD_REQUEST, Code::NameInvalid),
            Kind::NameUnknown => (S::NOT_FOUND, Code::NameUnknown),
            Kind::PaginationInvalid => (S::BAD_REQUEST, Code::PaginationNumberInvalid),
            Kind::Conflict => (S::CONFLICT, Code::Unknown),
            Kind::NoSuchEndpoint => (S::NOT_FOUND, Code::Unsupported),
            Kind::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, Code::Unsupported),
            Kind::Unauthorized => (S::UNAUTHORIZED, Code::Unauthorized),
            Kind::Denied => (S::FORBIDDEN, Code::Denied),
            Kind::Throttled => (S::TOO_MANY_REQUESTS, Code::TooManyRequests),
            Kind::RequestInvalid => (S::BAD_REQUEST, Code::Unsupported),
            Kind::NotReady => (S::SERVICE_UNAVAILABLE, Code::Unknown),
            Kind::UpstreamUnavailable => (S::BAD_GATEWAY, Code::Unavailable),
            Kind::StorageFull => (S::INSUFFICIENT_STORAGE, Code::Unavailable),
            Kind::StorageFailed => (S::SERVICE_UNAVAILABLE, Code::Unavailable),
            Kind::Internal => (S::INTERNAL_SERVER_ERROR, Code::Unknown),
        }
    }
}

/// An error answer: its kind, message, and the rarer extras (detail, headers such as `Range` on a 416, a fault's
/// cause), boxed so that `Result<_, ApiError>` stays small.
#[derive(Debug)]
pub struct ApiError {
    pub kind: Kind,
    pub message: String,
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Default)]
struct Extra {
    detail: Option<serde_json::Value>,
    headers: HeaderMap,
    /// For server faults: the cause, logged by the middleware and never sent.
    cause: Option<String>,
    /// For server faults: which backend failed, counted by the metrics.
    fault: Option<Fault>,
}

/// The backend a server fault came from, carried in the response's extensions for the metrics
/// (`wharf_backend_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The object store (or the local disk under it).
    Storage,
    /// The metadata database.
    Database,
}

impl ApiError {
    pub fn new(kind: Kind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into(), extra: None }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.extra().detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.extra().headers.insert(name, v);
        }
        self
    }

    /// Marks a server fault as the storage's or the database's.
    pub fn with_fault(mut self, fault: Fault) -> ApiError {
        self.extra().fault = Some(fault);
        self
    }

    /// A backend that failed for now (S3 after its retries, a lost database connection): `503` with `Retry-After`,
    /// naming the backend; the cause is logged, as a server fault's.
    pub fn unavailable(which: wharf_storage::Unavailable, cause: String) -> ApiError {
        let (message, fault) = match which {
            wharf_storage::Unavailable::ObjectStore => {
                ("the object store (S3) is unavailable; retry the request", Fault::Storage)
            }
            wharf_storage::Unavailable::Database => {
                ("the metadata database is unavailable; retry the request", Fault::Database)
            }
            wharf_storage::Unavailable::Contended => {
                ("the metadata database gave way to a concurrent request; retry the request", Fault::Database)
            }
        };
        let mut e = ApiError::new(Kind::NotReady, message).with_header("retry-after", "1".into()).with_fault(fault);
        e.extra().cause = Some(cause);
        e
    }

    pub fn internal(cause: String) -> ApiError {
        ApiError::new(Kind::Internal, "internal server error").with_cause(cause)
    }

    /// A fault of `fault`'s backend: the machine's condition answered as such (a full disk or database 507, an
    /// I/O error 503 to retry), anything else a bare 500; the cause is logged either way.
    fn backend(e: &StorageError, fault: Fault) -> ApiError {
        let answer = match e.condition() {
            Some(Condition::NoSpace) => {
                ApiError::new(Kind::StorageFull, "the registry's storage is full; try again once space is freed")
            }
            Some(Condition::IoFailed) => {
                ApiError::new(Kind::StorageFailed, "the registry's storage failed to read or write (an I/O error)")
                    .with_header("retry-after", "1".into())
            }
            None => ApiError::new(Kind::Internal, "internal server error"),
        };
        answer.with_cause(chain(e)).with_fault(fault)
    }

    fn with_cause(mut self, cause: String) -> ApiError {
        self.extra().cause = Some(cause);
        self
    }
}

/// The error chain of `e` as one line, for logs.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        if let Some(which) = e.unavailable() {
            return ApiError::unavailable(which, chain(&e));
        }
        match &e {
            StorageError::BlobUnknown => ApiError::new(Kind::BlobUnknown, "blob unknown to registry"),
            StorageError::UploadUnknown => ApiError::new(Kind::UploadUnknown, "blob upload unknown to registry"),
            StorageError::ManifestUnknown => ApiError::new(Kind::ManifestUnknown, "manifest unknown"),
            StorageError::NameUnknown => ApiError::new(Kind::NameUnknown, "repository name not known to registry"),
            StorageError::DigestMismatch { expected, actual } => {
                ApiError::new(Kind::DigestInvalid, "provided digest did not match uploaded content")
                    .with_detail(serde_json::json!({ "expected": expected, "actual": actual }))
            }
            StorageError::SizeMismatch { expected, actual } => ApiError::new(Kind::SizeInvalid, e.to_string())
                .with_detail(serde_json::json!({ "expected": expected, "actual": actual })),
            StorageError::RangeInvalid { offset } => {
                ApiError::new(Kind::UploadRangeInvalid, e.to_string()).with_header("range", range_header(*offset))
            }
            StorageError::TooLarge { max } => {
                ApiError::new(Kind::TooLarge, e.to_string()).with_detail(serde_json::json!({ "max": max }))
            }
            StorageError::BodyInterrupted { received, .. } => {
                ApiError::new(Kind::UploadInvalid, e.to_string()).with_header("range", range_header(*received))
            }
            StorageError::ReferencesMissing(digests) => {
                ApiError::new(Kind::ManifestBlobUnknown, "manifest references unknown content")
                    .with_detail(serde_json::json!({ "missing": digests }))
            }
            StorageError::Conflict(_) => ApiError::new(Kind::Conflict, e.to_string()),
            StorageError::QuotaExceeded { quota, usage, limit, adding } => {
                ApiError::new(Kind::Denied, crate::ops::quota::refusal(quota, *usage, *limit, *adding)).with_detail(
                    serde_json::json!({ "quota": quota, "usage": usage, "limit": limit, "adding": adding }),
                )
            }
            // Retryable: docker, containerd and skopeo retry a 503 with code UNKNOWN.
            StorageError::Collected => {
                ApiError::new(Kind::NotReady, e.to_string()).with_header("retry-after", "1".into())
            }
            StorageError::Database(_) | StorageError::DatabaseUrl(_) => ApiError::backend(&e, Fault::Database),
            StorageError::Backend(_) | StorageError::Io { .. } | StorageError::Corrupt(_) => {
                ApiError::backend(&e, Fault::Storage)
            }
            StorageError::Config(_) | StorageError::Json { .. } | StorageError::Task { .. } => {
                ApiError::internal(chain(&e))
            }
        }
    }
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> ApiError {
        match e {
            EndpointError::NotFound => ApiError::new(Kind::NoSuchEndpoint, "no such endpoint"),
            EndpointError::Name(_) => ApiError::new(Kind::NameInvalid, e.to_string()),
            EndpointError::Digest(_) => ApiError::new(Kind::DigestInvalid, e.to_string()),
            EndpointError::UploadUnknown => StorageError::UploadUnknown.into(),
        }
    }
}

impl From<ManifestError> for ApiError {
    fn from(e: ManifestError) -> ApiError {
        ApiError::new(Kind::ManifestInvalid, e.to_string())
    }
}

/// The `Range` header of an upload that holds `offset` bytes, in Distribution's form (`0-0` when empty).
pub fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[derive(Serialize)]
struct Envelope<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: Code,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

/// Carried in the response's extensions so that the logging middleware can report a server fault's cause.
#[derive(Clone, Debug)]
pub struct FaultCause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.kind.answer();
        let extra = self.extra.map(|b| *b).unwrap_or_default();
        let body = Envelope { errors: [Entry { code, message: &self.message, detail: extra.detail.as_ref() }] };
        // The envelope holds only strings and JSON values: serializing it cannot fail.
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, [("content-type", "application/json")], json).into_response();
        resp.headers_mut().extend(extra.headers);
        if let Some(cause) = extra.cause {
            resp.extensions_mut().insert(FaultCause(cause));
        }
        if let Some(fault) = extra.fault {
            resp.extensions_mut().insert(fault);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows: a storage error, and the status and message start it must answer with.
    #[test]
    fn an_unavailable_backend_is_a_503_naming_it() {
        let s3 = StorageError::Backend(object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable: SlowDown".into(),
        });
        let lost = StorageError::Database(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        let local =
            StorageError::Backend(object_store::Error::Generic { store: "LocalFileSystem", source: "x".into() });
        let rows = [
            (s3, StatusCode::SERVICE_UNAVAILABLE, "the object store (S3)"),
            (
                StorageError::Database(sqlx::Error::PoolTimedOut),
                StatusCode::SERVICE_UNAVAILABLE,
                "the metadata database",
            ),
            (lost, StatusCode::SERVICE_UNAVAILABLE, "the metadata database"),
            (local, StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
            (StorageError::Database(sqlx::Error::RowNotFound), StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ];
        for (e, status, message) in rows {
            let what = format!("{e:?}");
            let api = ApiError::from(e);
            assert_eq!(api.kind.answer().0, status, "{what}");
            assert!(api.message.starts_with(message), "{what}: {}", api.message);
            let resp = api.into_response();
            assert!(resp.extensions().get::<FaultCause>().is_some(), "{what}: the cause is logged");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(resp.headers()["retry-after"], "1", "{what}");
            }
        }
    }
}
