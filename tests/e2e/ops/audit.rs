//! Issue 23, the audit log: a scripted session with access control on (a user and a robot pushing, a tag move, a
//! delete, a TUF publish through the `wharf` client, account and grant changes, retention and collection, a refused
//! login) leaves one row per action with its actor and address; a refused change leaves none; `wharf admin audit`
//! filters. A Notary v1 publish with the `notary` CLI records its publish and the server keys it made.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::oci::Oci;
use crate::common::{self, Server};

const ADMIN: &str = "admin-pass-1";
const ALICE: &str = "alice-pass-1";

/// `wharf admin audit --json ARGS`, newest first.
fn audit(s: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json", "--limit", "10000"];
    all.extend_from_slice(args);
    let out = s.admin(&all, "");
    serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}")).as_array().unwrap().clone()
}

/// The rows with `action` (oldest first), each as `actor/kind address repository digest tag`.
fn of(rows: &[Value], action: &str) -> Vec<String> {
    let t = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    rows.iter()
        .rev()
        .filter(|r| r["action"] == action)
        .map(|r| {
            format!(
                "{}/{} {} {} {} {}",
                t(&r["actor"]),
                t(&r["actor_kind"]),
                t(&r["address"]),
                t(&r["repository"]),
                t(&r["digest"]),
                t(&r["tag"])
            )
        })
        .collect()
}

