//! Real third-party clients (skopeo, umoci, runc, crun, containerd, podman, docker) against a real `wharf serve`,
//! through `../shared/peers/registry-interop`. Every check must pass and none may be skipped.

use crate::common;

use std::process::Command;

use common::Server;

#[test]
fn registry_interop_harness_passes_with_no_skips() {
    let _engines = common::engines();
    let harness = common::peers::peers().join("registry-interop");
    assert!(harness.exists(), "{} is missing", harness.display());
    let s = Server::start(&[]);
    let out = Command::new(&harness).arg(&s.addr).output().expect("run registry-interop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or("");
    assert!(out.status.success(), "registry-interop failed: {last}");
    assert!(last.ends_with(" passed, 0 failed"), "unexpected summary {last:?}");
    let skips: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert!(skips.is_empty(), "skipped checks: {skips:?}");
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:?}");
}
