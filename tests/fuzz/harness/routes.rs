//! Paths after `/v2/`: the registry's endpoints, the trust service's routes (TUF and Notary v1), and the scopes
//! the access gate derives from them; also scope strings and grant patterns.

use axum::http::Method;
use wharf_format::RepositoryName;
use wharf_registry::auth::need::{need, Need};
use wharf_registry::auth::scope::{Actions, Pattern, Scope};
use wharf_registry::route::{classify, Route};

const METHODS: &[Method] =
    &[Method::GET, Method::HEAD, Method::PUT, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS];

/// One byte choosing the method, then `TAIL[?QUERY]`.
pub fn routes(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let method = &METHODS[m as usize % METHODS.len()];
    let (tail, query) = match text.split_once('?') {
        Some((t, q)) => (t, Some(q)),
        None => (text, None),
    };
    if let Ok(e) = wharf_registry::endpoint::parse(tail) {
        if let Some(r) = e.repository() {
            let again: RepositoryName = r.to_string().parse().expect("a parsed name prints to a valid name");
            assert_eq!(&again, r);
        }
    }
    let _ = wharf_notary::is_trust(tail);
    let _ = wharf_notary::tuf::route::parse(tail);
    let _ = wharf_notary::v1::is_v1(tail);
    let _ = wharf_notary::v1::route::parse(tail);
    // The one classification, as the gate and the dispatch see it: whatever it is, it has a rule, and a path with
    // both trust markers or a mirrored path that names no repository is never anything but refused.
    let c = classify(&format!("/v2/{tail}"), &|r| r.as_str().starts_with("m/"));
    let _ = c.kind(method).rule();
    let need = need(method, &c, query);
    if tail.contains("/_tuf/") && wharf_notary::v1::is_v1(tail) {
        assert!(matches!(c.route, Route::Invalid(_)), "{tail}: both trust markers, classified {:?}", c.route);
        assert!(matches!(need, Need::Refuse(_)));
    }
    if matches!(c.route, Route::Invalid(_)) {
        assert!(matches!(need, Need::Refuse(_)), "{tail}: unclassified but not refused");
    }
    if let Ok(Some(s)) = Scope::parse(text) {
        let _ = s.to_string();
    }
    if let Ok(p) = Pattern::parse(text) {
        let _ = p.matches(tail);
    }
    let _ = Actions::parse_grant(text);
    let _ = Actions::parse_requested(text);
}
