//! Registry authentication on the client: the Docker token flow. A `401` names the scheme (`Basic`, or `Bearer`
//! with a realm, service and scope); the session fetches a token for every scope asked so far with the stored
//! credentials (or none), and reuses it until shortly before it expires.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use url::Url;

use crate::io::credentials::{self, Credentials};
use crate::io::transport::{is_loopback, TransportError};
pub use wharf_format::challenge::{parse_challenge, Challenge};

#[derive(Default)]
struct State {
    challenge: Option<Challenge>,
    scopes: BTreeSet<String>,
    token: Option<(String, Instant)>,
    creds: Option<Option<Credentials>>,
}

/// One registry's authentication state, shared by every clone of its transport.
pub struct Session {
    host: String,
    state: tokio::sync::Mutex<State>,
}

/// How long before its expiry a token is replaced.
const MARGIN: Duration = Duration::from_secs(15);

impl Session {
    pub fn new(host: &str) -> Session {
        Session { host: host.to_owned(), state: tokio::sync::Mutex::new(State::default()) }
    }

    /// Scopes to ask for with the first token, besides those a challenge names.
    pub async fn want(&self, scopes: &[String]) {
        self.state.lock().await.scopes.extend(scopes.iter().cloned());
    }

    fn creds(&self, st: &mut State) -> Result<Option<Credentials>, TransportError> {
        if st.creds.is_none() {
            let c = credentials::lookup(&self.host)
                .map_err(|source| TransportError::Credentials { host: self.host.clone(), source })?;
            st.creds = Some(c);
        }
        Ok(st.creds.clone().flatten())
    }

