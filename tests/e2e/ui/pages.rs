//! The interface over plain HTTP(S), no browser: signing in and out, the session and CSRF cookies, robots refused,
//! sessions ending with their account, the security headers, and `Authorization` ignored by pages. The browser
//! suite (`browser.rs`) drives the same pages in chromium.

use std::path::Path;
use std::process::Command;

use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::common::{self, Server};

const ADMIN: &str = "admin-pass-1";

/// An HTTPS server with access control on, and a client that trusts its CA and follows no redirect.
fn https_server(dir: &Path, env: &[(&str, &str)]) -> (Server, Client) {
    let out = Command::new(common::wharf_bin()).arg("cert").arg("--out").arg(dir).arg("127.0.0.1").output().unwrap();
    assert!(out.status.success(), "wharf cert: {}", String::from_utf8_lossy(&out.stderr));
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let mut all = vec![
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", ADMIN),
        ("WHARF_TLS_CERT", cert.to_str().unwrap()),
        ("WHARF_TLS_KEY", key.to_str().unwrap()),
    ];
    all.extend_from_slice(env);
    let s = Server::start(&all);
    assert_eq!(s.scheme, "https");
    let pem = std::fs::read(dir.join("ca.crt")).unwrap();
    let http = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (s, http)
}

/// The `Set-Cookie` headers of `r` for cookie `name`.
fn set_cookies(r: &Response, name: &str) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
        .collect()
}

fn value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

/// The value of the first hidden `csrf` field in a page.
fn csrf_field(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

/// A browser's view: its cookies, kept by hand (the tests' reqwest has no cookie store).
#[derive(Default, Clone)]
struct Jar {
    csrf_cookie: Option<String>,
    session: Option<String>,
}

impl Jar {
    fn header(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.csrf_cookie {
            parts.push(format!("wharf_csrf={c}"));
        }
        if let Some(s) = &self.session {
            parts.push(format!("wharf_session={s}"));
        }
        parts.join("; ")
    }

    fn get(&mut self, http: &Client, url: &str) -> (u16, String) {
        let r = http.get(url).header(COOKIE, self.header()).send().unwrap();
        self.take(&r);
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    }

    fn post(&mut self, http: &Client, url: &str, form: &[(&str, &str)]) -> Response {
        let r = http.post(url).header(COOKIE, self.header()).form(form).send().unwrap();
        self.take(&r);
        r
    }

    fn take(&mut self, r: &Response) {
        if let Some(c) = set_cookies(r, "wharf_csrf").last() {
            self.csrf_cookie = Some(value(c));
        }
        if let Some(c) = set_cookies(r, "wharf_session").last() {
            let v = value(c);
            self.session = (!v.is_empty()).then_some(v);
        }
    }

    /// Signs in as `user`: reads the sign-in page's token, posts the form; returns the response.
    fn sign_in(&mut self, http: &Client, s: &Server, user: &str, password: &str) -> Response {
        let (status, page) = self.get(http, &s.url("/ui/sign-in"));
        assert_eq!(status, 200, "{page}");
        let csrf = csrf_field(&page);
        self.post(
            http,
            &s.url("/ui/sign-in"),
            &[("user", user), ("password", password), ("csrf", &csrf), ("next", "/ui/r/team/app")],
        )
    }
}

#[test]
fn signing_in_over_https_sets_a_strict_session_and_signing_out_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, http) = https_server(tmp.path(), &[]);
    let mut jar = Jar::default();

    // A visitor gets a CSRF cookie, repeated in the form.
    let r = http.get(s.url("/ui/sign-in")).send().unwrap();
    let csrf_cookie = set_cookies(&r, "wharf_csrf").pop().expect("a CSRF cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"] {
        assert!(csrf_cookie.contains(attr), "{attr} missing: {csrf_cookie}");
    }
    let page = r.text().unwrap();
    assert_eq!(csrf_field(&page), value(&csrf_cookie), "the form repeats the cookie's token");

    // Without the token, with another visitor's token, or with a wrong password: refused, no session.
    let (_, p) = jar.get(&http, &s.url("/ui/sign-in"));
    let mine = csrf_field(&p);
    let r = jar.post(&http, &s.url("/ui/sign-in"), &[("user", "admin"), ("password", ADMIN)]);
    assert_eq!(r.status(), 403);
    assert!(set_cookies(&r, "wharf_session").is_empty());
    let theirs = value(&csrf_cookie);
    let r = jar.post(&http, &s.url("/ui/sign-in"), &[("user", "admin"), ("password", ADMIN), ("csrf", &theirs)]);
    assert_eq!(r.status(), 403, "another visitor's token");
    let r = jar.post(&http, &s.url("/ui/sign-in"), &[("user", "admin"), ("password", "wrong"), ("csrf", &mine)]);
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("id=\"sign-in-problem\""));

    // Signed in: a strict session cookie, and back to where the form said.
    let r = jar.sign_in(&http, &s, "admin", ADMIN);
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/ui/r/team/app");
    let session = set_cookies(&r, "wharf_session").pop().expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"] {
        assert!(session.contains(attr), "{attr} missing: {session}");
    }
    let secret = value(&session);
    let (status, page) = jar.get(&http, &s.url("/ui/"));
    assert_eq!(status, 200);
    assert!(page.contains("id=\"signed-in-as\"") && page.contains("admin"), "{page}");

    // The database keeps only a hash of the session's secret.
    let mut stored = Vec::new();
    for f in ["wharf.db", "wharf.db-wal"] {
        stored.extend(std::fs::read(s.data_dir.join(f)).unwrap_or_default());
    }
    if !stored.is_empty() {
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "the session secret is stored");
    }

    // Signing out needs the session's token; then the cookie names no session.
    let session_csrf = csrf_field(&page);
    let r = jar.post(&http, &s.url("/ui/sign-out"), &[]);
    assert_eq!(r.status(), 403);
    assert!(jar.get(&http, &s.url("/ui/")).1.contains("id=\"signed-in-as\""), "a refused sign-out changes nothing");
    let old = jar.clone();
    let r = jar.post(&http, &s.url("/ui/sign-out"), &[("csrf", &session_csrf)]);
    assert_eq!(r.status(), 303);
    let gone = set_cookies(&r, "wharf_session").pop().expect("the cookie removed");
    assert!(gone.contains("Max-Age=0"), "{gone}");
    let mut replay = old;
    let (_, page) = replay.get(&http, &s.url("/ui/"));
    assert!(!page.contains("id=\"signed-in-as\""), "a signed-out session still works");
}

