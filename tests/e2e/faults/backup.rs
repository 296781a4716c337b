//! `wharf admin backup` while pushes go on, then `wharf admin restore` into a fresh data directory (and, on
//! PostgreSQL + S3, a fresh database and bucket) and a second server on it: everything acknowledged before the
//! backup started pulls verified (skopeo, the OCI client, `wharf pull` of signed tags, the `notary` CLI), and
//! `check` is clean. A tampered backup and a non-empty target are refused, leaving the target as it was.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use common::client::Client;
use common::oci::Oci;
use common::{data, Server};
use serde_json::Value;

/// `wharf admin --data-dir DATA ARGS` with `env`, its output whatever the status.
fn admin(data: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(common::wharf_bin())
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .envs(env.iter().filter(|(k, _)| k != "__stderr").map(|(k, v)| (k, v)))
        .output()
        .expect("run wharf admin")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The environment of a restore target: the source's, with a fresh database and bucket where it has them.
fn fresh_target(source: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = source.to_vec();
    for (k, v) in env.iter_mut() {
        if k == "WHARF_DATABASE_URL" {
            *v = common::pg::database();
        }
        if k == "WHARF_STORAGE_URL" {
            let (_, bucket) = common::s3::bucket();
            *v = format!("s3://{bucket}/wharf");
        }
    }
    env
}

fn notary(server: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("notary")
        .args(["-s", server, "-d"])
        .arg(dir)
        .args(args)
        .env("NOTARY_ROOT_PASSPHRASE", "root-pass-25")
        .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-25")
        .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-25")
        .output()
        .expect("run notary");
    assert!(out.status.success(), "notary {args:?}: {}", text(&out));
    text(&out)
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo").args(args).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo {args:?}: {}", text(&out));
}

/// The restored registry's `check --json`: it must be clean, and have verified every blob.
fn check_clean(data: &Path, env: &[(String, String)], blobs: u64) {
    let out = admin(data, env, &["check", "--json"]);
    assert!(out.status.success(), "check of the restored registry: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json");
    assert_eq!(report["clean"], true, "{report}");
    assert!(report["blobs_checked"].as_u64().unwrap_or(0) >= blobs, "{report}");
}

