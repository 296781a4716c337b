//! The fixture of the access-control tests: a server over HTTPS with auth on, its accounts and grants, an image in
//! every repository, and the requests of each operation.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;

use crate::common::{self, Server};

pub const ADMIN_PASSWORD: &str = "admin-pass-1";
pub const WRITER_PASSWORD: &str = "writer-pass-1";
pub const READER_PASSWORD: &str = "reader-pass-1";
pub const REPOS: [&str; 5] = ["team/app", "team/app/sub", "other/x", "pub/y", "ci/build"];

#[derive(Clone, Debug)]
pub enum Call {
    Anonymous,
    Basic(String, String),
    Bearer(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    GetManifest,
    HeadManifest,
    GetBlob,
    StartUpload,
    PatchUpload,
    FinishUpload,
    PutManifest,
    DeleteManifest,
    DeleteTag,
    Mount,
    Tags,
    Referrers,
    TrustPublish,
    TrustRead,
}

impl Op {
    pub const ALL: [Op; 14] = [
        Op::GetManifest,
        Op::HeadManifest,
        Op::GetBlob,
        Op::StartUpload,
        Op::PatchUpload,
        Op::FinishUpload,
        Op::PutManifest,
        Op::DeleteManifest,
        Op::DeleteTag,
        Op::Mount,
        Op::Tags,
        Op::Referrers,
        Op::TrustPublish,
        Op::TrustRead,
    ];

    /// The actions the operation needs (Distribution's rule: writes need pull and push).
    pub fn needs(self) -> &'static [&'static str] {
        match self {
            Op::GetManifest | Op::HeadManifest | Op::GetBlob | Op::Tags | Op::Referrers | Op::TrustRead => &["pull"],
            Op::StartUpload | Op::PatchUpload | Op::FinishUpload | Op::PutManifest | Op::Mount => &["pull", "push"],
            Op::DeleteManifest | Op::DeleteTag => &["delete"],
            Op::TrustPublish => &["sign"],
        }
    }

    /// The status when allowed.
    pub fn success(self) -> u16 {
        match self {
            Op::GetManifest | Op::HeadManifest | Op::GetBlob | Op::Tags | Op::Referrers => 200,
            Op::StartUpload | Op::PatchUpload | Op::DeleteManifest | Op::DeleteTag | Op::Mount => 202,
            Op::FinishUpload | Op::PutManifest => 201,
            // An empty publish is invalid metadata; no trust data yet is unknown.
            Op::TrustPublish => 400,
            Op::TrustRead => 404,
        }
    }
}

pub struct Image {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

pub struct Env {
    pub s: Server,
    http: Client,
    pub log: PathBuf,
    pub certs: PathBuf,
    robot_secret: String,
    old_secret: String,
    tokens: RefCell<Vec<String>>,
    pub image: Image,
    _tmp: tempfile::TempDir,
}

fn digest(b: &[u8]) -> String {
    common::sha256(b)
}

fn image() -> Image {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let layer = common::data(4096, 7);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer), "size": layer.len() }],
    })
    .to_string()
    .into_bytes();
    let d = digest(&manifest);
    Image { config, layer, manifest, digest: d }
}

/// Writes a throwaway CA and server certificate for `hosts` with `wharf cert`.
pub fn certs(dir: &std::path::Path, hosts: &[&str]) {
    let out =
        Command::new(common::wharf_bin()).arg("cert").arg("--out").arg(dir).args(hosts).output().expect("wharf cert");
    assert!(out.status.success(), "wharf cert: {}", String::from_utf8_lossy(&out.stderr));
}

fn client(ca: &std::path::Path, local: Option<&str>) -> Client {
    let pem = std::fs::read(ca).expect("ca");
    let mut b = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("ca pem"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60));
    if let Some(ip) = local {
        b = b.local_address(ip.parse::<std::net::IpAddr>().ok());
    }
    b.build().expect("client")
}

fn with(req: RequestBuilder, call: &Call) -> RequestBuilder {
    match call {
        Call::Anonymous => req,
        Call::Basic(u, p) => req.basic_auth(u, Some(p)),
        Call::Bearer(t) => req.bearer_auth(t),
    }
}

