//! The stylesheet and script, built into the binary (`registry/assets/ui/`): no CDN, no build step.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::layout::CSP;
use super::path::Asset;

const CSS: &str = include_str!("../../assets/ui/ui.css");
const JS: &str = include_str!("../../assets/ui/ui.js");

pub fn serve(a: Asset) -> Response {
    let (body, kind) = match a {
        Asset::Css => (CSS, "text/css; charset=utf-8"),
        Asset::Js => (JS, "text/javascript; charset=utf-8"),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    resp
}
