//! Admin commands an operator can trust (issue 23, item 7): `wharf admin` refuses a directory or URL without a
//! database instead of creating an empty one (`--init` creates it), and `gc --dry-run` reports the blobs waiting out
//! the grace period, with sizes a person reads and exact figures in `--json`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{self, Server};

/// `wharf admin ARGS` on `data_dir` with `env`, as a person would run it.
fn admin(data_dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(common::wharf_bin())
        .arg("admin")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("wharf admin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn admin_refuses_a_place_without_a_database_and_init_creates_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("typo");
    // On the PostgreSQL stack: a fresh, empty database (the URL is right, nothing was ever migrated there).
    let env: Vec<(String, String)> = match std::env::var("WHARF_TEST_STACK") {
        Ok(s) if s.starts_with("postgres") => vec![
            ("WHARF_DATABASE_URL".into(), common::pg::database()),
            ("WHARF_TRUST_KEY_ENCRYPTION_KEY".into(), "test-key-encryption-secret".into()),
        ],
        _ => vec![],
    };
    for _ in 0..2 {
        let out = admin(&dir, &env, &["user", "list"]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("no Wharf database at") && err.contains("run with --init to create one"), "{err}");
        assert!(!err.contains("test-key"), "{err}");
        assert!(!dir.exists(), "nothing created");
    }
    let out = admin(&dir, &env, &["--init", "user", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
    if env.is_empty() {
        assert!(dir.join("wharf.db").exists());
    }
    // Created once, it is found without --init.
    let out = admin(&dir, &env, &["user", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn gc_dry_run_reports_the_blobs_waiting_out_the_grace_period() {
    let s = Server::start(&[("WHARF_GC_GRACE_SECS", "2h")]);
    let oci = common::oci::Oci::new(&s);
    // Two layers uploaded with no manifest naming them (an abandoned push), and a pushed image whose blobs stay.
    let loose = [common::data(1_536, 1), common::data(3_000_000, 2)];
    let loose: Vec<String> = loose.iter().map(|b| oci.ensure_blob("ops/gc", b, None)).collect();
    let kept = oci.push("ops/gc", "v1", br#"{"os":"linux"}"#, &[&common::data(2_000, 3)], None).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;

    let json: serde_json::Value = serde_json::from_str(&s.admin(&["gc", "--dry-run", "--json"], "")).unwrap();
    let w = &json["waiting"];
    assert_eq!(w["blobs"], 2, "{json}");
    assert_eq!(w["bytes"], 1_536 + 3_000_000, "exact bytes in JSON");
    let (first, last) = (w["earliest_eligible_at"].as_i64().unwrap(), w["latest_eligible_at"].as_i64().unwrap());
    assert!(first <= last && (first - (now + 7_200)).abs() <= 60 && (last - (now + 7_200)).abs() <= 60, "{w}");
    let listed: Vec<&str> = w["list"].as_array().unwrap().iter().map(|b| b["digest"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = loose.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(listed, want);
    for d in &kept.blobs {
        assert!(!listed.contains(&d.as_str()), "a referenced blob is not waiting: {d}");
    }
    assert_eq!(json["blobs_removed"], 0, "nothing is collectible yet");

    let out = s.admin(&["gc", "--dry-run"], "");
    assert!(out.contains(&format!("waiting blob\t{}\t1.5 KiB\teligible ", loose[0])), "{out}");
    assert!(out.contains(&format!("waiting blob\t{}\t2.9 MiB\teligible ", loose[1])), "{out}");
    assert!(out.contains("waiting out the grace period: 2 blobs (2.9 MiB), eligible from 20"), "{out}");
    assert!(out.contains("would remove: 0 tags, 0 manifests, 0 blobs (0 B)"), "{out}");
    // Nothing was removed by the dry run.
    let head = reqwest::blocking::Client::new().head(s.url(&format!("/v2/ops/gc/blobs/{}", loose[0]))).send().unwrap();
    assert_eq!(head.status(), 200);
}
