//! A failing object store: a registry on PostgreSQL + S3 whose S3 is `common::s3faults`, a proxy in front of
//! s3s-fs that answers `500 InternalError` and `503 SlowDown`, resets connections mid-body, cuts bodies short and
//! delays, by a seeded schedule (`WHARF_FAULT_SEED` reproduces a run). Through it, pushes and pulls (our client,
//! `wharf`, skopeo) get through on retries or fail cleanly, no pull yields bytes that do not verify, the GC race
//! suite loses nothing, and `wharf admin check` finds no damage; an outage answers `503` naming the store and ends
//! without a restart; a store that keeps truncating never has a short blob served or cached.

use crate::common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::oci::{Oci, Pushed};
use common::s3faults::{self, Faulty, OUTAGE, SCHEDULE, TRUNCATE_GETS};
use common::{data, sha256, Server};

/// PostgreSQL (a fresh database on the shared server) and a fresh bucket reached through a fault proxy.
fn faulty_stack(rt: &tokio::runtime::Runtime) -> (Vec<(String, String)>, Arc<Faulty>, String) {
    let (endpoint, bucket) = common::s3::bucket();
    let (proxy, faulty) = s3faults::start(rt, &endpoint, s3faults::seed());
    let env = [
        ("WHARF_DATABASE_URL", common::pg::database()),
        ("WHARF_TRUST_KEY_ENCRYPTION_KEY", "faulty-s3-secret".into()),
        ("WHARF_STORAGE_URL", format!("s3://{bucket}/wharf")),
        ("WHARF_STORAGE_ENDPOINT", proxy),
        ("WHARF_STORAGE_REGION", "us-east-1".into()),
        ("WHARF_STORAGE_PATH_STYLE", "true".into()),
        ("WHARF_STORAGE_RETRY_TIMEOUT_SECS", "5".into()),
        ("AWS_ACCESS_KEY_ID", common::s3::ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", common::s3::SECRET_KEY.into()),
    ];
    (env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), faulty, format!("{bucket}/wharf"))
}

fn start(stack: &[(String, String)], extra: &[(&str, &str)]) -> Server {
    let mut env: Vec<(&str, &str)> = stack.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    Server::start(&env)
}

/// `wharf admin check --json` on `s`: its report, which must say clean with no damage.
fn check_clean(s: &Server) -> serde_json::Value {
    let out = s.admin(&["check", "--json"], "");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("check: {out}"));
    assert_eq!(report["clean"], true, "{report}");
    let damage: Vec<_> = report["problems"].as_array().unwrap().iter().filter(|p| p["severity"] == "damage").collect();
    assert!(damage.is_empty(), "{damage:?}");
    report
}

/// Every object in the bucket stored under its content address hashes to it.
fn objects_verify(prefix: &str) -> usize {
    let mut files = Vec::new();
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out)
            } else {
                out.push(e.path())
            }
        }
    }
    walk(&common::s3::object_dir(prefix).join("blobs"), &mut files);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            assert_eq!(sha256(&std::fs::read(f).unwrap()), format!("sha256:{name}"), "{}", f.display());
        }
    }
    files.len()
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo").args(["copy", "-q", "--retry-times", "3"]).args(args).output().expect("skopeo")
}

#[test]
fn a_faulty_store_is_ridden_out_and_nothing_unverified_is_served() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, faulty, prefix) = faulty_stack(&rt);
    // No local cache: every pull reads the store through the faults.
    let s = start(&stack, &[("WHARF_STORAGE_CACHE_MAX_BYTES", "0")]);
    faulty.mode.store(SCHEDULE, Ordering::SeqCst);
    let started = Instant::now();
    let oci = Oci::new(&s);
    let mut pushed: Vec<(String, Pushed)> = Vec::new();
    for i in 0..12 {
        // Every fourth image has a 12 MiB layer (a multipart upload of 5 MiB parts); the others are small.
        let big = data(if i % 4 == 0 { 12 << 20 } else { 300_000 + i }, i as u8);
        let small = data(4000 + i, 200 + i as u8);
        let config = format!(r#"{{"architecture":"amd64","os":"linux","image":{i}}}"#).into_bytes();
        let p = oci.push("faulty/app", &format!("t{i}"), &config, &[&big, &small], None).expect("push");
        pushed.push((format!("t{i}"), p));
    }
    for round in 0..2 {
        for (tag, p) in &pushed {
            assert_eq!(oci.pull("faulty/app", tag), Ok(p.digest.clone()), "{tag}, round {round}");
        }
    }

    // Third-party and our own client: skopeo copies in and out (it verifies every digest), wharf pushes and pulls.
    let images = common::peers::shared_images();
    let host = s.addr.clone();
    let src = format!("oci:{}:latest", images.join("small").display());
    let out = skopeo(&["--dest-tls-verify=false", &src, &format!("docker://{host}/faulty/skopeo:v1")]);
    assert!(out.status.success(), "skopeo push: {}", String::from_utf8_lossy(&out.stderr));
    let back = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:v1", back.path().join("copy").display());
    let out = skopeo(&["--src-tls-verify=false", &format!("docker://{host}/faulty/skopeo:v1"), &dst]);
    assert!(out.status.success(), "skopeo pull: {}", String::from_utf8_lossy(&out.stderr));
    let c = common::client::Client::new();
    c.ok(&["trust", "init", &format!("{host}/faulty/wharf")]);
    c.ok(&["push", "--sign", &src, &format!("{host}/faulty/wharf:v1")]);
    let root = c.root_of(&host, "faulty/wharf");
    let out = common::client::Client::new().ok(&[
        "pull",
        "--trust-root",
        root.to_str().unwrap(),
        &format!("{host}/faulty/wharf:v1"),
    ]);
    assert!(out.contains("verified sha256:"), "{out}");

    let injected = faulty.injected.lock().unwrap().clone();
    eprintln!("S3 faults injected: {injected:?} in {:?}", started.elapsed());
    assert_eq!(injected.len(), 5, "every kind of fault was injected: {injected:?}");
    faulty.mode.store(s3faults::CLEAN, Ordering::SeqCst);
    assert!(objects_verify(&prefix) > 0);
    check_clean(&s);
}

