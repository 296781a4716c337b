//! The one classification of a request, shared by the access-control gate and the routers.
//!
//! Every request is classified once, by [`classify`], before anything else sees it: the classification travels in
//! the request's extensions ([`Classified`]), the gate decides on it ([`Kind::rule`]) and `serve::compose` dispatches
//! on it. A path no parser accepts is [`Route::Invalid`]: refused with its error by whoever meets it first, never
//! passed to a handler. Every [`Kind`] names its rule in one exhaustive match, so a new kind cannot exist without
//! one, and `tests/e2e/seams/route_matrix.rs` sends a request of every kind as every kind of caller.

use axum::http::Method;
use wharf_format::notary::Gun;
use wharf_format::RepositoryName;
use wharf_notary::tuf::route::{RouteError, TrustPath};
use wharf_notary::v1::V1Path;

use crate::endpoint::{self, Endpoint, EndpointError};
use crate::error::{ApiError, Kind as ErrorKind};
use crate::ui::path::UiPath;

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the version check.
    Base,
    /// The OCI Distribution API.
    Registry(Endpoint),
    /// A repository's TUF 1.0 repository under `/v2/<name>/_tuf/`.
    Tuf(RepositoryName, TrustPath),
    /// A Notary v1 collection under `/v2/<gun>/_trust/`, whose GUN names a repository here.
    NotaryV1 { gun: Gun, repository: RepositoryName, path: V1Path },
    /// `/v2/_trust/changefeed`: the changefeed of every collection.
    Changefeed,
    /// `/auth/token`.
    Token,
    /// `/healthz`, `/readyz`, `/_notary_server/health`.
    Health,
    /// `/metrics`: Prometheus metrics, behind `[metrics]`'s own token and address rules, not the gate's.
    Metrics,
    /// The web interface: `/`, `/ui`, `/ui/...`.
    Ui(UiPath),
    /// Docker's v1 search API (`docker search HOST/TERM`): `/v1/_ping` and `/v1/search`.
    DockerV1(DockerV1),
    /// Anything else: refused with this error.
    Invalid(Invalid),
}

/// The two paths of Docker's v1 API that `docker search` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerV1 {
    Ping,
    Search,
}

/// Why a path is not classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A registry path that does not parse.
    Registry(EndpointError),
    /// A path with a trust marker (`/_tuf/`, `/_trust/`) that does not parse as one trust path.
    Trust { name_invalid: bool },
    /// Outside `/v2/` and not one of the service paths.
    Outside,
}

impl Invalid {
    /// The refusal.
    pub fn answer(&self) -> ApiError {
        match self {
            Invalid::Registry(e) => ApiError::from(e.clone()),
            Invalid::Trust { name_invalid: true } => {
                ApiError::new(ErrorKind::NameInvalid, "invalid repository name in a trust path")
            }
            Invalid::Trust { name_invalid: false } | Invalid::Outside => {
                ApiError::new(ErrorKind::NoSuchEndpoint, "no such endpoint")
            }
        }
    }
}

/// A request's classification, computed once and kept in its extensions.
#[derive(Debug, Clone)]
pub struct Classified {
    pub route: Route,
    /// Whether the repository the route names is mirrored from an upstream.
    pub mirrored: bool,
}

impl Classified {
    pub fn kind(&self, method: &Method) -> Kind {
        self.route.kind(method, self.mirrored)
    }
}

/// Classifies `path` (the URI path, not decoded). `mirrored` says whether a repository is a mirror's.
pub fn classify(path: &str, mirrored: &dyn Fn(&RepositoryName) -> bool) -> Classified {
    let route = route_of(path);
    let mirrored = route.repository().is_some_and(mirrored);
    Classified { route, mirrored }
}

