//! Quotas against the real server (issue 23): the last layer of a push that would cross a quota is refused with
//! `DENIED` naming the quota, its usage and its limit, and the usage stays; a manifest that would cross it is
//! refused too; a mounted blob counts once; deleting the image and collecting frees the bytes; eight threads
//! pushing under one quota while the collector runs never take it over its limit, and `wharf admin quota
//! --recount` then finds nothing to correct. `tests/run` runs this again on PostgreSQL + S3.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::oci::Oci;
use common::{data, sha256, Server};
use serde_json::{json, Value};

/// The usage and limit of the quota on `pattern`, from `wharf admin quota list --json`.
fn quota(s: &Server, pattern: &str) -> (u64, u64) {
    let rows: Value = serde_json::from_str(&s.admin(&["quota", "list", "--json"], "")).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["pattern"] == pattern).expect("quota listed");
    (row["usage"].as_u64().unwrap(), row["limit"].as_u64().unwrap())
}

/// What `wharf admin quota --recount --json` corrected.
fn recount(s: &Server) -> Vec<Value> {
    let v: Value = serde_json::from_str(&s.admin(&["quota", "--recount", "--json"], "")).unwrap();
    v["corrected"].as_array().unwrap().clone()
}

struct Http {
    http: reqwest::blocking::Client,
    base: String,
}

impl Http {
    fn new(s: &Server) -> Http {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Http { http, base: s.url("") }
    }

    /// A blob through a session (POST, then the final PUT with all the bytes): the PUT's status and body.
    fn upload(&self, repo: &str, blob: &[u8]) -> (u16, Value) {
        let r = self.http.post(format!("{}/v2/{repo}/blobs/uploads/", self.base)).send().unwrap();
        assert_eq!(r.status(), 202);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let sep = if url.contains('?') { '&' } else { '?' };
        let r = self.http.put(format!("{url}{sep}digest={}", sha256(blob))).body(blob.to_vec()).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// A cross-repository mount: the status.
    fn mount(&self, repo: &str, from: &str, digest: &str) -> (u16, Value) {
        let url = format!("{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}", self.base);
        let r = self.http.post(url).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn head(&self, repo: &str, digest: &str) -> u16 {
        self.http.head(format!("{}/v2/{repo}/blobs/{digest}", self.base)).send().unwrap().status().as_u16()
    }

    /// An image manifest over `blobs` (config first): its text.
    fn manifest(blobs: &[&[u8]]) -> String {
        let desc = |b: &[u8], mt: &str| json!({ "mediaType": mt, "digest": sha256(b), "size": b.len() });
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc(blobs[0], "application/vnd.oci.image.config.v1+json"),
            "layers": blobs[1..].iter().map(|b| desc(b, "application/vnd.oci.image.layer.v1.tar")).collect::<Vec<_>>(),
        })
        .to_string()
    }

    fn put_manifest(&self, repo: &str, tag: &str, manifest: &str) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
}

/// A refusal by the quota on `pattern`: 403, `DENIED`, a message naming the quota, its usage and its limit.
fn assert_denied(status: u16, body: &Value, pattern: &str, usage: u64, limit: u64) {
    assert_eq!(status, 403, "{body}");
    let e = &body["errors"][0];
    assert_eq!(e["code"], "DENIED", "{body}");
    let message = e["message"].as_str().unwrap();
    for part in [format!("quota {pattern} "), format!("({usage} bytes) used"), format!("({limit} bytes)")] {
        assert!(message.contains(&part), "{message:?} lacks {part:?}");
    }
    assert_eq!((e["detail"]["usage"].as_u64(), e["detail"]["limit"].as_u64()), (Some(usage), Some(limit)));
}

