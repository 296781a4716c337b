//! Errors a new user meets first: each names the object and the cause once, and exits with the code the README's
//! table gives (3 verification, 4 could not connect, 5 access denied, 1 other).

use std::process::{Command, Output};

use crate::common;

fn wharf(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out: Output = Command::new(common::wharf_bin())
        .args(args)
        .env("WHARF_STORE", dir.join("store"))
        .env("WHARF_CONFIG_DIR", dir.join("config"))
        .env("WHARF_LOG", "error")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn once(haystack: &str, needle: &str) {
    assert_eq!(haystack.matches(needle).count(), 1, "{needle:?} should appear exactly once in:\n{haystack}");
}

#[test]
fn missing_push_source_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = wharf(tmp.path(), &["push", "oci:/missing-layout:latest", "127.0.0.1:1/a/b:1"]);
    assert_eq!(code, Some(1), "{err}");
    once(&err, "/missing-layout/index.json");
    once(&err, "No such file or directory");
}

#[test]
fn unsigned_repository_says_so_and_exits_with_the_verification_code() {
    let s = common::Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/team/app:v1", s.addr);
    for extra in [&[][..], &["--trust-on-first-use"][..]] {
        let mut args = vec!["pull"];
        args.extend_from_slice(extra);
        args.push(&reference);
        let (code, err) = wharf(tmp.path(), &args);
        assert_eq!(code, Some(3), "{args:?}: {err}");
        once(&err, "has no signed tags");
        assert!(err.contains("wharf trust sign") && err.contains("--insecure-skip-trust"), "{err}");
        assert!(!err.contains("HTTP 404"), "{err}");
    }
}

#[test]
fn refused_connection_names_the_url_and_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = wharf(tmp.path(), &["pull", "--trust-on-first-use", "127.0.0.1:1/a/b:1"]);
    assert_eq!(code, Some(4), "{err}");
    once(&err, "http://127.0.0.1:1/v2/a/b/_tuf/1.root.json");
    once(&err, "error sending request");
    once(&err, "Connection refused");
}