fn route_of(path: &str) -> Route {
    let tail = match path.strip_prefix("/v2/") {
        Some(t) => t,
        None if path == "/v2" => "",
        None => {
            return match path {
                "/auth/token" => Route::Token,
                "/healthz" | "/readyz" | "/_notary_server/health" => Route::Health,
                "/metrics" => Route::Metrics,
                "/v1/_ping" => Route::DockerV1(DockerV1::Ping),
                "/v1/search" => Route::DockerV1(DockerV1::Search),
                p if crate::ui::path::is_ui(p) => Route::Ui(crate::ui::path::of(p)),
                _ => Route::Invalid(Invalid::Outside),
            }
        }
    };
    if tail.is_empty() {
        return Route::Base;
    }
    if tail == "_trust/changefeed" {
        return Route::Changefeed;
    }
    let tuf = wharf_notary::tuf::route::is_tuf(tail);
    let v1 = wharf_notary::v1::is_v1(tail);
    match (tuf, v1) {
        // One path, two trust formats: no parse may decide which.
        (true, true) => Route::Invalid(Invalid::Trust { name_invalid: false }),
        (false, true) => match wharf_notary::v1::route::parse(tail) {
            Some((Some(gun), path)) => match gun.repository() {
                Some(repository) => Route::NotaryV1 { gun, repository, path },
                None => Route::Invalid(Invalid::Trust { name_invalid: true }),
            },
            _ => Route::Invalid(Invalid::Trust { name_invalid: false }),
        },
        (true, false) => match wharf_notary::tuf::route::parse(tail) {
            Ok((repo, path)) => Route::Tuf(repo, path),
            Err(e) => Route::Invalid(Invalid::Trust { name_invalid: e == RouteError::Name }),
        },
        (false, false) => match endpoint::parse(tail) {
            Ok(e) => Route::Registry(e),
            Err(e) => Route::Invalid(Invalid::Registry(e)),
        },
    }
}

impl Route {
    /// The repository the route addresses.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Route::Registry(e) => e.repository(),
            Route::Tuf(r, _) | Route::NotaryV1 { repository: r, .. } => Some(r),
            Route::Ui(u) => u.repository(),
            Route::Base
            | Route::Changefeed
            | Route::Token
            | Route::Health
            | Route::Metrics
            | Route::DockerV1(_)
            | Route::Invalid(_) => None,
        }
    }

    /// The kind of `method` on this route.
    pub fn kind(&self, method: &Method, mirrored: bool) -> Kind {
        let read = matches!(*method, Method::GET | Method::HEAD);
        let delete = *method == Method::DELETE;
        match self {
            Route::Base => Kind::Base,
            Route::Token => Kind::Token,
            Route::Health => Kind::Health,
            Route::Metrics => Kind::Metrics,
            Route::Ui(_) if read => Kind::Ui,
            Route::Ui(_) => Kind::UiForm,
            Route::DockerV1(_) => Kind::Search,
            Route::Invalid(_) => Kind::Invalid,
            Route::Changefeed => Kind::Changefeed,
            Route::Registry(e) => match e {
                Endpoint::Catalog => Kind::Catalog,
                _ if mirrored && read => Kind::MirrorRead,
                _ if mirrored && delete => Kind::MirrorDelete,
                _ if mirrored => Kind::MirrorWrite,
                Endpoint::Tags(_) => Kind::Tags,
                Endpoint::Referrers(..) => Kind::Referrers,
                Endpoint::Manifest(..) | Endpoint::ManifestBadReference(_) if read => Kind::ManifestRead,
                Endpoint::Manifest(..) | Endpoint::ManifestBadReference(_) if delete => Kind::ManifestDelete,
                Endpoint::Manifest(..) | Endpoint::ManifestBadReference(_) => Kind::ManifestWrite,
                Endpoint::Blob(..) if read => Kind::BlobRead,
                Endpoint::Blob(..) if delete => Kind::BlobDelete,
                Endpoint::Blob(..) => Kind::BlobWrite,
                Endpoint::UploadStart(_) => Kind::UploadStart,
                Endpoint::Upload(..) => Kind::Upload,
            },
            Route::Tuf(..) if mirrored && read => Kind::MirrorTufRead,
            Route::Tuf(..) if mirrored => Kind::MirrorTufWrite,
            Route::Tuf(..) if read => Kind::TufRead,
            Route::Tuf(..) => Kind::TufWrite,
            // A mirror holds no Notary v1 collection of its own: reads find none, writes are refused.
            Route::NotaryV1 { path: V1Path::Key(_), .. } if mirrored => Kind::MirrorTufWrite,
            Route::NotaryV1 { .. } if mirrored && read => Kind::MirrorTufRead,
            Route::NotaryV1 { .. } if mirrored => Kind::MirrorTufWrite,
            // Asking for a server key may create one: a write.
            Route::NotaryV1 { path: V1Path::Key(_), .. } => Kind::NotaryV1Write,
            Route::NotaryV1 { .. } if read => Kind::NotaryV1Read,
            Route::NotaryV1 { .. } => Kind::NotaryV1Write,
        }
    }
}