/// The `wharf` client as alice runs it: its own store, configuration and credential file.
fn client(dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut c = Command::new(common::wharf_bin())
        .args(args)
        .env("WHARF_STORE", dir.join("store"))
        .env("WHARF_CONFIG_DIR", dir.join("config"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("WHARF_ROOT_PASSPHRASE", "root secret")
        .env("WHARF_REPOSITORY_PASSPHRASE", "repo secret")
        .env("WHARF_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wharf {args:?}: {text}");
    text
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn a_scripted_session_leaves_a_row_for_every_action() {
    let s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", ADMIN),
        ("WHARF_AUTH_TRUSTED_PROXIES", "127.0.0.2"),
        ("WHARF_GC_GRACE_SECS", "0"),
    ]);
    s.admin(&["user", "add", "alice", "--password-stdin"], &format!("{ALICE}\n"));
    s.admin(&["grant", "alice", "team/**", "pull,push,delete,sign"], "");
    let robot: Value =
        serde_json::from_str(&s.admin(&["robot", "create", "ci", "--grant", "team/**=push", "--json"], "")).unwrap();
    let secret = robot["secret"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1200));

    // Pushes by a user and a robot, and a tag move.
    let (alice, bot) = (Oci::with_basic(&s, "alice", ALICE), Oci::with_basic(&s, "robot$ci", &secret));
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let (l1, l2, l3) = (common::data(3000, 1), common::data(3000, 2), common::data(3000, 3));
    let p1 = alice.push("team/app", "v1", config, &[&l1], None).unwrap();
    let p2 = bot.push("team/app", "v2", config, &[&l2], None).unwrap();
    let p3 = alice.push("team/app", "v1", config, &[&l3], None).unwrap();
    // A push refused for a missing blob changes nothing, so it records nothing.
    let missing = common::sha256(b"never uploaded");
    let bad = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing, "size": 14 },
        "layers": [],
    });
    assert_eq!(alice.put_manifest("team/app", "refused", &bad), 400);
    // A refused login.
    let http = reqwest::blocking::Client::new();
    let r = http.get(s.url("/v2/team/app/tags/list")).header("authorization", basic("alice", "wrong-pass")).send();
    assert_eq!(r.unwrap().status(), 401);
    // Deletes: a tag through the trusted proxy (its X-Forwarded-For is the client), manifests from another peer
    // (whose X-Forwarded-For is ignored).
    let proxy = reqwest::blocking::Client::builder().local_address("127.0.0.2".parse().ok()).build().unwrap();
    let del = |c: &reqwest::blocking::Client, reference: &str, xff: &str| {
        let url = s.url(&format!("/v2/team/app/manifests/{reference}"));
        c.delete(url).header("authorization", basic("alice", ALICE)).header("x-forwarded-for", xff).send().unwrap()
    };
    assert_eq!(del(&proxy, "v2", "203.0.113.9").status(), 202);
    assert_eq!(del(&http, &p1.digest, "198.51.100.7").status(), 202);
    // p2's layer is now in no manifest: the collection below removes it.
    assert_eq!(del(&http, &p2.digest, "198.51.100.7").status(), 202);
    // A TUF publish through the client.
    let tmp = tempfile::tempdir().unwrap();
    let host = s.addr.clone();
    client(tmp.path(), &["login", &host, "-u", "alice", "--password-stdin"], &format!("{ALICE}\n"));
    client(tmp.path(), &["trust", "init", &format!("{host}/team/app")], "");
    client(tmp.path(), &["trust", "sign", &format!("{host}/team/app:v1")], "");
    // Grants, retention and a collection, by the operator.
    s.admin(&["grant", "alice", "other/**", "pull"], "");
    s.admin(&["revoke", "alice", "other/**"], "");
    alice.push("team/tmp", "old", config, &[&l1], None).unwrap();
    s.admin(&["retention", "--repositories", "team/tmp", "--keep-last", "0"], "");
    s.admin(&["gc"], "");

    let rows = audit(&s, &[]);
    let local = "127.0.0.1";
    assert_eq!(
        of(&rows, "push")[..3],
        [
            format!("alice/account {local} team/app {} v1", p1.digest),
            format!("robot$ci/robot {local} team/app {} v2", p2.digest),
            format!("alice/account {local} team/app {} v1", p3.digest),
        ]
    );
    let tags = of(&rows, "tag");
    assert_eq!(
        tags[..3],
        [
            format!("alice/account {local} team/app {} v1", p1.digest),
            format!("robot$ci/robot {local} team/app {} v2", p2.digest),
            format!("alice/account {local} team/app {} v1", p3.digest),
        ]
    );
    let moved = rows.iter().find(|r| r["action"] == "tag" && r["digest"] == p3.digest.as_str()).unwrap();
    assert_eq!(moved["detail"]["from"], p1.digest.as_str(), "the tag move names the digest it left");
    assert!(!rows.iter().any(|r| r["tag"] == "refused" || r["digest"] == missing.as_str()), "a refused push recorded");
    assert_eq!(of(&rows, "untag"), [format!("alice/account 203.0.113.9 team/app {} v2", p2.digest)]);
    let deleted = |d: &str| format!("alice/account {local} team/app {d} -");
    assert_eq!(of(&rows, "delete"), [deleted(&p1.digest), deleted(&p2.digest)]);
    let logins = of(&rows, "login");
    for who in ["alice/account", "robot$ci/robot"] {
        assert!(logins.iter().any(|l| l.starts_with(&format!("{who} {local}"))), "{who} login: {logins:?}");
    }
    assert_eq!(of(&rows, "login_failed"), [format!("alice/anonymous {local} - - -")]);
    let publishes: Vec<&Value> = rows.iter().filter(|r| r["action"] == "trust_publish").collect();
    assert!(!publishes.is_empty(), "no trust publish recorded");
    for p in &publishes {
        assert_eq!((p["actor"].as_str(), p["repository"].as_str()), (Some("alice"), Some("team/app")));
        assert_eq!(p["detail"]["format"], "tuf");
    }
    let rotations = of(&rows, "key_rotation");
    assert!(rotations.len() >= 2, "the service's timestamp and snapshot keys: {rotations:?}");
    assert_eq!(of(&rows, "account_add"), ["admin/system - - - -", "admin/system - - - -"]);
    let named = |action: &str| -> Vec<String> {
        rows.iter().rev().filter(|r| r["action"] == action).map(|r| r["detail"]["account"].to_string()).collect()
    };
    assert_eq!(named("account_add"), ["\"alice\"", "\"robot$ci\""]);
    assert_eq!(of(&rows, "grant").len(), 3, "alice twice, the robot's once");
    assert_eq!(named("revoke"), ["\"alice\""]);
    let tmp_tag = of(&rows, "remove_tag");
    assert_eq!(tmp_tag.len(), 1, "{tmp_tag:?}");
    assert!(tmp_tag[0].starts_with("retention/system - team/tmp ") && tmp_tag[0].ends_with(" old"), "{tmp_tag:?}");
    let blobs = of(&rows, "remove_blob");
    assert!(blobs.contains(&format!("gc/system - - {} -", common::sha256(&l2))), "{blobs:?}");
    assert_eq!(of(&rows, "admin_retention").len(), 1);
    assert_eq!(of(&rows, "admin_gc").len(), 1);

    // The filters.
    let repo = audit(&s, &["--repository", "team/app"]);
    assert!(!repo.is_empty() && repo.iter().all(|r| r["repository"] == "team/app"));
    assert_eq!(repo.len(), rows.iter().filter(|r| r["repository"] == "team/app").count());
    let bots = audit(&s, &["--account", "robot$ci"]);
    assert!(bots.iter().all(|r| r["actor"] == "robot$ci") && of(&bots, "push").len() == 1, "{bots:?}");
    assert_eq!(audit(&s, &["--since", "1h"]).len(), rows.len());
    assert!(audit(&s, &["--since", "2099-01-01T00:00:00Z"]).is_empty());
    assert_eq!(audit(&s, &["--action", "login_failed", "--since", "10m"]).len(), 1);
    let two: Value = serde_json::from_str(&s.admin(&["audit", "--json", "--limit", "2"], "")).unwrap();
    assert_eq!(two.as_array().unwrap()[..], rows[..2], "the newest two");
    let text = s.admin(&["audit", "--action", "untag"], "");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME ") && lines[0].contains("DIGEST/TAG"), "{text}");
    assert!(lines.len() == 2 && lines[1].contains("203.0.113.9") && lines[1].contains("(v2)"), "{text}");
}

