//! Administration (administrators only): accounts, robots and grants (read-only), the audit log, the last
//! collection's report, quota usage.
//!
//! TODO(ui-admin): built by the admin engineer.

use axum::http::request::Parts;
use axum::response::Response;

use super::path::AdminPage;
use super::{stub, Viewer};
use crate::error::ApiError;
use crate::Registry;

pub async fn page(st: &Registry, viewer: &Viewer, p: AdminPage, req: &Parts) -> Result<Response, ApiError> {
    let _ = (st, p);
    stub(viewer, "Administration", req)
}
