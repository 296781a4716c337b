//! Each tag's signed status on the tag page (`/ui/r/NAME`), verified by the server, with access control on: a tag
//! signed with `wharf trust sign` (by `targets`, and by a signer's delegation), revoked by `wharf trust revoke` in
//! another process (the next load shows it), moved by a skopeo push over it, a Notary v1 collection published by the
//! `notary` CLI, and data that expired.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;

use crate::common::{self, Server};

const ADMIN_PASSWORD: &str = "admin-pass-7";

/// A signed-in browser without a browser: cookies kept by hand.
struct Visitor {
    http: reqwest::blocking::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Visitor {
    fn sign_in(s: &Server) -> Visitor {
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut v = Visitor { http, base: s.url(""), cookies: HashMap::new() };
        let page = v.get("/ui/sign-in");
        let at = page.find("name=\"csrf\"").expect("csrf field");
        let tag = &page[page[..at].rfind('<').unwrap()..at + page[at..].find('>').unwrap()];
        let from = tag.find("value=\"").unwrap() + 7;
        let csrf = &tag[from..from + tag[from..].find('"').unwrap()];
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", "admin")
            .append_pair("password", ADMIN_PASSWORD)
            .append_pair("csrf", csrf)
            .append_pair("next", "/ui/")
            .finish();
        let r = v
            .http
            .post(format!("{}/ui/sign-in", v.base))
            .header("cookie", v.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .unwrap();
        assert_eq!(r.status(), 303, "signing in");
        v.keep(&r);
        v
    }

    fn keep(&mut self, r: &reqwest::blocking::Response) {
        for c in r.headers().get_all("set-cookie") {
            let (k, val) = c.to_str().unwrap().split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.insert(k.trim().into(), val.trim().into());
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> =
            self.cookies.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }

    fn get(&mut self, path: &str) -> String {
        let r = self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        self.keep(&r);
        r.text().unwrap()
    }

    /// The trust badges of `tag`'s row on `repo`'s tag page, by format: (status, the badge's text).
    fn badges(&mut self, repo: &str, tag: &str) -> HashMap<String, (String, String)> {
        let page = self.get(&format!("/ui/r/{repo}"));
        let at = page.find(&format!("data-tag=\"{tag}\"")).unwrap_or_else(|| panic!("no row {tag} in {page}"));
        let row = &page[at..at + page[at..].find("</tr>").unwrap()];
        let mut out = HashMap::new();
        for (i, _) in row.match_indices("data-status=\"") {
            let rest = &row[i + 13..];
            let status = &rest[..rest.find('"').unwrap()];
            let f = rest.find("data-format=\"").unwrap() + 13;
            let format = &rest[f..f + rest[f..].find('"').unwrap()];
            let end = rest.find("data-status=\"").or_else(|| rest.find("</td>")).unwrap_or(rest.len());
            out.insert(format.to_owned(), (status.to_owned(), text(&rest[..end])));
        }
        out
    }
}

/// Markup without its tags.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// A server with access control on, and a docker `config.json` logging the clients in as its administrator.
fn start(env: &[(&str, &str)], dir: &Path) -> Server {
    let mut all = vec![("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)];
    all.extend_from_slice(env);
    let s = Server::start(&all);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    let config = serde_json::json!({"auths": {s.addr.clone(): {"auth": auth}}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    s
}

/// `wharf ARGS` as its own process, logged in through `dir`'s `config.json`.
fn wharf(dir: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(common::wharf_bin())
        .args(args)
        .env("DOCKER_CONFIG", dir)
        .env("WHARF_STORE", dir.join("store"))
        .env("WHARF_CONFIG_DIR", dir.join("wharf"))
        .env("WHARF_ROOT_PASSPHRASE", "root secret")
        .env("WHARF_REPOSITORY_PASSPHRASE", "repo secret")
        .env("WHARF_LOG", "warn")
        .output()
        .expect("run wharf");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wharf {args:?}: {all}");
    all
}

fn oci(image: &str) -> String {
    format!("oci:{}:latest", common::peers::shared_images().join(image).display())
}

fn skopeo_copy(image: &str, dest: &str, dir: &Path) {
    let policy = dir.join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let out = Command::new("skopeo")
        .args(["--policy", policy.to_str().unwrap(), "copy", "-q", "--all", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("admin:{ADMIN_PASSWORD}")])
        .arg(oci(image))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "skopeo copy {image}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn tuf_signed_by_targets_and_a_delegation_then_revoked_and_moved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = start(&[], dir);
    let repo = format!("{}/team/app", s.addr);
    wharf(dir, &["trust", "init", &repo]);
    for tag in ["v1", "v2", "plain"] {
        wharf(dir, &["push", &oci("small"), &format!("{repo}:{tag}")]);
    }
    wharf(dir, &["trust", "sign", &format!("{repo}:v1")]);
    wharf(dir, &["trust", "key", "generate", "alice", "--dir", dir.to_str().unwrap()]);
    wharf(dir, &["trust", "signer", "add", "alice", &repo, "--key", dir.join("alice.pub").to_str().unwrap()]);
    wharf(dir, &["trust", "sign", "--signer", "alice", &format!("{repo}:v2")]);

    let mut v = Visitor::sign_in(&s);
    let v1 = v.badges("team/app", "v1");
    assert_eq!(v1["TUF"].0, "signed", "{v1:?}");
    assert!(v1["TUF"].1.contains("targets (key "), "the signer role and its key: {v1:?}");
    assert!(v1["TUF"].1.contains("20"), "an expiry: {v1:?}");
    let v2 = v.badges("team/app", "v2");
    assert_eq!(v2["TUF"].0, "signed", "{v2:?}");
    assert!(v2["TUF"].1.contains("alice"), "the delegation: {v2:?}");
    assert_eq!(v.badges("team/app", "plain")["TUF"].0, "unsigned");
    // What a tag page with verified TUF data (a delegation) costs over HTTP, printed for the record.
    let start = std::time::Instant::now();
    for _ in 0..20 {
        v.get("/ui/r/team/app");
    }
    let each = start.elapsed() / 20;
    println!("tag page of team/app (3 tags, TUF with a delegation), over HTTP: {each:?} per load");
    assert!(each < Duration::from_secs(2), "{each:?}");

    // Revoked by another process: the next load shows it (nothing cached across renders).
    wharf(dir, &["trust", "revoke", &format!("{repo}:v1")]);
    let v1 = v.badges("team/app", "v1");
    assert_eq!(v1["TUF"].0, "unsigned", "{v1:?}");
    // Another image pushed over the signed tag: flagged, with the digest that was signed.
    skopeo_copy("index", &format!("{repo}:v2"), dir);
    let v2 = v.badges("team/app", "v2");
    assert_eq!(v2["TUF"].0, "moved", "{v2:?}");
}

/// A collection published with the notary CLI signs the tag in `data-format="Notary v1"`; its timestamp (a 5 s
/// lifetime, renewed only when read through the API) then expires, and the page says so.
#[test]
fn notary_v1_signed_then_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = start(&[("WHARF_TRUST_NOTARY_TIMESTAMP_LIFETIME_SECS", "5")], dir);
    let repo = format!("{}/dct/app", s.addr);
    wharf(dir, &["push", &oci("small"), &format!("{repo}:v1")]);
    // The manifest's bytes, signed as the target `v1` (what docker content trust signs).
    let manifest = reqwest::blocking::Client::new()
        .get(s.url("/v2/dct/app/manifests/v1"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let file = dir.join("manifest.json");
    std::fs::write(&file, &manifest).unwrap();
    let url = s.url("");
    let trust = dir.join("notary");
    for args in [vec!["init", &repo], vec!["add", &repo, "v1", file.to_str().unwrap()], vec!["publish", &repo]] {
        notary(url.trim_end_matches('/'), &trust, &args);
    }
    let mut v = Visitor::sign_in(&s);
    let b = v.badges("dct/app", "v1");
    assert_eq!(b["Notary v1"].0, "signed", "{b:?}");
    assert!(b["Notary v1"].1.contains("targets"), "{b:?}");
    std::thread::sleep(Duration::from_secs(6));
    let b = v.badges("dct/app", "v1");
    assert_eq!(b["Notary v1"].0, "expired", "{b:?}");
    assert!(b["Notary v1"].1.contains("timestamp"), "why: {b:?}");
}

fn notary(server: &str, dir: &Path, args: &[&str]) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    let out = Command::new("notary")
        .args(["-s", server, "-d"])
        .arg(dir)
        .args(args)
        .env("NOTARY_AUTH", auth)
        .env("NOTARY_ROOT_PASSPHRASE", "root-pass-3")
        .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-3")
        .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-3")
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "notary {args:?}: {all}");
}
