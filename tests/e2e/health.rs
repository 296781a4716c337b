//! `/healthz` (the process answers) and `/readyz` (the database and the object store answer), for load balancers
//! and Kubernetes; here on PostgreSQL, whose database the test takes away.

use crate::common;

use std::process::Command;

use common::{pg, Server};

#[test]
fn readiness_follows_the_database_and_liveness_does_not() {
    let url = pg::database();
    let s = Server::start(&[("WHARF_DATABASE_URL", &url), ("WHARF_TRUST_KEY_ENCRYPTION_KEY", "test-secret")]);
    let get = |path: &str| {
        let r = reqwest::blocking::get(s.url(path)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(get("/healthz"), (200, "ok\n".into()));
    assert_eq!(get("/readyz"), (200, "ready\n".into()));

    // Take the database away under the running server.
    let (base, name) = url.rsplit_once('/').unwrap();
    let out = Command::new("psql")
        .args([&format!("{base}/postgres"), "-qc", &format!("DROP DATABASE {name} WITH (FORCE)")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert_eq!(get("/healthz").0, 200, "alive though not ready");
}

fn wharf(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = Command::new(common::wharf_bin());
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `wharf config check`: the effective configuration with secrets masked, read back by `wharf serve`'s own parser;
/// an unknown key, variable or refused value fails with the reason.
#[test]
fn config_check_prints_the_effective_settings_masked_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    std::fs::write(
        &file,
        "[database]\nurl = \"postgres://wharf:DBPASS@db.example/wharf\"\n[trust]\nkey_encryption_key = \"KEKSECRET\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let env = [("WHARF_GC_GRACE_SECS", "2h"), ("WHARF_AUTH", "1"), ("WHARF_STORAGE_SECRET_ACCESS_KEY", "S3SECRET")];
    let (ok, out, err) = wharf(&["config", "check", path], &env);
    assert!(ok, "{err}");
    for secret in ["DBPASS", "KEKSECRET", "S3SECRET"] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }
    for shown in ["grace_secs = \"2h\"", "enabled = true", "postgres://wharf:********@db.example/wharf", "[limits]"] {
        assert!(out.contains(shown), "{shown} missing:\n{out}");
    }
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &out).unwrap();
    let (ok, _, err) = wharf(&["config", "check", again.to_str().unwrap()], &[]);
    assert!(ok, "the printed configuration reads back: {err}");

    std::fs::write(&file, "[limits]\nmax_blob_sise = 1\n").unwrap();
    let (ok, _, err) = wharf(&["config", "check", path], &[]);
    assert!(!ok && err.contains("max_blob_sise"), "{err}");
    std::fs::write(&file, "").unwrap();
    let (ok, _, err) = wharf(&["config", "check", path], &[("WHARF_AUTH_ENABLD", "1")]);
    assert!(!ok && err.contains("WHARF_AUTH_ENABLD"), "{err}");
    std::fs::write(&file, "[trust]\ntimestamp_lifetime_secs = \"1y\"\n").unwrap();
    let (ok, _, err) = wharf(&["config", "check", path], &[]);
    assert!(!ok && err.contains("1y"), "{err}");
}

/// `wharf completions SHELL` prints a script naming the commands; client options are offered on client commands.
#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = wharf(&["completions", shell], &[]);
        assert!(ok, "{shell}: {err}");
        for word in ["serve", "pull", "trust", "config", "store"] {
            assert!(out.contains(word), "{shell}: {word} missing");
        }
    }
    let (ok, out, _) = wharf(&["serve", "--help"], &[]);
    assert!(ok && !out.contains("--low-speed-limit") && !out.contains("--store"), "{out}");
    let (ok, out, _) = wharf(&["pull", "--help"], &[]);
    assert!(ok && out.contains("--low-speed-limit") && out.contains("WHARF_STORE"), "{out}");
    let (ok, out, _) = wharf(&["trust", "sign", "--help"], &[]);
    assert!(ok && out.contains("WHARF_REPOSITORY_PASSPHRASE") && out.contains("--store"), "{out}");
}
