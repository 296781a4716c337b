//! The real-client harnesses and the test-image builder in `../shared/peers/`, beside the repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory of the peers' scripts (`make-test-images`, `registry-interop`, `tuf-client-check`, ...).
pub fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers")
}

/// Builds the test images into `out` with `make-test-images`: `small` and `index`, and `big` (a 256 MiB layer)
/// when asked for. The images are reproducible, so their digests are the same in every run.
pub fn make_test_images(out: &Path, big: bool) {
    let mut cmd = Command::new(peers().join("make-test-images"));
    cmd.arg(out);
    if !big {
        cmd.env("SKIP_BIG", "1");
    }
    let st = cmd.status().expect("run make-test-images");
    assert!(st.success(), "make-test-images {} failed", out.display());
}

/// The `small` and `index` images, built once per test process into a temp directory and shared by the tests
/// that only read them.
pub fn shared_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wharf-test-images-{}", std::process::id()));
        make_test_images(&dir, false);
        dir
    })
}
