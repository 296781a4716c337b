//! The web interface in a real browser (Debian's chromium through chromium-driver, `common::browser`), on a server
//! over HTTPS with access control on, seeded by real clients: skopeo pushes the test images (an image, a
//! multi-platform index), `wharf trust` signs a tag with TUF. Accounts: `dev` may pull, push, delete and sign
//! under `team/`, `viewer` may only pull there; anonymous visitors may pull `pub/`; `private/` is the
//! administrator's alone.
//!
//! Every page a test opens is checked for console errors and for requests off the server's origin
//! (`Browser::visit`, `check_page`); each page type is run through axe-core and photographed (the artefact
//! directory is printed and kept).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::browser::{Browser, PHONE};
use common::client::Client;
use common::Server;
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("admin", "admin-pass-1");
const DEV: (&str, &str) = ("dev", "dev-pass-123");
const VIEWER: (&str, &str) = ("viewer", "viewer-pass-123");

/// A seeded server over HTTPS with access control on, and a publisher's `wharf` client signed in as `dev`.
struct Site {
    s: Server,
    /// `ca.crt` alone: what skopeo's `--dest-cert-dir` and `wharf --ca-cert` trust.
    ca: PathBuf,
    publisher: Client,
    _tmp: tempfile::TempDir,
}

/// The digest of `tag` in an OCI layout.
fn layout_digest(layout: &Path, tag: &str) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"].as_array().unwrap().iter();
    let found = m.clone().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag);
    found.and_then(|m| m["digest"].as_str()).unwrap_or_else(|| panic!("no {tag} in {}", layout.display())).into()
}

/// The test images (`small`: one image; `index`: linux/amd64 and linux/arm64/v8, also tagged `amd64`, `arm64`).
fn images() -> &'static Path {
    common::peers::shared_images()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

