//! The seams between features, attacked as issue 20 found them open, against the real binary: mirrored trust paths
//! that skipped the gate or walked out of their repository upstream with the mirror's own account, a mirror sending
//! its upstream password to any token realm, Notary v1 collections whose GUN names no repository, and a warm mirror
//! that failed verified pulls as soon as the origin went down. The route-kind × caller matrix is in
//! `seams/route_matrix.rs`.

use crate::common;
mod route_matrix;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client::Client;
use common::oci::Oci;
use common::{data, Server};

/// A server whose log records every request (`observe` at debug level).
fn logged(dir: &Path, name: &str, extra: &[(&str, &str)]) -> (Server, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut env = vec![("__stderr", log.to_str().unwrap()), ("WHARF_LOG", "info,wharf_registry::observe=debug")];
    env.extend_from_slice(extra);
    (Server::start(&env), log)
}

/// The status of a request sent byte for byte (no client-side path normalisation), and the whole answer.
fn raw_get(s: &Server, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth.map(|a| format!("authorization: {a}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n{auth}connection: close\r\n\r\n", s.addr);
    let answer = common::raw(&s.addr, req.as_bytes(), Duration::from_secs(20));
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Lines of a server log that record a request to a path starting with `prefix`.
fn requests_to(log: &Path, prefix: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("path={prefix}");
    text.lines().filter(|l| l.contains(&needle)).map(str::to_owned).collect()
}

#[test]
fn mirrored_trust_paths_cannot_skip_the_gate_or_leave_their_repository() {
    let tmp = tempfile::tempdir().unwrap();
    // The origin has access control: a public repository and a private one.
    let (origin, origin_log) =
        logged(tmp.path(), "origin", &[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "origin-admin-1")]);
    origin.admin(&["grant", "anonymous", "pub/**", "pull"], "");
    let admin = Oci::with_basic(&origin, "admin", "origin-admin-1");
    admin.push("pub/app", "v1", br#"{"os":"linux","n":1}"#, &[b"public layer"], None).unwrap();
    let secret = admin.push("private/app", "v1", br#"{"os":"linux","n":2}"#, &[b"private layer"], None).unwrap();
    // The mirror reaches the origin with the origin's administrator account (the worst case), and lets anyone
    // pull its public copy.
    let config = tmp.path().join("mirror.toml");
    let entry = format!(
        "[[mirror]]\nupstream = \"{}\"\nprefix = \"mirror\"\nusername = \"admin\"\npassword = \"origin-admin-1\"\n",
        origin.url("")
    );
    std::fs::write(&config, entry).unwrap();
    let (m, _) = logged(
        tmp.path(),
        "mirror",
        &[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "mirror-admin-1"), ("WHARF_CONFIG", config.to_str().unwrap())],
    );
    m.admin(&["grant", "anonymous", "mirror/pub/**", "pull"], "");
    m.admin(&["user", "add", "reader", "--password-stdin"], "reader-pass-1\n");
    m.admin(&["grant", "reader", "mirror/pub/app", "pull"], "");
    let reader = basic("reader", "reader-pass-1");
    // The mirror works for what it is meant for.
    let (status, _) = raw_get(&m, "/v2/mirror/pub/app/manifests/v1", Some(&reader));
    assert_eq!(status, 200, "the public mirrored repository is served");

    let h = "ab".repeat(32);
    let t = format!("/v2/mirror/pub/app/_tuf/targets/{h}");
    // The upstream path of `{t}.x/` is `/v2/pub/app/_tuf/targets/<h>.x/`: five `..` climb back to `/v2/`.
    let up5 = "../../../../..";
    let enc5 = "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e";
    let attacks = [
        // Item 1: a Notary v1 marker after a mirrored `_tuf` path, which the gate once waved through (no grant at
        // all: `mirror/hidden` is not anonymous'), combined with item 2's traversal (six `..` past `_trust/`).
        (format!("/v2/mirror/hidden/x/_tuf/targets/{h}.x/_trust/{up5}/../private/app/manifests/v1"), None),
        (format!("{t}.x/_trust/y"), None),
        (format!("{t}.x/_trust/y"), Some(reader.as_str())),
        // Item 2: traversal into another repository and the catalog, raw and percent-encoded.
        (format!("{t}.x/{up5}/private/app/manifests/v1"), Some(reader.as_str())),
        (format!("{t}.x/{up5}/private/app/blobs/{}", secret.blobs[1]), Some(reader.as_str())),
        (format!("{t}.x/{up5}/_catalog"), None),
        (format!("{t}.x/{enc5}/private/app/manifests/v1"), Some(reader.as_str())),
        (format!("{t}.x%2f..%2f..%2f..%2f..%2f..%2fprivate%2fapp%2fmanifests%2fv1"), Some(reader.as_str())),
        ("/v2/mirror/pub/app/_tuf/..%2f..%2fprivate/app/_tuf/root.json".to_string(), Some(reader.as_str())),
    ];
    for (path, auth) in &attacks {
        let (status, answer) = raw_get(&m, path, auth.as_deref());
        assert!(status == 404 || status == 400, "{path} as {auth:?}: {status}\n{answer}");
        assert!(!answer.contains(&secret.blobs[0]), "{path}: the private manifest leaked");
    }
    let leaks: Vec<String> = requests_to(&origin_log, "/v2/private/")
        .into_iter()
        .chain(requests_to(&origin_log, "/v2/_catalog"))
        .filter(|l| !l.contains("method=PUT") && !l.contains("method=POST") && !l.contains("method=HEAD"))
        .collect();
    assert!(leaks.is_empty(), "the origin saw requests outside the mirrored repository:\n{}", leaks.join("\n"));
}

/// A listener that answers every request with `answer` and records each request head. It closes each connection
/// after answering, and says so (`connection: close`): without it the next request could go out on the pooled
/// connection just as it closes, and fail without reaching the listener.
fn recorder(addr: &str, answer: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let answer = answer.replacen("\r\n", "\r\nconnection: close\r\n", 1);
    let l = TcpListener::bind(addr).unwrap();
    let bound = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0u8; 16 << 10];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            s2.lock().unwrap().push(String::from_utf8_lossy(&got).to_lowercase());
            let _ = c.write_all(answer.as_bytes());
        }
    });
    (bound, seen)
}

