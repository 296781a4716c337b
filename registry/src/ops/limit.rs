//! Rate limits per account and per client address, as token buckets. (Skeleton: passes through; issue 23's rate
//! limit work fills it.)

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Ops;

/// `[rate_limit]`.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSettings {}

/// The buckets.
pub struct Limiter {}

impl Limiter {
    pub fn new(_settings: &RateLimitSettings) -> Limiter {
        Limiter {}
    }
}

/// Before the gate: the limits of the client's address.
pub async fn by_address(State(_ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    next.run(req).await
}

/// After the gate: the limits of the verified caller.
pub async fn by_account(State(_ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    next.run(req).await
}
