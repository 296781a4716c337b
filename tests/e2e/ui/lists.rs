//! The repository list and the tag pages over HTTP, with access control on: search, paging, sort, filter, what a
//! single image and a multi-platform index show (checked against the OCI layouts they were pushed from), what
//! anonymous and a limited account see, and the number of SQL statements a page costs (the same for 5 rows and for
//! 200: counted in the server's log, where `sqlx::query=debug` writes one line per statement).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::oci::Oci;
use crate::common::{self, Server};

const ADMIN_PASSWORD: &str = "admin-pass-1";
const VIEWER_PASSWORD: &str = "viewer-pass-1";

/// A visitor: cookies kept by hand, no redirects followed.
struct Visitor {
    http: reqwest::blocking::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Visitor {
    fn new(s: &Server) -> Visitor {
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Visitor { http, base: s.url(""), cookies: HashMap::new() }
    }

    fn keep(&mut self, r: &reqwest::blocking::Response) {
        for c in r.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.insert(k.trim().into(), v.trim().into());
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&mut self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().unwrap();
        self.keep(&r);
        (r.status().as_u16(), r.text().unwrap())
    }

    fn sign_in(s: &Server, user: &str, password: &str) -> Visitor {
        let mut v = Visitor::new(s);
        let (status, page) = v.get("/ui/sign-in");
        assert_eq!(status, 200);
        let csrf = attr_after(&page, "name=\"csrf\"", "value").expect("csrf field");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", user)
            .append_pair("password", password)
            .append_pair("csrf", &csrf)
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
        assert_eq!(r.status(), 303, "signing in as {user}");
        v.keep(&r);
        let (_, home) = v.get("/ui/");
        assert!(home.contains("id=\"signed-in-as\""), "{home}");
        v
    }
}

/// The value of attribute `name` in the first tag after `marker`.
fn attr_after(page: &str, marker: &str, name: &str) -> Option<String> {
    let at = page.find(marker)?;
    let start = page[..at].rfind('<')?;
    let end = at + page[at..].find('>')?;
    let tag = &page[start..end];
    let from = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(tag[from..from + tag[from..].find('"')?].to_owned())
}

/// An attribute's text (askama writes `&` as `&#38;`).
fn unescape(s: &str) -> String {
    s.replace("&#38;", "&").replace("&amp;", "&")
}

/// The values of `data-NAME="..."` attributes in page order.
fn rows(page: &str, name: &str) -> Vec<String> {
    let key = format!("{name}=\"");
    page.match_indices(&key)
        .map(|(i, _)| {
            let rest = &page[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The text of the cell of class `class` in the row `<tr ATTR="VALUE">` (tags stripped).
fn cell(page: &str, attr: &str, value: &str, class: &str) -> String {
    let row_at = page.find(&format!("<tr {attr}=\"{value}\"")).unwrap_or_else(|| panic!("no row {value}"));
    let row = &page[row_at..row_at + page[row_at..].find("</tr>").unwrap()];
    let at = row.find(&format!("class=\"{class}\"")).unwrap_or_else(|| panic!("no {class} in {row}"));
    let open = at + row[at..].find('>').unwrap() + 1;
    let close = open + row[open..].find("</td>").unwrap();
    let mut text = String::new();
    let mut inside = false;
    for ch in row[open..close].chars() {
        match ch {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

fn skopeo_copy(images: &Path, image: &str, dest: &str, dir: &Path) {
    let policy = dir.join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let out = Command::new("skopeo")
        .args(["--policy", policy.to_str().unwrap(), "copy", "-q", "--all", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("admin:{ADMIN_PASSWORD}")])
        .arg(format!("oci:{}:latest", images.join(image).display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "skopeo copy {image}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A blob of an OCI layout, by digest.
fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// (size of config and layers, platform, created) of an image manifest in a layout, computed here.
fn expected_image(layout: &Path, manifest: &Value) -> (u64, String, i64) {
    let config: Value =
        serde_json::from_slice(&layout_blob(layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let size = manifest["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum::<u64>()
        + manifest["config"]["size"].as_u64().unwrap();
    let mut platform = format!("{}/{}", config["os"].as_str().unwrap(), config["architecture"].as_str().unwrap());
    if let Some(v) = config["variant"].as_str() {
        platform = format!("{platform}/{v}");
    }
    let created = config["created"].as_str().unwrap();
    let secs = chrono_secs(created);
    (size, platform, secs)
}

/// RFC 3339 to Unix seconds (the fixtures' times are whole seconds in UTC).
fn chrono_secs(t: &str) -> i64 {
    let out = Command::new("date").args(["-u", "-d", t, "+%s"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

fn utc(secs: i64) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %H:%M:%SZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Bytes as the pages write them.
fn human(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < 4 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", ["B", "KiB", "MiB", "GiB", "TiB"][unit])
}

fn start(log: &Path) -> Server {
    let s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("WHARF_LOG", "warn,sqlx::query=debug"),
        ("__stderr", log.to_str().unwrap()),
    ]);
    s.admin(&["user", "add", "viewer", "--password-stdin"], &format!("{VIEWER_PASSWORD}\n"));
    s.admin(&["grant", "viewer", "team/*", "pull"], "");
    s.admin(&["grant", "anonymous", "pub/**", "pull"], "");
    // The server picks up new accounts and grants within a second.
    std::thread::sleep(Duration::from_millis(1500));
    s
}

#[test]
fn lists_search_page_sort_filter_and_describe() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("server.log"));
    let images = common::peers::shared_images();
    skopeo_copy(images, "small", &format!("{}/team/small:v1", s.addr), tmp.path());
    skopeo_copy(images, "index", &format!("{}/team/multi:v1", s.addr), tmp.path());
    let oci = Oci::with_basic(&s, "admin", ADMIN_PASSWORD);
    let (config, layer) = (br#"{"os":"linux","architecture":"amd64"}"#.to_vec(), common::data(3000, 7));
    for i in 0..55 {
        oci.push(&format!("bulk/r{i:03}"), "v1", &config, &[&layer], None).unwrap();
    }
    for repo in ["pub/one", "secret/x"] {
        oci.push(repo, "v1", &config, &[&layer], None).unwrap();
    }
    for i in 0..53 {
        oci.push("team/app", &format!("t{i:03}"), &config, &[&layer], None).unwrap();
    }
    oci.push("team/app", "old", &config, &[&layer], None).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    oci.push("team/app", "older-name-newer-push", &config, &[&layer], None).unwrap();

    let mut admin = Visitor::sign_in(&s, "admin", ADMIN_PASSWORD);
    // Search and paging: 55 `bulk/` names, 50 a page, in name order.
    let (st, first) = admin.get("/ui/?q=BULK/");
    assert_eq!(st, 200);
    let names = rows(&first, "data-repository");
    assert_eq!(names.len(), 50);
    assert_eq!(names[0], "bulk/r000");
    assert!(first.contains("id=\"next-page\"") && !first.contains("id=\"prev-page\""));
    let next = attr_after(&first, "id=\"next-page\"", "href").map(|h| unescape(&h)).unwrap();
    let (_, second) = admin.get(&next);
    assert_eq!(rows(&second, "data-repository"), (50..55).map(|i| format!("bulk/r{i:03}")).collect::<Vec<_>>());
    assert!(second.contains("id=\"prev-page\"") && !second.contains("id=\"next-page\""));
    let (_, none) = admin.get("/ui/?q=nothing-like-this");
    assert!(none.contains("id=\"no-repositories\"") && !none.contains("data-repository"));
    // `_` is not a wildcard.
    let (_, underscore) = admin.get("/ui/?q=bulk_r");
    assert!(underscore.contains("id=\"no-repositories\""));

    // The list's columns.
    let (_, team) = admin.get("/ui/?q=team/");
    assert_eq!(rows(&team, "data-repository"), ["team/app", "team/multi", "team/small"]);
    assert_eq!(cell(&team, "data-repository", "team/app", "tag-count"), "55");
    assert_eq!(cell(&team, "data-repository", "team/app", "formats"), "none");
    let manifest_len = |r: &str| oci_manifest_len(&s, r);
    let app_size = config.len() as u64 + layer.len() as u64 + manifest_len("team/app");
    assert_eq!(cell(&team, "data-repository", "team/app", "size"), human(app_size));
    assert!(team.contains("href=\"/ui/r/team/app\""));

    // A single image: size, platform and creation time from its layout.
    let small = images.join("small");
    let small_manifest = layout_manifest(&small);
    let (size, platform, created) = expected_image(&small, &small_manifest);
    let (st, page) = admin.get("/ui/r/team/small");
    assert_eq!(st, 200);
    assert_eq!(cell(&page, "data-tag", "v1", "size"), human(size));
    assert_eq!(cell(&page, "data-tag", "v1", "platforms"), platform);
    assert_eq!(cell(&page, "data-tag", "v1", "created"), utc(created));
    assert!(page.contains("id=\"verify-yourself\""));
    assert!(page.contains("data-status=\"unsigned\" data-format=\"none\""), "{page}");
    assert!(page.contains("class=\"delete-tag\""), "the administrator may delete");

    // An index: its children's platforms, distinct blobs and newest creation time.
    let index = images.join("index");
    let top = layout_manifest(&index);
    let (mut blobs, mut newest) = (HashMap::new(), 0);
    for child in top["manifests"].as_array().unwrap() {
        let m: Value = serde_json::from_slice(&layout_blob(&index, child["digest"].as_str().unwrap())).unwrap();
        for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
            blobs.insert(d["digest"].as_str().unwrap().to_owned(), d["size"].as_u64().unwrap());
        }
        newest = newest.max(expected_image(&index, &m).2);
    }
    let (_, page) = admin.get("/ui/r/team/multi");
    assert_eq!(cell(&page, "data-tag", "v1", "platforms"), "linux/amd64, linux/arm64/v8");
    assert_eq!(cell(&page, "data-tag", "v1", "size"), human(blobs.values().sum()));
    assert_eq!(cell(&page, "data-tag", "v1", "created"), utc(newest));
    let digest = cell(&page, "data-tag", "v1", "digest");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert!(page.contains(&format!("href=\"/ui/r/team/multi/-/manifest/{digest}\"")));

    // Tags: paging, filter, sort.
    let (_, tags) = admin.get("/ui/r/team/app");
    let listed = rows(&tags, "data-tag");
    assert_eq!((listed.len(), listed[0].as_str()), (50, "old"));
    let next = attr_after(&tags, "id=\"next-page\"", "href").map(|h| unescape(&h)).unwrap();
    let (_, more) = admin.get(&next);
    assert_eq!(rows(&more, "data-tag"), ["t048", "t049", "t050", "t051", "t052"]);
    let (_, filtered) = admin.get("/ui/r/team/app?q=T05");
    assert_eq!(rows(&filtered, "data-tag"), ["t050", "t051", "t052"]);
    let (_, desc) = admin.get("/ui/r/team/app?q=t05&sort=-name");
    assert_eq!(rows(&desc, "data-tag"), ["t052", "t051", "t050"]);
    let (_, newest_first) = admin.get("/ui/r/team/app?q=old&sort=-pushed");
    assert_eq!(rows(&newest_first, "data-tag"), ["older-name-newer-push", "old"]);
    let (_, oldest_first) = admin.get("/ui/r/team/app?q=old&sort=pushed");
    assert_eq!(rows(&oldest_first, "data-tag"), ["old", "older-name-newer-push"]);
    assert_eq!(admin.get("/ui/r/team/app?sort=size").0, 400);
    assert_eq!(admin.get("/ui/?page=0").0, 400);

    // A viewer who may pull `team/*` only: no delete links, other repositories are 404 like absent ones.
    let mut viewer = Visitor::sign_in(&s, "viewer", VIEWER_PASSWORD);
    let (_, list) = viewer.get("/ui/");
    let seen = rows(&list, "data-repository");
    for repo in ["team/app", "team/multi", "team/small"] {
        assert!(seen.iter().any(|r| r == repo), "{repo} in {seen:?}");
    }
    assert!(seen.iter().all(|r| r.starts_with("team/") || r.starts_with("pub/")), "{seen:?}");
    let (st, page) = viewer.get("/ui/r/team/small");
    assert_eq!(st, 200);
    assert!(!page.contains("delete-tag"), "the viewer may not delete");
    let (hidden, hidden_page) = viewer.get("/ui/r/secret/x");
    let (absent, absent_page) = viewer.get("/ui/r/secret/nothing");
    assert_eq!((hidden, absent), (404, 404));
    assert_eq!(hidden_page.replace("secret/x", "N"), absent_page.replace("secret/nothing", "N"));

    // Anonymous: only what anonymous may pull.
    let mut anonymous = Visitor::new(&s);
    let (st, list) = anonymous.get("/ui/");
    assert_eq!(st, 200);
    assert_eq!(rows(&list, "data-repository"), ["pub/one"]);
    assert_eq!(anonymous.get("/ui/r/pub/one").0, 200);
    assert_eq!(anonymous.get("/ui/r/team/app").0, 404);
    assert!(anonymous.get("/ui/?q=team").1.contains("id=\"no-repositories\""));
}

fn layout_manifest(layout: &Path) -> Value {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    serde_json::from_slice(&layout_blob(layout, index["manifests"][0]["digest"].as_str().unwrap())).unwrap()
}

/// The length of `repo`'s `v1`-or-first manifest as the registry serves it (all of the test's pushes of one
/// repository share one manifest).
fn oci_manifest_len(s: &Server, repo: &str) -> u64 {
    let http = reqwest::blocking::Client::new();
    let r = http
        .get(s.url(&format!("/v2/{repo}/manifests/old")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().unwrap().len() as u64
}

/// The statements a page costs: the `sqlx::query` lines the request adds to the server's log (the fewest of three
/// tries, so that a background job's statement in the same moment does not count).
fn statements(v: &mut Visitor, log: &Path, path: &str) -> usize {
    let count = || std::fs::read_to_string(log).unwrap().matches(" sqlx::query: ").count();
    (0..3)
        .map(|_| {
            let before = count();
            assert_eq!(v.get(path).0, 200, "{path}");
            std::thread::sleep(Duration::from_millis(200));
            count() - before
        })
        .min()
        .unwrap()
}

#[test]
fn a_page_costs_the_same_statements_for_5_rows_and_200() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let s = start(&log);
    let oci = Oci::with_basic(&s, "admin", ADMIN_PASSWORD);
    // An index among the tags of both (its children are one statement for the page).
    for repo in ["count/five", "count/many"] {
        skopeo_copy(common::peers::shared_images(), "index", &format!("{}/{repo}:i0", s.addr), tmp.path());
    }
    let (config, layer) = (br#"{"os":"linux","architecture":"arm64"}"#.to_vec(), common::data(100, 3));
    for i in 0..5 {
        oci.push(&format!("few-{i:03}"), "v1", &config, &[&layer], None).unwrap();
        oci.push("count/five", &format!("t{i:03}"), &config, &[&layer], None).unwrap();
    }
    for i in 0..200 {
        oci.push(&format!("lot-{i:03}"), "v1", &config, &[&layer], None).unwrap();
        oci.push("count/many", &format!("t{i:03}"), &config, &[&layer], None).unwrap();
    }
    let mut admin = Visitor::sign_in(&s, "admin", ADMIN_PASSWORD);
    let pages = [("/ui/?q=few-", "/ui/?q=lot-"), ("/ui/r/count/five", "/ui/r/count/many")];
    for (small, large) in pages {
        // Once each first: the config summaries are cached after a page has read them.
        admin.get(small);
        admin.get(large);
        let (a, b) = (statements(&mut admin, &log, small), statements(&mut admin, &log, large));
        assert!(a > 0, "no statements counted: is sqlx::query=debug logging?");
        assert_eq!(a, b, "{small} costs {a} statements, {large} {b}");
        eprintln!("{small}: {a} statements; {large}: {b}");
    }
    let (_, list) = admin.get("/ui/?q=lot-");
    assert_eq!(rows(&list, "data-repository").len(), 50);
    let (_, tags) = admin.get("/ui/r/count/many");
    assert_eq!(rows(&tags, "data-tag").len(), 50);
}