impl Env {
    pub fn start(extra: &[(&str, &str)]) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let certs_dir = tmp.path().join("certs");
        certs(&certs_dir, &["127.0.0.1", "localhost"]);
        let log = tmp.path().join("server.log");
        let (cert, key) = (certs_dir.join("server.crt"), certs_dir.join("server.key"));
        let mut env: Vec<(&str, &str)> = vec![
            ("WHARF_AUTH", "1"),
            ("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("WHARF_TLS_CERT", cert.to_str().unwrap()),
            ("WHARF_TLS_KEY", key.to_str().unwrap()),
            ("__stderr", log.to_str().unwrap()),
        ];
        env.extend_from_slice(extra);
        let s = Server::start(&env);
        assert_eq!(s.scheme, "https");
        s.admin(&["user", "add", "writer", "--password-stdin"], &format!("{WRITER_PASSWORD}\n"));
        s.admin(&["user", "add", "reader", "--password-stdin"], &format!("{READER_PASSWORD}\n"));
        s.admin(&["grant", "writer", "team/*", "push,delete,sign"], "");
        s.admin(&["grant", "reader", "team/app", "pull"], "");
        s.admin(&["grant", "anonymous", "pub/**", "pull"], "");
        let robot: serde_json::Value =
            serde_json::from_str(&s.admin(&["robot", "create", "ci", "--grant", "ci/**=push", "--json"], "")).unwrap();
        assert_eq!(robot["name"], "robot$ci");
        let old: serde_json::Value = serde_json::from_str(
            &s.admin(&["robot", "create", "old", "--expires-in", "1s", "--grant", "**=admin", "--json"], ""),
        )
        .unwrap();
        let env = Env {
            http: client(&certs_dir.join("ca.crt"), None),
            s,
            log,
            certs: certs_dir,
            robot_secret: robot["secret"].as_str().unwrap().into(),
            old_secret: old["secret"].as_str().unwrap().into(),
            tokens: RefCell::new(Vec::new()),
            image: image(),
            _tmp: tmp,
        };
        // The server picks up the new accounts within a second; the old robot expires after one.
        std::thread::sleep(Duration::from_millis(2100));
        let admin = env.call_for("admin");
        for repo in REPOS {
            for blob in [&env.image.config, &env.image.layer] {
                let loc = env.start_upload(&admin, repo);
                let url = format!("{loc}{}digest={}", if loc.contains('?') { '&' } else { '?' }, digest(blob));
                let r = with(env.http.put(url).body(blob.clone()), &admin).send().unwrap();
                let st = r.status();
                assert_eq!(st, 201, "seeding {repo}: {}", r.text().unwrap_or_default());
            }
            env.repush(repo);
        }
        env
    }

    pub fn call_for(&self, account: &str) -> Call {
        let basic = |u: &str, p: &str| Call::Basic(u.into(), p.into());
        match account {
            "admin" => basic("admin", ADMIN_PASSWORD),
            "writer" => basic("writer", WRITER_PASSWORD),
            "reader" => basic("reader", READER_PASSWORD),
            "robot$ci" => basic("robot$ci", &self.robot_secret),
            "robot$old" => basic("robot$old", &self.old_secret),
            _ => Call::Anonymous,
        }
    }

    /// Every secret the fixture knows: passwords, robot secrets, tokens issued.
    pub fn secrets(&self) -> Vec<String> {
        let mut v = vec![ADMIN_PASSWORD.into(), WRITER_PASSWORD.into(), READER_PASSWORD.into()];
        v.push(self.robot_secret.clone());
        v.push(self.old_secret.clone());
        v.extend(self.tokens.borrow().iter().cloned());
        v
    }

    pub fn url(&self, path: &str) -> String {
        self.s.url(path)
    }

    /// A client of its own (a connection of its own), from local address `local` if given.
    pub fn client_from(&self, local: Option<&str>) -> Client {
        client(&self.certs.join("ca.crt"), local)
    }

