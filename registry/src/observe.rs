//! Request logging: one structured line per request at debug level, server faults at error level.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::FaultCause;

pub async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if let Some(FaultCause(cause)) = resp.extensions().get::<FaultCause>() {
        tracing::error!(%method, %path, status, micros, %cause, "request failed");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    resp
}
