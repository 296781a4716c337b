//! The manifest page and deleting through the interface, over HTTP with access control on: an image's config
//! (entrypoint, environment values only in `data-value`, labels, history), its layers summing to the total, an
//! index's children by platform, referrers grouped by artifact type, pull commands; a delete through the form is
//! the API's (gone from `/v2/`, audited with the account), refused without the right or the token, never on a GET.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::common::oci::Oci;
use crate::common::{self, Server};

const ADMIN: &str = "admin-pass-ui-1";
const WRITER: &str = "writer-pass-ui-1";
const READER: &str = "reader-pass-ui-1";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An environment value that must never be in a page's visible text.
const SECRET_ENV: &str = "s3cr3t-t0ken-value";

/// A browser without JavaScript: the interface's cookies kept by hand, no redirects followed.
struct Web {
    http: Client,
    base: String,
    cookies: RefCell<BTreeMap<String, String>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Web {
    fn new(s: &Server) -> Web {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Web { http, base: s.url(""), cookies: RefCell::default() }
    }

    /// Signs `user` in through the sign-in form.
    fn signed_in(s: &Server, user: &str, password: &str) -> Web {
        let w = Web::new(s);
        let page = w.get("/ui/sign-in");
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = csrf_of(&page.body);
        let done = w.post("/ui/sign-in", &[("user", user), ("password", password), ("csrf", &csrf), ("next", "/ui/")]);
        assert_eq!(done.status, 303, "sign-in of {user}: {}", done.body);
        assert!(w.cookies.borrow().contains_key("wharf_session"), "no session cookie for {user}");
        w
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Answer {
        let cookie: Vec<String> = self.cookies.borrow().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let r = req.header("cookie", cookie.join("; ")).send().unwrap();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.borrow_mut().remove(k);
            } else {
                self.cookies.borrow_mut().insert(k.to_owned(), v.to_owned());
            }
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        Answer { status, location, body: r.text().unwrap() }
    }

    fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req =
            self.http.post(format!("{}{path}", self.base)).header("content-type", "application/x-www-form-urlencoded");
        self.send(req.body(body))
    }

    /// The viewer's CSRF token, as its pages' forms carry it (the sign-out form, or an anonymous visitor's
    /// sign-in form).
    fn csrf(&self) -> String {
        let signed_in = self.cookies.borrow().contains_key("wharf_session");
        csrf_of(&self.get(if signed_in { "/ui/" } else { "/ui/sign-in" }).body)
    }
}

/// The value of the first `csrf` field in a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// The element that starts with `start` (e.g. `<table id="layers"`), up to the first `end` after it.
fn part<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html.find(start).unwrap_or_else(|| panic!("{start} not in the page:\n{html}"));
    let rest = &html[at..];
    &rest[..rest.find(end).map_or(rest.len(), |e| e + end.len())]
}

/// The text a reader sees: the page without its tags (attribute values included).
fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every value of `attr="..."` in `html`.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key).map(|(i, _)| html[i + key.len()..].split('"').next().unwrap().to_owned()).collect()
}

fn server() -> Server {
    let s = Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", ADMIN)]);
    s.admin(&["user", "add", "writer", "--password-stdin"], &format!("{WRITER}\n"));
    s.admin(&["user", "add", "reader", "--password-stdin"], &format!("{READER}\n"));
    s.admin(&["user", "add", "outsider", "--password-stdin"], &format!("{READER}\n"));
    s.admin(&["grant", "writer", "team/**", "pull,push,delete"], "");
    s.admin(&["grant", "reader", "team/**", "pull"], "");
    s.admin(&["grant", "outsider", "other/**", "pull"], "");
    // The server picks up new accounts within a second.
    std::thread::sleep(Duration::from_millis(1200));
    s
}