    /// A catalog page as listed (not sorted), with its `Link` header.
    pub fn catalog_link(&self, call: &Call, query: &str) -> (u16, Vec<String>, Option<String>) {
        let r = with(self.http.get(self.url(&format!("/v2/_catalog?{query}"))), call).send().unwrap();
        let status = r.status().as_u16();
        let link = r.headers().get("link").map(|v| v.to_str().unwrap().to_owned());
        let v: serde_json::Value = r.json().unwrap_or_default();
        let names =
            v["repositories"].as_array().map_or(vec![], |a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect());
        (status, names, link)
    }

    /// Creates `repo` by mounting the layer of `pub/y` into it, as the administrator.
    pub fn mount_into(&self, repo: &str) {
        let layer = digest(&self.image.layer);
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/?mount={layer}&from=pub/y"));
        let r = with(self.http.post(url), &self.call_for("admin")).send().unwrap();
        assert_eq!(r.status(), 201, "mounting into {repo}");
    }

    fn start_upload(&self, call: &Call, repo: &str) -> String {
        let r = with(self.http.post(self.url(&format!("/v2/{repo}/blobs/uploads/"))), call).send().unwrap();
        assert_eq!(r.status(), 202, "starting an upload in {repo}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        if loc.starts_with("http") {
            loc
        } else {
            self.url(&loc)
        }
    }

    fn repush(&self, repo: &str) {
        let url = self.url(&format!("/v2/{repo}/manifests/t1"));
        let req = self.http.put(url).header("content-type", "application/vnd.oci.image.manifest.v1+json");
        let r = with(req.body(self.image.manifest.clone()), &self.call_for("admin")).send().unwrap();
        assert_eq!(r.status(), 201, "pushing the manifest to {repo}");
    }

    /// Performs `op` on `repo` as `call` (after restoring the repository's content as the administrator).
    pub fn perform(&self, call: &Call, repo: &str, op: Op) -> u16 {
        self.perform_with_challenge(call, repo, op).0
    }