/// What access a kind of request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone: the endpoint checks nothing or checks credentials itself.
    Public,
    /// Any authenticated caller.
    Login,
    /// `registry:catalog:*`.
    Catalog,
    /// Pull on the route's repository.
    Pull,
    /// Push (with pull) on the route's repository.
    Push,
    /// Delete on the route's repository.
    Delete,
    /// Sign on the route's repository.
    Sign,
    /// Anyone; the gate only says who is calling (a web session's cookie on `/ui/`, the `Authorization` header on
    /// `/v1/search`), and the handler shows or allows what that caller may pull, delete or administer.
    Identify,
    /// Nobody: the request is refused.
    Refuse,
}

/// Declares [`Kind`] and `Kind::ALL` from one list, so no kind can be missing from `ALL` (the matrix test iterates it).
macro_rules! kinds {
    ($($k:ident),* $(,)?) => {
        /// Every kind of request.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $($k),* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$k),*];
        }
    };
}

kinds!(
    Base,
    Catalog,
    Tags,
    Referrers,
    ManifestRead,
    ManifestWrite,
    ManifestDelete,
    BlobRead,
    BlobWrite,
    BlobDelete,
    UploadStart,
    Upload,
    TufRead,
    TufWrite,
    NotaryV1Read,
    NotaryV1Write,
    Changefeed,
    MirrorRead,
    MirrorWrite,
    MirrorDelete,
    MirrorTufRead,
    MirrorTufWrite,
    Token,
    Health,
    Metrics,
    Ui,
    UiForm,
    Search,
    Invalid,
);

