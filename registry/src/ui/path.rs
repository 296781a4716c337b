//! The web interface's paths, parsed once at the edge (by `route::classify`) into a [`UiPath`]: a path under
//! `/ui/` that names nothing is [`UiPath::Unknown`] (the interface's 404 page), and carries nothing of the path.
//!
//! - `/` redirects to `/ui/`; `/ui` and `/ui/` are the repository list;
//! - `/ui/sign-in`, `/ui/sign-out`;
//! - `/ui/r/<repository>`: a repository's tags;
//! - `/ui/r/<repository>/-/manifest/<digest>`: one manifest;
//! - `/ui/r/<repository>/-/delete`: the confirmation (GET) and the delete (POST) of a tag or manifest;
//! - `/ui/admin`, `/ui/admin/{accounts,audit,gc,quotas}`;
//! - `/ui/assets/<file>`: the stylesheet and script built into the binary.
//!
//! A repository name never has a component `-` (the OCI grammar), so `/-/` cannot be part of one.

use wharf_format::{Digest, RepositoryName};

/// A web interface path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiPath {
    /// `/`: redirects to the interface.
    Root,
    /// `/ui` and `/ui/`: the repositories.
    Repositories,
    SignIn,
    SignOut,
    /// A repository's tags.
    Repository(RepositoryName),
    /// One manifest of a repository.
    Manifest(RepositoryName, Digest),
    /// Deleting a tag or a manifest of a repository (which one is in the form).
    Delete(RepositoryName),
    Admin(AdminPage),
    Asset(Asset),
    /// A path under `/ui/` that names nothing: answered with the interface's own 404 page (it carries nothing of
    /// the path, so nothing unparsed reaches a handler).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPage {
    Index,
    Accounts,
    Audit,
    Gc,
    Quotas,
}

/// The files built into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Css,
    Js,
}

impl UiPath {
    /// The repository the path addresses.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            UiPath::Repository(r) | UiPath::Manifest(r, _) | UiPath::Delete(r) => Some(r),
            _ => None,
        }
    }
}

/// Whether `path` (not decoded) belongs to the interface: `/`, `/ui` or under `/ui/`.
pub fn is_ui(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Classifies a path [`is_ui`] accepted: what it names, or [`UiPath::Unknown`].
pub fn of(path: &str) -> UiPath {
    parse(path).unwrap_or(UiPath::Unknown)
}

/// Parses a path [`is_ui`] accepted; `None` if it names nothing.
fn parse(path: &str) -> Option<UiPath> {
    if path == "/" {
        return Some(UiPath::Root);
    }
    let tail = match path.strip_prefix("/ui") {
        Some("") | Some("/") => return Some(UiPath::Repositories),
        Some(t) => t.strip_prefix('/')?,
        None => return None,
    };
    match tail {
        "repositories" => return Some(UiPath::Repositories),
        "sign-in" => return Some(UiPath::SignIn),
        "sign-out" => return Some(UiPath::SignOut),
        "admin" | "admin/" => return Some(UiPath::Admin(AdminPage::Index)),
        "admin/accounts" => return Some(UiPath::Admin(AdminPage::Accounts)),
        "admin/audit" => return Some(UiPath::Admin(AdminPage::Audit)),
        "admin/gc" => return Some(UiPath::Admin(AdminPage::Gc)),
        "admin/quotas" => return Some(UiPath::Admin(AdminPage::Quotas)),
        "assets/ui.css" => return Some(UiPath::Asset(Asset::Css)),
        "assets/ui.js" => return Some(UiPath::Asset(Asset::Js)),
        _ => {}
    }
    let rest = tail.strip_prefix("r/")?;
    let (name, action) = match rest.split_once("/-/") {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    let repo: RepositoryName = name.parse().ok()?;
    match action {
        None => Some(UiPath::Repository(repo)),
        Some("delete") => Some(UiPath::Delete(repo)),
        Some(a) => {
            let digest: Digest = a.strip_prefix("manifest/")?.parse().ok()?;
            Some(UiPath::Manifest(repo, digest))
        }
    }
}

/// The path of a repository's page (names are URL-safe: the OCI grammar allows only `[a-z0-9._/-]`).
pub fn repository(repo: &RepositoryName) -> String {
    format!("/ui/r/{repo}")
}

/// The path of a manifest's page.
pub fn manifest(repo: &RepositoryName, digest: &Digest) -> String {
    format!("/ui/r/{repo}/-/manifest/{digest}")
}

/// The path of the delete form of a repository.
pub fn delete(repo: &RepositoryName) -> String {
    format!("/ui/r/{repo}/-/delete")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = |s: &str| -> RepositoryName { s.parse().unwrap() };
        assert_eq!(parse("/"), Some(UiPath::Root));
        assert_eq!(parse("/ui"), Some(UiPath::Repositories));
        assert_eq!(parse("/ui/"), Some(UiPath::Repositories));
        assert_eq!(parse("/ui/sign-in"), Some(UiPath::SignIn));
        assert_eq!(parse("/ui/r/team/app"), Some(UiPath::Repository(r("team/app"))));
        assert_eq!(parse("/ui/r/team/app/-/delete"), Some(UiPath::Delete(r("team/app"))));
        assert_eq!(parse(&format!("/ui/r/a/-/manifest/{d}")), Some(UiPath::Manifest(r("a"), d.parse().unwrap())));
        assert_eq!(parse("/ui/admin/audit"), Some(UiPath::Admin(AdminPage::Audit)));
        assert_eq!(parse("/ui/assets/ui.js"), Some(UiPath::Asset(Asset::Js)));
        for bad in [
            "/uix",
            "/ui/r/",
            "/ui/r/Team/App",
            "/ui/r/a/-/nope",
            "/ui/r/a/-/manifest/sha256:zz",
            "/ui/r/a/../b",
            "/ui/r/a/%2e%2e",
            "/ui/assets/../x",
            "/ui/admin/nope",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(is_ui("/") && is_ui("/ui") && is_ui("/ui/x") && !is_ui("/uix") && !is_ui("/v2/"));
    }
}
