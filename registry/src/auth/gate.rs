//! The gate: the middleware in front of both services that decides every `/v2/` request before a handler runs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::credentials::{parse_authorization, Presented};
use super::need::{need, Need};
use super::policy::{Principal, ANONYMOUS};
use super::scope::Scope;
use super::{Auth, Caller, Refusal};
use crate::error::{ApiError, Kind};
use crate::route::{Classified, Route};

/// Why the gate refused, which decides the answer.
enum Deny {
    /// No or bad credentials: `401` with a challenge naming the scopes.
    Challenge { error: Option<&'static str> },
    /// Known caller without the right: `403`.
    Denied,
    /// Too many failed logins: `429`.
    Throttled(u64),
}

pub async fn check(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    // The one classification, made before the gate by `serve::compose`; without it nothing is decided: refuse.
    let Some(classified) = req.extensions().get::<Classified>().cloned() else {
        tracing::error!(path = %req.uri().path(), "request reached the gate unclassified");
        return ApiError::new(Kind::Internal, "request not classified").into_response();
    };
    let need = need(req.method(), &classified, req.uri().query());
    let global_changefeed = classified.route == Route::Changefeed;
    match &need {
        Need::Public => return next.run(req).await,
        Need::Refuse(invalid) => return crate::with_api_version(invalid.answer().into_response()),
        // A web page: its viewer is the account of the session cookie, or anonymous (never `Authorization`).
        Need::Identify if matches!(classified.route, Route::Ui(_)) => {
            let cookies = super::session::cookies(&req);
            let id = auth.identify_web(&cookies).await;
            if let Some(c) = &id.caller {
                req.extensions_mut().insert(c.clone());
            }
            req.extensions_mut().insert(id);
            return next.run(req).await;
        }
        Need::Identify | Need::Login | Need::Scopes { .. } => {}
    }
    let addr = auth.client_ip(&req);
    let (required, optional) = match &need {
        Need::Scopes { required, optional } => (required.as_slice(), optional.as_slice()),
        _ => (&[][..], &[][..]),
    };
    let caller = match parse_authorization(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        Err(e) => Err((Deny::Challenge { error: Some("invalid_request") }, None, Reason::Malformed, e.to_string())),
        Ok(Presented::None) => Ok((Principal::Anonymous, None)),
        Ok(Presented::Basic { user, password }) => match auth.login(&user, &password, addr).await {
            Ok(p) => Ok((p, None)),
            Err(Refusal::Throttled(s)) => Err((Deny::Throttled(s), Some(user), Reason::Throttled, "throttled".into())),
            Err(Refusal::BadCredentials) => {
                Err((Deny::Challenge { error: None }, Some(user), Reason::BadCredentials, "bad credentials".into()))
            }
        },
        Ok(Presented::Bearer(token)) => match auth.bearer(&token) {
            Some(v) => {
                let (claims, external) = (&v.claims, v.external);
                let p = if external {
                    Principal::External(claims.sub.clone())
                } else if claims.sub == ANONYMOUS {
                    Principal::Anonymous
                } else {
                    Principal::Account(claims.sub.clone())
                };
                Ok((p, Some(Arc::clone(&v.granted))))
            }
            None => {
                Err((Deny::Challenge { error: Some("invalid_token") }, None, Reason::BadToken, "invalid token".into()))
            }
        },
    };
    let (principal, claims) = match caller {
        Ok(c) => c,
        Err((deny, account, why, reason)) => {
            let resp = refuse(&auth, &req, deny, required, optional, account.clone(), addr, &reason);
            return refused(resp, why, account);
        }
    };
    let bearer = claims.is_some();
    let caller = Caller { principal, claims, policy: auth.policy() };
    let allowed = match &need {
        Need::Identify => true,
        Need::Login => bearer || caller.principal != Principal::Anonymous,
        _ => required.iter().all(|s| caller.allows(s)),
    };
    if !allowed {
        // Without an identity (no credentials, or an anonymous token) the answer is a challenge, so docker asks for a
        // login; `403` is for a known caller who lacks the grant.
        let deny = if caller.principal == Principal::Anonymous {
            Deny::Challenge { error: bearer.then_some("insufficient_scope") }
        } else if bearer && !matches!(caller.principal, Principal::External(_)) && could_get(&auth, &caller, required) {
            Deny::Challenge { error: Some("insufficient_scope") }
        } else {
            Deny::Denied
        };
        let why = if caller.principal == Principal::Anonymous { Reason::Unauthenticated } else { Reason::NotGranted };
        let account = Some(caller.principal.name().to_owned());
        let resp = refuse(&auth, &req, deny, required, optional, account.clone(), addr, "not granted");
        return refused(resp, why, account);
    }
    if optional.iter().any(|s| !caller.allows(s)) {
        // A mount from a repository the caller may not pull becomes a plain upload (the OCI fallback).
        strip_mount(req.uri_mut());
    }
    if global_changefeed {
        // The changefeed of all collections lists only those of repositories the caller may pull.
        let c = caller.clone();
        let may = move |r: &wharf_format::RepositoryName| c.may_pull(r.as_str());
        req.extensions_mut().insert(wharf_notary::v1::Visibility(Arc::new(may)));
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Why access control refused a request: left in the response's extensions ([`Refused`]) for the access log and
/// the metrics (`wharf_auth_refusals_total{reason}`; the names are in `ops::metrics::labels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An `Authorization` header that does not parse.
    Malformed,
    /// A wrong account name or password.
    BadCredentials,
    /// A bearer token that is not valid (expired, forged, for another service).
    BadToken,
    /// No credentials where some are needed (the challenge clients answer by logging in).
    Unauthenticated,
    /// A known caller without the grant.
    NotGranted,
    /// Too many failed logins.
    Throttled,
}

/// A refusal of access control, in its response's extensions: why, and the account it was asked for (if any).
#[derive(Debug, Clone)]
pub struct Refused {
    pub reason: Reason,
    pub account: Option<String>,
}

/// `resp`, marked as a refusal for `reason`.
pub fn refused(mut resp: Response, reason: Reason, account: Option<String>) -> Response {
    resp.extensions_mut().insert(Refused { reason, account });
    resp
}

/// Whether the policy would grant `required` to the caller, so that a fresh token would do.
fn could_get(auth: &Auth, caller: &Caller, required: &[Scope]) -> bool {
    let granted = auth.grant(&caller.principal, required);
    required.iter().all(|r| granted.iter().any(|g| g.resource == r.resource && g.actions.contains(r.actions)))
}

fn strip_mount(uri: &mut Uri) {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "mount" && k != "from")
        .collect();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(kept);
    let q = q.finish();
    let pq = if q.is_empty() { uri.path().to_owned() } else { format!("{}?{q}", uri.path()) };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = pq.parse().ok();
    *uri = Uri::from_parts(parts).unwrap_or_default();
}

/// The token endpoint's URL for challenges.
pub fn realm(auth: &Auth, req: &Request) -> String {
    if let Some(r) = &auth.settings.realm {
        return r.clone();
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or_else(|| "localhost".into());
    format!("{}://{host}/auth/token", if auth.tls { "https" } else { "http" })
}

#[allow(clippy::too_many_arguments)]
fn refuse(
    auth: &Auth,
    req: &Request,
    deny: Deny,
    required: &[Scope],
    optional: &[Scope],
    account: Option<String>,
    addr: Option<std::net::IpAddr>,
    reason: &str,
) -> Response {
    let scope: Vec<String> = required.iter().chain(optional).map(ToString::to_string).collect();
    let scope = scope.join(" ");
    tracing::warn!(
        account = account.as_deref().unwrap_or(ANONYMOUS),
        addr = ?addr,
        method = %req.method(),
        path = %req.uri().path(),
        scope = %scope,
        reason,
        "access refused"
    );
    match deny {
        Deny::Throttled(secs) => ApiError::new(Kind::Throttled, "too many failed logins; retry later")
            .with_header("retry-after", secs.to_string())
            .into_response(),
        Deny::Denied => {
            let who = account.as_deref().unwrap_or(ANONYMOUS);
            let what: Vec<String> = required
                .iter()
                .map(|s| match &s.resource {
                    super::scope::Resource::Repository(r) => format!("{} on {r}", s.actions),
                    super::scope::Resource::Catalog => "the catalog".to_owned(),
                })
                .collect();
            ApiError::new(Kind::Denied, format!("requested access is denied: {who} may not {}", what.join(", ")))
                .into_response()
        }
        Deny::Challenge { error } => {
            let mut value = format!("Bearer realm=\"{}\",service=\"{}\"", realm(auth, req), auth.keys().service());
            if !scope.is_empty() {
                value.push_str(&format!(",scope=\"{scope}\""));
            }
            if let Some(e) = error {
                value.push_str(&format!(",error=\"{e}\""));
            }
            let mut resp = ApiError::new(Kind::Unauthorized, "authentication required").into_response();
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            // As Distribution does: docker (20.10) reads the version header of the `/v2/` challenge before it
            // trusts it, and without it `docker search` after a token login falls back to Basic with no password.
            crate::with_api_version(resp)
        }
    }
}
