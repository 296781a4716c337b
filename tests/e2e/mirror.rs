//! Mirror mode against real servers: an origin `wharf serve` and a mirror `wharf serve` with `[[mirror]]` entries.
//! Pull-through with one upstream fetch per blob (the origin's own request log counts them), coalescing of
//! concurrent cold pulls, streaming before the download ends, serving from cache with the origin down, pushes
//! refused, a hostile origin, upstream credentials over HTTPS, and trust metadata verified through the mirror.

use crate::common;
use crate::common::auth_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::client::Client;
use common::oci::Oci;
use common::proxy::{start_proxy, CLEAN, CORRUPT, HOLD, SWAP};
use common::{data, sha256, Server};

/// A server whose log records every request (`observe` at debug level).
fn logged(dir: &Path, name: &str, extra: &[(&str, &str)]) -> (Server, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut env = vec![("__stderr", log.to_str().unwrap()), ("WHARF_LOG", "info,wharf_registry::observe=debug")];
    env.extend_from_slice(extra);
    let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (Server::start(&env), log)
}

/// A mirror with these `[[mirror]]` entries (TOML).
fn mirror(dir: &Path, entries: &str) -> (Server, PathBuf) {
    let config = dir.join("mirror.toml");
    std::fs::write(&config, entries).unwrap();
    logged(dir, "mirror", &[("WHARF_CONFIG", config.to_str().unwrap())])
}

fn entry(upstream: &str, prefix: &str, freshness: u64) -> String {
    format!("[[mirror]]\nupstream = \"{upstream}\"\nprefix = \"{prefix}\"\ntag_freshness_secs = {freshness}\n")
}

