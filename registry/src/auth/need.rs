//! What a classified request needs: the gate's rule table ([`crate::route::Kind::rule`]) applied to the request's
//! repository. Pure, table-tested.

use wharf_format::RepositoryName;

use super::scope::{Actions, Resource, Scope};
use crate::endpoint::Endpoint;
use crate::route::{Classified, Invalid, Route, Rule};

/// What a request needs before it reaches a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing from the gate: the endpoint is public or checks credentials itself (`/auth/token`, health).
    Public,
    /// Any authenticated caller (`GET /v2/`, the version check and `docker login` probe).
    Login,
    /// These scopes; `optional` ones (the source of a cross-repository mount) are asked for too, and the request
    /// proceeds without them (the mount becomes a plain upload).
    Scopes { required: Vec<Scope>, optional: Vec<Scope> },
    /// Anyone; the gate identifies the caller (a web session on `/ui/`, credentials on `/v1/search`) and the handler
    /// decides what to show or allow.
    Identify,
    /// Nobody: the request is refused with this answer, whoever asks.
    Refuse(Invalid),
}

fn repo(name: &RepositoryName, actions: Actions) -> Scope {
    Scope { resource: Resource::Repository(name.as_str().to_owned()), actions }
}

/// What `method` on the classified request (with `query`) needs.
pub fn need(method: &axum::http::Method, c: &Classified, query: Option<&str>) -> Need {
    let one = |s: Scope| Need::Scopes { required: vec![s], optional: vec![] };
    let on_repo = |actions: Actions| match c.route.repository() {
        Some(r) => one(repo(r, actions)),
        // A repository rule on a route without a repository cannot be decided: refuse.
        None => Need::Refuse(Invalid::Outside),
    };
    match c.kind(method).rule() {
        Rule::Public => Need::Public,
        Rule::Login => Need::Login,
        Rule::Identify => Need::Identify,
        Rule::Catalog => one(Scope { resource: Resource::Catalog, actions: Actions::ALL }),
        Rule::Pull => on_repo(Actions::PULL),
        Rule::Delete => on_repo(Actions::DELETE),
        Rule::Sign => on_repo(Actions::SIGN),
        Rule::Push => match &c.route {
            Route::Registry(Endpoint::UploadStart(r)) if !c.mirrored => {
                let from = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "from")
                    .and_then(|(_, v)| v.parse::<RepositoryName>().ok());
                Need::Scopes {
                    required: vec![repo(r, Actions::PULL.union(Actions::PUSH))],
                    optional: from.map(|f| repo(&f, Actions::PULL)).into_iter().collect(),
                }
            }
            _ => on_repo(Actions::PULL.union(Actions::PUSH)),
        },
        Rule::Refuse => match &c.route {
            Route::Invalid(i) => Need::Refuse(i.clone()),
            _ => Need::Refuse(Invalid::Outside),
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::route::classify;

    #[test]
    fn needs() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let req = |m: Method, t: &str, q: Option<&str>| {
            let c = classify(&format!("/v2/{t}"), &|r| r.as_str().starts_with("mirror/"));
            match need(&m, &c, q) {
                Need::Scopes { required, optional } => {
                    let mut v: Vec<String> = required.iter().map(ToString::to_string).collect();
                    v.extend(optional.iter().map(|s| format!("?{s}")));
                    v.join(" ")
                }
                Need::Refuse(_) => "Refuse".into(),
                other => format!("{other:?}"),
            }
        };
        assert_eq!(req(Method::GET, "", None), "Login");
        assert_eq!(req(Method::HEAD, "a/manifests/v1", None), "repository:a:pull");
        assert_eq!(req(Method::PUT, "a/manifests/v1", None), "repository:a:pull,push");
        assert_eq!(req(Method::DELETE, "a/manifests/v1", None), "repository:a:delete");
        assert_eq!(req(Method::DELETE, &format!("a/blobs/{d}"), None), "repository:a:delete");
        assert_eq!(
            req(Method::POST, "a/blobs/uploads/", Some("mount=x&from=b/c")),
            "repository:a:pull,push ?repository:b/c:pull"
        );
        assert_eq!(req(Method::GET, "_catalog", None), "registry:catalog:*");
        assert_eq!(req(Method::GET, "a/_tuf/root.json", None), "repository:a:pull");
        assert_eq!(req(Method::POST, "a/_tuf/publish", None), "repository:a:sign");
        assert_eq!(req(Method::PUT, "a/_tuf/root.json", None), "repository:a:sign", "a trust write needs sign");
        assert_eq!(req(Method::DELETE, "a/_tuf/", None), "repository:a:sign");
        let g = "127.0.0.1:5000/team/app/_trust";
        assert_eq!(req(Method::GET, &format!("{g}/tuf/root.json"), None), "repository:team/app:pull");
        assert_eq!(req(Method::GET, &format!("{g}/tuf/timestamp.key"), None), "repository:team/app:sign");
        assert_eq!(req(Method::POST, &format!("{g}/tuf/"), None), "repository:team/app:sign");
        assert_eq!(req(Method::DELETE, &format!("{g}/tuf/"), None), "repository:team/app:sign");
        assert_eq!(req(Method::GET, &format!("{g}/changefeed"), Some("records=1")), "repository:team/app:pull");
        assert_eq!(req(Method::GET, "_trust/changefeed", None), "registry:catalog:*");
        assert_eq!(req(Method::GET, "mirror/x/manifests/v1", None), "repository:mirror/x:pull");
        assert_eq!(req(Method::PUT, "mirror/x/manifests/v1", None), "repository:mirror/x:pull,push");
        assert_eq!(req(Method::GET, "mirror/x/_tuf/timestamp.json", None), "repository:mirror/x:pull");
        // Unclassified paths are refused, never waved through.
        assert_eq!(req(Method::GET, "nope", None), "Refuse");
        assert_eq!(req(Method::GET, &format!("mirror/x/_tuf/targets/{}.x/_trust/y", "ab".repeat(32)), None), "Refuse");
        assert_eq!(req(Method::POST, "127.0.0.1:5000/Team/App/_trust/tuf/", None), "Refuse");
    }
}
