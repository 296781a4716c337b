//! Files closed to other local users, on the real binary. The server's data directory (the database with every
//! account's password hash, the key-encryption key, blobs, uploads, the mirror's spool) is 0700 with 0600 files
//! under any umask, and one an older version left open is closed at start-up with a log line. The client's
//! content store (blobs, trust state, snapshots, containers) is 0700 with 0600 files, while the extracted trees
//! keep the image's modes.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::client::Client;
use common::oci::Oci;
use common::{data, start_wrapped_on, Server};

/// Runs the server with this umask.
fn under_umask(mask: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), format!("umask {mask} && exec \"$0\" \"$@\"")]
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `p`'s mode in octal, to compare with an expected one in messages people can read.
fn octal(p: &Path) -> String {
    format!("{:o}", mode(p))
}

/// Every directory and file under `root` (itself included) whose mode is not 0700 or 0600, skipping the
/// directories named in `skip` and what they hold, and how many of each kind were looked at.
fn offenders(root: &Path, skip: &[&str]) -> (Vec<String>, usize, usize) {
    let (mut bad, mut dirs, mut files) = (Vec::new(), 0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let m = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if skip.iter().any(|s| p.file_name().is_some_and(|n| n == *s)) {
                continue;
            }
            dirs += 1;
            if m != 0o700 {
                bad.push(format!("{:o} {}", m, p.display()));
            }
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            files += 1;
            if m != 0o600 {
                bad.push(format!("{:o} {}", m, p.display()));
            }
        }
    }
    bad.sort();
    (bad, dirs, files)
}

fn assert_private(root: &Path, skip: &[&str]) -> usize {
    let (bad, dirs, files) = offenders(root, skip);
    assert!(
        bad.is_empty(),
        "{} of {dirs} directories and {files} files under {} are open to others:\n{}",
        bad.len(),
        root.display(),
        bad.join("\n")
    );
    files
}

/// Opens everything under `root` to others, as a data directory made by an older version was.
fn open_up(root: &Path) {
    let st = Command::new("chmod").args(["-R", "u+rwX,go+rX"]).arg(root).status().unwrap();
    assert!(st.success());
}

fn wharf_db_files(dir: &Path) -> Vec<PathBuf> {
    ["wharf.db", "wharf.db-wal", "wharf.db-shm"].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect()
}

