//! The chrome every page shares (title, who is signed in, the sign-out form, the navigation), rendering, the
//! security headers of every interface response, and error pages.
//!
//! The `Content-Security-Policy` allows nothing but this origin: scripts and styles only from `/ui/assets/`, no
//! inline script or style, no frames, forms posting only here. The interface has no request to any other host, and
//! the browser refuses one if a page ever tried.

use askama::Template;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::Viewer;
use crate::error::{ApiError, Kind};

/// The policy: this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the shared layout (`templates/ui/base.html`) shows: every page template has a `chrome` field.
pub struct Chrome {
    pub title: String,
    /// The signed-in account.
    pub account: Option<String>,
    /// The token forms carry (`<input type="hidden" name="csrf">`).
    pub csrf: String,
    /// Whether the viewer sees the administration pages.
    pub admin: bool,
    /// Whether access control is on (else there is no sign-in).
    pub auth_on: bool,
    /// The page's path and query, for the sign-in form's return.
    pub here: String,
    /// What a form just did, shown at the top of the page it redirected to (`#flash`): a repository page after a
    /// delete.
    pub flash: Option<String>,
}

impl Chrome {
    pub fn new(viewer: &Viewer, title: impl Into<String>, req: &Parts) -> Chrome {
        Chrome {
            title: title.into(),
            account: viewer.id.account.clone(),
            csrf: viewer.id.csrf.clone(),
            admin: viewer.is_admin() && viewer.auth_on(),
            auth_on: viewer.auth_on(),
            here: req.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/ui/".into()),
            flash: super::field(&super::query(req), "deleted").and_then(super::delete::flash),
        }
    }
}

/// Renders a page template with status 200.
pub fn html<T: Template>(page: &T) -> Result<Response, ApiError> {
    html_status(StatusCode::OK, page)
}

/// Renders a page template with `status`.
pub fn html_status<T: Template>(status: StatusCode, page: &T) -> Result<Response, ApiError> {
    let body = page.render().map_err(|e| ApiError::internal(format!("rendering a page: {e}")))?;
    Ok((status, Html(body)).into_response())
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    reason: String,
    message: String,
}

/// The response to an interface request: the page or its error page, with the security headers and any cookie
/// the viewer's identity needs set.
pub fn finish(viewer: &Viewer, answer: Result<Response, ApiError>) -> Response {
    let mut resp = match answer {
        Ok(r) => r,
        Err(e) => error_page(viewer, e),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if viewer.tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if let Some(c) = &viewer.id.set_cookie {
        h.append(header::SET_COOKIE, c.clone());
    }
    resp
}

/// An error as a page, with the status of the registry's one table (and its headers, such as `Retry-After`, and
/// its extensions, so the access log and metrics see the fault).
fn error_page(viewer: &Viewer, e: ApiError) -> Response {
    let message = if e.kind == Kind::Internal { "internal server error".to_owned() } else { e.message.clone() };
    let mut api = e.into_response();
    let status = api.status();
    let page = ErrorPage {
        chrome: Chrome {
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            account: viewer.id.account.clone(),
            csrf: viewer.id.csrf.clone(),
            admin: viewer.is_admin() && viewer.auth_on(),
            auth_on: viewer.auth_on(),
            here: "/ui/".into(),
            flash: None,
        },
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        message,
    };
    let body = page.render().unwrap_or_else(|_| format!("<!doctype html><title>{}</title>", status.as_u16()));
    let mut resp = (status, Html(body)).into_response();
    *resp.extensions_mut() = std::mem::take(api.extensions_mut());
    for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = api.headers().get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    resp
}

/// Formats a byte count for people: `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Formats Unix seconds as UTC: `2026-12-07 06:32:22Z`.
pub fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::bytes(0), "0 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(5 << 30), "5.0 GiB");
        assert_eq!(super::time(0), "1970-01-01 00:00:00Z");
    }
}
