//! `/metrics`: who may scrape (`[metrics]`: the peer's address, then the bearer token), the trust expiries read at
//! each scrape, and the listener of its own when `metrics.addr` is set. The gate lets `/metrics` through
//! (`Kind::Metrics` is public): these rules, not registry credentials, decide.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::labels::Format;
use crate::auth::ClientAddr;
use crate::error::{ApiError, Kind};
use crate::AppState;

/// At most this many repositories (and as many GUNs) get expiry series: one bounded query per format per scrape.
pub const EXPIRY_LIMIT: i64 = 10_000;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` on the main port: there only when no listener of its own is configured.
pub async fn main_port(st: &AppState, req: Request) -> Response {
    if st.ops.metrics.settings.addr.is_some() {
        return ApiError::new(Kind::NoSuchEndpoint, "no such endpoint").into_response();
    }
    answer(st, req).await
}

/// The answer to a scrape, once `[metrics]` allows it.
pub async fn answer(st: &AppState, req: Request) -> Response {
    let settings = &st.ops.metrics.settings;
    if !settings.enabled {
        return ApiError::new(Kind::NoSuchEndpoint, "no such endpoint").into_response();
    }
    let peer = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    if !peer.is_some_and(|ip| settings.allow.iter().any(|n| n.contains(&ip))) {
        return ApiError::new(Kind::Denied, "metrics: this address may not scrape").into_response();
    }
    // Behind a proxy on an allowed address (nginx on loopback), the peer is the proxy, not the client: a forwarded
    // request is let in only with the token, never on the proxy's address alone.
    let forwarded = req.headers().contains_key("x-forwarded-for") || req.headers().contains_key(header::FORWARDED);
    if forwarded && settings.token.is_none() {
        return ApiError::new(Kind::Denied, "metrics: a forwarded request needs metrics.token").into_response();
    }
    if let Some(token) = &settings.token {
        let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if !presented.is_some_and(|p| token.matches(p)) {
            let mut resp = ApiError::new(Kind::Unauthorized, "metrics: a bearer token is required").into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"metrics\""));
            return resp;
        }
    }
    let expiries = expiries(st).await;
    match st.meta.quotas().list().await {
        Ok(rows) => st.ops.metrics.set_quotas(&rows),
        Err(e) => tracing::warn!(error = %crate::error::chain(&e), "metrics: reading quota usage"),
    }
    match st.ops.metrics.encode(&expiries) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError::internal("encoding the metrics".into()).into_response(),
    }
}

/// Seconds left on each current timestamp and snapshot, TUF and Notary v1. A database that does not answer leaves
/// the series out (and says so in the log) rather than failing the scrape of everything else.
async fn expiries(st: &AppState) -> Vec<(Format, String, String, i64)> {
    let now = st.clock.now();
    let mut out = Vec::new();
    match st.meta.trust().expiries(EXPIRY_LIMIT).await {
        Ok(rows) => out.extend(rows.into_iter().map(|(repo, role, expires)| (Format::Tuf, repo, role, expires - now))),
        Err(e) => tracing::warn!(error = %crate::error::chain(&e), "metrics: reading TUF expiries"),
    }
    match st.meta.notary_v1().current_signing(EXPIRY_LIMIT).await {
        Ok(rows) => {
            for (gun, role, content) in rows {
                match wharf_format::notary::Signed::parse(&content) {
                    Ok(doc) => out.push((Format::NotaryV1, gun, role, doc.expires - now)),
                    Err(e) => tracing::warn!(%gun, %role, error = %e, "metrics: a stored Notary v1 document"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %crate::error::chain(&e), "metrics: reading Notary v1 expiries"),
    }
    out
}

/// Serves `/metrics` alone on `addr` (`metrics.addr`) until the task is aborted. Prints nothing on stdout (the
/// main listener's line is the one tests and scripts read); the address is logged.
pub async fn listen(st: AppState, addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>, std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(own_port))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(st);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "the /metrics listener stopped");
        }
    }))
}

async fn own_port(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    req.extensions_mut().insert(ClientAddr(peer));
    answer(&st, req).await
}
