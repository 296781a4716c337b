//! `wharf-tuf-client` against TUF 1.0 repositories built by python-tuf (`tests/data/tuf/make-repo`), each served by
//! a single-threaded HTTP/1.1 server that answers one request at a time. Good repositories must download and
//! verify; broken ones must exit 1 and leave no target behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common;

fn client_bin() -> PathBuf {
    common::wharf_bin().with_file_name("wharf-tuf-client")
}

fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tuf").join(file)
}

struct Repo {
    dir: tempfile::TempDir,
    server: Child,
    port: u16,
    target: String,
    sha256: Option<String>,
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn repo(scenario: &str) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("repo");
    let made = Command::new(data("make-repo")).arg(scenario).arg(&out).output().expect("python3 make-repo");
    assert!(made.status.success(), "make-repo {scenario}: {}", String::from_utf8_lossy(&made.stderr));
    let mut server = Command::new(data("serve-one"))
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve-one");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().expect("port");
    let expect: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("expect.json")).unwrap()).unwrap();
    let target = expect["target"].as_str().unwrap().to_string();
    let sha256 = expect["sha256"].as_str().map(String::from);
    Repo { dir, server, port, target, sha256 }
}

impl Repo {
    fn md(&self) -> PathBuf {
        self.dir.path().join("md")
    }

    fn dl(&self) -> PathBuf {
        self.dir.path().join("dl")
    }

