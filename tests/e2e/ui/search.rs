//! `docker search HOST/TERM` against Wharf with access control on: the v1 search API's JSON and limits over HTTP,
//! then the real docker daemon over HTTPS, anonymous and logged in.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::oci::Oci;
use common::Server;
use serde_json::Value;

/// Repositories pushed by both tests, and the grants: anonymous callers pull `pub/**`, `dev` also `dev/**`.
const REPOS: [&str; 6] = ["pub/app", "pub/my_app", "pub/myxapp", "pub/web", "dev/app", "secret/app"];

fn grant(s: &Server) {
    s.admin(&["user", "add", "dev", "--password-stdin"], "dev-pass-12\n");
    s.admin(&["grant", "dev", "dev/**", "pull,push"], "");
    s.admin(&["grant", "anonymous", "pub/**", "pull"], "");
    std::thread::sleep(Duration::from_millis(1200));
}

/// `GET /v1/search?QUERY`, with Basic credentials if given: status and JSON body.
fn search(s: &Server, query: &str, creds: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new().get(s.url(&format!("/v1/search?{query}")));
    if let Some((u, p)) = creds {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn names(body: &Value) -> Vec<String> {
    body["results"].as_array().expect("results").iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn search_api_answers_docker_json_filtered_by_pull_rights_and_bounded() {
    let s = Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "admin-pass-1")]);
    grant(&s);
    let oci = Oci::with_basic(&s, "admin", "admin-pass-1");
    for (i, r) in REPOS.iter().enumerate() {
        oci.push(r, "v1", format!("{{\"n\":{i}}}").as_bytes(), &[&common::data(512, i as u8)], None).unwrap();
    }

    // The ping says "not standalone", so docker sends no empty Basic credentials for an anonymous search.
    let ping = reqwest::blocking::get(s.url("/v1/_ping")).unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.headers()["x-docker-registry-standalone"], "false");

    // Anonymous: public repositories only, in name order, in the shape docker decodes.
    let (status, body) = search(&s, "q=app", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["pub/app", "pub/my_app", "pub/myxapp"]);
    assert_eq!(body["num_results"], 3);
    assert_eq!(body["query"], "app");
    assert_eq!(
        (body["page"].clone(), body["page_size"].clone(), body["num_pages"].clone()),
        (1.into(), 25.into(), 1.into())
    );
    let first = &body["results"][0];
    for (k, v) in [("description", Value::from("")), ("star_count", 0.into()), ("is_official", false.into())] {
        assert_eq!(first[k], v, "{k}");
    }
    assert_eq!(first["is_automated"], false);
    // `_` is a name character, not a wildcard; terms are lowercased; no match, no rows.
    assert_eq!(names(&search(&s, "q=my_app", None).1), ["pub/my_app"]);
    assert_eq!(names(&search(&s, "q=APP", None).1).len(), 3);
    let (status, none) = search(&s, "q=nothing-here", None);
    assert_eq!((status, none["num_results"].clone(), names(&none).len()), (200, 0.into(), 0));
    assert_eq!(names(&search(&s, "q=app*", None).1).len(), 0, "a term no name can hold");

    // Signed in with Basic: the user's own repositories too, never one they may not pull.
    let (status, body) = search(&s, "q=app", Some(("dev", "dev-pass-12")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["dev/app", "pub/app", "pub/my_app", "pub/myxapp"]);
    let (_, all) = search(&s, "q=app", Some(("admin", "admin-pass-1")));
    assert!(names(&all).contains(&"secret/app".to_owned()), "the administrator pulls everything");
    let (status, _) = search(&s, "q=app", Some(("dev", "wrong-password")));
    assert_eq!(status, 401, "wrong credentials are refused, not treated as anonymous");

    // Pages of `n`.
    let (_, p1) = search(&s, "q=app&n=2", Some(("dev", "dev-pass-12")));
    let (_, p2) = search(&s, "q=app&n=2&page=2", Some(("dev", "dev-pass-12")));
    let (_, p3) = search(&s, "q=app&n=2&page=3", Some(("dev", "dev-pass-12")));
    assert_eq!(
        (names(&p1), names(&p2), names(&p3).len()),
        (vec!["dev/app".into(), "pub/app".into()], vec!["pub/my_app".into(), "pub/myxapp".into()], 0)
    );
    assert_eq!(
        (p1["num_results"].clone(), p1["num_pages"].clone(), p2["page"].clone()),
        (4.into(), 2.into(), 2.into())
    );

    // Limits: the registry's error shape.
    for (q, code) in [
        ("q=a&n=0", "PAGINATION_NUMBER_INVALID"),
        ("q=a&n=101", "PAGINATION_NUMBER_INVALID"),
        ("q=a&n=x", "PAGINATION_NUMBER_INVALID"),
        ("q=a&page=0", "PAGINATION_NUMBER_INVALID"),
        ("q=a&page=-1", "PAGINATION_NUMBER_INVALID"),
    ] {
        let (status, body) = search(&s, q, None);
        assert_eq!((status, body["errors"][0]["code"].as_str()), (400, Some(code)), "{q}: {body}");
    }
    let (status, body) = search(&s, &format!("q={}", "a".repeat(256)), None);
    assert_eq!(status, 400, "an overlong term: {body}");
    let post = reqwest::blocking::Client::new().post(s.url("/v1/search?q=app")).send().unwrap();
    assert_eq!(post.status(), 405);
}

