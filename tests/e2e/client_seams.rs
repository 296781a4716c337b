//! The client's seams with what it cannot trust, through the real `wharf` binary on loopback: a repository held to
//! its recorded trust format (no fallback to another, no first use over a recorded root, `trust forget` as the
//! deliberate way out); exit codes that tell verification, denial and outages apart, the most serious failure
//! deciding across mirrors and origin; and mirrors named with a prefix (`--mirror URL/PREFIX`), reported once
//! when they fail.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::client::Client;
use common::oci::{Oci, Pushed};
use common::proxy::{start_proxy, CORRUPT, SWAP};
use common::{data, wharf_bin, Server};
use p256::pkcs8::DecodePrivateKey;
use serde_json::json;
use wharf_format::notary::{file_meta, format_time, Key, Signed, Signer};

/// Runs `wharf` as `c`, with docker's configuration (credentials) in `c`'s own directory.
fn wharf(c: &Client, args: &[&str]) -> Output {
    Command::new(wharf_bin())
        .args(args)
        .env("WHARF_STORE", c.store.path())
        .env("WHARF_CONFIG_DIR", c.config.path())
        .env("DOCKER_CONFIG", c.config.path().join("docker"))
        .env("WHARF_ROOT_PASSPHRASE", "root secret")
        .env("WHARF_REPOSITORY_PASSPHRASE", "repo secret")
        .env("WHARF_LOG", "warn")
        .output()
        .expect("run wharf")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(c: &Client, args: &[&str]) -> String {
    let out = wharf(c, args);
    assert!(out.status.success(), "wharf {args:?} failed ({:?}):\n{}", out.status.code(), text(&out));
    text(&out)
}

/// An image pushed to `repo:tag` and signed there with TUF 1.0 by `publisher` (who runs `trust init` first).
fn signed(s: &Server, publisher: &Client, repo: &str, tag: &str, seed: u8) -> Pushed {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let img = Oci::new(s).push(repo, tag, config.as_bytes(), &[&data(50_000, seed)], None).unwrap();
    ok(publisher, &["trust", "init", &format!("{}/{repo}", s.addr)]);
    ok(publisher, &["trust", "sign", &format!("{}/{repo}:{tag}", s.addr)]);
    img
}

/// A port on loopback with nothing listening.
fn dead_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap()
}

/// Publishes a Notary v1 collection for `gun` (as `notary init` + `add` + `publish` would) that signs `tag` as the
/// manifest `target`: an X.509 root for the GUN, P-256 targets and snapshot keys, the server's timestamp key.
fn publish_notary(s: &Server, gun: &str, tag: &str, target: &[u8]) {
    let p256 = || Signer::ecdsa(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng), None);
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, gun);
    let cert = params.self_signed(&kp).unwrap();
    let sk = p256::ecdsa::SigningKey::from_pkcs8_der(&kp.serialize_der()).unwrap();
    let (root_key, targets_key, snapshot_key) =
        (Signer::ecdsa(sk, Some(Key::x509("ecdsa-x509", &cert.pem()))), p256(), p256());
    let base = s.url(&format!("/v2/{gun}/_trust/tuf/"));
    let timestamp: Key = http().get(format!("{base}timestamp.key")).send().unwrap().json().unwrap();
    let later = format_time(4_102_444_800, 0);
    let keys = [&root_key.public(), &targets_key.public(), &snapshot_key.public(), &timestamp];
    let root = json!({
        "_type": "Root", "consistent_snapshot": false, "expires": later, "version": 1,
        "keys": keys.iter().map(|k| (k.id(), serde_json::to_value(k).unwrap())).collect::<serde_json::Map<_, _>>(),
        "roles": {
            "root": { "keyids": [root_key.key_id()], "threshold": 1 },
            "targets": { "keyids": [targets_key.key_id()], "threshold": 1 },
            "snapshot": { "keyids": [snapshot_key.key_id()], "threshold": 1 },
            "timestamp": { "keyids": [timestamp.id()], "threshold": 1 },
        },
    });
    let root = Signed::sign(&root, &[&root_key]).unwrap();
    let targets = json!({ "_type": "Targets", "delegations": { "keys": {}, "roles": [] }, "expires": later,
        "targets": { tag: file_meta(target) }, "version": 1 });
    let targets = Signed::sign(&targets, &[&targets_key]).unwrap();
    let snap = json!({ "_type": "Snapshot", "expires": later, "version": 1,
        "meta": { "root": file_meta(&root), "targets": file_meta(&targets) } });
    let snap = Signed::sign(&snap, &[&snapshot_key]).unwrap();
    let boundary = "6beac6a78753f436df6865c6c8ba676c";
    let mut body = Vec::new();
    for (name, bytes) in [("root", &root), ("targets", &targets), ("snapshot", &snap)] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = http()
        .post(base)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "notary publish: {} {}", r.status(), r.text().unwrap_or_default());
}