/// An image config with everything the page shows.
fn config(arch: &str) -> Vec<u8> {
    json!({
        "architecture": arch, "os": "linux", "created": "2026-01-02T03:04:05Z",
        "config": {
            "Entrypoint": ["/bin/app", "--serve"], "Cmd": ["--port", "8080"], "WorkingDir": "/srv", "User": "1000:1000",
            "Env": ["PATH=/usr/local/bin:/usr/bin", format!("API_TOKEN={SECRET_ENV}")],
            "Labels": { "org.opencontainers.image.source": "https://example.com/app" },
        },
        "rootfs": { "type": "layers", "diff_ids": [] },
        "history": [
            { "created": "2026-01-02T03:00:00Z", "created_by": "ADD rootfs.tar /" },
            { "created": "2026-01-02T03:01:00Z", "created_by": "ENV API_TOKEN=…", "empty_layer": true },
            { "created": "2026-01-02T03:02:00Z", "created_by": "COPY app /bin/app" },
        ],
    })
    .to_string()
    .into_bytes()
}

/// PUT of a manifest body with its content type, as `admin`; the digest.
fn put(s: &Server, repo: &str, reference: &str, media_type: &str, body: &Value) -> String {
    let body = body.to_string();
    let r = Client::new()
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .basic_auth("admin", Some(ADMIN))
        .header("content-type", media_type)
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "PUT {repo}:{reference}: {}", r.text().unwrap_or_default());
    common::sha256(body.as_bytes())
}

/// The status of `HEAD /v2/REPO/manifests/REFERENCE` as `admin`.
fn api_status(s: &Server, repo: &str, reference: &str) -> u16 {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    let r = Client::new()
        .head(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .basic_auth("admin", Some(ADMIN))
        .header("accept", accept)
        .send()
        .unwrap();
    r.status().as_u16()
}

/// An OCI 1.1 artifact of `artifact_type` whose subject is `subject` (a manifest of `size` bytes); its digest.
fn refer(s: &Server, admin: &Oci, repo: &str, subject: &str, size: usize, artifact_type: &str, blob: &[u8]) -> String {
    let empty = admin.ensure_blob(repo, b"{}", None);
    let layer = admin.ensure_blob(repo, blob, None);
    let m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2 },
        "layers": [{ "mediaType": artifact_type, "digest": layer, "size": blob.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": size },
    });
    put(s, repo, &common::sha256(m.to_string().as_bytes()), OCI_MANIFEST, &m)
}