/// A private dockerd on its own socket and directories, stopped on drop.
struct Dockerd {
    child: Child,
    sock: String,
    config: PathBuf,
}

impl Dockerd {
    fn start(dir: &Path) -> Dockerd {
        for d in ["root", "exec", "config"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let sock = format!("unix://{}", dir.join("d.sock").display());
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args(["-H", &sock, "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false"])
            .arg("--userland-proxy=false")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = Dockerd { child, sock, config: dir.join("config") };
        for _ in 0..120 {
            if d.docker(&["version"], None).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("dockerd did not start: {}", std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default());
    }

    fn docker(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", &self.config).args(["-H", &self.sock]).args(args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("docker");
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// The names `docker search` prints for `term`, sorted.
    fn search(&self, term: &str) -> Vec<String> {
        let out = self.docker(&["search", "--no-trunc", "--format", "{{.Name}}", term], None);
        assert!(out.status.success(), "docker search {term}: {}", String::from_utf8_lossy(&out.stderr));
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        names.sort();
        names
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..40 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn docker_search_lists_only_what_the_caller_may_pull() {
    let _engines = common::engines();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let st = Command::new(common::wharf_bin()).arg("cert").arg("--out").arg(&certs).arg("127.0.0.1").status().unwrap();
    assert!(st.success(), "wharf cert");
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", "admin-pass-1"),
        ("WHARF_TLS_CERT", cert.to_str().unwrap()),
        ("WHARF_TLS_KEY", key.to_str().unwrap()),
    ]);
    assert_eq!(s.scheme, "https");
    grant(&s);
    let images = common::peers::shared_images();
    for r in REPOS {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-creds", "admin:admin-pass-1", "--dest-cert-dir"])
            .arg(&certs)
            .arg(format!("oci:{}:latest", images.join("small").display()))
            .arg(format!("docker://{}/{r}:v1", s.addr))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy to {r}: {}", String::from_utf8_lossy(&out.stderr));
    }

    let d = Dockerd::start(&tmp.path().join("docker"));
    let host = &s.addr;
    // Anonymous: public repositories only.
    assert_eq!(d.search(&format!("{host}/app")), ["pub/app", "pub/my_app", "pub/myxapp"]);
    assert_eq!(d.search(&format!("{host}/web")), ["pub/web"]);
    // Logged in: the user's repositories too, never one they may not pull.
    let login = d.docker(&["login", "-u", "dev", "--password-stdin", host], Some("dev-pass-12\n"));
    assert!(login.status.success(), "docker login: {}", String::from_utf8_lossy(&login.stderr));
    assert_eq!(d.search(&format!("{host}/app")), ["dev/app", "pub/app", "pub/my_app", "pub/myxapp"]);
    // A term that matches nothing gives no rows.
    assert!(d.search(&format!("{host}/no-such-thing")).is_empty());
}
