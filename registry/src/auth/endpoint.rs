//! The token endpoint (`/auth/token`), as docker, containerd, podman, skopeo and notary call it: `GET` with Basic
//! or no credentials, and the OAuth2 `POST` form with `grant_type=password` or `refresh_token`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;

use super::credentials::{parse_authorization, Presented};
use super::policy::{Principal, ANONYMOUS};
use super::scope::Scope;
use super::{Auth, Refusal};
use crate::error::{ApiError, Kind};

/// The largest form body accepted.
const MAX_FORM: usize = 64 * 1024;

pub async fn token(State(auth): State<Arc<Auth>>, req: Request) -> Response {
    let addr = auth.client_ip(&req);
    let result = match *req.method() {
        Method::GET => get(&auth, req, addr).await,
        Method::POST => post(&auth, req, addr).await,
        _ => Err(ApiError::new(Kind::MethodNotAllowed, "use GET or POST")),
    };
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    // A refused login, for the access log and the metrics (the account stays unnamed: the form may not hold one).
    match resp.status() {
        axum::http::StatusCode::UNAUTHORIZED => super::gate::refused(resp, super::gate::Reason::BadCredentials, None),
        axum::http::StatusCode::TOO_MANY_REQUESTS => super::gate::refused(resp, super::gate::Reason::Throttled, None),
        _ => resp,
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(Kind::RequestInvalid, msg)
}

fn pairs(q: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q).into_owned().collect()
}

fn param<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn check_service(auth: &Auth, p: &[(String, String)]) -> Result<(), ApiError> {
    match param(p, "service") {
        Some(s) if s != auth.keys().service() => Err(invalid(format!("unknown service {s:?}"))),
        _ => Ok(()),
    }
}

/// The scopes asked for, with a trust client's GUN-named ones (`HOST/REPOSITORY` where HOST is this server, as the
/// request addressed it) turned into the repository's (`scope::for_trust_clients`).
fn scopes(p: &[(String, String)], host: Option<&str>) -> Result<Vec<Scope>, ApiError> {
    let asked = Scope::parse_all(p.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()))
        .map_err(|e| invalid(e.to_string()))?;
    Ok(crate::auth::scope::for_trust_clients(asked, host))
}

/// The host and port the client addressed (`Host`, or the HTTP/2 authority).
fn host_of(req: &Request) -> Option<String> {
    let header = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    header.or_else(|| req.uri().authority().map(|a| a.as_str())).map(str::to_owned)
}

fn refused(r: Refusal, account: &str, addr: Option<std::net::IpAddr>) -> ApiError {
    tracing::warn!(account, addr = ?addr, path = "/auth/token", "token refused");
    match r {
        Refusal::Throttled(s) => ApiError::new(Kind::Throttled, "too many failed logins; retry later")
            .with_header("retry-after", s.to_string()),
        Refusal::BadCredentials => ApiError::new(Kind::Unauthorized, "incorrect username or password"),
    }
}

async fn get(auth: &Auth, req: Request, addr: Option<std::net::IpAddr>) -> Result<Response, ApiError> {
    let p = pairs(req.uri().query().unwrap_or("").as_bytes());
    check_service(auth, &p)?;
    let wanted = scopes(&p, host_of(&req).as_deref())?;
    let presented = parse_authorization(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()))
        .map_err(|e| invalid(e.to_string()))?;
    let (who, secret_hash) = match presented {
        Presented::None => (Principal::Anonymous, None),
        Presented::Basic { user, password } => {
            let who = auth.login(&user, &password, addr).await.map_err(|r| refused(r, &user, addr))?;
            let hash = auth.policy().active(&user, auth.now()).map(|a| a.secret_hash.clone());
            (who, hash)
        }
        Presented::Bearer(_) => return Err(invalid("the token endpoint takes Basic credentials or none")),
    };
    let offline = param(&p, "offline_token") == Some("true");
    issue(auth, &who, &wanted, offline.then_some(secret_hash).flatten(), false)
}

async fn post(auth: &Auth, req: Request, addr: Option<std::net::IpAddr>) -> Result<Response, ApiError> {
    let host = host_of(&req);
    let body = read_form(req.into_body()).await?;
    let p = pairs(&body);
    check_service(auth, &p)?;
    let wanted = scopes(&p, host.as_deref())?;
    match param(&p, "grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (param(&p, "username"), param(&p, "password")) else {
                return Err(invalid("grant_type=password needs username and password"));
            };
            let who = auth.login(user, password, addr).await.map_err(|r| refused(r, user, addr))?;
            let hash = auth.policy().active(user, auth.now()).map(|a| a.secret_hash.clone());
            let offline = param(&p, "access_type") == Some("offline");
            issue(auth, &who, &wanted, offline.then_some(hash).flatten(), true)
        }
        Some("refresh_token") => {
            let token =
                param(&p, "refresh_token").ok_or_else(|| invalid("grant_type=refresh_token needs refresh_token"))?;
            let who = refresh_subject(auth, token).ok_or_else(|| {
                tracing::warn!(addr = ?addr, path = "/auth/token", "refresh token refused");
                ApiError::new(Kind::Unauthorized, "invalid refresh token")
            })?;
            issue(auth, &Principal::Account(who), &wanted, None, true)
        }
        Some(other) => Err(invalid(format!("unsupported grant_type {other:?}"))),
        None => Err(invalid("grant_type is required")),
    }
}

async fn read_form(body: Body) -> Result<Vec<u8>, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_FORM);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(_) => Err(ApiError::new(Kind::TooLarge, format!("form larger than {MAX_FORM} bytes or interrupted"))),
    }
}

/// The account a refresh token speaks for, if it is ours, unexpired, and the account's secret is unchanged.
fn refresh_subject(auth: &Auth, token: &str) -> Option<String> {
    let (claims, external) = auth.keys().verify(token).ok()?;
    if external || !claims.is_refresh() || claims.sub == ANONYMOUS {
        return None;
    }
    let policy = auth.policy();
    let account = policy.active(&claims.sub, auth.now())?;
    let current = super::token::secret_version(&account.secret_hash);
    let presented = claims.sv.as_deref()?;
    bool::from(subtle::ConstantTimeEq::ct_eq(current.as_bytes(), presented.as_bytes())).then_some(claims.sub)
}

fn issue(
    auth: &Auth,
    who: &Principal,
    wanted: &[Scope],
    refresh_for: Option<String>,
    oauth: bool,
) -> Result<Response, ApiError> {
    let now = auth.now();
    let granted = auth.grant(who, wanted);
    let lifetime = auth.settings.token_lifetime_secs;
    let fault = |e: super::token::TokenError| ApiError::internal(e.to_string());
    let token = auth.keys().issue(who.name(), &granted, now, lifetime).map_err(fault)?;
    let issued_at = chrono::DateTime::from_timestamp(now, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
        "issued_at": issued_at,
    });
    if oauth {
        let scope: Vec<String> = granted.iter().map(ToString::to_string).collect();
        body["scope"] = scope.join(" ").into();
    }
    if let Some(hash) = refresh_for {
        body["refresh_token"] = auth
            .keys()
            .issue_refresh(who.name(), &hash, now, auth.settings.refresh_lifetime_secs)
            .map_err(fault)?
            .into();
    }
    tracing::debug!(account = who.name(), granted = granted.len(), "token issued");
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
