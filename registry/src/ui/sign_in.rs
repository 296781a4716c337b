//! The sign-in page and form, and sign-out. The checks (CSRF, the password through the login throttle, robots
//! refused, the session) are `auth::session`'s; this module renders and redirects.

use askama::Template;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::layout::{html_status, Chrome};
use super::{field, form, query, Viewer};
use crate::auth::session::SignIn;
use crate::auth::{Auth, Refusal};
use crate::error::{ApiError, Kind};

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct Page {
    chrome: Chrome,
    next: String,
    problem: Option<String>,
}

/// Where to go after signing in: a path of the interface, never another origin (`//host`, `/\host`) or anything
/// outside `/ui/`.
fn next_of(v: Option<&str>) -> String {
    match v {
        Some(p)
            if (p == "/ui" || p.starts_with("/ui/") || p.starts_with("/ui?"))
                && !p.contains("//")
                && !p.contains('\\')
                && !p.contains("..")
                && !p.to_ascii_lowercase().contains("%2e")
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

fn off() -> ApiError {
    ApiError::new(Kind::NoSuchEndpoint, "access control is off: there is nothing to sign in to")
}

pub fn page(viewer: &Viewer, auth: Option<&Auth>, req: &Parts) -> Result<Response, ApiError> {
    auth.ok_or_else(off)?;
    let q = query(req);
    let next = next_of(field(&q, "next"));
    if viewer.id.account.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let chrome = Chrome::new(viewer, "Sign in", req);
    html_status(StatusCode::OK, &Page { chrome, next, problem: None })
}

pub async fn submit(viewer: &Viewer, auth: Option<&Auth>, req: Request) -> Result<Response, ApiError> {
    let auth = auth.ok_or_else(off)?;
    let addr = auth.client_ip(&req);
    let (parts, body) = req.into_parts();
    let mut chrome = Chrome::new(viewer, "Sign in", &parts);
    chrome.here = "/ui/sign-in".into();
    let fields = form(Request::from_parts(parts, body)).await?;
    let next = next_of(field(&fields, "next"));
    let user = field(&fields, "user").unwrap_or("");
    let password = field(&fields, "password").unwrap_or("");
    let csrf = field(&fields, "csrf").unwrap_or("");
    let (status, problem) = match auth.sign_in(&viewer.id, user, password, csrf, addr).await {
        SignIn::Done { set_cookie } => {
            let mut resp = Redirect::to(&next).into_response();
            resp.headers_mut().append(header::SET_COOKIE, set_cookie);
            return Ok(resp);
        }
        SignIn::BadCsrf => return viewer.check_csrf(None).map(|()| Redirect::to(&next).into_response()),
        SignIn::Refused(Refusal::BadCredentials) => {
            (StatusCode::UNAUTHORIZED, "Wrong account name or password.".into())
        }
        SignIn::Refused(Refusal::Throttled(secs)) => {
            (StatusCode::TOO_MANY_REQUESTS, format!("Too many failed sign-ins: try again in {secs} s."))
        }
        SignIn::Robot => (StatusCode::FORBIDDEN, "Robots cannot sign in to the web interface.".into()),
        SignIn::Failed => return Err(ApiError::internal("storing a web session".into())),
    };
    html_status(status, &Page { chrome, next, problem: Some(problem) })
}

pub async fn sign_out(viewer: &Viewer, auth: Option<&Auth>, req: Request) -> Result<Response, ApiError> {
    let auth = auth.ok_or_else(off)?;
    let fields = form(req).await?;
    viewer.check_csrf(field(&fields, "csrf"))?;
    let mut resp = Redirect::to("/ui/").into_response();
    if let Some(c) = auth.sign_out(&viewer.id).await {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sign_in_returns_only_to_the_interface() {
        use super::next_of;
        assert_eq!(next_of(Some("/ui/r/team/app?sort=name")), "/ui/r/team/app?sort=name");
        for bad in [
            "//evil.example/ui/",
            "https://evil.example/",
            "/ui//evil",
            "/ui/\\evil",
            "/v2/",
            "/ui/\n",
            "/ui/../v2/",
            "/ui/%2E%2E/v2/",
        ] {
            assert_eq!(next_of(Some(bad)), "/ui/", "{bad:?}");
        }
        assert_eq!(next_of(None), "/ui/");
    }
}
