//! Docker's v1 search API, so that `docker search HOST/TERM` works: `GET /v1/_ping` and
//! `GET /v1/search?q=TERM&n=N&page=P`, listing only the repositories the caller may pull.
//!
//! TODO(ui-search): built by the search engineer.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Kind};
use crate::route::DockerV1;
use crate::Registry;

pub async fn serve(st: Arc<Registry>, which: DockerV1, req: Request) -> Response {
    let _ = (st, which, req);
    ApiError::new(Kind::NoSuchEndpoint, "not built yet").into_response()
}