#[test]
fn the_manifest_page_shows_an_image_an_index_and_their_referrers() {
    let s = server();
    let admin = Oci::with_basic(&s, "admin", ADMIN);
    let (l1, l2) = (common::data(3000, 1), common::data(5000, 2));
    let image = admin.push("team/app", "v1", &config("amd64"), &[&l1, &l2], None).unwrap();
    let reader = Web::signed_in(&s, "reader", READER);

    let page = reader.get(&format!("/ui/r/team/app/-/manifest/{}", image.digest));
    assert_eq!(page.status, 200, "{}", page.body);
    let html = &page.body;
    assert!(part(html, "id=\"entrypoint\"", "</code>").contains("[&#34;/bin/app&#34;,&#34;--serve&#34;]"), "{html}");
    // Environment values are hidden: in `data-value` for the reveal button, never in the text.
    let env = part(html, "<table id=\"env\"", "</table>");
    assert!(env.contains("API_TOKEN") && attrs(env, "data-value").contains(&SECRET_ENV.to_owned()), "{env}");
    assert!(!visible(html).contains(SECRET_ENV), "an environment value is visible");
    assert!(html.contains("data-reveal=\"env\""));
    assert!(part(html, "id=\"labels\"", "</div>").contains("https://example.com/app"));
    let history = part(html, "id=\"history\"", "</div>");
    assert!(history.contains("COPY app /bin/app") && history.contains("empty-layer"), "{history}");
    // Layers: each size, and the total their sum.
    let layers = part(html, "<table id=\"layers\"", "</table>");
    let rows: Vec<&str> = layers.split("<tr class=\"layer\"").skip(1).collect();
    assert_eq!(rows.len(), 2, "{layers}");
    let sizes: Vec<u64> = rows.iter().map(|r| attrs(r, "data-bytes")[0].parse().unwrap()).collect();
    assert_eq!(sizes, [3000, 5000]);
    let total: u64 = attrs(part(layers, "id=\"layers-total\"", "</td>"), "data-bytes")[0].parse().unwrap();
    assert_eq!(total, sizes.iter().sum::<u64>());
    // Pull commands: by digest and by the tag pointing here, with the host the browser used (plain HTTP here).
    let pulls = part(html, "id=\"pull-commands\"", "</section>");
    let at = format!("{}/team/app@{}", s.addr, image.digest);
    assert!(pulls.contains(&format!("<code class=\"pull-docker\">docker pull {at}</code>")), "{pulls}");
    assert!(pulls.contains(&format!("podman pull --tls-verify=false {}/team/app:v1", s.addr)), "{pulls}");
    assert!(pulls.contains(&format!("wharf pull --insecure-registry {} {at}", s.addr)), "{pulls}");
    assert_eq!(attrs(pulls, "data-copy").len(), 6, "a copy button per command");
    // The tag pointing here, unsigned (no trust data), and no delete control for a reader.
    let sigs = part(html, "id=\"signatures\"", "</section>");
    assert!(sigs.contains("data-tag=\"v1\"") && sigs.contains("data-status=\"unsigned\""), "{sigs}");
    assert!(!html.contains("delete-manifest") && !html.contains("delete-tag"), "a reader sees a delete control");

    // Referrers, grouped by artifact type, each linking to its own page.
    let size = manifest_len(&s, &image.digest);
    let sbom =
        refer(&s, &admin, "team/app", &image.digest, size, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    let sig1 = refer(&s, &admin, "team/app", &image.digest, size, "application/vnd.cncf.notary.signature", b"sig-1");
    let sig2 = refer(&s, &admin, "team/app", &image.digest, size, "application/vnd.cncf.notary.signature", b"sig-2");
    let html = reader.get(&format!("/ui/r/team/app/-/manifest/{}", image.digest)).body;
    let refs = &html[html.find("id=\"referrers\"").expect("a referrers section")..];
    let spdx = part(refs, "data-artifact-type=\"application/spdx+json\"", "</section>");
    assert!(spdx.contains("SPDX SBOM") && spdx.contains(&format!("/ui/r/team/app/-/manifest/{sbom}")), "{spdx}");
    let notation = part(refs, "data-artifact-type=\"application/vnd.cncf.notary.signature\"", "</section>");
    assert!(notation.contains("Notation signature"), "{notation}");
    assert!(notation.contains(&sig1) && notation.contains(&sig2), "both signatures in one group: {notation}");
    let referrer = reader.get(&format!("/ui/r/team/app/-/manifest/{sbom}")).body;
    assert!(referrer.contains(&format!("href=\"/ui/r/team/app/-/manifest/{}\"", image.digest)), "subject link");
    assert!(referrer.contains("id=\"artifact-type\">application/spdx+json<"), "{referrer}");

    // A multi-platform index: each child by platform, linking to its page.
    let arm = admin.push("team/app", "arm-only", &config("arm64"), &[&common::data(700, 3)], None).unwrap();
    let child = |d: &str, arch: &str| {
        let size = manifest_len(&s, d);
        json!({ "mediaType": OCI_MANIFEST, "digest": d, "size": size, "platform": { "os": "linux", "architecture": arch } })
    };
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [child(&image.digest, "amd64"), child(&arm.digest, "arm64")],
    });
    let index_digest = put(&s, "team/app", "multi", OCI_INDEX, &index);
    let html = reader.get(&format!("/ui/r/team/app/-/manifest/{index_digest}")).body;
    let children = part(&html, "<table id=\"children\"", "</table>");
    for (platform, digest) in [("linux/amd64", &image.digest), ("linux/arm64", &arm.digest)] {
        let row = part(children, &format!("<tr data-platform=\"{platform}\""), "</tr>");
        assert!(row.contains(&format!("href=\"/ui/r/team/app/-/manifest/{digest}\"")), "{row}");
    }
    assert!(html.contains("team/app:multi"), "pull by the index's tag");
    // The child names the index it is part of.
    let html = reader.get(&format!("/ui/r/team/app/-/manifest/{}", arm.digest)).body;
    assert!(part(&html, "id=\"parents\"", "</dd>").contains(&index_digest));

    // A repository the viewer may not pull is as missing as a manifest that is not there.
    let outsider = Web::signed_in(&s, "outsider", READER);
    assert_eq!(outsider.get(&format!("/ui/r/team/app/-/manifest/{}", image.digest)).status, 404);
    assert_eq!(Web::new(&s).get(&format!("/ui/r/team/app/-/manifest/{}", image.digest)).status, 404);
    let nothing = common::sha256(b"nothing");
    assert_eq!(reader.get(&format!("/ui/r/team/app/-/manifest/{nothing}")).status, 404);
}

