//! The outermost layer: one access-log line per request and the request metrics. (Skeleton: passes through; issue
//! 23's metrics work fills it.)

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Ops;

pub async fn layer(State(_ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    next.run(req).await
}
