//! Two replicas on PostgreSQL + S3 behind HAProxy (round-robin, no stickiness): the real clients' harness through
//! the balancer, a 1 GiB chunked push whose PATCHes alternate between the replicas, and a replica killed with
//! SIGKILL in the middle of a `wharf push`.

use crate::common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::lb::Balancer;
use common::{wharf_bin, Server};
use sha2::{Digest as _, Sha256};

struct Stack {
    replicas: Vec<Server>,
    lb: Balancer,
    database_url: String,
}

fn stack() -> Stack {
    let shared = common::shared_stack();
    let env: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let replicas = vec![Server::start(&env), Server::start(&env)];
    let addrs: Vec<&str> = replicas.iter().map(|s| s.addr.as_str()).collect();
    let lb = Balancer::start(&addrs);
    let database_url = shared.iter().find(|(k, _)| k == "WHARF_DATABASE_URL").unwrap().1.clone();
    Stack { replicas, lb, database_url }
}

#[test]
fn registry_interop_passes_through_the_balancer() {
    let _engines = common::engines();
    let st = stack();
    let out = Command::new(common::peers::peers().join("registry-interop"))
        .arg(&st.lb.addr)
        .output()
        .expect("registry-interop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or("");
    assert!(out.status.success(), "registry-interop through the balancer failed: {last}");
    assert!(last.ends_with(" passed, 0 failed"), "unexpected summary {last:?}");
    let skips: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert!(skips.is_empty(), "skipped checks: {skips:?}");
}

/// Deterministic, incompressible-looking bytes: chunk `i` of a blob (xorshift, fast enough for a GiB).
fn chunk(i: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_1gib_chunked_push_alternating_between_replicas_completes_and_verifies() {
    let st = stack();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    const CHUNK: usize = 64 << 20;
    const CHUNKS: u64 = 16;
    let r = http.post(st.lb.url("/v2/big/one/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), 202);
    let mut location = r.headers()["location"].to_str().unwrap().to_string();
    let mut hasher = Sha256::new();
    for i in 0..CHUNKS {
        let bytes = chunk(i, CHUNK);
        hasher.update(&bytes);
        // Chunk i goes to replica i % 2: every PATCH continues a session the other replica wrote last.
        let replica = &st.replicas[(i % 2) as usize];
        let start = i * CHUNK as u64;
        let r = http
            .patch(replica.url(&location))
            .header("content-range", format!("{start}-{}", start + CHUNK as u64 - 1))
            .body(bytes)
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "chunk {i}: {:?}", r.text());
        assert_eq!(r.headers()["range"].to_str().unwrap(), format!("0-{}", start + CHUNK as u64 - 1));
        location = r.headers()["location"].to_str().unwrap().to_string();
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let r = http.put(st.lb.url(&format!("{location}?digest={digest}"))).send().unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    // Read back through each replica: the whole GiB hashes to its digest.
    for replica in &st.replicas {
        let resp = http.get(replica.url(&format!("/v2/big/one/blobs/{digest}"))).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(hash_body(resp), (digest.clone(), CHUNKS * CHUNK as u64));
    }
}

/// Reads a response body to its end in 1 MiB pieces: its SHA-256 digest and its length.
fn hash_body(mut resp: reqwest::blocking::Response) -> (String, u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    (format!("sha256:{}", hex::encode(h.finalize())), total)
}

/// Checks that `repo:tag` pulls completely through `base`: the manifest, then every blob, each by its digest.
fn verify_image(http: &reqwest::blocking::Client, base: &str, repo: &str, tag: &str) {
    let r = http
        .get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{repo}:{tag}");
    let m: serde_json::Value = r.json().unwrap();
    let mut blobs = vec![m["config"].clone()];
    blobs.extend(m["layers"].as_array().unwrap().iter().cloned());
    for b in blobs {
        let digest = b["digest"].as_str().unwrap();
        let resp = http.get(format!("{base}/v2/{repo}/blobs/{digest}")).send().unwrap();
        assert_eq!(resp.status(), 200, "{digest}");
        assert_eq!(hash_body(resp), (digest.to_string(), b["size"].as_u64().unwrap()));
    }
}

/// The bytes recorded in the database's upload sessions (the progress of a chunked upload).
fn recorded_upload_bytes(database_url: &str) -> u64 {
    let out = Command::new("psql")
        .args([database_url, "-tAc", "SELECT COALESCE(MAX(size), 0) FROM upload_sessions"])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn a_replica_killed_mid_push_the_push_completes_through_the_other() {
    let mut st = stack();
    let images = tempfile::tempdir().unwrap();
    common::peers::make_test_images(images.path(), true);
    let home = tempfile::tempdir().unwrap();
    let wharf = |args: &[&str]| {
        let mut c = Command::new(wharf_bin());
        c.args(args)
            .env("WHARF_STORE", home.path().join("store"))
            .env("WHARF_CONFIG_DIR", home.path().join("config"))
            .env("WHARF_LOG", "warn")
            .stdout(std::process::Stdio::null());
        c
    };
    let layout = |name: &str| format!("oci:{}:latest", images.path().join(name).display());
    // Completed before the crash: must survive it.
    let out = wharf(&["push", &layout("small"), &format!("{}/crash/small:latest", st.lb.addr)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The big image's 256 MiB layer goes up in 16 MiB chunks, round-robin over both replicas.
    let mut push = wharf(&["push", &layout("big"), &format!("{}/crash/big:latest", st.lb.addr)]).spawn().unwrap();
    let started = Instant::now();
    while recorded_upload_bytes(&st.database_url) < 48 << 20 {
        assert!(started.elapsed() < Duration::from_secs(120), "the push made no progress");
        assert!(push.try_wait().unwrap().is_none(), "the push ended before the kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    st.replicas[0].kill();
    let status = push.wait().unwrap();
    assert!(status.success(), "the push failed after a replica was killed");
    assert!(started.elapsed() < Duration::from_secs(300));

    // Everything reads back whole through the balancer and through the surviving replica.
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    for base in [st.lb.url(""), st.replicas[1].url("")] {
        verify_image(&http, &base, "crash/small", "latest");
        verify_image(&http, &base, "crash/big", "latest");
    }
}
