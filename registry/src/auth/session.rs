//! Web interface sessions: who is looking at a page under `/ui/`, signing in and out, and the CSRF token every form
//! carries. Like the rest of access control this lives here, not in the pages: the gate calls [`Auth::identify_web`]
//! for every `/ui/` request and leaves a [`WebIdentity`] in it; the pages only ask it what the viewer may do.
//!
//! - The session cookie (`wharf_session`) holds 32 random bytes; the database keeps only their SHA-256
//!   (`ui_sessions`), with the account, the session's own CSRF token and its expiry. It is `HttpOnly`,
//!   `SameSite=Strict`, `Path=/ui`, and `Secure` when the server speaks HTTPS.
//! - A visitor without a session gets a CSRF cookie (`wharf_csrf`, same attributes) whose value its forms repeat
//!   (the sign-in form, and with access control off every form): a double submit, which a page on another origin
//!   cannot forge because it can neither read nor set the cookie.
//! - Signing in goes through [`Auth::login`]: the same throttle, verification slots and audit row as any login.
//!   Robots cannot sign in. A session ends at sign-out, at its expiry, or as soon as its account is removed,
//!   expires, or gets a new password (the policy is asked on every request, and the session remembers a
//!   fingerprint of the credential it signed in with).

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wharf_storage::{AccountKind, SessionRow};

use super::policy::Principal;
use super::{random_secret, Auth, Caller, Refusal};

pub const SESSION_COOKIE: &str = "wharf_session";
pub const CSRF_COOKIE: &str = "wharf_csrf";
/// The length of a cookie's value: 32 bytes in unpadded base64url.
const SECRET_LEN: usize = 43;

/// Who is looking at a page, and the CSRF token its forms must carry: left in the request by the gate (or, with
/// access control off, made by [`identify_off`]).
#[derive(Clone)]
pub struct WebIdentity {
    /// `None`: access control is off, and the viewer may do what any API caller may (everything).
    pub caller: Option<Caller>,
    /// The signed-in account.
    pub account: Option<String>,
    /// The SHA-256 of the session's secret, when signed in (for signing out).
    pub session: Option<String>,
    /// The token forms must repeat.
    pub csrf: String,
    /// A `Set-Cookie` to send with the page: a fresh CSRF cookie for a visitor who had none, or the removal of a
    /// session cookie that no longer names a session.
    pub set_cookie: Option<HeaderValue>,
}

impl WebIdentity {
    /// A viewer who may see nothing: an anonymous caller under an empty policy (for refusals).
    pub fn nobody() -> WebIdentity {
        let caller = Caller { principal: Principal::Anonymous, claims: None, policy: Default::default() };
        WebIdentity { caller: Some(caller), account: None, session: None, csrf: random_secret(), set_cookie: None }
    }

    /// Whether `presented` (a form's `csrf` field) is this viewer's token, compared in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.len() == presented.len() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, if it has the shape of one of ours.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| v.len() == SECRET_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What a session remembers of its account's credential: the SHA-256 of its Argon2id hash (itself salted).
fn credential(secret_hash: &str) -> String {
    hex::encode(Sha256::digest(secret_hash.as_bytes()))
}

/// A `Set-Cookie` value for one of the interface's cookies (`max_age` 0 removes it).
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"))
        .ok()
}

/// The interface's cookies in a request (those of the right shape).
#[derive(Debug, Clone, Default)]
pub struct WebCookies {
    session: Option<String>,
    csrf: Option<String>,
}

/// Reads the interface's cookies from `req`.
pub fn cookies(req: &Request) -> WebCookies {
    WebCookies {
        session: cookie(req, SESSION_COOKIE).map(str::to_owned),
        csrf: cookie(req, CSRF_COOKIE).map(str::to_owned),
    }
}

/// The anonymous visitor's CSRF token: the cookie's, or a fresh one to set.
fn visitor_csrf(c: &WebCookies, secure: bool) -> (String, Option<HeaderValue>) {
    match &c.csrf {
        Some(v) => (v.clone(), None),
        None => {
            let v = random_secret();
            let c = set_cookie(CSRF_COOKIE, &v, 86_400, secure);
            (v, c)
        }
    }
}

/// The identity of a page's viewer with access control off: nobody signs in; forms carry the CSRF cookie's token.
pub fn identify_off(req: &Request, secure: bool) -> WebIdentity {
    let (csrf, set_cookie) = visitor_csrf(&cookies(req), secure);
    WebIdentity { caller: None, account: None, session: None, csrf, set_cookie }
}

/// How a sign-in ended.
pub enum SignIn {
    /// Signed in: send this session cookie.
    Done { set_cookie: HeaderValue },
    /// A wrong name or password, or a lock-out (`Refusal::Throttled`).
    Refused(Refusal),
    /// The right secret of a robot: robots use tokens, not the interface.
    Robot,
    /// The form did not carry the visitor's CSRF token.
    BadCsrf,
    /// The session could not be stored.
    Failed,
}