#[test]
fn robots_cannot_sign_in_and_sessions_end_with_their_account() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, http) = https_server(tmp.path(), &[]);
    let robot: serde_json::Value =
        serde_json::from_str(&s.admin(&["robot", "create", "ci", "--grant", "ci/**=push", "--json"], "")).unwrap();
    let secret = robot["secret"].as_str().expect("the robot's secret").to_owned();
    let mut jar = Jar::default();
    let r = jar.sign_in(&http, &s, "robot$ci", &secret);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("Robots cannot sign in"));
    assert!(jar.session.is_none());

    s.admin(&["user", "add", "dana", "--password-stdin"], "dana-pass-1\n");
    let mut dana = Jar::default();
    assert_eq!(dana.sign_in(&http, &s, "dana", "dana-pass-1").status(), 303);
    assert!(dana.get(&http, &s.url("/ui/")).1.contains("id=\"signed-in-as\""));
    // A new password ends the sessions the old one opened.
    s.admin(&["user", "passwd", "dana", "--password-stdin"], "dana-pass-2\n");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = http.get(s.url("/ui/")).header(COOKIE, dana.header()).send().unwrap();
    assert!(!r.text().unwrap().contains("id=\"signed-in-as\""), "a session outlived its password");
    let mut dana = Jar::default();
    assert_eq!(dana.sign_in(&http, &s, "dana", "dana-pass-2").status(), 303);
    assert!(dana.get(&http, &s.url("/ui/")).1.contains("id=\"signed-in-as\""));
    s.admin(&["user", "remove", "dana"], "");
    // The policy reloads within a second of the change.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = http.get(s.url("/ui/")).header(COOKIE, dana.header()).send().unwrap();
    let forget = set_cookies(&r, "wharf_session");
    assert!(!r.text().unwrap().contains("id=\"signed-in-as\""), "a removed account's session still works");
    assert!(forget.iter().any(|c| c.contains("Max-Age=0")), "the dead session's cookie is not removed: {forget:?}");
}

#[test]
fn pages_ignore_authorization_carry_a_strict_policy_and_return_only_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, http) = https_server(tmp.path(), &[]);
    // Pages know their viewer only by the session cookie: Basic credentials sign no one in.
    let r = http.get(s.url("/ui/")).basic_auth("admin", Some(ADMIN)).send().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for part in
        ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"]
    {
        assert!(csp.contains(part), "{part} missing: {csp}");
    }
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().contains_key("strict-transport-security"));
    assert!(!r.text().unwrap().contains("id=\"signed-in-as\""));
    // Every kind of answer carries the policy: an error page, an asset, the sign-in page.
    for (path, status) in [("/ui/r/nope/-/nothing", 404), ("/ui/assets/ui.css", 200), ("/ui/sign-in", 200)] {
        let r = http.get(s.url(path)).send().unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert!(r.headers().contains_key("content-security-policy"), "{path}");
    }
    // `/` leads to the interface; a page not under `/ui/` never becomes a sign-in's destination.
    let r = http.get(s.url("/")).send().unwrap();
    assert_eq!(r.headers()[LOCATION], "/ui/");
    for next in ["//evil.example/", "https://evil.example/ui/", "/v2/_catalog"] {
        // A fresh visitor each time (a signed-in one's forms carry its session's token, not the visitor's).
        let mut jar = Jar::default();
        let (_, page) = jar.get(&http, &s.url("/ui/sign-in"));
        let csrf = csrf_field(&page);
        let r = jar.post(
            &http,
            &s.url("/ui/sign-in"),
            &[("user", "admin"), ("password", ADMIN), ("csrf", &csrf), ("next", next)],
        );
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()[LOCATION], "/ui/", "next={next}");
    }
}

#[test]
fn failed_sign_ins_are_throttled_like_any_login() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, http) = https_server(tmp.path(), &[("WHARF_AUTH_THROTTLE_AFTER", "2")]);
    let mut jar = Jar::default();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(jar.sign_in(&http, &s, "admin", "wrong").status().as_u16());
    }
    assert_eq!(&statuses[..2], &[401, 401], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
    // The right password is refused too while the lock-out lasts.
    let r = jar.sign_in(&http, &s, "admin", ADMIN);
    assert_eq!(r.status(), 429);
    assert!(r.text().unwrap().contains("try again"));
}
