//! Docker Content Trust and the `notary` CLI against Wharf's Notary v1 API, side by side with Debian's
//! notary-server 0.7 (memory storage, local signer) through `tests/data/notary-clients`; server keys that survive a
//! restart; the changefeed; lazy timestamp renewal. Bad uploads are in `notary_v1_uploads.rs`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::notary::NotaryServer;
use common::Server;
use serde_json::Value;

#[test]
fn notary_cli_and_docker_content_trust() {
    let _engines = common::engines();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let st = Command::new(common::wharf_bin())
        .arg("cert")
        .arg("--out")
        .arg(&certs)
        .args(["127.0.0.1", "localhost"])
        .status()
        .unwrap();
    assert!(st.success(), "wharf cert");
    let images = tmp.path().join("images");
    common::peers::make_test_images(&images, false);
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let s = Server::start(&[("WHARF_TLS_CERT", cert.to_str().unwrap()), ("WHARF_TLS_KEY", key.to_str().unwrap())]);
    assert_eq!(s.scheme, "https");
    let ns = NotaryServer::start(Some((&cert, &key)));
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/notary-clients"))
        .args([&s.addr, &ns.url, certs.join("ca.crt").to_str().unwrap(), images.to_str().unwrap()])
        .env("WHARF_BIN", common::wharf_bin())
        .output()
        .expect("run notary-clients");
    common::check_harness(&out, 100);
}

fn notary(server: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("notary")
        .args(["-s", server, "-d"])
        .arg(dir)
        .args(args)
        .env("NOTARY_ROOT_PASSPHRASE", "root-pass-3")
        .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-3")
        .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-3")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "notary {args:?}: {text}");
    text
}

/// The server-held keys are sealed in the database: a collection published before a restart (a SIGKILL) takes an
/// update after it, signed by the same timestamp key. (notary-server's local signer loses its keys here.)
#[test]
fn server_keys_survive_a_restart() {
    let mut s = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "content\n").unwrap();
    let gun = "example.com/keep/app";
    let url = format!("http://{}", s.addr);
    let dir = tmp.path().join("trust");
    notary(&url, &dir, &["init", gun]);
    notary(&url, &dir, &["add", gun, "v1", file.to_str().unwrap()]);
    notary(&url, &dir, &["publish", gun]);
    let http = reqwest::blocking::Client::new();
    let key = |addr: &str| {
        http.get(format!("http://{addr}/v2/{gun}/_trust/tuf/timestamp.key")).send().unwrap().text().unwrap()
    };
    let before = key(&s.addr);
    s.restart();
    let url = format!("http://{}", s.addr);
    assert_eq!(key(&s.addr), before, "the timestamp key changed across the restart");
    notary(&url, &dir, &["add", gun, "v2", file.to_str().unwrap()]);
    notary(&url, &dir, &["publish", gun]);
    let list = notary(&url, &dir, &["list", gun]);
    assert!(list.contains("v1 ") && list.contains("v2 "), "{list}");

    // The changefeed: one update per timestamp, oldest first, paged by an exclusive cursor.
    let feed = |q: &str| -> Value {
        http.get(format!("http://{}/v2/_trust/changefeed?{q}", s.addr)).send().unwrap().json().unwrap()
    };
    let all = feed("change_id=0&records=100");
    let ids: Vec<String> =
        all["records"].as_array().unwrap().iter().map(|r| r["ID"].as_str().unwrap().to_owned()).collect();
    assert_eq!(all["count"], 2, "{all}");
    assert!(all["records"].as_array().unwrap().iter().all(|r| r["GUN"] == gun && r["Category"] == "update"));
    assert_eq!(feed(&format!("change_id={}&records=100", ids[0]))["records"][0]["ID"], ids[1]);
    assert_eq!(feed("change_id=-1&records=-1")["records"][0]["ID"], ids[1]);
    let r = http.get(format!("http://{}/v2/_trust/changefeed?change_id=0&records=abc", s.addr)).send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().unwrap()["errors"][0]["code"], "INVALID_PARAMETERS");
}

/// A read of `timestamp.json` re-signs a timestamp close to expiry (here a 4 s lifetime, renewed in its last 2 s),
/// and the notary CLI accepts the renewed one.
#[test]
fn timestamps_renew_on_read() {
    let s = Server::start(&[("WHARF_TRUST_NOTARY_TIMESTAMP_LIFETIME_SECS", "4")]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "content\n").unwrap();
    let (gun, url, dir) = ("example.com/renew/app", format!("http://{}", s.addr), tmp.path().join("trust"));
    notary(&url, &dir, &["init", gun]);
    notary(&url, &dir, &["add", gun, "v1", file.to_str().unwrap()]);
    notary(&url, &dir, &["publish", gun]);
    let http = reqwest::blocking::Client::new();
    let ts =
        || -> Value { http.get(format!("{url}/v2/{gun}/_trust/tuf/timestamp.json")).send().unwrap().json().unwrap() };
    let first = ts();
    assert_eq!(first["signed"]["version"], 1);
    std::thread::sleep(std::time::Duration::from_millis(2600));
    let renewed = ts();
    assert_eq!(renewed["signed"]["version"], 2, "not renewed: {renewed}");
    assert_ne!(renewed["signed"]["expires"], first["signed"]["expires"]);
    let list = notary(&url, &dir, &["list", gun]);
    assert!(list.contains("v1 "), "{list}");
}
