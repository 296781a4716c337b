//! Online garbage collection against the real server: a race suite of pushes, deletes and re-pushes while the
//! collector runs back to back with no grace period (SQLite + disk, and PostgreSQL + S3); a SIGKILL in the middle
//! of a collection; bytes reclaimed; and retention rules with signed tags, through `wharf admin`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::client::Client;
use common::oci::{Oci, Pushed};
use common::{data, Server};
use serde_json::Value;

const K: usize = 60;
const CLIENTS: usize = 3;

/// The shared layers images are built from.
fn bases() -> Vec<Vec<u8>> {
    (0..6).map(|i| data(20_000 + i * 1000, 100 + i as u8)).collect()
}

fn config(client: usize, round: usize) -> Vec<u8> {
    format!(r#"{{"architecture":"amd64","os":"linux","client":{client},"round":{round}}}"#).into_bytes()
}

/// One client's rounds: push an image sharing two base layers under one of its three tags (re-pushing a tag
/// deletes the manifest it named), every fifth round delete a tag's image outright; retry a push the collector
/// beat. Returns the images its tags name at the end, and how many pushes were refused.
fn client(s: &Server, c: usize, repo: &str, from: Option<&str>) -> (BTreeMap<String, Pushed>, usize) {
    let oci = Oci::new(s);
    let bases = bases();
    let mut tags: BTreeMap<String, Pushed> = BTreeMap::new();
    let mut refused = 0;
    for round in 0..K {
        let tag = format!("c{c}-{}", round % 3);
        let unique = data(5000 + round, (round * CLIENTS + c) as u8);
        let layers: [&[u8]; 3] = [&bases[(round + c) % 6], &bases[(round + c + 1 + round % 4) % 6], &unique];
        // With no grace period a push loses whenever a collection starts between its first upload and its
        // manifest; it must still get through within a bounded time.
        let first = Instant::now();
        let pushed = loop {
            match oci.push(repo, &tag, &config(c, round), &layers, from) {
                Ok(p) => break p,
                Err(_) => {
                    refused += 1;
                    assert!(
                        first.elapsed() < Duration::from_secs(120),
                        "round {round} of client {c} kept being refused"
                    );
                }
            }
        };
        // A 201 and still tagged: pulls completely, now.
        let pulled = oci.pull(repo, &tag);
        if pulled.as_ref() != Ok(&pushed.digest) {
            eprintln!("round {round} of client {c}: {pulled:?}; the store's check says:\n{}", check(s));
        }
        assert_eq!(pulled, Ok(pushed.digest.clone()), "round {round} of client {c}");
        if let Some(old) = tags.insert(tag.clone(), pushed) {
            assert_eq!(oci.delete(repo, &old.digest), 202);
        }
        if round % 5 == 4 {
            let victim = format!("c{c}-{}", (round + 1) % 3);
            if let Some(old) = tags.remove(&victim) {
                assert_eq!(oci.delete(repo, &old.digest), 202);
            }
        }
    }
    (tags, refused)
}

/// What `wharf admin check` finds, whatever its exit code: the diagnosis printed when a pull fails.
fn check(s: &Server) -> String {
    let out = std::process::Command::new(common::wharf_bin())
        .args(["admin", "--data-dir"])
        .arg(&s.data_dir)
        .args(["check", "--json"])
        .envs(s.env.iter().filter(|(k, _)| k != "__stderr").map(|(k, v)| (k, v)))
        .output()
        .expect("wharf admin check");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Content-addressed blob files in the server's store, by hex digest.
fn stored(s: &Server) -> BTreeSet<String> {
    s.stored_blobs()
        .into_iter()
        .filter_map(|(p, _)| {
            let name = p.rsplit('/').next()?.to_string();
            (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
        })
        .collect()
}

/// The race suite on a stack of the caller's (also run through a faulty S3 by `faults::s3`).
pub(crate) fn race(stack: Vec<(String, String)>) {
    let mut env: Vec<(&str, &str)> = stack.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend([("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "0.005")]);
    let s = Server::start(&env);
    let started = Instant::now();
    let results: Vec<(String, BTreeMap<String, Pushed>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let s = &s;
                scope.spawn(move || {
                    // The third client pushes into another repository, mounting the shared layers.
                    let (repo, from) = if c < 2 { ("race/a", None) } else { ("race/b", Some("race/a")) };
                    let (tags, refused) = client(s, c, repo, from);
                    (repo.to_string(), tags, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: usize = results.iter().map(|r| r.2).sum();
    eprintln!(
        "race: {} rounds x {CLIENTS} clients in {:?}, {refused} pushes refused and retried",
        K,
        started.elapsed()
    );

    // One more collection after the last push: garbage is gone, and nothing that a tag needs.
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!(report["failed"], 0);
    let oci = Oci::new(&s);
    let mut expected = BTreeSet::new();
    for (repo, tags, _) in &results {
        let mut names: Vec<String> = tags.keys().cloned().collect();
        names.sort();
        assert_eq!(oci.tags(repo).iter().filter(|t| names.contains(t)).count(), names.len());
        for (tag, p) in tags {
            assert_eq!(oci.pull(repo, tag), Ok(p.digest.clone()), "{repo}:{tag} after the race");
            expected.extend(p.blobs.iter().map(|d| d.trim_start_matches("sha256:").to_string()));
        }
    }
    assert_eq!(stored(&s), expected, "the store holds exactly what the remaining tags reference");
}

#[test]
fn race_suite_on_sqlite_and_disk() {
    race(Vec::new());
}

#[test]
fn race_suite_on_postgres_and_s3() {
    race(common::shared_stack());
}

/// The metadata and the store of `s` (SQLite and disk): live blob rows whose bytes are missing, and tombstones.
fn audit(s: &Server) -> (Vec<String>, usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let meta = wharf_storage::Metadata::open_sqlite(&s.data_dir.join("wharf.db")).await.unwrap();
        let url = url::Url::from_directory_path(s.data_dir.join("store")).unwrap();
        let store = wharf_storage::BlobStore::from_url(&url).unwrap();
        let (mut missing, mut tombstones, mut after) = (Vec::new(), 0, String::new());
        loop {
            let rows = meta.collect().blob_rows(&after, 1000).await.unwrap();
            let Some((last, _)) = rows.last() else { break };
            after = last.to_string();
            for (d, row) in rows {
                if row.deleting {
                    tombstones += 1;
                } else if store.stat_at(&d, row.location.as_deref()).await.unwrap().is_none() {
                    missing.push(d.to_string());
                }
            }
        }
        (missing, tombstones)
    })
}

#[test]
fn sigkill_in_the_middle_of_a_collection() {
    // Deletions paced at 100 a second, so that the kill lands in the middle.
    let mut s = Server::start(&[
        ("WHARF_GC_GRACE_SECS", "0"),
        ("WHARF_GC_INTERVAL_SECS", "3600"),
        ("WHARF_GC_DELETE_RATE", "100"),
    ]);
    let oci = Oci::new(&s);
    let mut kept = Vec::new();
    for i in 0..40 {
        let layers: Vec<Vec<u8>> = (0..6).map(|j| data(3000 + j, (i * 7 + j) as u8)).collect();
        let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
        let p = oci.push("crash/app", &format!("t{i}"), &config(9, i), &refs, None).unwrap();
        if i < 5 {
            kept.push((format!("t{i}"), p));
        } else {
            assert_eq!(oci.delete("crash/app", &p.digest), 202);
        }
    }
    let before = stored(&s).len();
    assert_eq!(before, 40 * 7);
    // The collection runs in the server: start it with `wharf admin gc`'s sibling, the background task, by a
    // restart with a short interval; kill the server once some bytes went but most remain.
    s.set_env("WHARF_GC_INTERVAL_SECS", "0.1");
    s.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = stored(&s).len();
        if n <= before - 20 {
            assert!(n > 5 * 7 + 100, "the collection finished before the kill ({n} blobs left)");
            break;
        }
        assert!(Instant::now() < deadline, "the collection did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill();
    let (missing, tombstones) = audit(&s);
    assert!(missing.is_empty(), "live rows whose bytes are gone: {missing:?}");
    assert!(tombstones > 0, "killed mid-sweep, tombstones remain");

    // After the restart: consistent, and the next run finishes the job.
    s.set_env("WHARF_GC_INTERVAL_SECS", "0");
    s.restart();
    assert!(audit(&s).0.is_empty());
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert!(report["resumed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(audit(&s), (Vec::new(), 0));
    let expected: BTreeSet<String> =
        kept.iter().flat_map(|(_, p)| p.blobs.iter().map(|d| d.trim_start_matches("sha256:").to_string())).collect();
    assert_eq!(stored(&s), expected);
    for (tag, p) in &kept {
        assert_eq!(Oci::new(&s).pull("crash/app", tag), Ok(p.digest.clone()));
    }
}

fn store_bytes(s: &Server) -> u64 {
    s.stored_blobs().iter().map(|(_, n)| n).sum()
}

#[test]
fn deleting_an_image_frees_its_size_after_one_run() {
    let s = Server::start(&[
        ("WHARF_GC_GRACE_SECS", "0"),
        ("WHARF_GC_INTERVAL_SECS", "0"),
        ("WHARF_GC_ORPHAN_AGE_SECS", "60"),
    ]);
    let oci = Oci::new(&s);
    let shared = data(1 << 20, 1);
    let (a1, a2) = (data(2 << 20, 2), data(512 << 10, 3));
    let a = oci.push("img/a", "v1", &config(0, 0), &[&shared, &a1, &a2], None).unwrap();
    oci.push("img/b", "v1", &config(0, 1), &[&shared], Some("img/a")).unwrap();
    let before = store_bytes(&s);
    let own = (config(0, 0).len() + a1.len() + a2.len()) as u64;
    let dry: Value = serde_json::from_str(&s.admin(&["gc", "--dry-run", "--json"], "")).unwrap();
    assert_eq!(dry["bytes_removed"], 0, "nothing is garbage yet: {dry}");
    assert_eq!(oci.delete("img/a", &a.digest), 202);
    let dry: Value = serde_json::from_str(&s.admin(&["gc", "--dry-run", "--json"], "")).unwrap();
    assert_eq!(dry["bytes_removed"], own, "{dry}");
    assert_eq!(store_bytes(&s), before, "a dry run removes nothing");
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!((report["blobs_removed"].as_u64(), report["bytes_removed"].as_u64()), (Some(3), Some(own)));
    assert_eq!(store_bytes(&s), before - own, "freed on disk");
    assert!(oci.pull("img/b", "v1").is_ok(), "the shared layer stays for img/b");

    // An orphan a crash left (bytes, no row), older than the minimum age: the reconciliation removes it.
    let orphan = data(7000, 77);
    let hex = common::sha256(&orphan).trim_start_matches("sha256:").to_string();
    let path = s.data_dir.join(format!("store/blobs/sha256/{}/{hex}", &hex[..2]));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &orphan).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200)).unwrap();
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json", "--reconcile"], "")).unwrap();
    assert_eq!((report["orphans_removed"].as_u64(), report["orphan_bytes_removed"].as_u64()), (Some(1), Some(7000)));
    assert!(!path.exists());
    assert!(oci.pull("img/b", "v1").is_ok(), "what rows account for stays");
}

#[test]
fn the_default_grace_period_keeps_a_blob_awaiting_its_manifest() {
    let s = Server::start(&[("WHARF_GC_INTERVAL_SECS", "0")]);
    let oci = Oci::new(&s);
    let layer = data(10_000, 9);
    oci.ensure_blob("wait/app", &layer, None);
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!(report["blobs_removed"], 0);
    assert!(oci.push("wait/app", "v1", &config(1, 1), &[&layer], None).is_ok());
}

fn removed(report: &Value, key: &str, field: &str) -> Vec<String> {
    let mut v: Vec<String> =
        report[key].as_array().unwrap().iter().map(|x| x[field].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[test]
fn retention_keeps_the_newest_and_signed_tags() {
    let s = Server::start(&[("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "0")]);
    let oci = Oci::new(&s);
    let base = data(4000, 50);
    let mut digests = BTreeMap::new();
    for i in 1..=5 {
        let unique = data(3000, 50 + i as u8);
        let p = oci.push("team/app", &format!("v{i}"), &config(5, i), &[&base, &unique], None).unwrap();
        digests.insert(format!("v{i}"), p.digest);
        oci.push("team/app", &format!("dev-{i}"), &config(6, i), &[&base], None).unwrap();
        std::thread::sleep(Duration::from_millis(1100)); // distinct push times
    }
    let p = Client::new();
    p.ok(&["trust", "init", &format!("{}/team/app", s.addr)]);
    p.ok(&["trust", "sign", &format!("{}/team/app:v1", s.addr)]);

    let rule = ["--repositories", "team/**", "--tags", "v*", "--keep-last", "2", "--untagged-older-than", "0s"];
    let mut args = vec!["retention", "--dry-run", "--json"];
    args.extend(rule);
    let dry: Value = serde_json::from_str(&s.admin(&args, "")).unwrap();
    assert_eq!(removed(&dry, "tags", "tag"), ["v2", "v3"], "v1 is signed, v4 and v5 are the newest two: {dry}");
    assert_eq!(removed(&dry, "manifests", "digest"), {
        let mut v = vec![digests["v2"].clone(), digests["v3"].clone()];
        v.sort();
        v
    });
    assert_eq!(oci.tags("team/app").len(), 10, "a dry run removes nothing");

    let mut args = vec!["retention", "--json"];
    args.extend(rule);
    let done: Value = serde_json::from_str(&s.admin(&args, "")).unwrap();
    assert_eq!((done["tags_removed"].as_u64(), done["manifests_removed"].as_u64()), (Some(2), Some(2)));
    let tags = oci.tags("team/app");
    assert_eq!(tags, ["dev-1", "dev-2", "dev-3", "dev-4", "dev-5", "v1", "v4", "v5"]);
    assert!(oci.pull("team/app", &digests["v2"]).is_err(), "its manifest went");
    // Their own blobs go at the next collection; the shared base stays.
    let gc: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!(gc["blobs_removed"], 4, "{gc}");
    assert!(oci.pull("team/app", "v1").is_ok());

    // Roots of the untagged sweep: a manifest a signed target names (v1, its tag deleted), and a referrer of a
    // live manifest (a signature of v5); a referrer whose subject is gone is swept.
    let referrer = |subject: &str, seed: u8| {
        let sig = data(100, seed);
        let d = oci.ensure_blob("team/app", &sig, None);
        let empty = oci.ensure_blob("team/app", b"{}", None);
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.signature",
            "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2 },
            "layers": [{ "mediaType": "application/octet-stream", "digest": d, "size": 100 }],
            "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1 },
        });
        let digest = common::sha256(m.to_string().as_bytes());
        assert_eq!(oci.put_manifest("team/app", &digest, &m), 201);
        digest
    };
    let live_sig = referrer(&digests["v5"], 1);
    let orphan_sig = referrer(&digests["v2"], 2);
    assert_eq!(oci.delete("team/app", "v1"), 202, "the tag only");
    std::thread::sleep(Duration::from_millis(1100));
    let sweep: Value = serde_json::from_str(&s.admin(
        &["retention", "--json", "--repositories", "team/app", "--tags", "none", "--untagged-older-than", "0s"],
        "",
    ))
    .unwrap();
    assert_eq!(removed(&sweep, "manifests", "digest"), vec![orphan_sig.clone()], "{sweep}");
    assert!(oci.pull("team/app", &digests["v1"]).is_ok(), "signed, kept untagged");
    assert!(oci.pull("team/app", &live_sig).is_ok(), "a referrer of a live manifest stays");
    assert!(oci.pull("team/app", &orphan_sig).is_err());
    assert_eq!(
        oci.put_manifest(
            "team/app",
            "v1",
            &serde_json::from_str::<Value>(&{
                let r = reqwest::blocking::Client::new()
                    .get(s.url(&format!("/v2/team/app/manifests/{}", digests["v1"])))
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .unwrap();
                r.text().unwrap()
            })
            .unwrap()
        ),
        201,
        "tagged again"
    );

    // Configured rules: dev-* older than 2 s go, signed tags included now for v*.
    let file = s.data_dir.join("retention.toml");
    std::fs::write(
        &file,
        "[[retention]]\nrepositories = \"team/*\"\ntags = \"dev-*\"\nkeep_last = 1\n\n\
         [[retention]]\nrepositories = \"team/app\"\ntags = \"v*\"\nkeep_last = 1\ninclude_signed = true\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let done: Value = serde_json::from_str(&s.admin(&["--config", file, "retention", "--json"], "")).unwrap();
    // v1 was tagged again last: it is the newest, signed or not.
    assert_eq!(removed(&done, "tags", "tag"), ["dev-1", "dev-2", "dev-3", "dev-4", "v4", "v5"], "{done}");
    assert_eq!(oci.tags("team/app"), ["dev-5", "v1"]);
}

#[test]
fn a_collection_reads_only_its_queue_of_candidates() {
    let s = Server::start(&[("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "0")]);
    let oci = Oci::new(&s);
    let shared = data(4000, 60);
    let mut pushed = Vec::new();
    for i in 0..8 {
        let own = data(3000 + i, 61 + i as u8);
        pushed.push(oci.push("queue/app", &format!("v{i}"), &config(7, i), &[&shared, &own], None).unwrap());
    }
    // Everything pushed is referenced: a run has no candidate to look at, whatever the store holds.
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!((report["candidates"].as_u64(), report["blobs_removed"].as_u64()), (Some(0), Some(0)), "{report}");
    // One image deleted: its three blobs are the candidates; its config and own layer go, the shared one stays.
    assert_eq!(oci.delete("queue/app", &pushed[3].digest), 202);
    std::thread::sleep(Duration::from_millis(1100)); // past the zero grace period's cutoff second
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!((report["candidates"].as_u64(), report["blobs_removed"].as_u64()), (Some(3), Some(2)), "{report}");
    assert!(report["phases"]["links"].is_u64(), "{report}");
    for (i, p) in pushed.iter().enumerate() {
        let pulled = oci.pull("queue/app", &format!("v{i}"));
        if i == 3 {
            assert!(pulled.is_err(), "v3 went with its manifest");
        } else {
            assert_eq!(pulled, Ok(p.digest.clone()), "v{i}");
        }
    }
    let report: Value = serde_json::from_str(&s.admin(&["gc", "--json"], "")).unwrap();
    assert_eq!(report["candidates"], 0, "decided candidates left the queue: {report}");
}