    /// The `Authorization` value for the next request, renewing an expiring token.
    pub async fn header(&self, http: &reqwest::Client, origin: &Url) -> Result<Option<String>, TransportError> {
        let mut st = self.state.lock().await;
        match st.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds(&mut st)?.and_then(|c| match c {
                Credentials::Basic { user, password } => Some(basic(&user, &password)),
                Credentials::IdentityToken { .. } => None,
            })),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some((t, exp)) = &st.token {
                    if Instant::now() + MARGIN < *exp {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let creds = self.creds(&mut st)?;
                let scopes: Vec<String> = st.scopes.iter().cloned().collect();
                let (t, exp) = self.fetch(http, origin, &realm, service.as_deref(), &scopes, creds.as_ref()).await?;
                st.token = Some((t.clone(), exp));
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    /// Takes in a `401`'s challenge (its scopes join those asked for); true if it could be parsed, so that the
    /// request is worth one more try with fresh authorization. Concurrent requests may each see a `401` before
    /// the first token arrives: each retries once.
    pub async fn challenged(&self, value: &str) -> bool {
        let Some(ch) = parse_challenge(value) else { return false };
        let mut st = self.state.lock().await;
        if let Challenge::Bearer { scope, .. } = &ch {
            let new = scope.iter().any(|s| !st.scopes.contains(s));
            st.scopes.extend(scope.iter().cloned());
            if new || st.challenge.as_ref() != Some(&ch) {
                st.token = None;
            }
        }
        st.challenge = Some(ch);
        true
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        origin: &Url,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<(String, Instant), TransportError> {
        let fail = |reason: String| TransportError::Auth { host: self.host.clone(), reason };
        let realm_url = realm_url(origin, realm).map_err(fail)?;
        let req = match creds {
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token").append_pair("refresh_token", token);
                form.append_pair("client_id", "wharf");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    form.append_pair("scope", &scopes.join(" "));
                }
                http.post(realm_url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            other => {
                let mut u = realm_url.clone();
                {
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    q.append_pair("client_id", "wharf");
                }
                let req = http.get(u);
                match other {
                    Some(Credentials::Basic { user, password }) => req.header("authorization", basic(user, password)),
                    _ => req,
                }
            }
        };
        let refused = |reason: String| TransportError::LoginRefused { host: self.host.clone(), reason };
        let url = realm_url.to_string();
        let resp = tokio::time::timeout(Duration::from_secs(30), req.send())
            .await
            .map_err(|_| TransportError::TooSlow { url: url.clone(), min_bytes_per_sec: 1, secs: 30 })?
            .map_err(|e| TransportError::Connect { url: url.clone(), source: e.without_url() })?;
        let status = resp.status().as_u16();
        if status == 429 {
            let after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
            return Err(refused(format!("too many failed logins; retry after {after} s")));
        }
        if status == 401 || status == 403 {
            return Err(refused(match creds {
                None => format!("the registry wants credentials: log in with `wharf login {}`", self.host),
                Some(_) => "incorrect username or password (or the login has expired): run `wharf login`".into(),
            }));
        }
        if !(200..300).contains(&status) {
            return Err(TransportError::Status { url, status });
        }
        let body =
            resp.bytes().await.map_err(|source| TransportError::TokenBody { host: self.host.clone(), source })?;
        if body.len() > 1 << 20 {
            return Err(fail("token answer larger than 1 MiB".into()));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| fail("token answer is not JSON".into()))?;
        let token = v["token"].as_str().or_else(|| v["access_token"].as_str()).filter(|t| !t.is_empty());
        let token = token.ok_or_else(|| fail("token answer has no token".into()))?.to_owned();
        let lifetime = v["expires_in"].as_u64().filter(|s| *s > 0).unwrap_or(60);
        Ok((token, Instant::now() + Duration::from_secs(lifetime)))
    }
}

/// The token realm as a URL, if credentials may be sent there: HTTPS, or plain HTTP only to a loopback realm or
/// for a registry that is itself reached over plain HTTP.
fn realm_url(origin: &Url, realm: &str) -> Result<Url, String> {
    let u = Url::parse(realm).map_err(|_| format!("token realm {realm:?} is not a URL"))?;
    let plain_ok = origin.scheme() == "http" || u.host_str().is_some_and(is_loopback);
    if u.scheme() != "https" && !(u.scheme() == "http" && plain_ok) {
        return Err(format!("token realm {realm} is not HTTPS; credentials are not sent there"));
    }
    Ok(u)
}

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Logs in to `origin` with `user` and `password`: checks them with the registry (through its token service when
/// it has one) and returns what to store: the identity token when the service issues one, else the password.
pub async fn login(
    http: &reqwest::Client,
    origin: &Url,
    host: &str,
    user: &str,
    password: &str,
) -> Result<Credentials, TransportError> {
    let fail = |reason: String| TransportError::Auth { host: host.into(), reason };
    let refused = |reason: String| TransportError::LoginRefused { host: host.into(), reason };
    let base = origin.join("/v2/").map_err(|_| fail("bad origin".into()))?;
    let probe = http
        .get(base.clone())
        .send()
        .await
        .map_err(|e| TransportError::Connect { url: base.to_string(), source: e.without_url() })?;
    let basic_creds = Credentials::Basic { user: user.into(), password: password.into() };
    if probe.status().is_success() {
        return Ok(basic_creds);
    }
    let challenge = probe.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).and_then(parse_challenge);
    match challenge {
        Some(Challenge::Basic) => {
            let r = http
                .get(base.clone())
                .header("authorization", basic(user, password))
                .send()
                .await
                .map_err(|e| TransportError::Connect { url: base.to_string(), source: e.without_url() })?;
            if r.status().is_success() {
                Ok(basic_creds)
            } else {
                Err(TransportError::LoginRefused {
                    host: host.into(),
                    reason: format!("login refused: HTTP {}", r.status().as_u16()),
                })
            }
        }
        Some(Challenge::Bearer { realm, service, .. }) => {
            let mut u = realm_url(origin, &realm).map_err(fail)?;
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = &service {
                    q.append_pair("service", s);
                }
                q.append_pair("offline_token", "true").append_pair("client_id", "wharf");
            }
            let r = http
                .get(u.clone())
                .header("authorization", basic(user, password))
                .send()
                .await
                .map_err(|e| TransportError::Connect { url: realm.clone(), source: e.without_url() })?;
            match r.status().as_u16() {
                200..=299 => {}
                429 => {
                    let after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
                    return Err(refused(format!("too many failed logins; retry after {after} s")));
                }
                401 | 403 => return Err(refused("incorrect username or password".into())),
                s => return Err(fail(format!("token service answered HTTP {s}"))),
            }
            let body = r.bytes().await.map_err(|source| TransportError::TokenBody { host: host.into(), source })?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|_| fail("token answer is not JSON".into()))?;
            Ok(match v["refresh_token"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => Credentials::IdentityToken { user: user.into(), token: t.into() },
                None => basic_creds,
            })
        }
        None => Err(fail(format!(
            "the registry answered HTTP {} without an authentication challenge",
            probe.status().as_u16()
        ))),
    }
}
