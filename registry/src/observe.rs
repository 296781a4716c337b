//! Server faults: their cause at error level, for every registry request that ended in one, with the request id
//! that its access-log line (`ops::access`, one line for every request) carries too.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use wharf_storage::Origin;

use crate::error::FaultCause;

pub async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    if let Some(FaultCause(cause)) = resp.extensions().get::<FaultCause>() {
        let request_id = resp.extensions().get::<Origin>().map_or("-", |o| o.request_id.as_str());
        tracing::error!(%method, status = resp.status().as_u16(), request_id, %cause, "request failed");
    }
    resp
}