impl Site {
    fn start() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let certs = tmp.path().join("certs");
        common::auth_support::certs(&certs, &["127.0.0.1"]);
        let ca = tmp.path().join("ca");
        std::fs::create_dir_all(&ca).unwrap();
        std::fs::copy(certs.join("ca.crt"), ca.join("ca.crt")).unwrap();
        let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
        let s = Server::start(&[
            ("WHARF_AUTH", "1"),
            ("WHARF_ADMIN_PASSWORD", ADMIN.1),
            ("WHARF_TLS_CERT", cert.to_str().unwrap()),
            ("WHARF_TLS_KEY", key.to_str().unwrap()),
        ]);
        assert_eq!(s.scheme, "https");
        for (user, password) in [DEV, VIEWER] {
            s.admin(&["user", "add", user, "--password-stdin"], &format!("{password}\n"));
        }
        s.admin(&["grant", DEV.0, "team/**", "pull,push,delete,sign"], "");
        s.admin(&["grant", VIEWER.0, "team/**", "pull"], "");
        s.admin(&["grant", "anonymous", "pub/**", "pull"], "");
        // The server reads new accounts and grants within a second.
        std::thread::sleep(Duration::from_millis(1200));
        let site = Site { s, ca, publisher: Client::new(), _tmp: tmp };
        let login = site.wharf(&["login", &site.s.addr, "-u", DEV.0, "--password-stdin"], &format!("{}\n", DEV.1));
        assert!(login.status.success(), "wharf login: {}", text(&login));
        site
    }

    /// Runs the publisher's `wharf` (trusting the test CA) with `stdin`.
    fn wharf(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let c = &self.publisher;
        let mut child = Command::new(common::wharf_bin())
            .arg("--ca-cert")
            .arg(self.ca.join("ca.crt"))
            .args(args)
            .env("WHARF_STORE", c.store.path())
            .env("WHARF_CONFIG_DIR", c.config.path())
            .env("DOCKER_CONFIG", c.config.path().join("docker"))
            .env("WHARF_ROOT_PASSPHRASE", "root secret")
            .env("WHARF_REPOSITORY_PASSPHRASE", "repo secret")
            .env("WHARF_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wharf");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn wharf_ok(&self, args: &[&str]) -> String {
        let out = self.wharf(args, "");
        assert!(out.status.success(), "wharf {args:?} failed ({:?}):\n{}", out.status.code(), text(&out));
        text(&out)
    }

    /// Copies `layout:tag` of the test images to `repo:tag` with skopeo, as the administrator (`--all`: an index
    /// with its children).
    fn push(&self, layout: &str, from: &str, repo_tag: &str, all: bool) -> String {
        let src = images().join(layout);
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--preserve-digests", "--dest-cert-dir"]).arg(&self.ca);
        cmd.args(["--dest-creds", &format!("{}:{}", ADMIN.0, ADMIN.1)]);
        if all {
            cmd.arg("--all");
        }
        let out = cmd
            .arg(format!("oci:{}:{from}", src.display()))
            .arg(format!("docker://{}/{repo_tag}", self.s.addr))
            .output()
            .expect("run skopeo");
        assert!(out.status.success(), "skopeo copy to {repo_tag}: {}", text(&out));
        layout_digest(&src, from)
    }

    /// `team/signed:v1`, signed with TUF by `dev` (`wharf trust init`, `wharf trust sign`).
    fn signed(&self) -> String {
        let digest = self.push("small", "latest", "team/signed:v1", false);
        self.wharf_ok(&["trust", "init", &format!("{}/team/signed", self.s.addr)]);
        self.wharf_ok(&["trust", "sign", &format!("{}/team/signed:v1", self.s.addr)]);
        digest
    }

    fn browser(&self, test: &str) -> Browser {
        Browser::start(&self.s.url(""), test)
    }

    /// The tags of `repo` on the registry API, as the administrator.
    fn api_tags(&self, repo: &str) -> Vec<String> {
        let pem = std::fs::read(self.ca.join("ca.crt")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let r = http.get(self.s.url(&format!("/v2/{repo}/tags/list"))).basic_auth(ADMIN.0, Some(ADMIN.1)).send();
        let v: Value = r.unwrap().json().unwrap();
        let mut tags: Vec<String> = serde_json::from_value(v["tags"].clone()).unwrap_or_default();
        tags.sort();
        tags
    }
}

/// The repositories the list shows.
fn listed(b: &Browser) -> Vec<String> {
    let v = b.js(
        "return Array.from(document.querySelectorAll('table#repositories tr[data-repository]'))
                .map(r => r.dataset.repository)",
        &[],
    );
    let mut names: Vec<String> = serde_json::from_value(v).unwrap_or_default();
    names.sort();
    names
}

/// The TUF badge of `tag` on a tags page: (status, signers, expiry).
fn tuf_badge(b: &Browser, tag: &str) -> (String, String, String) {
    let badge = format!("tr[data-tag=\"{tag}\"] td.signed span.trust-badge[data-format=\"TUF\"]");
    let status = b.attr(&badge, "data-status").unwrap_or_else(|| panic!("no TUF badge for {tag}: {}", b.text("main")));
    (status, b.text(&format!("{badge} .signers")), b.text(&format!("{badge} .expires")))
}

#[test]
fn sign_in_find_a_repository_and_see_a_tag_signed_revoked_and_moved() {
    let site = Site::start();
    let digest = site.signed();
    site.push("small", "latest", "team/plain:v1", false);
    let b = site.browser("signed-status");
    b.sign_in(DEV.0, DEV.1);

    // Search: the list narrows to the repository.
    b.visit("/ui/");
    assert_eq!(listed(&b), ["team/plain", "team/signed"], "{}", b.text("main"));
    b.fill("form#repo-search input[name=q]", "sign");
    b.enter("form#repo-search input[name=q]");
    assert_eq!(b.status(), 200);
    b.check_page(&[]);
    assert!(b.path().contains("q=sign"), "{}", b.path());
    assert_eq!(listed(&b), ["team/signed"]);
    let row = "tr[data-repository=\"team/signed\"]";
    assert!(b.text(&format!("{row} td.formats")).contains("TUF"), "{}", b.text(row));
    assert_eq!(b.text(&format!("{row} td.tag-count")).trim(), "1");

    // The tag: signed by the targets role, with an expiry, and the notice that clients verify for themselves.
    b.click(&format!("{row} a.repo-link"));
    b.check_page(&[]);
    assert_eq!(b.path(), "/ui/r/team/signed");
    assert!(b.text("tr[data-tag=\"v1\"] td.digest").contains(&digest), "{}", b.text("table#tags"));
    let (status, signers, expires) = tuf_badge(&b, "v1");
    assert_eq!(status, "signed");
    assert!(signers.contains("targets"), "signers: {signers:?}");
    assert!(!expires.trim().is_empty(), "no expiry shown");
    let notice = b.text("#verify-yourself");
    assert!(notice.contains("wharf pull") && notice.contains("DOCKER_CONTENT_TRUST=1"), "{notice}");
    b.assert_accessible("tags");
    b.screenshot("tags");

    // Revoked by the publisher in another process: the page says so on reload.
    site.wharf_ok(&["trust", "revoke", &format!("{}/team/signed:v1", site.s.addr)]);
    b.reload();
    b.check_page(&[]);
    assert_eq!(tuf_badge(&b, "v1").0, "unsigned");

    // Signed again, then another image pushed over the tag: the signed digest is no longer the tag's.
    site.wharf_ok(&["trust", "sign", &format!("{}/team/signed:v1", site.s.addr)]);
    b.reload();
    b.check_page(&[]);
    assert_eq!(tuf_badge(&b, "v1").0, "signed");
    let other = site.push("index", "amd64", "team/signed:v1", false);
    assert_ne!(other, digest);
    b.reload();
    b.check_page(&[]);
    assert!(b.text("tr[data-tag=\"v1\"] td.digest").contains(&other));
    assert_eq!(tuf_badge(&b, "v1").0, "moved", "{}", b.text("tr[data-tag=\"v1\"]"));
    b.screenshot("tags-moved");

    // The same page on a phone: readable, and still without serious violations.
    b.set_window(PHONE);
    b.reload();
    b.check_page(&[]);
    b.assert_accessible("tags (phone)");
    b.screenshot("tags-phone");
}

#[test]
fn delete_through_the_confirmation_and_refusals_without_the_right_or_the_token() {
    let site = Site::start();
    site.push("small", "latest", "team/plain:v1", false);
    let v2 = site.push("index", "amd64", "team/plain:v2", false);
    let b = site.browser("delete");

    // The viewer (pull only) sees no delete control, on the tags page or the manifest page.
    b.sign_in(VIEWER.0, VIEWER.1);
    b.visit("/ui/r/team/plain");
    assert_eq!(b.count("table#tags tr[data-tag]"), 2, "{}", b.text("main"));
    assert_eq!(b.count("a.delete-tag"), 0);
    b.visit(&format!("/ui/r/team/plain/-/manifest/{v2}"));
    assert!(!b.exists("a#delete-manifest"));
    // The confirmation page is refused to them, and so is the form posted directly with their own valid token.
    b.goto("/ui/r/team/plain/-/delete?tag=v2");
    assert_eq!(b.status(), 403);
    b.check_page(&["403"]);
    b.visit("/ui/");
    let csrf = b.attr("form#sign-out input[name=csrf]", "value").expect("the viewer's CSRF token");
    assert!(!csrf.is_empty());
    let post = "const [url, body, done] = arguments;
                fetch(url, { method: 'POST', body: new URLSearchParams(body), credentials: 'same-origin',
                             redirect: 'manual' })
                  .then(r => done(r.status)).catch(e => done(String(e)));";
    let status = b.js_async(post, &[json!("/ui/r/team/plain/-/delete"), json!({"csrf": csrf, "tag": "v2"})]);
    assert_eq!(status, json!(403), "a viewer's delete POST");
    b.check_page(&["403"]);
    assert_eq!(site.api_tags("team/plain"), ["v1", "v2"]);

    // The developer may delete: the control, the confirmation, the redirect with a notice.
    b.sign_out_by_forgetting();
    b.sign_in(DEV.0, DEV.1);
    b.visit("/ui/r/team/plain");
    b.click("tr[data-tag=\"v1\"] a.delete-tag");
    assert_eq!(b.status(), 200);
    b.check_page(&[]);
    assert!(b.path().starts_with("/ui/r/team/plain/-/delete"), "{}", b.path());
    assert_eq!(b.attr("form#confirm-delete input[name=tag]", "value").as_deref(), Some("v1"));
    assert!(b.attr("form#confirm-delete input[name=csrf]", "value").is_some_and(|t| !t.is_empty()));
    assert_eq!(site.api_tags("team/plain"), ["v1", "v2"], "a GET changes nothing");
    b.assert_accessible("delete confirmation");
    b.screenshot("delete-confirmation");
    b.click("button#confirm-delete-button");
    b.check_page(&[]);
    assert!(b.path() == "/ui/r/team/plain" || b.path().starts_with("/ui/r/team/plain?"), "{}", b.path());
    assert!(b.exists("#flash"), "no notice after the delete: {}", b.text("main"));
    assert!(!b.exists("tr[data-tag=\"v1\"]") && b.exists("tr[data-tag=\"v2\"]"));
    assert_eq!(site.api_tags("team/plain"), ["v2"]);

    // CSRF: the same form without its token is refused, and nothing changes.
    b.visit("/ui/r/team/plain/-/delete?tag=v2");
    b.js("document.querySelector('form#confirm-delete input[name=csrf]').remove()", &[]);
    b.click("button#confirm-delete-button");
    assert_eq!(b.status(), 403, "{}", b.text("main"));
    b.check_page(&["403"]);
    assert_eq!(site.api_tags("team/plain"), ["v2"]);
    // Nor does signing out work without it.
    b.visit("/ui/");
    b.js("document.querySelector('form#sign-out input[name=csrf]').remove()", &[]);
    b.click("form#sign-out button[type=submit]");
    assert_eq!(b.status(), 403);
    b.check_page(&["403"]);
    b.visit("/ui/");
    assert!(b.text("#signed-in-as").contains(DEV.0), "still signed in");
}

#[test]
fn anonymous_visitors_see_only_public_repositories() {
    let site = Site::start();
    site.push("small", "latest", "pub/hello:latest", false);
    site.push("small", "latest", "private/secret:v1", false);
    site.push("small", "latest", "team/plain:v1", false);
    let b = site.browser("anonymous");

    b.visit("/ui/");
    assert_eq!(listed(&b), ["pub/hello"], "{}", b.text("main"));
    assert!(!b.exists("#signed-in-as"));
    b.visit("/ui/r/pub/hello");
    assert!(b.exists("tr[data-tag=\"latest\"]"));
    b.goto("/ui/r/private/secret");
    assert_ne!(b.status(), 200, "a private repository's page shown to an anonymous visitor");
    assert!(!b.exists("tr[data-tag]"));
    let status = b.status().to_string();
    b.check_page(&[&status]);

    // A wrong password: the form says so.
    b.visit("/ui/sign-in");
    b.assert_accessible("sign-in");
    b.screenshot("sign-in");
    b.fill("#user", VIEWER.0);
    b.fill("#password", "not-the-password");
    b.click("form#sign-in button[type=submit]");
    assert!(b.exists("#sign-in-problem"), "{}", b.text("main"));
    b.check_page(&["401"]);
    // Signed in, the viewer sees their grants and the public ones, the administrator everything.
    b.sign_in(VIEWER.0, VIEWER.1);
    b.visit("/ui/");
    assert_eq!(listed(&b), ["pub/hello", "team/plain"]);
    b.sign_out_by_forgetting();
    b.sign_in(ADMIN.0, ADMIN.1);
    b.visit("/ui/");
    assert_eq!(listed(&b), ["private/secret", "pub/hello", "team/plain"]);
}

#[test]
fn every_page_type_passes_axe_and_is_photographed() {
    let site = Site::start();
    let signed = site.signed();
    let index = site.push("index", "latest", "team/multi:latest", true);
    let arm = layout_digest(&images().join("index"), "arm64");
    let b = site.browser("pages");
    let addr = site.s.addr.clone();

    b.sign_in(ADMIN.0, ADMIN.1);
    b.visit("/ui/");
    assert_eq!(listed(&b), ["team/multi", "team/signed"]);
    b.assert_accessible("repositories");
    b.screenshot("repositories");

    b.visit("/ui/r/team/signed");
    b.assert_accessible("tags");
    b.screenshot("tags");

    // An image's manifest: config, environment values hidden until asked, layers, pull commands, signatures.
    b.click("tr[data-tag=\"v1\"] a.manifest-link");
    b.check_page(&[]);
    assert_eq!(b.path(), format!("/ui/r/team/signed/-/manifest/{signed}"));
    for part in ["#config", "#entrypoint", "table#env", "#history", "table#layers", "#pull-commands", "#signatures"] {
        assert!(b.exists(part), "no {part} on the manifest page");
    }
    assert_eq!(b.count("table#layers tr.layer"), 3);
    let value = "table#env [data-value]";
    let hidden = b.text(value);
    let real = b.attr(value, "data-value").expect("an environment value");
    assert_ne!(hidden, real, "environment values are hidden by default");
    b.click("button[data-reveal=\"env\"]");
    assert_eq!(b.text(value), real);
    b.check_page(&[]);
    assert!(b.text("#pull-commands code.pull-docker").contains(&format!("{addr}/team/signed")));
    for cmd in ["pull-docker", "pull-podman", "pull-wharf"] {
        assert!(b.text(&format!("#pull-commands code.{cmd}")).contains("team/signed"), "no {cmd} command");
    }
    assert!(b.count("#pull-commands button[data-copy]") >= 3, "a copy button per command");
    assert!(b.exists("a#delete-manifest"), "the administrator may delete");
    b.assert_accessible("manifest");
    b.screenshot("manifest");

    // An index: one row per platform, each linking to its manifest.
    b.visit(&format!("/ui/r/team/multi/-/manifest/{index}"));
    assert_eq!(b.count("table#children tr[data-platform]"), 2, "{}", b.text("main"));
    b.click("table#children tr[data-platform^=\"linux/arm64\"] a");
    b.check_page(&[]);
    assert_eq!(b.path(), format!("/ui/r/team/multi/-/manifest/{arm}"));
    b.visit(&format!("/ui/r/team/multi/-/manifest/{index}"));
    b.assert_accessible("manifest (index)");
    b.screenshot("manifest-index");

    b.visit("/ui/r/team/multi/-/delete?tag=latest");
    assert!(b.exists("form#confirm-delete"));
    b.assert_accessible("delete confirmation");
    b.screenshot("delete-confirmation");

    // A collection's report for the administration page (the server's collector has not run yet).
    site.s.admin(&["gc"], "");
    site.s.admin(&["quota", "set", "team/**", "1073741824"], "");
    for (page, check) in [
        ("/ui/admin/accounts", "table#accounts tr[data-account=\"dev\"]"),
        ("/ui/admin/accounts", "table#grants"),
        ("/ui/admin/audit", "table#audit"),
        ("/ui/admin/gc", "#gc-report"),
        ("/ui/admin/quotas", "table#quotas"),
    ] {
        b.visit(page);
        assert!(b.exists(check), "no {check} on {page}");
        b.assert_accessible(page);
    }
    b.visit("/ui/admin/accounts");
    b.screenshot("admin-accounts");
    b.visit("/ui/admin/quotas");
    b.screenshot("admin-quotas");
    // Keyboard: the first Tab reaches the skip link to the content, the next ones the navigation.
    assert_eq!(b.tab(), "a.skip #main");
    assert_eq!(b.tab(), "a.brand /ui/");

    // Administrators only.
    b.sign_out_by_forgetting();
    b.sign_in(VIEWER.0, VIEWER.1);
    b.goto("/ui/admin/accounts");
    assert_eq!(b.status(), 403);
    b.check_page(&["403"]);
}
