//! `deploy/image/build`: Wharf's own container image, made offline from the binary (no base image). It is pushed
//! into a running Wharf, pulled back and run with an OCI runtime: the binary starts inside it.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::Server;

#[test]
fn wharf_image_builds_offline_pushes_into_wharf_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(root.join("deploy/image/build"))
        .arg(&layout)
        .arg("test")
        .env("WHARF_BIN", common::wharf_bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "build: {}", String::from_utf8_lossy(&out.stderr));

    let s = Server::start(&[]);
    let wharf = |args: &[&str]| {
        let out = Command::new(common::wharf_bin())
            .args(args)
            .env("WHARF_STORE", tmp.path().join("store"))
            .env("WHARF_CONFIG_DIR", tmp.path().join("config"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let reference = format!("{}/wharf/wharf:test", s.addr);
    let (ok, stdout, err) = wharf(&["push", &format!("oci:{}:test", layout.display()), &reference]);
    assert!(ok, "push: {err}");
    let digest = stdout.split_whitespace().find(|w| w.starts_with("sha256:")).expect("pushed digest").to_owned();

    // Pulled back by digest and run: the image's entrypoint is the wharf binary; `--version` replaces its command.
    let by_digest = format!("{}/wharf/wharf@{digest}", s.addr);
    let (ok, _, err) = wharf(&["pull", &by_digest]);
    assert!(ok, "pull: {err}");
    let (ok, stdout, err) = wharf(&["run", &by_digest, "--", "--version"]);
    assert!(ok, "run: {err}");
    assert!(stdout.contains(concat!("wharf ", env!("CARGO_PKG_VERSION"))), "{stdout}");
}