    fn run(&self, metadata: &str, args: &[&str]) -> Output {
        let base = format!("http://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(client_bin());
        // Options in an order other than the usage line's: any order before the subcommand word.
        cmd.arg("--metadata-url").arg(format!("{base}/{metadata}")).arg("--metadata-dir").arg(self.md());
        cmd.args(args).output().expect("wharf-tuf-client")
    }

    fn init(&self) {
        let out = Command::new(client_bin())
            .arg("--metadata-dir")
            .arg(self.md())
            .arg("init")
            .arg(self.dir.path().join("repo/trusted-root.json"))
            .output()
            .unwrap();
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        assert!(self.md().join("root.json").exists());
    }

    fn download(&self) -> Output {
        self.download_all(&[&self.target])
    }

    /// One `download` run for every name, in order.
    fn download_all(&self, names: &[&str]) -> Output {
        let base = format!("http://127.0.0.1:{}/targets/", self.port);
        let dl = self.dl();
        let mut args: Vec<&str> = names.iter().flat_map(|n| ["--target-name", n]).collect();
        args.extend(["--target-base-url", &base, "--target-dir", dl.to_str().unwrap(), "download"]);
        self.run("metadata", &args)
    }

    /// The downloaded file, under the target name quoted as python-tuf quotes it.
    fn downloaded(&self) -> PathBuf {
        self.downloaded_as(&self.target)
    }

    fn downloaded_as(&self, name: &str) -> PathBuf {
        self.dl().join(wharf_client::io::tuf_repo::quote(name, false))
    }

    /// A field of the scenario's expect.json beside `target` and `sha256`.
    fn expect(&self, field: &str) -> String {
        let path = self.dir.path().join("repo/expect.json");
        let expect: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        expect[field].as_str().unwrap().to_string()
    }
}

fn check(scenario: &str) {
    let r = repo(scenario);
    r.init();
    let out = r.download();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match &r.sha256 {
        Some(sha) => {
            assert_eq!(out.status.code(), Some(0), "{scenario}: {stderr}");
            let got = std::fs::read(r.downloaded()).unwrap();
            assert_eq!(common::sha256(&got), format!("sha256:{sha}"), "{scenario}");
            for f in ["root.json", "timestamp.json", "snapshot.json", "targets.json"] {
                assert!(r.md().join(f).exists(), "{scenario}: {f} not kept");
            }
        }
        None => {
            assert_eq!(out.status.code(), Some(1), "{scenario} must fail: {stderr}");
            assert!(!r.downloaded().exists(), "{scenario}: a refused target was written");
        }
    }
}

#[test]
fn good_repository_with_three_signature_schemes_and_an_odd_delegated_name() {
    check("good");
    check("rsa-only");
}

#[test]
fn root_rotation_thresholds_and_expired_intermediate_roots() {
    check("threshold");
    check("threshold-ok");
    check("expired-middle");
}

#[test]
fn terminating_delegations_stop_the_search() {
    check("terminating");
    check("nonterminating");
}

#[test]
fn unknown_key_types_are_ignored() {
    check("unknown-key");
}

#[test]
fn succinct_hash_bin_delegations() {
    check("succinct");
}

#[test]
fn tampered_badly_signed_and_expired_metadata_fail() {
    check("tampered");
    check("bad-sig");
    check("expired-ts");
}

#[test]
fn a_trusted_target_is_not_downloaded_again_and_a_rollback_is_refused() {
    let r = repo("rollback");
    r.init();
    let out = r.download();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // With the served copy gone, a second download must be satisfied from the target dir.
    std::fs::remove_dir_all(r.dir.path().join("repo/targets")).unwrap();
    let again = r.download();
    assert!(again.status.success(), "re-downloaded: {}", String::from_utf8_lossy(&again.stderr));
    // The trusted timestamp is v2; a server offering v1 is a rollback.
    let ts_before = std::fs::read(r.md().join("timestamp.json")).unwrap();
    let out = r.run("metadata-old", &["refresh"]);
    assert_eq!(out.status.code(), Some(1), "rollback accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("timestamp"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(r.md().join("timestamp.json")).unwrap(), ts_before, "a refused timestamp was kept");
}

/// tuf-conformance's test_duplicate_sig_keyids: one valid snapshot signature listed twice is refused (the key id
/// must be unique in `signatures`), even though one signature meets the threshold, and snapshot is not kept.
#[test]
fn a_signature_key_id_listed_twice_is_refused() {
    check("dup-sig");
    let r = repo("dup-sig");
    r.init();
    let out = r.run("metadata", &["refresh"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "duplicate signature accepted: {stderr}");
    assert!(stderr.contains("more than once in signatures"), "{stderr}");
    assert!(!r.md().join("snapshot.json").exists(), "a refused snapshot was kept");
}

/// tuf-conformance's test_timestamp_content_changes: a timestamp re-signed under the trusted version (naming a
/// snapshot v100 that does not exist) is discarded; the trusted one stays, and the refresh succeeds with it.
#[test]
fn a_timestamp_of_the_trusted_version_is_discarded() {
    let r = repo("same-version");
    r.init();
    let out = r.download();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ts_before = std::fs::read(r.md().join("timestamp.json")).unwrap();
    let out = r.run("metadata-same", &["refresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(r.md().join("timestamp.json")).unwrap(), ts_before, "the re-signed timestamp was kept");
}

/// tuf-conformance's test_cached_role_is_verified_against_current_delegator: in a diamond (parent-a and parent-b
/// both delegate "release", each with a key of its own; release is signed by parent-a's key only), release loaded
/// through parent-a must not be trusted when a later lookup in the same run reaches it through parent-b.
#[test]
fn a_role_reached_through_a_second_delegator_is_verified_against_it() {
    let r = repo("diamond");
    r.init();
    let refused = r.expect("refused");
    let out = r.download_all(&[&r.target, &refused]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "release trusted through parent-b: {stderr}");
    assert!(stderr.contains("release"), "{stderr}");
    let got = std::fs::read(r.downloaded()).expect("the target signed through parent-a");
    assert_eq!(common::sha256(&got), format!("sha256:{}", r.sha256.as_deref().unwrap()));
    assert!(!r.downloaded_as(&refused).exists(), "a target trusted only through another path was written");
    // Alone, the path through parent-b fails the same way (nothing cached from parent-a in this run).
    let out = r.download_all(&[&refused]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!r.downloaded_as(&refused).exists());
}

#[test]
fn missing_options_and_unknown_targets_exit_1() {
    let r = repo("good");
    r.init();
    let out = r.run(
        "metadata",
        &[
            "--target-name",
            "nope.txt",
            "--target-base-url",
            "http://127.0.0.1:1/",
            "--target-dir",
            "/tmp/x",
            "download",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.txt"));
    let out = Command::new(client_bin()).args(["--metadata-dir", "/nonexistent", "refresh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
