//! The repository list: search and paging over what the viewer may pull; per repository its size, tag count, last
//! push and the trust formats it has.
//!
//! TODO(ui-lists): built by the lists engineer.

use axum::http::request::Parts;
use axum::response::Response;

use super::{stub, Viewer};
use crate::error::ApiError;
use crate::Registry;

pub async fn page(st: &Registry, viewer: &Viewer, req: &Parts) -> Result<Response, ApiError> {
    let _ = st;
    stub(viewer, "Repositories", req)
}
