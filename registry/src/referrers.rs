//! The referrers API: an OCI index of the manifests whose `subject` is a digest.

use axum::http::request::Parts as Request;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wharf_format::media_type::OCI_INDEX;
use wharf_format::{Descriptor, Digest, RepositoryName};

use crate::error::ApiError;
use crate::{query_pairs, query_param, AppState};

#[derive(Deserialize)]
struct Annotations {
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

pub async fn get(st: &AppState, repo: &RepositoryName, subject: &Digest, req: &Request) -> Result<Response, ApiError> {
    let filter = query_param(&query_pairs(req), "artifactType");
    let referrers = st.meta.manifests().referrers(repo, subject).await?;
    let manifests: Vec<Descriptor> = referrers
        .into_iter()
        .filter(|r| filter.as_deref().is_none_or(|f| r.artifact_type.as_ref().is_some_and(|a| a.as_str() == f)))
        .map(|r| Descriptor {
            annotations: serde_json::from_slice::<Annotations>(&r.content).ok().and_then(|a| a.annotations),
            size: r.content.len() as u64,
            media_type: r.media_type,
            digest: r.digest,
            artifact_type: r.artifact_type,
            platform: None,
        })
        .collect();
    let body = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut resp = ([("content-type", OCI_INDEX)], body.to_string()).into_response();
    if filter.is_some() {
        resp.headers_mut().insert("oci-filters-applied", axum::http::HeaderValue::from_static("artifactType"));
    }
    Ok(resp)
}
