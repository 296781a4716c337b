//! The administration pages over HTTP with access control on: the first administrator sees accounts, grants, an
//! audit row of a push, a quota and the last collection's report; a signed-in user without admin grants and an
//! anonymous visitor get `403` on each page (the anonymous one with a sign-in link back to it).

use crate::common;

use std::time::Duration;

use common::oci::Oci;
use common::Server;

const PAGES: [&str; 5] = ["/ui/admin", "/ui/admin/accounts", "/ui/admin/audit", "/ui/admin/gc", "/ui/admin/quotas"];

/// A client that follows no redirects (the sign-in answers `303` with its cookie).
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The value of cookie `name` in a response's `Set-Cookie` headers.
fn set_cookie(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Signs in through the form and returns the `Cookie` header of the session.
pub fn sign_in(s: &Server, user: &str, password: &str) -> String {
    let c = http();
    let page = c.get(s.url("/ui/sign-in")).send().unwrap();
    let csrf = set_cookie(&page, "wharf_csrf").expect("a CSRF cookie for a new visitor");
    let resp = c
        .post(s.url("/ui/sign-in"))
        .header("cookie", format!("wharf_csrf={csrf}"))
        .form(&[("user", user), ("password", password), ("csrf", &csrf), ("next", "/ui/")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303, "sign-in of {user}");
    let session = set_cookie(&resp, "wharf_session").expect("a session cookie");
    format!("wharf_session={session}")
}

/// GETs `path` with `cookie` (if any): status and body.
fn get(s: &Server, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut req = http().get(s.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

/// The `<tr ...>` element of `table` whose attributes include `attrs`, up to its `</tr>`.
fn row<'a>(body: &'a str, table: &str, attrs: &str) -> &'a str {
    let t = body.find(&format!("<table id=\"{table}\"")).unwrap_or_else(|| panic!("no table#{table} in {body}"));
    let body = &body[t..];
    let end = body.find("</table>").expect("table end");
    let table_html = &body[..end];
    let at = table_html.find(&format!("<tr {attrs}")).unwrap_or_else(|| panic!("no row {attrs} in {table_html}"));
    let rest = &table_html[at..];
    &rest[..rest.find("</tr>").expect("row end")]
}

#[test]
fn administrators_see_accounts_grants_audit_collections_and_quotas() {
    let s = Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "admin-pass-1")]);
    s.admin(&["user", "add", "dev", "--password-stdin"], "dev-pass-12\n");
    s.admin(&["grant", "dev", "team/**", "push,delete"], "");
    s.admin(&["grant", "anonymous", "pub/**", "pull"], "");
    let robot = s.admin(&["robot", "create", "ci", "--grant", "ci/**=push", "--json"], "");
    let secret = serde_json::from_str::<serde_json::Value>(&robot).unwrap()["secret"].as_str().unwrap().to_owned();
    s.admin(&["quota", "set", "team/**", "1048576"], "");
    std::thread::sleep(Duration::from_millis(1200));
    let oci = Oci::with_basic(&s, "admin", "admin-pass-1");
    let pushed = oci.push("team/app", "v1", b"{\"config\":1}", &[&common::data(4096, 7)], None).unwrap();

    let admin = sign_in(&s, "admin", "admin-pass-1");
    let (status, body) = get(&s, "/ui/admin", Some(&admin));
    assert_eq!(status, 200, "{body}");
    for p in &PAGES[1..] {
        assert!(body.contains(&format!("href=\"{p}\"")), "the index links {p}");
    }

    // Accounts: users and the robot with their kind, grants per account and the anonymous ones; no secret.
    let (status, body) = get(&s, "/ui/admin/accounts", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(row(&body, "accounts", "data-account=\"dev\"").contains(">user<"));
    assert!(row(&body, "accounts", "data-account=\"admin\"").contains(">user<"));
    assert!(row(&body, "accounts", "data-account=\"robot$ci\"").contains(">robot<"));
    assert!(row(&body, "grants", "data-account=\"dev\" data-pattern=\"team/**\"").contains("push, delete"));
    assert!(row(&body, "grants", "data-account=\"robot$ci\" data-pattern=\"ci/**\"").contains("push"));
    assert!(row(&body, "grants", "data-account=\"anonymous\" data-pattern=\"pub/**\"").contains("pull"));
    assert!(!body.contains("argon2") && !body.contains(&secret), "no secret or hash on the page");

    // The audit log: the push, newest first, and the filters.
    let (status, body) = get(&s, "/ui/admin/audit", Some(&admin));
    assert_eq!(status, 200, "{body}");
    let push = row(&body, "audit", "data-audit-id=");
    assert!(body.contains("data-action=\"push\""), "{body}");
    assert!(push.contains("team/app") || body.contains(&pushed.digest), "the newest rows name the push: {push}");
    let (_, only_push) = get(&s, "/ui/admin/audit?action=push&repository=team%2Fapp", Some(&admin));
    assert!(only_push.contains(&pushed.digest), "the filtered log holds the push");
    assert!(!only_push.contains("data-action=\"grant"), "the action filter hides other actions");
    let (_, none) = get(&s, "/ui/admin/audit?account=nobody", Some(&admin));
    assert!(none.contains("id=\"no-audit\""), "a filter that matches nothing says so");

    // Quotas: the pattern with its limit and the push's usage.
    let (status, body) = get(&s, "/ui/admin/quotas", Some(&admin));
    assert_eq!(status, 200, "{body}");
    let q = row(&body, "quotas", "data-quota=\"team/**\"");
    assert!(q.contains("1.0 MiB"), "the limit: {q}");
    assert!(!q.contains(">0 B<"), "the push counts: {q}");

    // The last collection: none yet, then the report of `wharf admin gc`.
    let (status, body) = get(&s, "/ui/admin/gc", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"no-gc-report\"") && !body.contains("id=\"gc-report\""), "{body}");
    assert_eq!(oci.delete("team/app", &pushed.digest), 202);
    s.admin(&["gc"], "");
    let (_, body) = get(&s, "/ui/admin/gc", Some(&admin));
    assert!(body.contains("id=\"gc-report\""), "{body}");
    assert!(body.contains("<dt>Manifests removed</dt>") && body.contains("class=\"finished\""), "{body}");

    // Everyone else: 403 on every page; the anonymous visitor is offered a sign-in that returns there.
    let dev = sign_in(&s, "dev", "dev-pass-12");
    for p in PAGES {
        let (status, body) = get(&s, p, Some(&dev));
        assert_eq!(status, 403, "dev on {p}");
        assert!(!body.contains("id=\"accounts\"") && !body.contains("id=\"admin-sign-in\""), "{p}: {body}");
        let (status, body) = get(&s, p, None);
        assert_eq!(status, 403, "anonymous on {p}");
        let encoded = url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>();
        let link = |next: &str| format!("id=\"admin-sign-in\" href=\"/ui/sign-in?next={next}\"");
        assert!(body.contains(&link(p)) || body.contains(&link(&encoded)), "{p}: {body}");
        assert!(!body.contains("data-account"), "{p}: nothing of the page");
    }
    // An API caller's credentials do not open the pages: only a web session does.
    let basic = http().get(s.url("/ui/admin/accounts")).basic_auth("admin", Some("admin-pass-1")).send().unwrap();
    assert_eq!(basic.status(), 403);
}