#[test]
fn a_backup_taken_during_pushes_restores_elsewhere_and_everything_acknowledged_pulls_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::peers::shared_images();
    let s = Server::start(&[]);
    let host = s.addr.clone();
    let oci = Oci::new(&s);

    // Before the backup: skopeo, `wharf push --sign` (TUF), a Notary v1 collection and plain OCI pushes.
    let small = format!("oci:{}:latest", images.join("small").display());
    skopeo(&["copy", "-q", "--dest-tls-verify=false", &small, &format!("docker://{host}/skopeo/small:v1")]);
    let c = Client::new();
    c.ok(&["trust", "init", &format!("{host}/signed/app")]);
    let out = c.ok(&[
        "push",
        "--sign",
        &format!("oci:{}:latest", images.join("index").display()),
        &format!("{host}/signed/app:v1"),
    ]);
    assert!(out.contains("signed sha256:"), "{out}");
    let root = c.root_of(&host, "signed/app");
    let file = tmp.path().join("payload");
    std::fs::write(&file, "backed up\n").unwrap();
    let (gun, trust_dir) = ("example.com/backup/app", tmp.path().join("notary"));
    notary(&s.url(""), &trust_dir, &["init", gun]);
    notary(&s.url(""), &trust_dir, &["add", gun, "v1", file.to_str().unwrap()]);
    notary(&s.url(""), &trust_dir, &["publish", gun]);
    let mut acked = Vec::new();
    for i in 0..12u8 {
        let layer = data(64 * 1024 + usize::from(i) * 4099, i);
        let p = oci.push("before/app", &format!("t{i}"), &data(200, 100 + i), &[&layer], None).expect("push");
        acked.push((format!("t{i}"), p.digest));
    }

    // The backup, while pushes go on.
    let stop = AtomicBool::new(false);
    let during = Mutex::new(0u32);
    let backup_dir = tmp.path().join("backup");
    let record: Value = std::thread::scope(|scope| {
        for w in 0..2u8 {
            let (oci, stop, during) = (&oci, &stop, &during);
            scope.spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let layer = data(256 * 1024, w.wrapping_mul(31).wrapping_add(i as u8));
                    let tag = format!("w{w}-{i}");
                    if oci.push("during/app", &tag, &data(100, w), &[&layer], None).is_ok() {
                        *during.lock().unwrap() += 1;
                    }
                    i += 1;
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let out = s.admin(&["backup", "--json", backup_dir.to_str().unwrap()], "");
        stop.store(true, Ordering::Relaxed);
        serde_json::from_str(&out).expect("backup --json")
    });
    assert!(*during.lock().unwrap() > 0, "no push ran during the backup");
    assert_eq!(record["format"], 1, "{record}");
    let blobs = record["blobs"].as_array().unwrap();
    assert!(blobs.len() >= 12 * 2, "{record}");
    assert!(record["counts"]["tags"].as_u64().unwrap() >= 14, "{record}");
    assert!(record["counts"]["notary_collections"].as_u64().unwrap() >= 1, "{record}");
    assert!(record["total_bytes"].as_u64().unwrap() > blobs.iter().map(|b| b["size"].as_u64().unwrap()).sum::<u64>());
    let kek = backup_dir.join("trust.kek");
    if record["key_encryption_key"] == "data_dir" {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777, 0o600, "trust.kek's mode");
    }

    // Restore into a fresh data directory (database, bucket), and serve it.
    let target = tmp.path().join("restored");
    let env = fresh_target(s.env());
    let out = admin(&target, &env, &["restore", backup_dir.to_str().unwrap()]);
    assert!(out.status.success(), "restore: {}", text(&out));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = common::start_wrapped_on(&[], &target, &env_ref);
    let roci = Oci::new(&r);
    for (tag, digest) in &acked {
        assert_eq!(&roci.pull("before/app", tag).expect("pull from the restored registry"), digest, "{tag}");
    }
    let pulled = tmp.path().join("pulled");
    let from = format!("docker://{}/skopeo/small:v1", r.addr);
    skopeo(&["copy", "-q", "--src-tls-verify=false", &from, &format!("oci:{}:v1", pulled.display())]);
    let fresh = Client::new();
    let out = fresh.ok(&["pull", "--trust-root", root.to_str().unwrap(), &format!("{}/signed/app:v1", r.addr)]);
    assert!(out.contains("verified sha256:"), "{out}");
    let list = notary(&r.url(""), &trust_dir, &["list", gun]);
    assert!(list.contains("v1 "), "{list}");
    check_clean(&target, &env, blobs.len() as u64);

    // A tampered copy of the backup is refused before anything is written.
    let tampered = tmp.path().join("tampered");
    let st = Command::new("cp").arg("-r").arg(&backup_dir).arg(&tampered).status().unwrap();
    assert!(st.success());
    let victim = tampered.join("store").join(blobs[blobs.len() / 2]["key"].as_str().unwrap());
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0x55;
    std::fs::write(&victim, bytes).unwrap();
    let target2 = tmp.path().join("refused");
    let env2 = fresh_target(s.env());
    let out = admin(&target2, &env2, &["restore", tampered.to_str().unwrap()]);
    assert!(!out.status.success(), "a tampered blob was restored: {}", text(&out));
    assert!(text(&out).contains("refusing to restore"), "{}", text(&out));
    assert!(!target2.join("wharf.db").exists(), "a refused restore left a database");
    // ... and so is a tampered database file.
    let db = tampered.join(record["database"]["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&db, bytes).unwrap();
    std::fs::write(
        &victim,
        std::fs::read(backup_dir.join("store").join(blobs[blobs.len() / 2]["key"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let out = admin(&target2, &env2, &["restore", tampered.to_str().unwrap()]);
    assert!(!out.status.success(), "a tampered database was restored: {}", text(&out));
    assert!(text(&out).contains(record["database"]["path"].as_str().unwrap()), "{}", text(&out));

    // A non-empty target is refused: the restored registry's own data directory, database and store.
    let out = admin(&target, &env, &["restore", backup_dir.to_str().unwrap()]);
    assert!(!out.status.success(), "a restore over a registry went through: {}", text(&out));
    assert!(text(&out).contains("not empty") || text(&out).contains("has tables"), "{}", text(&out));
    for (tag, digest) in &acked {
        assert_eq!(&roci.pull("before/app", tag).expect("pull after the refused restore"), digest, "{tag}");
    }
}
