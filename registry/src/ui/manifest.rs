//! A manifest's page: its config (entrypoint, environment with values hidden by default, labels, history), layers,
//! an index's children per platform, referrers by artifact type, and pull commands.
//!
//! TODO(ui-manifest): built by the manifest engineer.

use axum::http::request::Parts;
use axum::response::Response;
use wharf_format::{Digest, RepositoryName};

use super::{stub, Viewer};
use crate::error::ApiError;
use crate::Registry;

pub async fn page(
    st: &Registry,
    viewer: &Viewer,
    repo: &RepositoryName,
    digest: &Digest,
    req: &Parts,
) -> Result<Response, ApiError> {
    let _ = (st, digest);
    stub(viewer, repo.as_str(), req)
}