/// Successful `GET`s of `path` in a server's request log.
fn gets(log: &Path, path: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("path={path} ");
    text.lines().filter(|l| l.contains("method=GET") && l.contains(&needle) && l.contains("status=200")).count()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

fn error_code(r: reqwest::blocking::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().unwrap_or_default();
    let code = body["errors"][0]["code"].as_str().unwrap_or("").to_string();
    let message = body["errors"][0]["message"].as_str().unwrap_or("").to_string();
    (status, code, message)
}

#[test]
fn pull_through_caches_once_refuses_pushes_and_serves_with_the_origin_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut origin, origin_log) = logged(tmp.path(), "origin", &[]);
    let o = Oci::new(&origin);
    let layers: Vec<Vec<u8>> = (0..3).map(|i| data(300_000 + i * 1000, 40 + i as u8)).collect();
    let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
    let one = o.push("app/one", "v1", br#"{"architecture":"amd64","os":"linux","n":1}"#, &refs, None).unwrap();
    let two = o.push("app/two", "v1", br#"{"architecture":"amd64","os":"linux","n":2}"#, &refs[..1], None).unwrap();
    o.push("app/one", "v2", br#"{"architecture":"amd64","os":"linux","n":3}"#, &refs[1..], None).unwrap();

    // A referrer of v1 (a signature-like artifact) at the origin.
    let config = common::sha256(b"{}");
    o.ensure_blob("app/one", b"{}", None);
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2 },
        "layers": [],
        "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": one.digest, "size": 1 },
    });
    assert_eq!(o.put_manifest("app/one", &sha256(referrer.to_string().as_bytes()), &referrer), 201);
    let referrer_digest = sha256(referrer.to_string().as_bytes());

    // Timestamps are whole seconds: a 4 s freshness is surely fresh for 3 s and surely stale after 4.1 s.
    let (m, _) = mirror(tmp.path(), &entry(&origin.url(""), "origin", 4));
    let mo = Oci::new(&m);
    // Twice, and by digest too: every blob comes from the origin once.
    assert_eq!(mo.pull("origin/app/one", "v1"), Ok(one.digest.clone()));
    assert_eq!(mo.pull("origin/app/one", "v1"), Ok(one.digest.clone()));
    assert_eq!(mo.pull("origin/app/one", &one.digest), Ok(one.digest.clone()));
    for b in &one.blobs {
        assert_eq!(gets(&origin_log, &format!("/v2/app/one/blobs/{b}")), 1, "{b} fetched from the origin once");
    }
    assert_eq!(gets(&origin_log, &format!("/v2/app/one/manifests/{}", one.digest)), 1);
    // Another repository with the same layers: its manifest comes from the origin, the layers the mirror holds do
    // not come again.
    let three = o.push("app/three", "v1", br#"{"architecture":"amd64","os":"linux","n":5}"#, &refs, None).unwrap();
    assert_eq!(mo.pull("origin/app/three", "v1"), Ok(three.digest.clone()));
    assert_eq!(gets(&origin_log, &format!("/v2/app/three/blobs/{}", three.blobs[0])), 1, "its own config");
    for b in &three.blobs[1..] {
        assert_eq!(gets(&origin_log, &format!("/v2/app/three/blobs/{b}")), 0, "shared layer {b} fetched again");
    }

    // The referrers API answers from the origin.
    let c = http();
    let referrers = |m: &Server| -> Vec<String> {
        let v: serde_json::Value =
            c.get(m.url(&format!("/v2/origin/app/one/referrers/{}", one.digest))).send().unwrap().json().unwrap();
        v["manifests"].as_array().unwrap().iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(referrers(&m), vec![referrer_digest.clone()]);
    assert_eq!(c.get(m.url(&format!("/v2/origin/app/one/manifests/{referrer_digest}"))).send().unwrap().status(), 200);

    // A tag moved at the origin: the mirror serves its cached tag while fresh, then asks again.
    let moved = o.push("app/one", "v1", br#"{"architecture":"amd64","os":"linux","n":4}"#, &refs[..2], None).unwrap();
    assert_eq!(mo.pull("origin/app/one", "v1"), Ok(one.digest.clone()), "a fresh tag is served from the cache");
    std::thread::sleep(Duration::from_millis(4100));
    assert_eq!(mo.pull("origin/app/one", "v1"), Ok(moved.digest.clone()), "a stale tag is asked again");

    // Tag lists come from the origin.
    let mut tags = mo.tags("origin/app/one");
    tags.sort();
    assert_eq!(tags, vec!["v1".to_string(), "v2".to_string()]);

    // Pushes into the mirrored namespace are refused; a local repository beside it takes them.
    let r = c.post(m.url("/v2/origin/app/one/blobs/uploads/")).send().unwrap();
    assert_eq!(error_code(r).1, "DENIED");
    let r = c
        .put(m.url("/v2/origin/app/one/manifests/v9"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body("{}")
        .send()
        .unwrap();
    let (status, code, _) = error_code(r);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    let r = c.delete(m.url(&format!("/v2/origin/app/one/manifests/{}", one.digest))).send().unwrap();
    assert_eq!(error_code(r).1, "DENIED");
    let local = mo.push("team/local", "v1", br#"{"os":"linux"}"#, &refs[..1], None).unwrap();
    assert_eq!(mo.pull("team/local", "v1"), Ok(local.digest));

    // The origin stops: what is cached still pulls (after the tag's freshness ran out, with a warning), what is
    // not fails with a clear error.
    origin.kill();
    std::thread::sleep(Duration::from_millis(4100));
    assert_eq!(mo.pull("origin/app/one", "v1"), Ok(moved.digest.clone()));
    assert_eq!(mo.tags("origin/app/one"), vec!["v1".to_string()], "the cached tags");
    assert_eq!(referrers(&m), vec![referrer_digest], "the cached referrers");
    let r = c.get(m.url("/v2/origin/app/two/manifests/v1")).send().unwrap();
    let (status, code, message) = error_code(r);
    assert_eq!((status, code.as_str()), (502, "UNAVAILABLE"), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    let r = c.get(m.url(&format!("/v2/origin/app/two/blobs/{}", two.blobs[0]))).send().unwrap();
    assert_eq!(error_code(r).0, 502);
    let mlog = std::fs::read_to_string(tmp.path().join("mirror.log")).unwrap();
    assert!(mlog.contains("upstream unavailable: serving the cached tag"), "{mlog}");
}

#[test]
fn sixteen_cold_pulls_of_a_256_mib_blob_share_one_upstream_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, origin_log) = logged(tmp.path(), "origin", &[]);
    let big = data(256 << 20, 9);
    let d = Oci::new(&origin).ensure_blob("big/image", &big, None);
    drop(big);
    let (m, _) = mirror(tmp.path(), &entry(&origin.url(""), "*", 60));
    let url = m.url(&format!("/v2/big/image/blobs/{d}"));
    let barrier = std::sync::Barrier::new(16);
    let got: Vec<(String, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let mut r = http().get(&url).send().unwrap();
                    assert_eq!(r.status(), 200);
                    let mut h = <sha2::Sha256 as sha2::Digest>::new();
                    let (mut buf, mut n) = (vec![0u8; 1 << 20], 0u64);
                    loop {
                        let k = r.read(&mut buf).unwrap();
                        if k == 0 {
                            break;
                        }
                        sha2::Digest::update(&mut h, &buf[..k]);
                        n += k as u64;
                    }
                    (format!("sha256:{}", hex::encode(sha2::Digest::finalize(h))), n)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (digest, n) in &got {
        assert_eq!((digest.as_str(), *n), (d.as_str(), 256 << 20));
    }
    assert_eq!(gets(&origin_log, &format!("/v2/big/image/blobs/{d}")), 1, "one upstream fetch for sixteen pulls");
    // Stored as any pushed blob: a warm pull needs no upstream.
    let r = http().get(&url).send().unwrap();
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    assert_eq!(gets(&origin_log, &format!("/v2/big/image/blobs/{d}")), 1);
}

/// GETs `url`: how long its first `first` bytes took after the response started, and the whole body.
fn read_timed(url: &str, first: usize) -> (Duration, Vec<u8>) {
    let mut r = http().get(url).send().unwrap();
    let started = Instant::now();
    let mut body = vec![0u8; first];
    r.read_exact(&mut body).unwrap();
    let early = started.elapsed();
    r.read_to_end(&mut body).unwrap();
    (early, body)
}

#[test]
fn a_hostile_origin_is_refused_and_the_next_clean_fetch_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = Server::start(&[]);
    let o = Oci::new(&origin);
    let layer = data(2 << 20, 77);
    let img = o.push("evil/app", "v1", br#"{"os":"linux"}"#, &[&layer], None).unwrap();
    let (proxy, p) = start_proxy(&rt, &origin.url(""));
    let (m, mlog) = mirror(tmp.path(), &entry(&proxy, "*", 0));
    let c = http();
    let blob_url = m.url(&format!("/v2/evil/app/blobs/{}", img.blobs[1]));

    // Corrupted bytes: the response never completes, nothing is stored, the fault is logged.
    p.mode.store(CORRUPT, Ordering::SeqCst);
    let r = c.get(&blob_url).send().unwrap();
    let mut body = Vec::new();
    let read = { r }.read_to_end(&mut body);
    assert!(read.is_err() || body.len() < layer.len(), "a corrupted blob was served whole");
    assert_ne!(sha256(&body), img.blobs[1]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::fs::read_to_string(&mlog).unwrap().contains("upstream fault"));

    // A swapped manifest: refused with a clear error, not cached.
    p.mode.store(SWAP, Ordering::SeqCst);
    let r = c.get(m.url(&format!("/v2/evil/app/manifests/{}", img.digest))).send().unwrap();
    let (status, code, message) = error_code(r);
    assert_eq!((status, code.as_str()), (502, "UNAVAILABLE"));
    assert!(message.contains("does not match"), "{message}");
    let r = c.get(m.url("/v2/evil/app/manifests/v1")).send().unwrap();
    assert_eq!(r.status(), 502, "a tag whose manifest was swapped");

    // Clean again: everything pulls and verifies.
    p.mode.store(CLEAN, Ordering::SeqCst);
    assert_eq!(Oci::new(&m).pull("evil/app", "v1"), Ok(img.digest.clone()));

    // Streaming: with the origin holding back the last byte of a blob, the mirror's client already has the rest.
    let other = data(3 << 20, 78);
    let d = o.ensure_blob("evil/app", &other, None);
    p.mode.store(HOLD, Ordering::SeqCst);
    let url = m.url(&format!("/v2/evil/app/blobs/{d}"));
    let reader = std::thread::spawn(move || read_timed(&url, 1 << 20));
    std::thread::sleep(Duration::from_millis(700));
    // A client that joins the download late gets what has arrived at once, then the rest.
    let url = m.url(&format!("/v2/evil/app/blobs/{d}"));
    let late = std::thread::spawn(move || read_timed(&url, 2 << 20));
    std::thread::sleep(Duration::from_millis(800));
    assert!(!reader.is_finished() && !late.is_finished(), "a body ended before the origin sent its last byte");
    p.release.notify_one();
    for (who, t) in [("first", reader), ("late", late)] {
        let (early, bytes) = t.join().unwrap();
        assert!(early < Duration::from_millis(800), "the {who} client's first MiBs arrived only after {early:?}");
        assert_eq!(sha256(&bytes), d, "{who}");
    }
}

#[test]
fn an_origin_with_access_control_is_mirrored_with_its_robot_account() {
    let tmp = tempfile::tempdir().unwrap();
    let env = auth_support::Env::start(&[]);
    let auth_support::Call::Basic(user, secret) = env.call_for("robot$ci") else { panic!("robot credentials") };
    let ca = env.certs.join("ca.crt");
    let with_creds = format!(
        "{}username = \"{user}\"\npassword = \"{secret}\"\nca_cert = \"{}\"\n",
        entry(&env.s.url(""), "origin", 60),
        ca.display()
    );
    let (m, _) = mirror(tmp.path(), &with_creds);
    assert_eq!(Oci::new(&m).pull("origin/ci/build", "t1"), Ok(env.image.digest.clone()));
    // Without credentials the origin refuses the mirror, and the mirror says why.
    let tmp2 = tempfile::tempdir().unwrap();
    let anonymous = format!("{}ca_cert = \"{}\"\n", entry(&env.s.url(""), "origin", 60), ca.display());
    let (m2, _) = mirror(tmp2.path(), &anonymous);
    let r = http().get(m2.url("/v2/origin/ci/build/manifests/t1")).send().unwrap();
    let (status, _, message) = error_code(r);
    assert_eq!(status, 502, "{message}");
    assert!(["401", "403", "credentials"].iter().any(|w| message.contains(w)), "{message}");
}

#[test]
fn signed_tags_verify_through_the_mirror_and_a_revocation_reaches_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Server::start(&[]);
    let layer = data(100_000, 5);
    let img = Oci::new(&origin).push("signed/app", "v1", br#"{"os":"linux"}"#, &[&layer], None).unwrap();
    let publisher = Client::new();
    let host = origin.addr.clone();
    let reference = format!("{host}/signed/app:v1");
    publisher.ok(&["trust", "init", &format!("{host}/signed/app")]);
    publisher.ok(&["trust", "sign", &reference]);
    let root = publisher.root_of(&host, "signed/app");
    let (m, mlog) = mirror(tmp.path(), &entry(&origin.url(""), "*", 2));

    // python-tuf, given only the mirror's URLs, verifies the publisher's signatures.
    let tuf_check = |expect_ok: bool| {
        let out = std::process::Command::new(common::peers::peers().join("tuf-client-check"))
            .arg(m.url("/v2/signed/app/_tuf/"))
            .arg(m.url("/v2/signed/app/_tuf/targets/"))
            .arg(&root)
            .arg("v1")
            .arg(img.digest.trim_start_matches("sha256:"))
            .output()
            .expect("tuf-client-check");
        let text = String::from_utf8_lossy(&out.stdout);
        let passed = out.status.success() && text.lines().last().unwrap_or("").ends_with(", 0 failed");
        assert_eq!(passed, expect_ok, "{text}{}", String::from_utf8_lossy(&out.stderr));
    };
    tuf_check(true);
    let out = Client::new().ok(&["pull", "--mirror", &m.url(""), "--trust-root", root.to_str().unwrap(), &reference]);
    assert!(out.contains(&format!("verified {}", &img.digest[..19])), "{out}");
    assert!(std::fs::read_to_string(&mlog).unwrap().contains("mirrored a manifest"));

    // The publisher revokes the tag at the origin; once the mirror's cached timestamp is older than its
    // freshness time, clients verifying through the mirror no longer find it.
    publisher.ok(&["trust", "revoke", &reference]);
    std::thread::sleep(Duration::from_millis(2500));
    tuf_check(false);
    let out =
        Client::new().wharf(&["pull", "--mirror", &m.url(""), "--trust-root", root.to_str().unwrap(), &reference]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The digests of the manifest and blobs of `tag` in an OCI layout.
fn layout_digests(layout: &Path) -> (String, Vec<String>) {
    let read = |d: &str| std::fs::read(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&read(&digest)).unwrap();
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    blobs.extend(manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    (digest, blobs)
}

#[test]
fn docker_containerd_and_podman_pull_through_their_mirror_settings() {
    let _engines = common::engines();
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    common::peers::make_test_images(&images, false);
    let (origin, origin_log) = logged(tmp.path(), "origin", &[]);
    let out = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--preserve-digests", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", images.join("small").display()))
        .arg(format!("docker://{}/library/small:latest", origin.addr))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (digest, blobs) = layout_digests(&images.join("small"));
    let (m, _) = mirror(tmp.path(), &entry(&origin.url(""), "*", 60));
    let out = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mirror-engines"))
        .arg(&m.addr)
        .arg(&digest)
        .output()
        .expect("mirror-engines");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("3 passed, 0 failed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Three engines, one fetch of each blob from the origin.
    for b in &blobs {
        assert_eq!(gets(&origin_log, &format!("/v2/library/small/blobs/{b}")), 1, "{b}");
    }
}

#[test]
fn a_stalled_origin_fails_the_pull_within_the_stall_timeout_and_the_next_fetch_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = Server::start(&[]);
    let blob = data(1 << 20, 91);
    let d = Oci::new(&origin).ensure_blob("slow/app", &blob, None);
    let (proxy, p) = start_proxy(&rt, &origin.url(""));
    let (m, _) = mirror(tmp.path(), &format!("{}stall_timeout_secs = 1\n", entry(&proxy, "*", 60)));
    // The origin sends all but the last byte, then nothing: the mirror gives up after a second of silence.
    p.mode.store(HOLD, Ordering::SeqCst);
    let url = m.url(&format!("/v2/slow/app/blobs/{d}"));
    let started = Instant::now();
    let mut body = Vec::new();
    let read = http().get(&url).send().and_then(|r| r.bytes().map(|b| body = b.to_vec()));
    assert!(read.is_err() || body.len() < blob.len(), "a stalled download was served whole");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up only after {:?}", started.elapsed());
    p.mode.store(CLEAN, Ordering::SeqCst);
    let r = http().get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sha256(&r.bytes().unwrap()), d);
}

#[test]
fn retention_and_collection_apply_to_mirrored_content() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, origin_log) = logged(tmp.path(), "origin", &[]);
    let layer = data(1 << 20, 33);
    let img = Oci::new(&origin).push("app", "v1", br#"{"os":"linux"}"#, &[&layer], None).unwrap();
    let config = tmp.path().join("mirror.toml");
    std::fs::write(&config, entry(&origin.url(""), "origin", 60)).unwrap();
    let env =
        [("WHARF_CONFIG", config.to_str().unwrap()), ("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "0")];
    let (m, _) = logged(tmp.path(), "mirror", &env);
    let mo = Oci::new(&m);
    assert_eq!(mo.pull("origin/app", "v1"), Ok(img.digest.clone()));
    std::thread::sleep(Duration::from_millis(1100));
    // A rule for the mirrored namespace drops the cached tag and manifest; the collector then frees the bytes.
    let rule = ["--repositories", "origin/**", "--older-than", "0s", "--untagged-older-than", "0s"];
    let done: serde_json::Value =
        serde_json::from_str(&m.admin(&[&["retention", "--json"][..], &rule[..]].concat(), "")).unwrap();
    assert_eq!(done["tags_removed"], 1, "{done}");
    std::thread::sleep(Duration::from_millis(1100));
    let gc: serde_json::Value = serde_json::from_str(&m.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!(gc["blobs_removed"], 2, "{gc}");
    assert!(gc["bytes_removed"].as_u64().unwrap() >= layer.len() as u64, "{gc}");
    // The next pull fetches again.
    assert_eq!(mo.pull("origin/app", "v1"), Ok(img.digest.clone()));
    // The origin logs a request once its answer is sent, which may be after the client has read it all.
    let layer_gets = || gets(&origin_log, &format!("/v2/app/blobs/{}", img.blobs[1]));
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while layer_gets() < 2 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(layer_gets(), 2);
}
