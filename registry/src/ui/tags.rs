//! A repository's tags, paged, sorted and filtered: each with its digest, size, platforms, creation time and signed
//! status (from `trust`).
//!
//! TODO(ui-lists): built by the lists engineer.

use axum::http::request::Parts;
use axum::response::Response;
use wharf_format::RepositoryName;

use super::{stub, Viewer};
use crate::error::ApiError;
use crate::Registry;

pub async fn page(st: &Registry, viewer: &Viewer, repo: &RepositoryName, req: &Parts) -> Result<Response, ApiError> {
    let _ = st;
    stub(viewer, repo.as_str(), req)
}