/// Pushes an image, leaves an upload open (its file stays in `uploads/`), and checks the data directory.
fn push_and_check(s: &Server, seed: u8) {
    let o = Oci::new(s);
    let layers = [data(200_000, seed), data(3_000, seed + 1)];
    o.push("files/app", "v1", br#"{"architecture":"amd64","os":"linux"}"#, &[&layers[0], &layers[1]], None).unwrap();
    let r = reqwest::blocking::Client::new().post(s.url("/v2/files/app/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), 202);
    let files = assert_private(&s.data_dir, &[]);
    if !common::on_s3() {
        assert!(files >= 4, "the blobs and the open upload are on disk ({files} files)");
        assert!(!s.stored_blobs().is_empty());
        assert!(s.data_dir.join("store/uploads").read_dir().unwrap().count() > 0, "an upload is open");
    }
    if !s.env().iter().any(|(k, _)| k == "WHARF_DATABASE_URL") {
        assert_eq!(wharf_db_files(&s.data_dir).len(), 3, "the database runs in WAL mode with its -wal and -shm");
    }
}

#[test]
fn the_data_directory_is_private_under_umask_022_and_000() {
    for (mask, seed) in [("022", 10), ("000", 20)] {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let wrapper = under_umask(mask);
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let s = start_wrapped_on(&wrapper, &data_dir, &[]);
        push_and_check(&s, seed);
        assert_eq!(octal(&data_dir), "700", "umask {mask}");
        // `wharf admin` on the same directory adds nothing open either.
        s.admin(&["user", "add", "alice", "--password-stdin"], "alice's password\n");
        assert_private(&data_dir, &[]);
    }
}

#[test]
fn a_mirror_spools_and_stores_privately_under_umask_000() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Server::start(&[]);
    let layers = [data(300_000, 31), data(5_000, 32)];
    let pushed = Oci::new(&origin)
        .push("app/one", "v1", br#"{"architecture":"amd64","os":"linux"}"#, &[&layers[0], &layers[1]], None)
        .unwrap();
    let config = tmp.path().join("mirror.toml");
    let entry = format!("[[mirror]]\nupstream = \"{}\"\nprefix = \"origin\"\n", origin.url(""));
    std::fs::write(&config, entry).unwrap();
    let data_dir = tmp.path().join("mirror");
    let wrapper = under_umask("000");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let m = start_wrapped_on(&wrapper, &data_dir, &[("WHARF_CONFIG", config.to_str().unwrap())]);
    assert_eq!(Oci::new(&m).pull("origin/app/one", "v1"), Ok(pushed.digest));
    assert!(data_dir.join("mirror-spool").is_dir(), "the blobs went through the spool");
    assert_private(&data_dir, &[]);
}

#[test]
fn an_open_data_directory_is_closed_at_start_up_with_a_log_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let keep = under_umask("022");
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    let mut first = start_wrapped_on(&keep, &data_dir, &[]);
    push_and_check(&first, 40);
    first.kill();
    drop(first);
    // As an older version left it: 0755 directories, 0644 files (the database and its password hashes included).
    open_up(&data_dir);
    assert_eq!(mode(&data_dir.join("trust.kek")) & 0o044, 0o044);
    assert!(!offenders(&data_dir, &[]).0.is_empty());

    let log = tmp.path().join("server.log");
    let s = start_wrapped_on(&keep, &data_dir, &[("__stderr", log.to_str().unwrap()), ("WHARF_LOG", "warn")]);
    assert_private(&data_dir, &[]);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("closed the data directory to other users"));
    let line = line.unwrap_or_else(|| panic!("no log line about the modes changed:\n{text}"));
    assert!(line.contains("dirs=") && line.contains("files="), "{line}");
    // It still serves what was stored before.
    assert_eq!(Oci::new(&s).pull("files/app", "v1").map(|_| ()), Ok(()));

    // A second start finds nothing to change and says nothing.
    drop(s);
    let log2 = tmp.path().join("server2.log");
    let _s = start_wrapped_on(&keep, &data_dir, &[("__stderr", log2.to_str().unwrap()), ("WHARF_LOG", "warn")]);
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(!text.contains("closed the data directory"), "{text}");
}

#[test]
fn the_client_store_is_private_and_trees_keep_the_image_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    common::peers::make_test_images(&images, false);
    let s = Server::start(&[]);
    let c = Client::new();
    let (host, repo) = (s.addr.clone(), "files/small");
    let reference = format!("{host}/{repo}:latest");
    c.ok(&["trust", "init", &format!("{host}/{repo}")]);
    c.ok(&["push", "--sign", &format!("oci:{}:latest", images.join("small").display()), &reference]);
    let root = c.root_of(&host, repo);
    c.ok(&["pull", "--trust-root", root.to_str().unwrap(), &reference]);
    let out = tmp.path().join("out");
    c.ok(&["unpack", &reference, out.to_str().unwrap()]);
    // tests/run installs crun and runc: a run is part of the test, never skipped.
    let text = c.ok(&["run", &reference]);
    assert!(text.contains("interop-small-ok"), "{text}");
    assert_eq!(octal(&c.store.path().join("containers")), "700");

    let store = c.store.path();
    for d in ["snapshots", "snapshots/sha256", "snapshots/tmp", "blobs", "trust", "refs"] {
        assert_eq!(octal(&store.join(d)), "700", "{d}");
    }
    // Everything of the store's own is private; a snapshot's `fs/` is the layer's and is not looked into.
    assert!(assert_private(store, &["fs"]) > 5);
    let fs = std::fs::read_dir(store.join("snapshots/sha256")).unwrap().next().unwrap().unwrap().path().join("fs");
    assert_ne!(mode(&fs) & 0o055, 0, "a snapshot's root keeps the layer's modes");
    assert_ne!(mode(&out) & 0o055, 0, "the unpacked tree keeps the image's modes");

    // A store an older version left open is closed by the next command.
    open_up(store);
    c.ok(&["images"]);
    for d in ["", "snapshots", "snapshots/sha256", "blobs", "trust", "refs"] {
        assert_eq!(octal(&store.join(d)), "700", "{d} after reopening");
    }
}