impl Kind {
    /// The rule of each kind: the one table the gate applies.
    pub fn rule(self) -> Rule {
        match self {
            // `/metrics` answers to `[metrics]` (its token and addresses), never to registry credentials.
            Kind::Token | Kind::Health | Kind::Metrics => Rule::Public,
            // Each page and form checks the caller's rights on what it shows or changes; forms also need their
            // CSRF token. The search lists only what the caller may pull.
            Kind::Ui | Kind::UiForm | Kind::Search => Rule::Identify,
            Kind::Base => Rule::Login,
            Kind::Catalog | Kind::Changefeed => Rule::Catalog,
            Kind::Tags
            | Kind::Referrers
            | Kind::ManifestRead
            | Kind::BlobRead
            | Kind::TufRead
            | Kind::NotaryV1Read
            | Kind::MirrorRead
            | Kind::MirrorTufRead => Rule::Pull,
            Kind::ManifestWrite | Kind::BlobWrite | Kind::UploadStart | Kind::Upload | Kind::MirrorWrite => Rule::Push,
            Kind::ManifestDelete | Kind::BlobDelete | Kind::MirrorDelete => Rule::Delete,
            Kind::TufWrite | Kind::NotaryV1Write | Kind::MirrorTufWrite => Rule::Sign,
            Kind::Invalid => Rule::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str, expect: &str) {
        let c = classify(path, &|r| r.as_str().starts_with("mirror/"));
        let got = format!("{:?}", c.kind(&method));
        assert_eq!(got, expect, "{method} {path}: {:?}", c.route);
    }

    #[test]
    fn table() {
        let h = "ab".repeat(32);
        let g = "127.0.0.1:5000/team/app/_trust";
        let rows: &[(Method, String, &str)] = &[
            (Method::GET, "/v2/".into(), "Base"),
            (Method::GET, "/v2".into(), "Base"),
            (Method::GET, "/v2/_catalog".into(), "Catalog"),
            (Method::GET, "/v2/a/tags/list".into(), "Tags"),
            (Method::GET, "/v2/a/manifests/v1".into(), "ManifestRead"),
            (Method::PUT, "/v2/a/manifests/v1".into(), "ManifestWrite"),
            (Method::DELETE, "/v2/a/manifests/.bad".into(), "ManifestDelete"),
            (Method::HEAD, format!("/v2/a/blobs/sha256:{h}"), "BlobRead"),
            (Method::PUT, format!("/v2/a/blobs/sha256:{h}"), "BlobWrite"),
            (Method::DELETE, format!("/v2/a/blobs/sha256:{h}"), "BlobDelete"),
            (Method::POST, "/v2/a/blobs/uploads/".into(), "UploadStart"),
            (Method::GET, format!("/v2/a/referrers/sha256:{h}"), "Referrers"),
            (Method::GET, "/v2/a/_tuf/root.json".into(), "TufRead"),
            (Method::GET, format!("/v2/a/_tuf/targets/{h}.v1"), "TufRead"),
            (Method::PUT, "/v2/a/_tuf/root.json".into(), "TufWrite"),
            (Method::POST, "/v2/a/_tuf/publish".into(), "TufWrite"),
            (Method::GET, format!("/v2/{g}/tuf/root.json"), "NotaryV1Read"),
            (Method::GET, format!("/v2/{g}/tuf/timestamp.key"), "NotaryV1Write"),
            (Method::DELETE, format!("/v2/{g}/tuf/"), "NotaryV1Write"),
            (Method::GET, "/v2/_trust/changefeed".into(), "Changefeed"),
            (Method::GET, "/v2/mirror/x/manifests/v1".into(), "MirrorRead"),
            (Method::PUT, "/v2/mirror/x/manifests/v1".into(), "MirrorWrite"),
            (Method::DELETE, "/v2/mirror/x/manifests/v1".into(), "MirrorDelete"),
            (Method::GET, "/v2/mirror/x/_tuf/timestamp.json".into(), "MirrorTufRead"),
            (Method::POST, "/v2/mirror/x/_tuf/publish".into(), "MirrorTufWrite"),
            (Method::GET, "/v2/127.0.0.1:5000/mirror/x/_trust/tuf/root.json".into(), "MirrorTufRead"),
            (Method::GET, "/v2/127.0.0.1:5000/mirror/x/_trust/tuf/timestamp.key".into(), "MirrorTufWrite"),
            (Method::DELETE, "/v2/127.0.0.1:5000/mirror/x/_trust/tuf/".into(), "MirrorTufWrite"),
            (Method::POST, "/auth/token".into(), "Token"),
            (Method::GET, "/_notary_server/health".into(), "Health"),
            // The attacks of issue 20: every one is refused, whatever the gate and the handlers would think.
            (Method::GET, format!("/v2/mirror/x/_tuf/targets/{h}.x/_trust/y"), "Invalid"),
            (Method::GET, format!("/v2/mirror/x/_tuf/targets/{h}.x/../../../other/manifests/v1"), "Invalid"),
            (Method::GET, format!("/v2/mirror/x/_tuf/targets/{h}.%2e%2e"), "Invalid"),
            (Method::GET, format!("/v2/mirror/x/_tuf/targets/{h}.a%2fb"), "Invalid"),
            (Method::POST, "/v2/127.0.0.1:5000/Team/App/_trust/tuf/".into(), "Invalid"),
            (Method::GET, "/v2/127.0.0.1:5000/Team/App/_trust/tuf/timestamp.key".into(), "Invalid"),
            (Method::GET, "/v2/a/_trust/nope".into(), "Invalid"),
            (Method::GET, "/v2/a/nope".into(), "Invalid"),
            (Method::GET, "/v2/A/manifests/v1".into(), "Invalid"),
            (Method::GET, "/metrics".into(), "Metrics"),
            (Method::GET, "/metrics-or-anything".into(), "Invalid"),
            (Method::GET, "/metrics/".into(), "Invalid"),
            (Method::GET, "/".into(), "Ui"),
            (Method::GET, "/ui/r/team/app".into(), "Ui"),
            (Method::POST, "/ui/r/team/app/-/delete".into(), "UiForm"),
            (Method::POST, "/ui/sign-in".into(), "UiForm"),
            (Method::GET, "/ui/r/Team/App".into(), "Ui"),
            (Method::GET, "/uix".into(), "Invalid"),
            (Method::GET, "/v1/search".into(), "Search"),
            (Method::GET, "/v1/_ping".into(), "Search"),
            (Method::GET, "/v1/other".into(), "Invalid"),
        ];
        for (m, p, k) in rows {
            check(m.clone(), p, k);
        }
    }

    #[test]
    fn every_kind_has_a_rule() {
        // `rule` is an exhaustive match: a kind without a rule does not compile. The test makes sure every kind in
        // ALL maps to a rule and that Invalid alone refuses.
        let refused: Vec<Kind> = Kind::ALL.iter().copied().filter(|k| k.rule() == Rule::Refuse).collect();
        assert_eq!(refused, vec![Kind::Invalid]);
        assert_eq!(Kind::ALL.len(), 29);
    }
}
