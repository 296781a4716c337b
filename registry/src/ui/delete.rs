//! Deleting a tag or a manifest: a confirmation page, then a form post (with its CSRF token) by a viewer who may
//! delete in the repository.
//!
//! TODO(ui-manifest): built by the manifest engineer.

use axum::extract::Request;
use axum::http::request::Parts;
use axum::response::Response;
use wharf_format::RepositoryName;

use super::{stub, Viewer};
use crate::error::ApiError;
use crate::Registry;

pub async fn confirm(st: &Registry, viewer: &Viewer, repo: &RepositoryName, req: &Parts) -> Result<Response, ApiError> {
    let _ = st;
    stub(viewer, repo.as_str(), req)
}

pub async fn submit(st: &Registry, viewer: &Viewer, repo: &RepositoryName, req: Request) -> Result<Response, ApiError> {
    let _ = st;
    let (parts, _) = req.into_parts();
    stub(viewer, repo.as_str(), &parts)
}