fn config(n: usize) -> Vec<u8> {
    format!(r#"{{"architecture":"amd64","os":"linux","n":{n}}}"#).into_bytes()
}

#[test]
fn the_last_layer_over_the_quota_is_refused_and_collecting_frees_it() {
    let s = Server::start(&[("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "0")]);
    let (oci, http) = (Oci::new(&s), Http::new(&s));
    let out = s.admin(&["quota", "set", "q/**", "100KB"], "");
    assert!(out.contains("97.7 KiB (100000 bytes)"), "{out}");
    let (cfg_a, a1, a2) = (config(1), data(40_000, 1), data(30_000, 2));
    let a = oci.push("q/a", "v1", &cfg_a, &[&a1, &a2], None).unwrap();
    let manifest_a = Http::manifest(&[&cfg_a, &a1, &a2]);
    let used = (cfg_a.len() + a1.len() + a2.len() + manifest_a.len()) as u64;
    assert_eq!(quota(&s, "q/**"), (used, 100_000));

    // Image B in q/b: A's layer mounted (counted once: nothing more), a new layer that fits, then one that does not.
    let (cfg_b, b1, b2) = (config(2), data(20_000, 3), data(15_000, 4));
    assert_eq!(http.mount("q/b", "q/a", &sha256(&a1)).0, 201);
    assert_eq!(quota(&s, "q/**").0, used);
    assert_eq!(http.upload("q/b", &cfg_b).0, 201);
    assert_eq!(http.upload("q/b", &b1).0, 201);
    let used = used + (cfg_b.len() + b1.len()) as u64;
    assert_eq!(quota(&s, "q/**").0, used);
    let (status, body) = http.upload("q/b", &b2);
    assert_denied(status, &body, "q/**", used, 100_000);
    assert_eq!(quota(&s, "q/**").0, used, "usage unchanged by the refused layer");
    assert_eq!(http.head("q/b", &sha256(&b2)), 404, "the refused layer is not linked");
    // A mount that would cross it is refused the same way.
    let (cfg_o, o1) = (config(3), data(60_000, 5));
    oci.push("other/x", "v1", &cfg_o, &[&o1], None).unwrap();
    let (status, body) = http.mount("q/b", "other/x", &sha256(&o1));
    assert_denied(status, &body, "q/**", used, 100_000);

    // A manifest that would cross a quota: its blobs fit, its own bytes do not.
    let (cfg_m, m1) = (config(4), data(1000, 6));
    let limit = (cfg_m.len() + m1.len() + 10) as u64;
    s.admin(&["quota", "set", "m/app", &limit.to_string()], "");
    assert_eq!(http.upload("m/app", &cfg_m).0, 201);
    assert_eq!(http.upload("m/app", &m1).0, 201);
    let (status, body) = http.put_manifest("m/app", "v1", &Http::manifest(&[&cfg_m, &m1]));
    assert_denied(status, &body, "m/app", limit - 10, limit);
    assert_eq!(oci.pull("m/app", "v1").map(|_| ()), Err("manifest m/app:v1: 404 Not Found".into()));

    // Deleting A and collecting frees everything no manifest references (B never got one); then B fits.
    assert_eq!(oci.delete("q/a", &a.digest), 202);
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert!(report["links_removed"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(quota(&s, "q/**").0, 0);
    let b = oci.push("q/b", "v1", &cfg_b, &[&a1, &b1, &b2], None).unwrap();
    assert_eq!(oci.pull("q/b", "v1"), Ok(b.digest));
    let manifest_b = Http::manifest(&[&cfg_b, &a1, &b1, &b2]);
    let want = (cfg_b.len() + a1.len() + b1.len() + b2.len() + manifest_b.len()) as u64;
    assert_eq!(quota(&s, "q/**").0, want);

    let list = s.admin(&["quota", "list"], "");
    assert!(list.contains(&format!("{want} / 100000")), "{list}");
    assert_eq!(s.admin(&["quota", "--recount"], "").trim(), "nothing to correct (2 quotas checked)");
    assert!(s.admin(&["quota", "remove", "m/app"], "").contains("removed quota m/app"));
    assert_eq!(recount(&s), Vec::<Value>::new());
}

/// Eight threads push images (three layers of their own each) into repositories under one quota, deleting their
/// older ones as they go, while the collector runs back to back with no grace period. A watcher reads the usage meanwhile: it
/// never exceeds the limit; pushes were refused (the quota filled) and got through (collection freed it); and the
/// recount, after the race and after one more collection, finds nothing to correct.
/// Pushes an image; `Err` when the quota denied a blob or the manifest. A layer the collector took between its
/// upload and the manifest (no grace period) is uploaded again.
fn push(http: &Http, repo: &str, blobs: &[&[u8]], manifest: &str) -> Result<(), ()> {
    for _ in 0..20 {
        for b in blobs {
            match http.upload(repo, b) {
                (201, _) => {}
                // The collector was deleting an old copy of these bytes: retryable, as clients do.
                (503, _) => std::thread::sleep(Duration::from_millis(50)),
                (403, body) if body["errors"][0]["code"] == "DENIED" => return Err(()),
                (status, body) => panic!("upload: {status} {body}"),
            }
        }
        match http.put_manifest(repo, "latest", manifest) {
            (201, _) => return Ok(()),
            (403, body) if body["errors"][0]["code"] == "DENIED" => return Err(()),
            (400, body) if body["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN" => {}
            (status, body) => panic!("manifest PUT: {status} {body}"),
        }
    }
    panic!("{repo}: the collector beat twenty pushes in a row");
}

#[test]
fn concurrent_pushes_never_overshoot_and_the_recount_agrees() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 10;
    const LIMIT: u64 = 400_000;
    let s = Server::start(&[("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "0.2")]);
    s.admin(&["quota", "set", "c/**", &LIMIT.to_string()], "");
    let (denied, pushed, done) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false));
    let peak = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                let (usage, limit) = quota(&s, "c/**");
                assert!(usage <= limit, "usage {usage} over the limit {limit}");
                peak = peak.max(usage);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        let pushers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (s, denied, pushed) = (&s, &denied, &pushed);
                scope.spawn(move || {
                    let (oci, http) = (Oci::new(s), Http::new(s));
                    let repo = format!("c/r{t}");
                    // The images this thread holds: at most two; a denied thread gives up its oldest, so that the
                    // quota fills and empties all along.
                    let mut held = std::collections::VecDeque::new();
                    for round in 0..ROUNDS {
                        let n = t * ROUNDS + round;
                        let blobs = [config(n), data(20_000, n as u8), data(15_000 + n, 1), data(10_000 + n, 2)];
                        let refs: Vec<&[u8]> = blobs.iter().map(|b| b.as_slice()).collect();
                        let manifest = Http::manifest(&refs);
                        match push(&http, &repo, &refs, &manifest) {
                            Ok(()) => {
                                pushed.fetch_add(1, Ordering::Relaxed);
                                held.push_back(sha256(manifest.as_bytes()));
                                if held.len() > 2 {
                                    assert_eq!(oci.delete(&repo, &held.pop_front().unwrap()), 202);
                                }
                            }
                            Err(()) => {
                                denied.fetch_add(1, Ordering::Relaxed);
                                if let Some(old) = held.pop_front() {
                                    assert_eq!(oci.delete(&repo, &old), 202);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        // The watcher stops even when a pusher failed, so that a failure ends the test instead of hanging it.
        let failed = pushers.into_iter().map(|p| p.join()).filter(Result::is_err).count();
        done.store(true, Ordering::Relaxed);
        let peak = watcher.join().unwrap();
        assert_eq!(failed, 0, "pushers failed (their panics are above)");
        peak
    });
    let (usage, limit) = quota(&s, "c/**");
    eprintln!(
        "quota race: {} pushed, {} denied, peak usage {peak} of {limit}, now {usage}",
        pushed.load(Ordering::Relaxed),
        denied.load(Ordering::Relaxed)
    );
    assert!(usage <= limit);
    assert!(denied.load(Ordering::Relaxed) > 0, "the quota never filled: the race proves nothing");
    // More images than fit at once got in: deletions and collection freed room while the race ran.
    assert!(pushed.load(Ordering::Relaxed) > (LIMIT / 46_000) as usize, "collection never freed room");
    assert_eq!(recount(&s), Vec::<Value>::new(), "after the race");
    s.admin(&["gc"], "");
    assert_eq!(recount(&s), Vec::<Value>::new(), "after one more collection");
}
