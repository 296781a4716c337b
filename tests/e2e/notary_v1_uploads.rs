//! Bad Notary v1 uploads, built here and sent to Wharf and to Debian's notary-server 0.7 side by side: each must
//! get notary-server's status, error code and validation error name, and a refused upload stores nothing. These are
//! the refusals that need the binary (the multipart and JSON parsing, the store's version check, the error body of
//! each kind); each validator rule is a row in `notary/src/v1/validate/tests.rs`, which names the same errors.

use crate::common;

use common::notary::NotaryServer;
use common::Server;
use p256::pkcs8::DecodePrivateKey;
use serde_json::{json, Value};
use wharf_format::notary::{file_meta, format_time, Key, Signed, Signer};

/// A collection's offline keys, as `notary init` makes them: an X.509 root for the GUN, P-256 targets and snapshot.
struct Publisher {
    root: Signer,
    targets: Signer,
    snapshot: Signer,
}

fn p256_signer() -> Signer {
    Signer::ecdsa(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng), None)
}

fn cert_signer(cn: &str) -> Signer {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&kp).unwrap();
    let sk = p256::ecdsa::SigningKey::from_pkcs8_der(&kp.serialize_der()).unwrap();
    Signer::ecdsa(sk, Some(Key::x509("ecdsa-x509", &cert.pem())))
}

const LATER: i64 = 4_102_444_800; // 2100-01-01

impl Publisher {
    fn new(gun: &str) -> Publisher {
        Publisher { root: cert_signer(gun), targets: p256_signer(), snapshot: p256_signer() }
    }

    /// Root `version` naming these keys and the server's timestamp key; `roles` edits the role map.
    fn root(&self, version: i64, timestamp: &Key, signers: &[&Signer], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let keys = [&self.root.public(), &self.targets.public(), &self.snapshot.public(), timestamp];
        let mut doc = json!({
            "_type": "Root", "consistent_snapshot": false, "expires": format_time(LATER, 0), "version": version,
            "keys": keys.iter().map(|k| (k.id(), serde_json::to_value(k).unwrap())).collect::<serde_json::Map<_, _>>(),
            "roles": {
                "root": { "keyids": [self.root.key_id()], "threshold": 1 },
                "targets": { "keyids": [self.targets.key_id()], "threshold": 1 },
                "snapshot": { "keyids": [self.snapshot.key_id()], "threshold": 1 },
                "timestamp": { "keyids": [timestamp.id()], "threshold": 1 },
            },
        });
        edit(&mut doc);
        Signed::sign(&doc, signers).unwrap()
    }

    fn targets(&self, version: i64, expires: i64, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut doc = json!({
            "_type": "Targets", "delegations": { "keys": {}, "roles": [] }, "expires": format_time(expires, 0),
            "targets": { "v1": file_meta(b"hello\n") }, "version": version,
        });
        edit(&mut doc);
        Signed::sign(&doc, &[&self.targets]).unwrap()
    }

    fn snapshot(&self, version: i64, files: &[(&str, &[u8])]) -> Vec<u8> {
        let meta: serde_json::Map<String, Value> =
            files.iter().map(|(r, b)| (r.to_string(), serde_json::to_value(file_meta(b)).unwrap())).collect();
        let doc = json!({ "_type": "Snapshot", "expires": format_time(LATER, 0), "meta": meta, "version": version });
        Signed::sign(&doc, &[&self.snapshot]).unwrap()
    }
}

fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "6beac6a78753f436df6865c6c8ba676c137b37c55a79ab3288636608f9c5";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One server under test: Wharf or notary-server, plain HTTP (with Basic credentials when given).
struct Target {
    name: &'static str,
    base: String,
    http: reqwest::blocking::Client,
    basic: Option<(&'static str, &'static str)>,
}

impl Target {
    fn url(&self, gun: &str, rest: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{rest}", self.base)
    }

    fn timestamp_key(&self, gun: &str) -> Key {
        let r = self.get(&self.url(gun, "timestamp.key")).send().unwrap();
        assert!(r.status().is_success(), "{}: timestamp.key {}", self.name, r.status());
        r.json().unwrap()
    }

