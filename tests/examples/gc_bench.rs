//! The workload of `deploy/bench/gc-compare`: fills a registry with images, deletes some, and measures pulls
//! while a collection runs.
//!
//! ```text
//! gc_bench load URL STATE [MANIFESTS] [BLOBS_PER_MANIFEST] [DELETE_PERCENT]
//!     pushes MANIFESTS images (default 10000) of BLOBS_PER_MANIFEST unique small blobs each (default 10; config
//!     included) into 100 repositories with POST then PUT (what every registry takes), then deletes
//!     DELETE_PERCENT of the manifests by digest (default 10); writes the images left to STATE
//! gc_bench during URL STATE -- COMMAND...
//!     pulls the images in STATE from 4 threads (manifest by tag, then every blob, each verified); measures the
//!     rate for 5 s idle, then runs COMMAND and measures the rate while it runs; prints one JSON object
//! ```
//! Content is deterministic, so two registries loaded by this get the same bytes.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::Digest as _;

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn blob(i: usize, j: usize) -> Vec<u8> {
    let mut v = format!("manifest {i} blob {j} ").into_bytes();
    v.resize(256, b'.');
    v
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).pool_max_idle_per_host(64).build().unwrap()
}

fn push_blob(http: &reqwest::blocking::Client, url: &str, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = http.post(format!("{url}/v2/{repo}/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), 202, "POST upload");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with('/') { format!("{url}{loc}") } else { loc };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = http.put(format!("{loc}{sep}digest={d}")).body(bytes.to_vec()).send().unwrap();
    assert_eq!(r.status(), 201, "PUT upload");
    d
}

fn load(url: &str, state: &str, manifests: usize, per: usize, delete_percent: usize) {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let left: Vec<Vec<(String, String, String)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..32)
            .map(|_| {
                let next = Arc::clone(&next);
                s.spawn(move || {
                    let http = client();
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= manifests {
                            return out;
                        }
                        let repo = format!("bench/r{:03}", i % 100);
                        let digests: Vec<(String, usize)> =
                            (0..per).map(|j| (push_blob(&http, url, &repo, &blob(i, j)), blob(i, j).len())).collect();
                        let m = json!({
                            "schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                                        "digest": digests[0].0, "size": digests[0].1 },
                            "layers": digests[1..].iter().map(|(d, n)| json!({
                                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n
                            })).collect::<Vec<_>>(),
                        })
                        .to_string();
                        let tag = format!("t{i}");
                        let r = http
                            .put(format!("{url}/v2/{repo}/manifests/{tag}"))
                            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                            .body(m.clone())
                            .send()
                            .unwrap();
                        assert_eq!(r.status(), 201, "manifest PUT");
                        let digest = sha256(m.as_bytes());
                        if i % 100 < delete_percent {
                            let r = http.delete(format!("{url}/v2/{repo}/manifests/{digest}")).send().unwrap();
                            assert_eq!(r.status(), 202, "manifest DELETE");
                        } else {
                            out.push((repo, tag, digest));
                        }
                        if i % 1000 == 999 {
                            eprintln!("loaded {} manifests in {:?}", i + 1, started.elapsed());
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut f = std::fs::File::create(state).unwrap();
    for (repo, tag, digest) in left.into_iter().flatten() {
        writeln!(f, "{repo} {tag} {digest}").unwrap();
    }
    eprintln!("loaded in {:?}", started.elapsed());
}

fn pull(http: &reqwest::blocking::Client, url: &str, repo: &str, tag: &str, digest: &str) {
    let r = http
        .get(format!("{url}/v2/{repo}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "manifest GET {repo}:{tag}");
    let bytes = r.bytes().unwrap();
    assert_eq!(sha256(&bytes), digest);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let want = d["digest"].as_str().unwrap();
        let b = http.get(format!("{url}/v2/{repo}/blobs/{want}")).send().unwrap();
        assert_eq!(b.status(), 200, "blob GET");
        assert_eq!(sha256(&b.bytes().unwrap()), want, "blob bytes");
    }
}

fn during(url: &str, state: &str, cmd: &[String]) {
    let images: Vec<(String, String, String)> = std::fs::read_to_string(state)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split(' ').collect();
            (v[0].into(), v[1].into(), v[2].into())
        })
        .collect();
    let images = Arc::new(images);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (images, done, stop, url) =
                (Arc::clone(&images), Arc::clone(&done), Arc::clone(&stop), url.to_string());
            std::thread::spawn(move || {
                let http = client();
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let (repo, tag, digest) = &images[i % images.len()];
                    pull(&http, &url, repo, tag, digest);
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 4;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1)); // warm up
    let (n0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let idle = (done.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    let (n1, t1) = (done.load(Ordering::Relaxed), Instant::now());
    let out = std::process::Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap();
    let secs = t1.elapsed().as_secs_f64();
    let during = (done.load(Ordering::Relaxed) - n1) as f64 / secs;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    println!(
        "{}",
        json!({ "idle_pulls_per_sec": idle, "pulls_per_sec_during": during, "command_secs": secs, "report": report })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("load") => {
            let n = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().unwrap());
            load(&args[2], &args[3], n(4, 10_000), n(5, 10), n(6, 10));
        }
        Some("during") => {
            let sep = args.iter().position(|a| a == "--").expect("-- COMMAND");
            during(&args[2], &args[3], &args[sep + 1..]);
        }
        _ => {
            eprintln!("usage: gc_bench load URL STATE [MANIFESTS] [BLOBS] [DELETE%] | during URL STATE -- CMD...");
            std::process::exit(2);
        }
    }
}