#[test]
fn a_mirror_sends_its_upstream_password_only_to_allowed_token_realms() {
    let json = "{\"token\":\"t\",\"expires_in\":60}";
    let (realm, realm_seen) = recorder(
        "127.0.0.2:0",
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}", json.len()),
    );
    let challenge = format!(
        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://{realm}/token\",service=\"up\"\r\n\
         content-length: 0\r\n\r\n"
    );
    let (upstream, _) = recorder("127.0.0.1:0", challenge);
    let run = |extra: &str| {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("mirror.toml");
        let entry = format!(
            "[[mirror]]\nupstream = \"http://{upstream}\"\nprefix = \"m\"\nusername = \"mirror-user\"\n\
             password = \"mirror-secret\"\n{extra}"
        );
        std::fs::write(&config, entry).unwrap();
        let s = Server::start(&[("WHARF_CONFIG", config.to_str().unwrap())]);
        let (status, _) = raw_get(&s, "/v2/m/team/app/manifests/v1", None);
        assert_eq!(status, 502, "the upstream never lets the mirror in");
        let heads = std::mem::take(&mut *realm_seen.lock().unwrap());
        assert!(!heads.is_empty(), "the token service was asked");
        heads
    };
    // The realm is on another host than the upstream (127.0.0.2 vs 127.0.0.1): asked without the password.
    let heads = run("");
    assert!(heads.iter().all(|h| !h.contains("authorization:")), "credentials sent to a foreign realm:\n{heads:?}");
    assert!(heads.iter().all(|h| h.contains("scope=repository%3ateam%2fapp%3apull")), "{heads:?}");
    // Listed in token_realms: the credentials go.
    let heads = run(&format!("token_realms = [\"http://{realm}\"]\n"));
    assert!(heads.iter().any(|h| h.contains("authorization: basic")), "listed realm got no credentials:\n{heads:?}");
}

