//! The one place in the notary that knows status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wharf_client::tuf::TufError;

use wharf_client::seal::SealError;

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error("refused: {0}")]
    Refused(#[from] TufError),
    #[error("{what} exceeds the {max}-byte limit")]
    TooLarge { what: String, max: usize },
    #[error("malformed upload: {0}")]
    Malformed(String),
    #[error("the service has no {0} key for this repository: POST /v2/<name>/_tuf/keys first")]
    NoServiceKey(&'static str),
    #[error("not found")]
    NotFound,
    #[error("invalid repository name")]
    NameInvalid,
    #[error("method not allowed here")]
    Method,
    #[error("storage")]
    Storage(#[from] wharf_storage::Error),
    #[error("key sealing")]
    Seal(#[from] SealError),
    #[error("internal: {0}")]
    Internal(String),
}

impl NotaryError {
    fn status_code(&self) -> (StatusCode, &'static str) {
        use wharf_storage::Error as S;
        match self {
            NotaryError::Refused(_) => (StatusCode::BAD_REQUEST, "TUF_REFUSED"),
            NotaryError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            NotaryError::Malformed(_) => (StatusCode::BAD_REQUEST, "TUF_MALFORMED"),
            NotaryError::NoServiceKey(_) => (StatusCode::BAD_REQUEST, "TUF_NO_SERVICE_KEY"),
            NotaryError::NotFound | NotaryError::Storage(S::ManifestUnknown) => (StatusCode::NOT_FOUND, "TUF_UNKNOWN"),
            NotaryError::NameInvalid => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            NotaryError::Method => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            NotaryError::Storage(S::Conflict(_)) => (StatusCode::CONFLICT, "TUF_CONFLICT"),
            NotaryError::Storage(_) | NotaryError::Seal(_) | NotaryError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN")
            }
        }
    }
}

/// Carried in a response's extensions so that the logging middleware can report a server fault's cause; never
/// sent (it may name paths or key ids).
#[derive(Clone, Debug)]
pub struct FaultCause(pub String);

impl IntoResponse for NotaryError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let mut fault = None;
        let message = if status.is_server_error() {
            let mut cause = self.to_string();
            let mut src = std::error::Error::source(&self);
            while let Some(s) = src {
                cause.push_str(": ");
                cause.push_str(&s.to_string());
                src = s.source();
            }
            fault = Some(FaultCause(cause));
            "internal server error".to_string()
        } else {
            self.to_string()
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