/// The `notary` CLI against a server without access control: its publish and the server keys it asked for are
/// recorded, anonymous, with the client's address; a second publish is one more row, not a rotation.
#[test]
fn a_notary_v1_publish_is_recorded() {
    let s = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "content\n").unwrap();
    let (gun, url, dir) = ("example.com/audit/app", format!("http://{}", s.addr), tmp.path().join("trust"));
    let notary = |args: &[&str]| {
        let out = Command::new("notary")
            .args(["-s", &url, "-d"])
            .arg(&dir)
            .args(args)
            .env("NOTARY_ROOT_PASSPHRASE", "root-pass-3")
            .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-3")
            .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-3")
            .output()
            .unwrap();
        assert!(out.status.success(), "notary {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    notary(&["init", gun]);
    notary(&["add", gun, "v1", file.to_str().unwrap()]);
    notary(&["publish", gun]);
    notary(&["add", gun, "v2", file.to_str().unwrap()]);
    notary(&["publish", gun]);
    let rows = audit(&s, &["--repository", "audit/app"]);
    let publishes: Vec<&Value> = rows.iter().filter(|r| r["action"] == "trust_publish").collect();
    assert_eq!(publishes.len(), 2, "{rows:?}");
    for p in publishes {
        assert_eq!((p["actor_kind"].as_str(), p["address"].as_str()), (Some("anonymous"), Some("127.0.0.1")));
        assert_eq!(p["detail"]["format"], "notary_v1");
        assert!(p["detail"]["roles"].as_array().unwrap().iter().any(|r| r == "targets"), "{p}");
    }
    let keys: Vec<&Value> = rows.iter().filter(|r| r["action"] == "key_rotation").collect();
    assert!(!keys.is_empty() && keys.iter().all(|k| k["detail"]["role"] != "root"), "{keys:?}");
}