    /// POSTs an upload; answers (status, error code, detail name).
    fn post(&self, gun: &str, content_type: &str, body: Vec<u8>) -> (u16, String, String) {
        let mut r = self.http.post(self.url(gun, "")).header("content-type", content_type).body(body);
        if let Some((u, p)) = self.basic {
            r = r.basic_auth(u, Some(p));
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap_or(Value::Null);
        let e = &v["errors"][0];
        (status, e["code"].as_str().unwrap_or("").into(), e["detail"]["Name"].as_str().unwrap_or("").into())
    }

    fn upload(&self, gun: &str, parts: &[(&str, &[u8])]) -> (u16, String, String) {
        let (ct, body) = multipart(parts);
        self.post(gun, &ct, body)
    }

    fn status(&self, gun: &str, rest: &str) -> u16 {
        self.get(&self.url(gun, rest)).send().unwrap().status().as_u16()
    }

    fn get(&self, url: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.get(url);
        match self.basic {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }
}

/// Runs `case` against both servers on a fresh GUN each and checks that both answer `want` (status, code, detail
/// name).
fn both(
    targets: &[Target],
    label: &str,
    want: (u16, &str, &str),
    case: impl Fn(&Target, &str) -> (u16, String, String),
) {
    for t in targets {
        let gun = format!("example.com/bad/{label}-{}", t.name);
        let got = case(t, &gun);
        assert_eq!((got.0, got.1.as_str(), got.2.as_str()), want, "{label} against {}", t.name);
    }
}

#[test]
fn bad_uploads_get_notary_server_errors() {
    let s = Server::start(&[]);
    let ns = NotaryServer::start(None);
    let http = reqwest::blocking::Client::new();
    let targets = [
        Target { name: "wharf", base: format!("http://{}", s.addr), http: http.clone(), basic: None },
        Target { name: "notary-server", base: ns.url.clone(), http, basic: None },
    ];
    let first = |t: &Target, gun: &str, p: &Publisher| {
        let ts = t.timestamp_key(gun);
        let root = p.root(1, &ts, &[&p.root], |_| {});
        let targets = p.targets(1, LATER, |_| {});
        let snap = p.snapshot(1, &[("root", &root), ("targets", &targets)]);
        (ts, root, targets, snap)
    };
    // A valid first publish is accepted by both (the baseline the bad ones differ from).
    both(&targets, "valid", (200, "", ""), |t, gun| {
        let p = Publisher::new(gun);
        let (_, root, tg, snap) = first(t, gun, &p);
        t.upload(gun, &[("root", &root), ("targets", &tg), ("snapshot", &snap)])
    });
    both(&targets, "no-root", (400, "INVALID_UPDATE", "ErrValidation"), |t, gun| {
        let p = Publisher::new(gun);
        let (_, _, tg, _) = first(t, gun, &p);
        let got = t.upload(gun, &[("targets", &tg)]);
        assert_eq!(t.status(gun, "root.json"), 404, "a refused upload stores nothing");
        got
    });
    both(&targets, "plain-root-key", (400, "INVALID_UPDATE", "ErrBadRoot"), |t, gun| {
        let mut p = Publisher::new(gun);
        p.root = p256_signer();
        let (_, root, tg, snap) = first(t, gun, &p);
        t.upload(gun, &[("root", &root), ("targets", &tg), ("snapshot", &snap)])
    });
    both(&targets, "no-snapshot-key", (400, "INVALID_UPDATE", "ErrBadHierarchy"), |t, gun| {
        let p = Publisher::new(gun);
        let (_, root, tg, _) = first(t, gun, &p);
        t.upload(gun, &[("root", &root), ("targets", &tg)])
    });
    // After a good publish: a replayed version (refused by the store's version check, not by the validator).
    let published = |t: &Target, gun: &str| {
        let p = Publisher::new(gun);
        let (ts, root, tg, snap) = first(t, gun, &p);
        assert_eq!(t.upload(gun, &[("root", &root), ("targets", &tg), ("snapshot", &snap)]).0, 200, "{}", t.name);
        (p, ts, root, tg)
    };
    both(&targets, "replayed-version", (400, "VERSION", ""), |t, gun| {
        let (p, _, root, tg) = published(t, gun);
        let snap = p.snapshot(2, &[("root", &root), ("targets", &tg)]);
        t.upload(gun, &[("targets", &tg), ("snapshot", &snap)])
    });
    both(&targets, "invalid-role", (400, "INVALID_ROLE", ""), |t, gun| t.upload(gun, &[("bogus", b"{}")]));
    both(&targets, "not-json", (400, "MALFORMED_JSON", ""), |t, gun| t.upload(gun, &[("targets", b"not json")]));
    both(&targets, "not-multipart", (400, "MALFORMED_UPLOAD", ""), |t, gun| {
        t.post(gun, "application/json", b"{}".to_vec())
    });
    // Over Wharf's limit (max_metadata_size, 1 MiB by default, per part): refused before it is parsed.
    let big = vec![b' '; (1 << 20) + 1];
    let got = targets[0].upload("example.com/bad/too-big", &[("targets", &big)]);
    assert_eq!((got.0, got.1.as_str()), (400, "MALFORMED_UPLOAD"), "an oversized part");
    // A body that ends mid-part is malformed too.
    let (ct, mut body) = multipart(&[("targets", b"{}")]);
    body.truncate(body.len() - 20);
    let got = targets[0].post("example.com/bad/truncated", &ct, body);
    assert_eq!((got.0, got.1.as_str()), (400, "MALFORMED_UPLOAD"), "a truncated body");
}

/// A snapshot the publisher signs and lets expire cannot be renewed by the server: reads still answer the stored
/// documents (clients then refuse the expired snapshot), never a server error.
#[test]
fn an_expired_publisher_snapshot_is_served_as_is() {
    let s = Server::start(&[]);
    let t = Target {
        name: "wharf",
        base: format!("http://{}", s.addr),
        http: reqwest::blocking::Client::new(),
        basic: None,
    };
    let gun = "example.com/expiring/app";
    let p = Publisher::new(gun);
    let ts = t.timestamp_key(gun);
    let root = p.root(1, &ts, &[&p.root], |_| {});
    let targets = p.targets(1, LATER, |_| {});
    let soon = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 2;
    let snap = json!({ "_type": "Snapshot", "expires": format_time(soon, 0), "version": 1,
        "meta": { "root": file_meta(&root), "targets": file_meta(&targets) } });
    let snap = Signed::sign(&snap, &[&p.snapshot]).unwrap();
    assert_eq!(t.upload(gun, &[("root", &root), ("targets", &targets), ("snapshot", &snap)]).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(3200));
    for file in ["timestamp.json", "snapshot.json"] {
        assert_eq!(t.status(gun, file), 200, "{file} after the publisher's snapshot expired");
    }
    let body = t.http.get(t.url(gun, "snapshot.json")).send().unwrap().bytes().unwrap();
    assert_eq!(&body[..], &snap[..], "the stored snapshot, byte for byte");
}

/// With access control on, publishing needs `sign` on the GUN's repository, and the changefeed of all collections
/// lists only the collections of repositories the caller may pull.
#[test]
fn access_control_applies_to_collections_and_the_global_changefeed() {
    let s = Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "admin-pass-1")]);
    s.admin(&["user", "add", "alice", "--password-stdin"], "alice-pass-1\n");
    s.admin(&["grant", "alice", "team-a/**", "pull,sign"], "");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let base = format!("http://{}", s.addr);
    let who = |basic| Target { name: "wharf", base: base.clone(), http: reqwest::blocking::Client::new(), basic };
    let (admin, alice, anon) = (who(Some(("admin", "admin-pass-1"))), who(Some(("alice", "alice-pass-1"))), who(None));
    let publish = |t: &Target, gun: &str| {
        let p = Publisher::new(gun);
        let ts = t.timestamp_key(gun);
        let root = p.root(1, &ts, &[&p.root], |_| {});
        let targets = p.targets(1, LATER, |_| {});
        let snap = p.snapshot(1, &[("root", &root), ("targets", &targets)]);
        t.upload(gun, &[("root", &root), ("targets", &targets), ("snapshot", &snap)])
    };
    assert_eq!(publish(&alice, "example.com/team-a/app").0, 200);
    assert_eq!(publish(&admin, "example.com/team-b/app").0, 200);
    // alice may not publish into team-b, nor read it; anonymous callers get a challenge.
    let (ct, body) = multipart(&[("targets", b"{}")]);
    assert_eq!(alice.post("example.com/team-b/app", &ct, body).0, 403);
    assert_eq!(alice.status("example.com/team-b/app", "root.json"), 403);
    assert_eq!(alice.status("example.com/team-a/app", "root.json"), 200);
    assert_eq!(anon.status("example.com/team-a/app", "root.json"), 401);
    let feed = |t: &Target| -> Vec<String> {
        let v: Value =
            t.get(&format!("{base}/v2/_trust/changefeed?change_id=0&records=100")).send().unwrap().json().unwrap();
        v["records"].as_array().unwrap().iter().map(|r| r["GUN"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(feed(&admin), vec!["example.com/team-a/app", "example.com/team-b/app"]);
    assert_eq!(feed(&alice), vec!["example.com/team-a/app"], "alice sees only what she may pull");
}