#[test]
fn an_outage_answers_503_naming_the_store_and_ends_without_a_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, faulty, _) = faulty_stack(&rt);
    let s = start(&stack, &[("WHARF_STORAGE_CACHE_MAX_BYTES", "0"), ("WHARF_STORAGE_RETRY_TIMEOUT_SECS", "2")]);
    let oci = Oci::new(&s);
    let layer = data(200_000, 7);
    let p = oci.push("outage/app", "v1", b"{}", &[&layer], None).expect("push");
    faulty.mode.store(OUTAGE, Ordering::SeqCst);
    let http = reqwest::blocking::Client::new();
    let started = Instant::now();
    let r = http.get(s.url(&format!("/v2/outage/app/blobs/{}", p.blobs[1]))).send().unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body = r.text().unwrap();
    assert!(body.contains("object store (S3) is unavailable"), "{body}");
    // Retried with backoff up to the bound, not forever.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(10), "{waited:?}");
    let other = data(100_000, 9);
    let r = http
        .post(s.url(&format!("/v2/outage/app/blobs/uploads/?digest={}", sha256(&other))))
        .body(other.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 503, "{}", r.text().unwrap());
    assert!(faulty.total() > 2, "retried: {:?}", faulty.injected.lock().unwrap());

    // The store is back: the same requests succeed with no restart.
    faulty.mode.store(s3faults::CLEAN, Ordering::SeqCst);
    assert_eq!(oci.pull("outage/app", "v1"), Ok(p.digest.clone()));
    oci.ensure_blob("outage/app", &other, None);
    let r = http.get(s.url(&format!("/v2/outage/app/blobs/{}", sha256(&other)))).send().unwrap();
    assert_eq!(sha256(&r.bytes().unwrap()), sha256(&other));
}

#[test]
fn a_truncating_store_never_has_a_short_blob_served_or_cached() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, faulty, _) = faulty_stack(&rt);
    let s = start(&stack, &[("WHARF_STORAGE_RETRY_TIMEOUT_SECS", "2")]);
    let layer = data(4 << 20, 3);
    let digest = Oci::new(&s).ensure_blob("cut/app", &layer, None);
    let cached = s.data_dir.join("blob-cache").join(digest.replace(':', "-"));
    faulty.mode.store(TRUNCATE_GETS, Ordering::SeqCst);
    let http = reqwest::blocking::Client::new();
    for _ in 0..2 {
        let r = http.get(s.url(&format!("/v2/cut/app/blobs/{digest}"))).send().unwrap();
        // The headers promise the whole blob; the body breaks off rather than end short.
        match r.status().as_u16() {
            200 => {
                assert_eq!(r.content_length(), Some(layer.len() as u64));
                match r.bytes() {
                    Ok(b) => panic!("a body of {} bytes read as complete from a truncating store", b.len()),
                    Err(e) => eprintln!("the response broke off, as it must: {e}"),
                }
            }
            503 => {}
            other => panic!("GET of a blob from a truncating store: {other}"),
        }
        assert!(!cached.exists(), "a short copy was cached");
    }
    assert!(faulty.total() >= 2);
    faulty.mode.store(s3faults::CLEAN, Ordering::SeqCst);
    let r = http.get(s.url(&format!("/v2/cut/app/blobs/{digest}"))).send().unwrap();
    assert_eq!(sha256(&r.bytes().unwrap()), digest);
    // Cached once a whole read verified.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cached.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sha256(&std::fs::read(&cached).unwrap()), digest);
}

/// A store that stops sending halfway through a body and holds the connection: the read fails after the stall
/// timeout (the response breaks off, nothing short is cached) instead of hanging, and reads pass again once the
/// store answers. A read that keeps moving has no time limit (no whole-request timeout cuts a large layer).
#[test]
fn a_stalling_store_ends_the_read_after_the_stall_timeout() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, faulty, _) = faulty_stack(&rt);
    let s = start(&stack, &[("WHARF_STORAGE_STALL_TIMEOUT_SECS", "2")]);
    let layer = data(4 << 20, 9);
    let digest = Oci::new(&s).ensure_blob("stall/app", &layer, None);
    let cached = s.data_dir.join("blob-cache").join(digest.replace(':', "-"));
    faulty.mode.store(s3faults::STALL_GETS, Ordering::SeqCst);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let started = Instant::now();
    let r = http.get(s.url(&format!("/v2/stall/app/blobs/{digest}"))).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().is_err(), "a stalled body read as complete");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(20), "the stalled read ended after {took:?}");
    assert!(!cached.exists(), "a short copy was cached");
    faulty.mode.store(s3faults::CLEAN, Ordering::SeqCst);
    let r = http.get(s.url(&format!("/v2/stall/app/blobs/{digest}"))).send().unwrap();
    assert_eq!(sha256(&r.bytes().unwrap()), digest);
}

#[test]
fn the_gc_race_suite_loses_nothing_through_a_faulty_store() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, faulty, _) = faulty_stack(&rt);
    faulty.mode.store(SCHEDULE, Ordering::SeqCst);
    crate::gc::race(stack);
    eprintln!("S3 faults injected in the race: {:?}", faulty.injected.lock().unwrap());
    assert!(faulty.total() > 20);
}
