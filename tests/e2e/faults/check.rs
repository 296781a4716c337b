//! `wharf admin check`, the scrub, against the real binary on the pass's stack (SQLite + disk, and PostgreSQL + S3
//! in `tests/run`'s second pass, where the bytes are reached through `common::s3::object_dir`): damage of every
//! kind is reported and exits 1; `--repair` quarantines and refetches through a mirror, after which a check is
//! clean; a rate-limited check killed midway resumes; scheduled runs show in `/metrics`; a registry with real
//! content (skopeo, `wharf trust`, the `notary` CLI) checks clean.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::Client;
use common::oci::Oci;
use common::{data, Server};
use serde_json::Value;

/// Runs `wharf admin check ARGS --json` on `s`'s configuration: (exit status, report).
fn check(s: &Server, args: &[&str]) -> (i32, Value) {
    let out = check_command(s, args).output().expect("wharf admin check");
    let code = out.status.code().expect("exit status");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check {args:?} ({code}): {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (code, report)
}

fn check_command(s: &Server, args: &[&str]) -> Command {
    let mut c = Command::new(common::wharf_bin());
    c.arg("admin").arg("--data-dir").arg(&s.data_dir).args(["check", "--json"]).args(args);
    c.envs(s.env().iter().filter(|(k, _)| k != "__stderr").map(|(k, v)| (k, v)));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// The directory that holds the server's stored objects by key.
fn store_root(s: &Server) -> PathBuf {
    match s.env().iter().find(|(k, _)| k == "WHARF_STORAGE_URL").and_then(|(_, v)| v.strip_prefix("s3://")) {
        Some(rest) => common::s3::object_dir(rest),
        None => s.data_dir.join("store"),
    }
}

/// The stored file of blob `digest` (waiting for a mirror, which commits a blob after it has served it).
fn blob_file(s: &Server, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = store_root(s).join("blobs/sha256").join(&hex[..2]).join(hex);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(path.exists(), "{} is not stored", path.display());
    path
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

/// Problems of `kind` in a report.
fn of_kind<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["problems"].as_array().unwrap().iter().filter(|p| p["kind"] == kind).collect()
}

/// Runs SQL on the server's database with its own CLI (`sqlite3` or `psql`).
fn sql(s: &Server, sqlite: &str, postgres: &str) {
    let pg = s.env().iter().find(|(k, _)| k == "WHARF_DATABASE_URL").map(|(_, v)| v.clone());
    let out = match pg {
        Some(url) => Command::new("psql").args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-c", postgres]).output(),
        None => Command::new("sqlite3").arg(s.data_dir.join("wharf.db")).arg(sqlite).output(),
    }
    .expect("database CLI");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An image of three layers pushed to `repo:v1` and signed there with TUF (`wharf trust`).
fn push_signed(s: &Server, c: &Client, repo: &str, seed: u8) -> common::oci::Pushed {
    let layers: Vec<Vec<u8>> = (0..3).map(|i| data(200_000 + i * 1000, seed + i as u8)).collect();
    let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let pushed = Oci::new(s).push(repo, "v1", config.as_bytes(), &refs, None).unwrap();
    c.ok(&["trust", "init", &format!("{}/{repo}", s.addr)]);
    c.ok(&["trust", "sign", &format!("{}/{repo}:v1", s.addr)]);
    pushed
}

#[test]
fn damage_is_found_and_repaired_through_a_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Server::start(&[]);
    let c = Client::new();
    let one = push_signed(&origin, &c, "app/one", 10);
    let two = Oci::new(&origin).push("app/two", "v1", br#"{"n":2}"#, &[&data(150_000, 30)], None).unwrap();
    let (code, clean) = check(&origin, &[]);
    assert_eq!((code, &clean["clean"]), (0, &Value::Bool(true)), "{clean:#}");
    assert!(clean["problems"].as_array().unwrap().is_empty(), "{clean:#}");
    assert_eq!(clean["repositories_checked"], 2, "{clean:#}");

    // A mirror in front of the origin holds app/one's blobs once it has pulled them.
    let config = tmp.path().join("mirror.toml");
    std::fs::write(&config, format!("[[mirror]]\nupstream = \"{}\"\nprefix = \"origin\"\n", origin.url(""))).unwrap();
    let mirror = Server::start(&[("WHARF_CONFIG", config.to_str().unwrap())]);
    let m = Oci::new(&mirror);
    assert_eq!(m.pull("origin/app/one", "v1"), Ok(one.digest.clone()));
    // The mirror records a blob after it has served it: wait until it holds all four, clean.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, r) = check(&mirror, &[]);
        if (code, r["blobs_checked"].as_u64()) == (0, Some(4)) {
            break;
        }
        assert!(Instant::now() < deadline, "the mirror did not record its blobs: {r:#}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Damage in the mirror's store: a flipped byte, a deleted blob, an object of no row whose bytes match nothing.
    let (flipped, deleted) = (&one.blobs[1], &one.blobs[2]);
    flip_a_byte(&blob_file(&mirror, flipped));
    std::fs::remove_file(blob_file(&mirror, deleted)).unwrap();
    let orphan_hex = format!("ab{}", "0".repeat(62));
    let orphan = store_root(&mirror).join("blobs/sha256/ab").join(&orphan_hex);
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"bytes that are no blob's").unwrap();
    // Damage at the origin: a TUF targets document that no longer verifies, and a flipped byte of app/two.
    sql(
        &origin,
        "UPDATE trust_metadata SET content = CAST(REPLACE(CAST(content AS TEXT), '\"expires\"', '\"expirez\"') AS BLOB) \
         WHERE role = 'targets'",
        "UPDATE trust_metadata SET content = convert_to(replace(convert_from(content, 'UTF8'), '\"expires\"', \
         '\"expirez\"'), 'UTF8') WHERE role = 'targets'",
    );
    flip_a_byte(&blob_file(&origin, &two.blobs[1]));

    let (code, found) = check(&mirror, &[]);
    assert_eq!(code, 1, "{found:#}");
    assert_eq!(found["clean"], false);
    let mismatch = of_kind(&found, "digest_mismatch");
    assert_eq!(mismatch.len(), 1, "{found:#}");
    assert_eq!((&mismatch[0]["digest"], &mismatch[0]["severity"]), (&Value::from(flipped.clone()), &"damage".into()));
    let missing = of_kind(&found, "bytes_missing");
    assert_eq!(missing.len(), 1, "{found:#}");
    assert_eq!(missing[0]["digest"], deleted.as_str());
    let orphans = of_kind(&found, "orphan_object");
    assert_eq!(orphans.len(), 1, "{found:#}");
    assert_eq!(orphans[0]["path"], format!("blobs/sha256/ab/{orphan_hex}"));
    assert_eq!(orphans[0]["severity"], "damage");
    assert_eq!(found["problems"].as_array().unwrap().len(), 3, "nothing else: {found:#}");

    let (code, at_origin) = check(&origin, &[]);
    assert_eq!(code, 1, "{at_origin:#}");
    let trust = of_kind(&at_origin, "trust_invalid");
    assert_eq!(trust.len(), 1, "{at_origin:#}");
    assert_eq!(trust[0]["repository"], "app/one");
    assert_eq!(of_kind(&at_origin, "digest_mismatch")[0]["digest"], two.blobs[1].as_str());

    // The mirror's repair: both blobs come again from the origin, verified; the orphan is quarantined.
    let (code, repaired) = check(&mirror, &["--repair"]);
    assert_eq!(code, 0, "{repaired:#}");
    assert_eq!(repaired["clean"], true);
    let repair_of = |kind: &str| of_kind(&repaired, kind)[0]["repair"].clone();
    assert_eq!(repair_of("digest_mismatch"), "refetched");
    assert_eq!(repair_of("bytes_missing"), "refetched");
    assert_eq!(repair_of("orphan_object"), "quarantined");
    let quarantine = store_root(&mirror).join("quarantine/blobs/sha256");
    assert!(quarantine.join("ab").join(&orphan_hex).exists(), "the orphan was not kept");
    assert!(quarantine.join(&flipped[7..9]).join(&flipped[7..]).exists(), "the damaged copy was not kept");
    let (code, again) = check(&mirror, &[]);
    assert_eq!(code, 0, "{again:#}");
    assert!(again["problems"].as_array().unwrap().is_empty(), "{again:#}");
    assert_eq!(m.pull("origin/app/one", "v1"), Ok(one.digest.clone()));
    let audit = mirror.admin(&["audit", "--json"], "");
    assert_eq!(audit.matches("refetched").count(), 2, "{audit}");

    // Without a mirror the damaged blob is quarantined and its row goes: its tag is incomplete, the trust data
    // stays damaged (nothing repairs a signature).
    let (code, origin_repaired) = check(&origin, &["--repair"]);
    assert_eq!(code, 1, "{origin_repaired:#}");
    assert_eq!(of_kind(&origin_repaired, "digest_mismatch")[0]["repair"], "quarantined");
    assert_eq!(of_kind(&origin_repaired, "trust_invalid")[0]["repair"], Value::Null);
    let incomplete = &origin_repaired["incomplete_tags"];
    assert_eq!(incomplete, &serde_json::json!([{"repository": "app/two", "tag": "v1", "digest": two.digest}]));
    let http = reqwest::blocking::Client::new();
    let blob = http.get(origin.url(&format!("/v2/app/two/blobs/{}", two.blobs[1]))).send().unwrap();
    assert_eq!(blob.status().as_u16(), 404, "the damaged blob is not served");
}

/// A blob that cannot be read (here a directory where its object should be: the read fails on disk and through
/// S3) is a finding of its own, `unreadable`, never repaired, and the check goes on past it: every other blob is
/// read, and the damage after it is found. Once the bytes read again, the blob is whole.
#[test]
fn an_unreadable_blob_is_reported_and_the_check_goes_on() {
    let s = Server::start(&[("WHARF_STORAGE_RETRY_TIMEOUT_SECS", "2")]);
    let layers: Vec<Vec<u8>> = (0..3).map(|i| data(100_000, 90 + i)).collect();
    let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
    let pushed = Oci::new(&s).push("app/eio", "v1", br#"{"n":9}"#, &refs, None).unwrap();
    let (code, clean) = check(&s, &[]);
    assert_eq!(code, 0, "{clean:#}");
    // Blobs are read in digest order: the first unreadable, the last damaged.
    let mut blobs = pushed.blobs.clone();
    blobs.sort();
    let (unreadable, flipped) = (&blobs[0], &blobs[blobs.len() - 1]);
    let path = blob_file(&s, unreadable);
    let kept = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    flip_a_byte(&blob_file(&s, flipped));

    for args in [&[][..], &["--repair"][..]] {
        let (code, r) = check(&s, args);
        assert_eq!(code, 1, "{args:?}: {r:#}");
        assert_eq!(r["blobs_checked"], clean["blobs_checked"], "{args:?}: every blob is read: {r:#}");
        let bad = of_kind(&r, "unreadable");
        assert_eq!(bad.len(), 1, "{args:?}: {r:#}");
        assert_eq!((&bad[0]["digest"], &bad[0]["severity"]), (&Value::from(unreadable.clone()), &"damage".into()));
        assert_eq!(bad[0]["repair"], Value::Null, "an unreadable blob is never repaired: {r:#}");
        assert_eq!(r["counts"]["unreadable"]["damage"], 1, "{r:#}");
        assert_eq!(of_kind(&r, "digest_mismatch")[0]["digest"], flipped.as_str(), "{args:?}: {r:#}");
    }
    // Readable again: its row was kept, so it is whole and served.
    std::fs::remove_dir(&path).unwrap();
    std::fs::write(&path, kept).unwrap();
    let (_, after) = check(&s, &[]);
    assert!(of_kind(&after, "unreadable").is_empty(), "{after:#}");
    assert!(after["problems"].as_array().unwrap().iter().all(|p| p["digest"] != unreadable.as_str()), "{after:#}");
    let http = reqwest::blocking::Client::new();
    let blob = http.get(s.url(&format!("/v2/app/eio/blobs/{unreadable}"))).send().unwrap();
    assert_eq!(blob.status().as_u16(), 200);
    assert_eq!(common::sha256(&blob.bytes().unwrap()), *unreadable);
}

#[test]
fn a_rate_limited_check_killed_midway_resumes() {
    let s = Server::start(&[]);
    let o = Oci::new(&s);
    let layers: Vec<Vec<u8>> = (0..6).map(|i| data(1 << 20, 60 + i)).collect();
    let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
    o.push("big/app", "v1", br#"{"n":1}"#, &refs, None).unwrap();
    // 6 MiB at 1 MiB/s: killed after 2.5 s, well inside the blobs.
    let mut child = check_command(&s, &["--rate", "1M"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let started = Instant::now();
    let (code, resumed) = check(&s, &[]);
    assert_eq!(code, 0, "{resumed:#}");
    assert_eq!(resumed["resumed"], true, "{resumed:#}");
    assert_eq!(resumed["blobs_checked"], 7, "the resumed run counts the blobs before the kill: {resumed:#}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // A finished run cleared its place: the next one starts over.
    let (code, fresh) = check(&s, &[]);
    assert_eq!((code, &fresh["resumed"], &fresh["blobs_checked"]), (0, &Value::Bool(false), &Value::from(7)));
    // The pace holds: 6 MiB at 3 MiB/s take about two seconds (the bucket starts empty).
    let started = Instant::now();
    let (code, paced) = check(&s, &["--rate", "3M"]);
    assert_eq!((code, &paced["bytes_verified"]), (0, &fresh["bytes_verified"]));
    assert!(started.elapsed() >= Duration::from_millis(1800), "{:?}", started.elapsed());
}

#[test]
fn scheduled_runs_show_in_metrics() {
    let s = Server::start(&[("WHARF_CHECK_INTERVAL", "1")]);
    let pushed = Oci::new(&s).push("sched/app", "v1", br#"{"n":1}"#, &[&data(100_000, 5)], None).unwrap();
    let http = reqwest::blocking::Client::new();
    let wait_for = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = http.get(s.url("/metrics")).send().unwrap().text().unwrap();
            if text.lines().any(|l| l.starts_with(needle)) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let text = wait_for("wharf_check_runs_total{outcome=\"clean\"}");
    assert!(text.contains("wharf_check_runs_total{outcome=\"clean\"}"), "{text}");
    let verified = text.lines().find(|l| l.starts_with("wharf_check_verified_bytes_total ")).unwrap();
    assert!(verified.split(' ').nth(1).unwrap().parse::<u64>().unwrap() >= 100_000, "{verified}");
    assert!(text.contains("wharf_check_last_completion_timestamp_seconds "), "{text}");
    std::fs::remove_file(blob_file(&s, &pushed.blobs[1])).unwrap();
    let text = wait_for("wharf_check_runs_total{outcome=\"damaged\"}");
    let missing = text.lines().find(|l| l.starts_with("wharf_check_problems_total{kind=\"bytes_missing\",")).unwrap();
    assert!(missing.contains("severity=\"damage\"") && !missing.ends_with(" 0"), "{text}");
}

#[test]
fn real_content_signed_both_ways_checks_clean() {
    let _engines = common::engines();
    let s = Server::start(&[]);
    let images = common::peers::shared_images();
    for image in ["small", "index"] {
        let out = Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", images.join(image).display()))
            .arg(format!("docker://{}/real/{image}:latest", s.addr))
            .output()
            .expect("skopeo");
        assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    }
    let c = Client::new();
    c.ok(&["trust", "init", &format!("{}/real/small", s.addr)]);
    c.ok(&["trust", "sign", &format!("{}/real/small:latest", s.addr)]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "content\n").unwrap();
    let (gun, url, dir) = (format!("{}/real/index", s.addr), format!("http://{}", s.addr), tmp.path().join("trust"));
    for args in [vec!["init", &gun], vec!["add", &gun, "latest", file.to_str().unwrap()], vec!["publish", &gun]] {
        let out = Command::new("notary")
            .args(["-s", &url, "-d"])
            .arg(&dir)
            .args(&args)
            .env("NOTARY_ROOT_PASSPHRASE", "root-pass-3")
            .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-3")
            .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-3")
            .output()
            .unwrap();
        assert!(out.status.success(), "notary {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (code, report) = check(&s, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(report["problems"].as_array().unwrap().is_empty(), "{report:#}");
    assert!(report["blobs_checked"].as_u64().unwrap() >= 5, "{report:#}");
    assert!(report["manifests_checked"].as_u64().unwrap() >= 4, "{report:#}");
    assert_eq!(report["repositories_checked"], 2, "{report:#}");
    // The trust data is really read: an expired Notary v1 timestamp is named as such.
    sql(
        &s,
        "UPDATE notary_metadata SET content = CAST(REPLACE(CAST(content AS TEXT), '\"expires\":\"2', '\"expires\":\"1') \
         AS BLOB) WHERE role = 'timestamp'",
        "UPDATE notary_metadata SET content = convert_to(replace(convert_from(content, 'UTF8'), '\"expires\":\"2', \
         '\"expires\":\"1'), 'UTF8') WHERE role = 'timestamp'",
    );
    let (code, report) = check(&s, &[]);
    assert_eq!(code, 1, "{report:#}");
    let bad = &report["problems"][0];
    assert!(bad["kind"] == "trust_invalid" || bad["kind"] == "trust_expired", "{report:#}");
    assert_eq!(bad["repository"], "real/index", "{report:#}");
}