    pub fn perform_with_challenge(&self, call: &Call, repo: &str, op: Op) -> (u16, String) {
        self.repush(repo);
        let img = &self.image;
        let layer = digest(&img.layer);
        let v2 = |p: String| self.url(&format!("/v2/{repo}/{p}"));
        let req = match op {
            Op::GetManifest => self.http.get(v2("manifests/t1".into())),
            Op::HeadManifest => self.http.head(v2("manifests/t1".into())),
            Op::GetBlob => self.http.get(v2(format!("blobs/{layer}"))),
            Op::StartUpload => self.http.post(v2("blobs/uploads/".into())),
            Op::PatchUpload => {
                let loc = self.start_upload(&self.call_for("admin"), repo);
                self.http
                    .patch(loc)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("0-{}", img.layer.len() - 1))
                    .body(img.layer.clone())
            }
            Op::FinishUpload => {
                let loc = self.start_upload(&self.call_for("admin"), repo);
                let blob = common::data(1000, 9);
                let url = format!("{loc}{}digest={}", if loc.contains('?') { '&' } else { '?' }, digest(&blob));
                self.http.put(url).body(blob)
            }
            Op::PutManifest => self
                .http
                .put(v2("manifests/t2".into()))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(img.manifest.clone()),
            Op::DeleteManifest => self.http.delete(v2(format!("manifests/{}", img.digest))),
            Op::DeleteTag => self.http.delete(v2("manifests/t1".into())),
            Op::Mount => self.http.post(v2(format!("blobs/uploads/?mount={layer}&from=other/x"))),
            Op::Tags => self.http.get(v2("tags/list".into())),
            Op::Referrers => self.http.get(v2(format!("referrers/{}", img.digest))),
            Op::TrustPublish => {
                self.http.post(v2("_tuf/publish".into())).header("content-type", "application/json").body("{}")
            }
            Op::TrustRead => self.http.get(v2("_tuf/root.json".into())),
        };
        let r = with(req, call).send().unwrap();
        let challenge =
            r.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default();
        (r.status().as_u16(), challenge)
    }

    fn token_request(&self, http: &Client, call: &Call, scopes: &[&str], extra: &str) -> reqwest::blocking::Response {
        let mut q = url_query(scopes);
        q.push_str(extra);
        with(http.get(self.url(&format!("/auth/token?service=wharf{q}"))), call).send().unwrap()
    }

    /// A token for `scopes`; panics unless issued.
    pub fn token(&self, call: &Call, scopes: &[&str]) -> String {
        let r = self.token_request(&self.http, call, scopes, "");
        assert_eq!(r.status(), 200, "token for {call:?}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["token"], v["access_token"]);
        assert!(v["expires_in"].as_i64().unwrap() > 0 && v["issued_at"].is_string());
        let t = v["token"].as_str().unwrap().to_owned();
        self.tokens.borrow_mut().push(t.clone());
        t
    }

    pub fn refresh_token(&self, call: &Call) -> String {
        let r = self.token_request(&self.http, call, &[], "&offline_token=true&client_id=test");
        let v: serde_json::Value = r.json().unwrap();
        let t = v["refresh_token"].as_str().expect("refresh_token").to_owned();
        self.tokens.borrow_mut().push(t.clone());
        t
    }

    /// A token asking for everything on `repo` (and pull on the mount source), as `account` would get it.
    pub fn bearer_for(&self, account: &str, repo: &str, op: Op) -> Call {
        let own = format!("repository:{repo}:pull,push,delete,sign");
        let mut scopes = vec![own.as_str()];
        if op == Op::Mount {
            scopes.push("repository:other/x:pull");
        }
        Call::Bearer(self.token(&self.call_for(account), &scopes))
    }

    pub fn token_status(&self, call: &Call, scope: &str) -> u16 {
        self.token_request(&self.http, call, &[scope], "").status().as_u16()
    }

    pub fn token_status_retry_after(&self, call: &Call, scope: &str) -> (u16, Option<String>) {
        let r = self.token_request(&self.http, call, &[scope], "");
        let after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), after)
    }

    pub fn token_status_from(&self, local: &str, call: &Call, scope: &str) -> u16 {
        let http = client(&self.certs.join("ca.crt"), Some(local));
        self.token_request(&http, call, &[scope], "").status().as_u16()
    }

    /// The status of a token request from local address `local`, carrying `X-Forwarded-For: xff`.
    pub fn token_status_forwarded(&self, local: &str, xff: &str, call: &Call, scope: &str) -> u16 {
        let http = client(&self.certs.join("ca.crt"), Some(local));
        let q = url_query(&[scope]);
        let req =
            with(http.get(self.url(&format!("/auth/token?service=wharf{q}"))), call).header("x-forwarded-for", xff);
        req.send().unwrap().status().as_u16()
    }

    pub fn catalog(&self, call: &Call) -> (u16, Vec<String>) {
        self.catalog_page(call, "")
    }

    pub fn catalog_page(&self, call: &Call, query: &str) -> (u16, Vec<String>) {
        let r = with(self.http.get(self.url(&format!("/v2/_catalog?{query}"))), call).send().unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return (status, vec![]);
        }
        let v: serde_json::Value = r.json().unwrap();
        let mut names: Vec<String> =
            v["repositories"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
        names.sort();
        (status, names)
    }

    pub fn raw_status(&self, path: &str, authorization: Option<&[u8]>) -> u16 {
        let mut req = self.http.get(self.url(path));
        if let Some(a) = authorization {
            req = req.header("authorization", reqwest::header::HeaderValue::from_bytes(a).unwrap());
        }
        req.send().unwrap().status().as_u16()
    }

    /// The status of a refresh-token grant.
    pub fn refresh_status(&self, refresh: &str) -> u16 {
        self.post_form(&format!("grant_type=refresh_token&service=wharf&client_id=test&refresh_token={refresh}"))
    }

    pub fn post_form(&self, body: &str) -> u16 {
        let req = self.http.request(Method::POST, self.url("/auth/token"));
        let req = req.header("content-type", "application/x-www-form-urlencoded").body(body.to_owned());
        req.send().unwrap().status().as_u16()
    }
}

fn url_query(scopes: &[&str]) -> String {
    let mut q = url_encode_pairs(scopes.iter().map(|s| ("scope", *s)));
    if !q.is_empty() {
        q.insert(0, '&');
    }
    q
}

fn url_encode_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}