/// The digest a pulled tag's ref names in `c`'s store, if any.
fn pulled(c: &Client, host: &str, repo: &str, tag: &str) -> Option<String> {
    let p = c.store.path().join("refs").join(host.replace(':', "_")).join(repo).join(tag);
    std::fs::read_to_string(p).ok().and_then(|t| t.lines().next().map(str::to_owned))
}

fn has_blob(c: &Client, digest: &str) -> bool {
    c.store.path().join("blobs/sha256").join(digest.trim_start_matches("sha256:")).exists()
}

#[test]
fn a_recorded_tuf_root_is_never_replaced_by_a_notary_collection_until_forgotten() {
    let s = Server::start(&[]);
    let host = s.addr.clone();
    let publisher = Client::new();
    let tuf = signed(&s, &publisher, "seam/app", "v1", 1);
    let reference = format!("{host}/seam/app:v1");
    let user = Client::new();
    let out = ok(&user, &["pull", "--trust-on-first-use", &reference]);
    assert!(out.contains(&format!("verified {}", tuf.digest)), "{out}");

    // The TUF data goes, and a Notary v1 collection for the same repository signs v1 as another manifest.
    let other = Oci::new(&s).push("seam/app", "other", br#"{"os":"linux","n":2}"#, &[&data(4000, 9)], None).unwrap();
    let manifest = http().get(s.url(&format!("/v2/seam/app/manifests/{}", other.digest))).send().unwrap();
    let manifest = manifest.bytes().unwrap();
    let r = http().delete(s.url("/v2/seam/app/_tuf/")).send().unwrap();
    assert!(r.status().is_success(), "DELETE _tuf: {}", r.status());
    publish_notary(&s, &format!("{host}/seam/app"), "v1", &manifest);

    for extra in [&[][..], &["--trust-on-first-use"][..]] {
        let mut args = vec!["pull"];
        args.extend_from_slice(extra);
        args.push(&reference);
        let out = wharf(&user, &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(&format!("wharf trust forget {host}/seam/app")), "{}", text(&out));
        assert!(text(&out).contains("HTTP 404"), "the missing document is named: {}", text(&out));
        assert_eq!(pulled(&user, &host, "seam/app", "v1"), Some(tuf.digest.clone()), "{args:?}");
        assert!(!has_blob(&user, &other.digest), "{args:?}: the Notary-signed manifest was taken");
    }
    let out = wharf(&user, &["trust", "inspect", "--trust-on-first-use", &format!("{host}/seam/app")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(!text(&out).contains(&other.digest), "{}", text(&out));

    // Forgetting is the deliberate act; the next first use takes the collection.
    let out = ok(&user, &["trust", "forget", &format!("{host}/seam/app")]);
    assert!(out.contains(&format!("{host}/seam/app: forgot the recorded TUF 1.0 root")), "{out}");
    let out = ok(&user, &["trust", "forget", &format!("{host}/seam/app")]);
    assert!(out.contains("no recorded root to forget"), "{out}");
    let out = wharf(&user, &["trust", "forget", &reference]);
    assert_eq!(out.status.code(), Some(1), "a tag is refused: {}", text(&out));
    let out = ok(&user, &["pull", "--trust-on-first-use", &reference]);
    assert!(out.contains(&format!("verified {}", other.digest)) && out.contains("Notary v1"), "{out}");

    // Now held to the Notary root: a pinned TUF root is refused rather than obeyed.
    let root = publisher.root_of(&host, "seam/app");
    let out = wharf(&user, &["pull", "--trust-root", root.to_str().unwrap(), &reference]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("trust forget"), "{}", text(&out));
    let out = ok(&user, &["trust", "forget", &format!("{host}/seam/app")]);
    assert!(out.contains("forgot the recorded Notary v1 (Docker Content Trust) root"), "{out}");
}

/// One row of the exit-code table: the arguments, the code, and a word the message must hold.
fn expect(c: &Client, args: &[&str], code: i32, needle: &str) {
    let out = wharf(c, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}:\n{}", text(&out));
    assert!(text(&out).contains(needle), "{args:?}: {needle:?} missing from:\n{}", text(&out));
}

#[test]
fn exit_codes_tell_verification_denial_and_outages_apart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Server::start(&[]);
    let publisher = Client::new();
    signed(&s, &publisher, "h/app", "v1", 3);
    let root = publisher.root_of(&s.addr, "h/app");
    let root = root.to_str().unwrap();
    // A registry with access control on, where h/app is private.
    let private = Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "admin-pass-1")]);
    let (corrupt, p) = start_proxy(&rt, &s.url(""));
    p.mode.store(CORRUPT, std::sync::atomic::Ordering::SeqCst);
    let (swap, p2) = start_proxy(&rt, &s.url(""));
    p2.mode.store(SWAP, std::sync::atomic::Ordering::SeqCst);
    let corrupt_host = corrupt.trim_start_matches("http://").to_string();
    let swap_host = swap.trim_start_matches("http://").to_string();
    let dead = dead_port();
    let (on_dead, on_private) = (format!("{dead}/h/app:v1"), format!("{}/h/app:v1", private.addr));
    let dead_mirror = format!("http://{dead}/");
    let (dead_repo, private_repo) = (format!("{dead}/h/app"), format!("{}/h/app", private.addr));
    let (tampered_blobs, tampered_manifest) = (format!("{corrupt_host}/h/app:v1"), format!("{swap_host}/h/app:v1"));
    let rows: Vec<(Vec<&str>, i32, &str)> = vec![
        // Nothing listening: 4, for every command that pulls or verifies.
        (vec!["pull", "--trust-root", root, &on_dead], 4, "could not connect"),
        (vec!["pull", "--trust-on-first-use", &on_dead], 4, "Connection refused"),
        (vec!["unpack", "--trust-root", root, &on_dead, "/nonexistent/wharf-seams"], 4, "could not connect"),
        (vec!["run", "--trust-root", root, &on_dead], 4, "could not connect"),
        (vec!["trust", "inspect", "--trust-root", root, &dead_repo], 4, "could not connect"),
        // No credentials for a private repository: 5.
        (vec!["pull", "--trust-root", root, &on_private], 5, "access denied"),
        (vec!["pull", "--trust-on-first-use", &on_private], 5, "access denied"),
        (vec!["trust", "inspect", "--trust-root", root, &private_repo], 5, "access denied"),
        // Tampering: 3.
        (vec!["pull", "--trust-root", root, &tampered_blobs], 3, "tampered"),
        (vec!["pull", "--trust-root", root, &tampered_manifest], 3, "verification failed"),
        // Mixed: the most serious failure decides.
        (vec!["pull", "--trust-root", root, "--mirror", &corrupt, &on_dead], 3, "verification failed"),
        (vec!["pull", "--trust-root", root, "--mirror", &corrupt, &on_private], 3, "verification failed"),
        (vec!["pull", "--trust-root", root, "--mirror", &dead_mirror, &on_private], 5, "access denied"),
    ];
    for (args, code, needle) in rows {
        expect(&Client::new(), &args, code, needle);
    }
}