#[test]
fn a_notary_v1_gun_that_names_no_repository_is_refused_to_everyone() {
    let s = Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "admin-pass-1")]);
    let http = reqwest::blocking::Client::new();
    let bad = format!("/v2/{}/Team/App/_trust/tuf/", s.addr);
    for _ in 0..2 {
        let r = http.get(s.url(&format!("{bad}timestamp.key"))).send().unwrap();
        assert_eq!(r.status(), 404, "anonymous server-key creation under a GUN that names no repository");
    }
    let r = http.post(s.url(&bad)).header("content-type", "multipart/form-data; boundary=x").body("--x--").send();
    assert_eq!(r.unwrap().status(), 404);
    assert_eq!(http.delete(s.url(&bad)).send().unwrap().status(), 404);
    // Not even the administrator gets a collection there.
    let r = http.get(s.url(&format!("{bad}timestamp.key"))).basic_auth("admin", Some("admin-pass-1")).send().unwrap();
    assert_eq!(r.status(), 404);
    // The same GUN with a valid repository name is gated: a challenge.
    let good = format!("/v2/{}/team/app/_trust/tuf/timestamp.key", s.addr);
    let r = http.get(s.url(&good)).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
}

#[test]
fn a_warm_mirror_keeps_verified_pulls_working_while_the_origin_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut origin, origin_log) = logged(tmp.path(), "origin", &[]);
    let layer = data(50_000, 3);
    let img = Oci::new(&origin).push("signed/app", "v1", br#"{"os":"linux"}"#, &[&layer], None).unwrap();
    let publisher = Client::new();
    let host = origin.addr.clone();
    let reference = format!("{host}/signed/app:v1");
    publisher.ok(&["trust", "init", &format!("{host}/signed/app")]);
    publisher.ok(&["trust", "sign", &reference]);
    let root = publisher.root_of(&host, "signed/app");
    let config = tmp.path().join("mirror.toml");
    std::fs::write(&config, format!("[[mirror]]\nupstream = \"{}\"\nprefix = \"*\"\n", origin.url(""))).unwrap();
    let (m, _) = logged(tmp.path(), "mirror", &[("WHARF_CONFIG", config.to_str().unwrap())]);
    let pull =
        || Client::new().wharf(&["pull", "--mirror", &m.url(""), "--trust-root", root.to_str().unwrap(), &reference]);
    let out = pull();
    assert!(out.status.success(), "warm-up pull: {}", String::from_utf8_lossy(&out.stderr));

    let hex = img.digest.trim_start_matches("sha256:");
    let (status, _) = raw_get(&m, &format!("/v2/signed/app/_tuf/targets/{hex}.v1"), None);
    assert_eq!(status, 200, "target by hash");
    assert!(!requests_to(&origin_log, "/v2/signed/app/manifests/").is_empty(), "the warm-up went to the origin");

    origin.kill();
    // A target is cached under its verified hash alone: a name never asked before is served without the origin
    // (so names cannot multiply cache entries either).
    let (status, _) = raw_get(&m, &format!("/v2/signed/app/_tuf/targets/{hex}.another-name"), None);
    assert_eq!(status, 200, "target by hash under another name, origin down");
    let out = pull();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a verified pull through the warm mirror with the origin down: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("verified {}", &img.digest[..19])));
}

#[test]
fn a_mirror_caches_no_error_and_no_oversized_trust_answer() {
    let big = "x".repeat((16 << 20) + 1);
    let answers = [
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{big}", big.len()),
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}".to_string(),
        "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
    ];
    for answer in answers {
        let head = answer.lines().next().unwrap_or("").to_string();
        let (upstream, seen) = recorder("127.0.0.1:0", answer);
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("mirror.toml");
        std::fs::write(&config, format!("[[mirror]]\nupstream = \"http://{upstream}\"\nprefix = \"m\"\n")).unwrap();
        let s = Server::start(&[("WHARF_CONFIG", config.to_str().unwrap())]);
        for round in 1..=2 {
            let (status, _) = raw_get(&s, "/v2/m/team/app/_tuf/timestamp.json", None);
            assert_eq!(status, 502, "{head}: round {round}: {:?}", seen.lock().unwrap());
            let heads = seen.lock().unwrap().clone();
            let asked = heads.iter().filter(|h| h.contains("/_tuf/timestamp.json")).count();
            assert_eq!(asked, round, "{head}: nothing cached, so each request asks the upstream again: {heads:?}");
        }
    }
}
