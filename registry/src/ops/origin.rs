//! The [`Origin`] of each request: who (the caller access control verified, or anonymous), from which address
//! (through `trusted_proxies`), which request. Made by [`layer`], inside the gate and before dispatch, and kept in
//! the request's extensions for the handlers and the trust services, and in the response's for the access log.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use wharf_storage::{Actor, Origin};

use crate::auth::policy::Principal;
use crate::auth::{Caller, ClientAddr};

/// The origin of `req`, from what the gate left in it.
pub fn of(req: &Request, proxies: &[ipnet::IpNet]) -> Origin {
    let caller = req.extensions().get::<Caller>();
    let actor = match caller.map(|c| &c.principal) {
        None | Some(Principal::Anonymous) => Actor::Anonymous,
        // The policy knows each account's kind: robots are recorded as robots.
        Some(Principal::Account(n)) => match caller.and_then(|c| c.policy.account(n)).map(|a| a.kind) {
            Some(wharf_storage::AccountKind::Robot) => Actor::Robot(n.clone()),
            _ => Actor::Account(n.clone()),
        },
        Some(Principal::External(n)) => Actor::External(n.clone()),
    };
    let address = req.extensions().get::<ClientAddr>().map(|c| {
        let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        crate::auth::proxy::client_ip(c.0.ip(), forwarded, proxies)
    });
    let text = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Origin {
        actor,
        address,
        request_id: request_id(),
        method: req.method().to_string(),
        user_agent: text(header::USER_AGENT),
        host: text(header::HOST),
    }
}

/// A request id unique across replicas and restarts: 64 random bits drawn once per process, then a counter (no
/// system call per request).
fn request_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| rand_core::RngCore::next_u64(&mut rand_core::OsRng));
    format!("{prefix:016x}-{:x}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The middleware: puts the request's [`Origin`] in its extensions and in its response's.
pub async fn layer(ops: Arc<crate::ops::Ops>, mut req: Request, next: Next) -> Response {
    let origin = of(&req, &ops.settings.trusted_proxies);
    req.extensions_mut().insert(origin.clone());
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(origin);
    resp
}

/// The origin a handler reads; a request that did not pass [`layer`] (none should) counts as anonymous.
pub fn from_parts(parts: &axum::http::request::Parts) -> Origin {
    parts.extensions.get::<Origin>().cloned().unwrap_or_else(|| Origin {
        actor: Actor::Anonymous,
        address: parts.extensions.get::<ClientAddr>().map(|c| c.0.ip()),
        request_id: request_id(),
        method: parts.method.to_string(),
        user_agent: None,
        host: None,
    })
}