/// The length of manifest `digest` of `team/app` as stored.
fn manifest_len(s: &Server, digest: &str) -> usize {
    let r = Client::new()
        .get(s.url(&format!("/v2/team/app/manifests/{digest}")))
        .basic_auth("admin", Some(ADMIN))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().unwrap().len()
}

/// `wharf admin audit --json` rows of `action` in `team/app`, newest first.
fn audited(s: &Server, action: &str) -> Vec<Value> {
    let out = s.admin(&["audit", "--json", "--limit", "1000", "--action", action, "--repository", "team/app"], "");
    serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
}

#[test]
fn a_delete_through_the_form_is_the_apis_delete() {
    let s = server();
    let admin = Oci::with_basic(&s, "admin", ADMIN);
    let one = admin.push("team/app", "v1", &config("amd64"), &[&common::data(1000, 4)], None).unwrap();
    let two = admin.push("team/app", "v2", &config("amd64"), &[&common::data(1000, 5)], None).unwrap();
    assert_eq!(put(&s, "team/app", "v2-alias", OCI_MANIFEST, &admin_body(&s, &two.digest)), two.digest);
    let writer = Web::signed_in(&s, "writer", WRITER);

    // The controls are offered to a viewer who may delete.
    let html = writer.get(&format!("/ui/r/team/app/-/manifest/{}", one.digest)).body;
    assert!(html.contains("id=\"delete-manifest\""), "{html}");
    assert!(html.contains("class=\"delete-tag\" href=\"/ui/r/team/app/-/delete?tag=v1\""), "{html}");

    // A tag: the confirmation changes nothing; the form deletes the tag only.
    let confirm = writer.get("/ui/r/team/app/-/delete?tag=v1");
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let form = part(&confirm.body, "<form id=\"confirm-delete\"", "</form>");
    assert!(form.contains("method=\"post\"") && form.contains("id=\"confirm-delete-button\""), "{form}");
    assert!(form.contains("name=\"tag\" value=\"v1\""), "{form}");
    assert_eq!(api_status(&s, "team/app", "v1"), 200, "a GET deleted");
    let csrf = csrf_of(form);
    let done = writer.post("/ui/r/team/app/-/delete", &[("csrf", &csrf), ("tag", "v1")]);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/ui/r/team/app?deleted=v1"));
    let after = writer.get("/ui/r/team/app?deleted=v1").body;
    assert!(part(&after, "id=\"flash\"", "</p>").contains("Deleted tag v1."), "{after}");
    assert_eq!(api_status(&s, "team/app", "v1"), 404, "the tag is gone from the API");
    assert_eq!(api_status(&s, "team/app", &one.digest), 200, "the manifest stays");
    let untag = audited(&s, "untag");
    assert_eq!(untag.len(), 1, "{untag:?}");
    assert_eq!((untag[0]["actor"].as_str(), untag[0]["tag"].as_str()), (Some("writer"), Some("v1")));
    assert_eq!(untag[0]["digest"].as_str(), Some(one.digest.as_str()));

    // A manifest: the confirmation lists every tag that goes with it; the form deletes them all.
    let confirm = writer.get(&format!("/ui/r/team/app/-/delete?digest={}", two.digest));
    assert_eq!(confirm.status, 200);
    let going = part(&confirm.body, "id=\"tags-going\"", "</ul>");
    assert_eq!(attrs(going, "data-tag"), ["v2", "v2-alias"]);
    assert_eq!(api_status(&s, "team/app", &two.digest), 200, "a GET deleted");
    let done = writer.post("/ui/r/team/app/-/delete", &[("csrf", &writer.csrf()), ("digest", &two.digest)]);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, Some(format!("/ui/r/team/app?deleted={}", two.digest.replace(':', "%3A"))));
    for reference in [two.digest.as_str(), "v2", "v2-alias"] {
        assert_eq!(api_status(&s, "team/app", reference), 404, "{reference} is still there");
    }
    let deleted = audited(&s, "delete");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(
        (deleted[0]["actor"].as_str(), deleted[0]["digest"].as_str()),
        (Some("writer"), Some(two.digest.as_str()))
    );
    // Deleting again: nothing there.
    let again = writer.post("/ui/r/team/app/-/delete", &[("csrf", &writer.csrf()), ("digest", &two.digest)]);
    assert_eq!(again.status, 404);
}

