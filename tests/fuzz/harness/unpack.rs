//! Layer archives (gzip, zstd or plain tar) applied into a fresh root: whatever the entries say, nothing is
//! created, changed or removed outside it.

use std::path::Path;

use wharf_client::io::unpack::{apply_layer, UnpackOptions};

const SENTINEL: &[u8] = b"outside the root";

/// Applies `data` as a layer into `<tmp>/root` beside `<tmp>/outside`; afterwards the temporary directory holds
/// exactly those two, `root` is still a directory and `outside` is unchanged.
pub fn unpack(data: &[u8]) {
    let dir = tempfile::Builder::new().prefix("wharf-fuzz-unpack").tempdir().expect("a temporary directory");
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    std::fs::create_dir(&root).expect("the root directory");
    std::fs::write(&outside, SENTINEL).expect("the sentinel file");
    let opts = UnpackOptions { preserve_ownership: false, devices: false, max_bytes: 1 << 20 };
    let _ = apply_layer(&root, data, &opts);
    check_contained(dir.path(), &root, &outside);
}

fn check_contained(dir: &Path, root: &Path, outside: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("the temporary directory lists")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["outside", "root"], "an entry escaped the root");
    let meta = std::fs::symlink_metadata(root).expect("the root is still there");
    assert!(meta.is_dir(), "the root was replaced by a {:?}", meta.file_type());
    let meta = std::fs::symlink_metadata(outside).expect("the sentinel is still there");
    assert!(meta.is_file(), "the sentinel was replaced");
    assert_eq!(std::fs::read(outside).expect("the sentinel reads"), SENTINEL, "the sentinel was changed");
}