impl Auth {
    /// Who is looking at a page: the account of a live session (whose account is still active), or anonymous.
    pub async fn identify_web(&self, c: &WebCookies) -> WebIdentity {
        let policy = self.policy();
        let now = self.clock.now();
        let anonymous = |set_cookie: Option<HeaderValue>| {
            let (csrf, fresh) = visitor_csrf(c, self.tls);
            WebIdentity {
                caller: Some(Caller { principal: Principal::Anonymous, claims: None, policy: self.policy() }),
                account: None,
                session: None,
                csrf,
                set_cookie: set_cookie.or(fresh),
            }
        };
        let Some(secret) = c.session.as_deref() else { return anonymous(None) };
        let id_hash = hash(secret);
        let row = match self.meta.sessions().get(&id_hash, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "reading a web session");
                None
            }
        };
        // The account must still be an active user with the credential it signed in with: a new password, or a
        // removed account re-created under the same name, ends the session.
        let live = row.filter(|r| {
            policy.active(&r.account, now).is_some_and(|a| {
                a.kind == AccountKind::User
                    && credential(&a.secret_hash).as_bytes().ct_eq(r.credential.as_bytes()).into()
            }) && r.expires_at > now
        });
        match live {
            Some(r) => WebIdentity {
                caller: Some(Caller { principal: Principal::Account(r.account.clone()), claims: None, policy }),
                account: Some(r.account),
                session: Some(id_hash),
                csrf: r.csrf,
                set_cookie: None,
            },
            // A cookie naming no live session: forget it.
            None => anonymous(set_cookie(SESSION_COOKIE, "", 0, self.tls)),
        }
    }

    /// Signs `user` in with `password` from the sign-in form, whose `csrf` field must be the visitor's token.
    pub async fn sign_in(
        &self,
        visitor: &WebIdentity,
        user: &str,
        password: &str,
        csrf: &str,
        addr: Option<std::net::IpAddr>,
    ) -> SignIn {
        if !visitor.csrf_matches(csrf) {
            return SignIn::BadCsrf;
        }
        if let Err(r) = self.login(user, password, addr).await {
            return SignIn::Refused(r);
        }
        let policy = self.policy();
        let Some(account) = policy.account(user).filter(|a| a.kind == AccountKind::User) else {
            tracing::warn!(account = %user, "web sign-in refused: robots cannot sign in");
            return SignIn::Robot;
        };
        // A new sign-in replaces the session the browser had (no two sessions for one cookie jar).
        if let Some(old) = &visitor.session {
            let _ = self.meta.sessions().delete(old).await;
        }
        let secret = random_secret();
        let now = self.clock.now();
        let lifetime = self.settings.web_session_secs;
        let row = SessionRow {
            account: user.to_owned(),
            csrf: random_secret(),
            credential: credential(&account.secret_hash),
            created_at: now,
            expires_at: now.saturating_add(lifetime),
        };
        if let Err(e) = self.meta.sessions().create(&hash(&secret), &row).await {
            tracing::error!(error = %crate::error::chain(&e), "storing a web session");
            return SignIn::Failed;
        }
        tracing::info!(account = %user, "web sign-in");
        match set_cookie(SESSION_COOKIE, &secret, lifetime, self.tls) {
            Some(c) => SignIn::Done { set_cookie: c },
            None => SignIn::Failed,
        }
    }

    /// Ends the viewer's session (if any); returns the `Set-Cookie` that removes its cookie.
    pub async fn sign_out(&self, viewer: &WebIdentity) -> Option<HeaderValue> {
        if let Some(id_hash) = &viewer.session {
            if let Err(e) = self.meta.sessions().delete(id_hash).await {
                tracing::error!(error = %crate::error::chain(&e), "ending a web session");
            }
        }
        set_cookie(SESSION_COOKIE, "", 0, self.tls)
    }
}

/// Whether `secret` has the shape of a cookie value this module makes (for tests).
pub fn well_formed(secret: &str) -> bool {
    secret.len() == SECRET_LEN && base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cookies: &[&str]) -> Request {
        let mut b = axum::http::Request::builder().uri("/ui/");
        for c in cookies {
            b = b.header(header::COOKIE, *c);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn cookies_are_read_only_in_their_shape() {
        let good = random_secret();
        assert!(well_formed(&good));
        let r = req(&[&format!("a=b; {SESSION_COOKIE}={good}; c=d")]);
        assert_eq!(cookie(&r, SESSION_COOKIE), Some(good.as_str()));
        assert_eq!(cookie(&req(&[&format!("{SESSION_COOKIE}=short")]), SESSION_COOKIE), None);
        assert_eq!(cookie(&req(&[&format!("{SESSION_COOKIE}={}", "%".repeat(43))]), SESSION_COOKIE), None);
        assert_eq!(cookie(&req(&["x=y", &format!("{CSRF_COOKIE}={good}")]), CSRF_COOKIE), Some(good.as_str()));
    }

    #[test]
    fn visitors_without_a_cookie_get_one_and_forms_must_repeat_it() {
        let id = identify_off(&req(&[]), true);
        let c = id.set_cookie.as_ref().unwrap().to_str().unwrap().to_owned();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"), "{c}");
        assert!(id.csrf_matches(&id.csrf.clone()));
        assert!(!id.csrf_matches("") && !id.csrf_matches(&random_secret()));
        let again = identify_off(&req(&[&format!("{CSRF_COOKIE}={}", id.csrf)]), false);
        assert_eq!(again.csrf, id.csrf);
        assert!(again.set_cookie.is_none());
    }
}