/// A server whose log records every request (`observe` at debug level).
fn logged(dir: &Path, name: &str, extra: &[(&str, &str)]) -> (Server, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut env = vec![("__stderr", log.to_str().unwrap()), ("WHARF_LOG", "info,wharf_registry::observe=debug")];
    env.extend_from_slice(extra);
    (Server::start(&env), log)
}

/// Successful `GET`s of `path` in a server's request log.
fn gets(log: &Path, path: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("path={path} ");
    text.lines().filter(|l| l.contains("method=GET") && l.contains(&needle) && l.contains("status=200")).count()
}

#[test]
fn a_mirror_named_with_its_prefix_serves_the_pull_and_a_failing_one_is_reported_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, _) = logged(tmp.path(), "origin", &[]);
    let publisher = Client::new();
    let img = signed(&origin, &publisher, "team/app", "v1", 5);
    let root = publisher.root_of(&origin.addr, "team/app");
    let root = root.to_str().unwrap();
    let config = tmp.path().join("mirror.toml");
    let entry = format!("[[mirror]]\nupstream = \"{}\"\nprefix = \"example\"\n", origin.url(""));
    std::fs::write(&config, entry).unwrap();
    let (mirror, mlog) = logged(tmp.path(), "mirror", &[("WHARF_CONFIG", config.to_str().unwrap())]);
    let reference = format!("{}/team/app:v1", origin.addr);

    let out = wharf(&Client::new(), &["pull", "--trust-root", root, "--mirror", &mirror.url("/example"), &reference]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("verified {}", img.digest)), "{}", text(&out));
    assert!(!text(&out).contains("WARN"), "a working mirror warns of nothing:\n{}", text(&out));
    // Everything came through the mirror, under its prefix.
    // (`/_tuf/` requests are not in the request log; a verified pull with no warning got them from the mirror.)
    assert_eq!(gets(&mlog, &format!("/v2/example/team/app/manifests/{}", img.digest)), 1);
    for b in &img.blobs {
        assert_eq!(gets(&mlog, &format!("/v2/example/team/app/blobs/{b}")), 1, "blob {b} through the mirror");
    }

    // A mirror that cannot be reached: one warning, naming it and where the pull goes on from.
    let dead = format!("http://{}/example", dead_port());
    let out = wharf(&Client::new(), &["pull", "--trust-root", root, "--mirror", &dead, &reference]);
    assert!(out.status.success(), "{}", text(&out));
    let warnings: Vec<&str> =
        std::str::from_utf8(&out.stderr).unwrap().lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains(&format!("mirror {dead}")), "{}", warnings[0]);
    assert!(warnings[0].contains(&format!("going on from registry {}", origin.addr)), "{}", warnings[0]);

    // A mirror that has no such prefix answers 404 for everything: reported once too, the origin serves.
    let out = wharf(&Client::new(), &["pull", "--trust-root", root, "--mirror", &mirror.url("/elsewhere"), &reference]);
    assert!(out.status.success(), "{}", text(&out));
    let warnings = std::str::from_utf8(&out.stderr).unwrap().lines().filter(|l| l.contains("WARN")).count();
    assert_eq!(warnings, 1, "{}", text(&out));
}
