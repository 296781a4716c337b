//! The web interface under `/ui/`: server-rendered pages from compile-checked templates (`registry/templates/ui/`,
//! askama), a stylesheet and a small script of our own built into the binary, on the registry's port and behind
//! the same gate.
//!
//! Every `/ui/` path is parsed once by `route::classify` into a [`path::UiPath`]; the gate identifies the viewer
//! (`auth::session`: the session cookie, or anonymous) and leaves a `WebIdentity` in the request; [`serve`]
//! dispatches. Pages show only what the viewer may pull, offer a delete only to those who may delete, and every
//! form carries the viewer's CSRF token (checked here before anything changes). Errors render as pages with the
//! status of the registry's one error table (`error::Kind::answer`).
//!
//! - [`path`]: the paths;
//! - `layout`: the page chrome, security headers (a strict `Content-Security-Policy`: nothing but this origin),
//!   error pages;
//! - `assets`: `ui.css` and `ui.js`;
//! - `sign_in`: the sign-in and sign-out forms (the checks are `auth::session`'s);
//! - `repos`, `tags`: the repository list and a repository's tags;
//! - `trust`: each tag's signed status, verified here against the TUF 1.0 and Notary v1 data this registry holds;
//! - `manifest`, `delete`: a manifest's page, and deleting a tag or manifest;
//! - `admin`: accounts, robots, grants, the audit log, the last collection, quotas;
//! - [`search`]: Docker's v1 search API (`docker search HOST/TERM`).

mod admin;
mod assets;
mod delete;
mod image;
mod layout;
mod manifest;
pub mod path;
mod repos;
pub mod search;
mod sign_in;
mod tags;
mod trust;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::session::{identify_off, WebIdentity};
use crate::auth::Auth;
use crate::error::{ApiError, Kind};
use crate::Registry;
pub use admin::keep_gc_report;
pub use layout::Chrome;
use path::UiPath;

/// `[ui]`: the validated settings.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Whether `/ui/` is served (`/v1/search` answers either way).
    pub enabled: bool,
    /// Whether the server speaks HTTPS (cookies are then `Secure`).
    pub tls: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings { enabled: true, tls: false }
    }
}

/// Who is looking, as the pages ask it: what they may see and do.
#[derive(Clone)]
pub struct Viewer {
    pub id: WebIdentity,
    /// Whether the server speaks HTTPS (for the pull commands' host and the cookies).
    pub tls: bool,
}

impl Viewer {
    fn of(req: &Request, tls: bool) -> Viewer {
        let id = req.extensions().get::<WebIdentity>().cloned().unwrap_or_else(|| identify_off(req, tls));
        Viewer { id, tls }
    }

    /// Whether access control is on.
    pub fn auth_on(&self) -> bool {
        self.id.caller.is_some()
    }

    pub fn may_pull(&self, repo: &str) -> bool {
        self.id.caller.as_ref().is_none_or(|c| c.may_pull(repo))
    }

    pub fn may_delete(&self, repo: &str) -> bool {
        use crate::auth::scope::{Actions, Resource, Scope};
        let scope = Scope { resource: Resource::Repository(repo.to_owned()), actions: Actions::DELETE };
        self.id.caller.as_ref().is_none_or(|c| c.allows(&scope))
    }

    /// Administrators see accounts, grants, the audit log, collections and quotas. With access control off there
    /// are no accounts, and everyone is one (as on the API).
    pub fn is_admin(&self) -> bool {
        self.id.caller.as_ref().is_none_or(|c| c.is_administrator())
    }

    /// The pull rights as ranges of the repository index, for listings (all of it with access control off).
    pub fn pull_ranges(&self) -> Vec<wharf_storage::NameRange> {
        match &self.id.caller {
            Some(c) => c.pull_ranges(),
            None => vec![wharf_storage::NameRange::all()],
        }
    }

    /// A form's CSRF token (its `csrf` field) checked against the viewer's.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), ApiError> {
        match presented {
            Some(p) if self.id.csrf_matches(p) => Ok(()),
            _ => {
                Err(ApiError::new(Kind::Denied, "the form's CSRF token is missing or wrong: reload the page and retry"))
            }
        }
    }
}

/// Serves one interface request. `auth` is `None` when access control is off.
pub async fn serve(st: Arc<Registry>, auth: Option<Arc<Auth>>, path: UiPath, req: Request) -> Response {
    let tls = st.ui.tls;
    // With access control on, the gate names every viewer; a request it did not see is refused, never shown all.
    if auth.is_some() && req.extensions().get::<WebIdentity>().is_none() {
        tracing::error!(path = %req.uri().path(), "an interface request reached the pages without the gate");
        let anonymous = Viewer { id: WebIdentity::nobody(), tls };
        return layout::finish(&anonymous, Err(ApiError::internal("the request was not identified".into())));
    }
    let viewer = Viewer::of(&req, tls);
    if !st.ui.enabled && !matches!(path, UiPath::Root) {
        return layout::finish(&viewer, Err(ApiError::new(Kind::NoSuchEndpoint, "the web interface is off")));
    }
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let answer = if read {
        // Pages read only the request's head (`Parts` is `Sync`, so a page's future may hold it across awaits).
        let (parts, _) = req.into_parts();
        let p = &parts;
        match path {
            UiPath::Root => Ok(Redirect::to("/ui/").into_response()),
            UiPath::Asset(a) => return assets::serve(a),
            UiPath::SignIn => sign_in::page(&viewer, auth.as_deref(), p),
            UiPath::Repositories => repos::page(&st, &viewer, p).await,
            UiPath::Repository(r) => tags::page(&st, &viewer, &r, p).await,
            UiPath::Manifest(r, d) => manifest::page(&st, &viewer, &r, &d, p).await,
            UiPath::Delete(r) => delete::confirm(&st, &viewer, &r, p).await,
            UiPath::Admin(a) => admin::page(&st, &viewer, a, p).await,
            UiPath::SignOut => Err(ApiError::new(Kind::MethodNotAllowed, "sign out with the form's button (POST)")),
            UiPath::Unknown => Err(ApiError::new(Kind::NoSuchEndpoint, "no such page")),
        }
    } else if *req.method() == Method::POST {
        match path {
            UiPath::SignIn => sign_in::submit(&viewer, auth.as_deref(), req).await,
            UiPath::SignOut => sign_in::sign_out(&viewer, auth.as_deref(), req).await,
            UiPath::Delete(r) => delete::submit(&st, &viewer, &r, req).await,
            _ => Err(ApiError::new(Kind::MethodNotAllowed, "method not allowed here")),
        }
    } else {
        Err(ApiError::new(Kind::MethodNotAllowed, "method not allowed here"))
    };
    layout::finish(&viewer, answer)
}

/// Reads an `application/x-www-form-urlencoded` body of at most 16 KiB into its fields.
pub async fn form(req: Request) -> Result<Vec<(String, String)>, ApiError> {
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| ApiError::new(Kind::TooLarge, "the form is larger than 16 KiB"))?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The value of `name` in a form or query.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The fields of the request's query string.
pub fn query(req: &Parts) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}