#[test]
fn a_delete_is_refused_without_the_right_or_the_token() {
    let s = server();
    let admin = Oci::with_basic(&s, "admin", ADMIN);
    let image = admin.push("team/app", "v1", &config("amd64"), &[&common::data(1000, 6)], None).unwrap();
    let (reader, writer) = (Web::signed_in(&s, "reader", READER), Web::signed_in(&s, "writer", WRITER));

    // A viewer who may pull but not delete: no control, 403 on the confirmation and on the form with their own
    // valid token.
    let html = reader.get(&format!("/ui/r/team/app/-/manifest/{}", image.digest)).body;
    assert!(html.contains("data-tag=\"v1\"") && !html.contains("delete-manifest") && !html.contains("delete-tag"));
    assert_eq!(reader.get("/ui/r/team/app/-/delete?tag=v1").status, 403);
    let csrf = reader.csrf();
    assert_eq!(reader.post("/ui/r/team/app/-/delete", &[("csrf", &csrf), ("tag", "v1")]).status, 403);
    assert_eq!(reader.post("/ui/r/team/app/-/delete", &[("csrf", &csrf), ("digest", &image.digest)]).status, 403);
    // A viewer who may not even pull: as if the repository were not there; anonymous likewise.
    let outsider = Web::signed_in(&s, "outsider", READER);
    assert_eq!(outsider.get("/ui/r/team/app/-/delete?tag=v1").status, 404);
    assert_eq!(outsider.post("/ui/r/team/app/-/delete", &[("csrf", &outsider.csrf()), ("tag", "v1")]).status, 404);
    let anonymous = Web::new(&s);
    assert_eq!(anonymous.post("/ui/r/team/app/-/delete", &[("csrf", &anonymous.csrf()), ("tag", "v1")]).status, 404);

    // The writer, without the token, with a wrong one, with another viewer's: 403.
    assert_eq!(writer.post("/ui/r/team/app/-/delete", &[("tag", "v1")]).status, 403);
    assert_eq!(writer.post("/ui/r/team/app/-/delete", &[("csrf", "x"), ("tag", "v1")]).status, 403);
    assert_eq!(writer.post("/ui/r/team/app/-/delete", &[("csrf", &csrf), ("tag", "v1")]).status, 403);
    // A form naming nothing, or both: refused.
    let token = writer.csrf();
    assert_eq!(writer.post("/ui/r/team/app/-/delete", &[("csrf", &token)]).status, 400);
    let both = [("csrf", token.as_str()), ("tag", "v1"), ("digest", image.digest.as_str())];
    assert_eq!(writer.post("/ui/r/team/app/-/delete", &both).status, 400);
    assert_eq!(api_status(&s, "team/app", "v1"), 200, "a refused delete deleted");
    assert!(audited(&s, "untag").is_empty() && audited(&s, "delete").is_empty(), "a refused delete was recorded");
}

/// The stored manifest `digest` of `team/app`, parsed.
fn admin_body(s: &Server, digest: &str) -> Value {
    let r = Client::new()
        .get(s.url(&format!("/v2/team/app/manifests/{digest}")))
        .basic_auth("admin", Some(ADMIN))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    serde_json::from_slice(&r.bytes().unwrap()).unwrap()
}
