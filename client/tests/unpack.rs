//! Layer unpacking: ordinary content, whiteouts, and hostile layers that try to reach outside the root.

#![cfg(feature = "io")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use wharf_client::unpack::{apply_layer, UnpackError, UnpackOptions};

/// Builds a tar from (name, kind, data-or-link-target, mode) with raw names, so hostile names survive.
fn tar(entries: &[(&str, tar::EntryType, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_mtime(1_700_000_000);
        // Write the name bytes directly: `set_path` refuses `..`, which is exactly what we want to send.
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        let body: &[u8] = match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                raw.linkname[..data.len()].copy_from_slice(data);
                &[]
            }
            _ => data,
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep me").unwrap();
    Fixture { _tmp: tmp, root, outside }
}

fn apply(f: &Fixture, layer: &[u8]) -> Result<wharf_client::unpack::LayerStats, UnpackError> {
    apply_layer(&f.root, layer, &UnpackOptions::default())
}

fn outside_untouched(f: &Fixture) {
    let names: Vec<_> = fs::read_dir(&f.outside).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("victim")], "something was written outside the root");
    assert_eq!(fs::read(f.outside.join("victim")).unwrap(), b"keep me");
}

use tar::EntryType as E;

#[test]
fn ordinary_layers_with_links_modes_and_whiteouts() {
    let f = fixture();
    let l1 = tar(&[
        ("etc/", E::Directory, b"", 0o755),
        ("etc/passwd", E::Regular, b"root:x:0:0\n", 0o644),
        ("etc/remove-me", E::Regular, b"x", 0o600),
        ("opt/replaced/old.txt", E::Regular, b"old", 0o644),
        ("bin/sh", E::Symlink, b"busybox", 0o777),
        ("bin/busybox", E::Regular, b"\x7fELF", 0o755),
        ("bin/hard", E::Link, b"bin/busybox", 0o755),
        ("ro/", E::Directory, b"", 0o500),
        ("ro/inside", E::Regular, b"i", 0o444),
    ]);
    let s = apply(&f, &gz(&l1)).unwrap();
    assert_eq!((s.files, s.symlinks, s.hardlinks), (5, 1, 1));
    let l2 = tar(&[
        ("etc/.wh.remove-me", E::Regular, b"", 0o644),
        ("opt/replaced/", E::Directory, b"", 0o755),
        ("opt/replaced/.wh..wh..opq", E::Regular, b"", 0o644),
        ("opt/replaced/new.txt", E::Regular, b"new", 0o640),
    ]);
    let s = apply(&f, &l2).unwrap();
    assert_eq!(s.whiteouts, 2);
    let r = &f.root;
    assert_eq!(fs::read(r.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
    assert!(!r.join("etc/remove-me").exists());
    assert!(!r.join("opt/replaced/old.txt").exists());
    assert_eq!(fs::read(r.join("opt/replaced/new.txt")).unwrap(), b"new");
    assert_eq!(fs::metadata(r.join("opt/replaced/new.txt")).unwrap().permissions().mode() & 0o7777, 0o640);
    assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert_eq!(fs::metadata(r.join("bin/hard")).unwrap().ino(), fs::metadata(r.join("bin/busybox")).unwrap().ino());
    assert_eq!(fs::metadata(r.join("ro")).unwrap().permissions().mode() & 0o7777, 0o500);
    assert_eq!(fs::metadata(r.join("etc/passwd")).unwrap().mtime(), 1_700_000_000);
}

#[test]
fn zstd_layers() {
    let f = fixture();
    let t = tar(&[("z.txt", E::Regular, b"zstd", 0o644)]);
    let z = zstd::stream::encode_all(&t[..], 3).unwrap();
    apply(&f, &z).unwrap();
    assert_eq!(fs::read(f.root.join("z.txt")).unwrap(), b"zstd");
}

#[test]
fn dot_dot_entries_are_refused() {
    let f = fixture();
    let err = apply(&f, &tar(&[("../outside/evil", E::Regular, b"x", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::PathTraversal { .. }), "{err}");
    let err = apply(&f, &tar(&[("a/../../outside/evil", E::Regular, b"x", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::PathTraversal { .. }), "{err}");
    outside_untouched(&f);
}

#[test]
fn absolute_paths_are_refused() {
    let f = fixture();
    let name = format!("{}/evil", f.outside.display());
    let err = apply(&f, &tar(&[(&name, E::Regular, b"x", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::AbsolutePath { .. }), "{err}");
    outside_untouched(&f);
}

#[test]
fn a_write_through_a_symlink_stays_inside() {
    let f = fixture();
    let abs = f.outside.display().to_string();
    let layer = tar(&[
        ("abs", E::Symlink, abs.as_bytes(), 0o777),
        ("abs/evil", E::Regular, b"x", 0o644),
        ("rel", E::Symlink, b"../../../../../../../outside", 0o777),
        ("rel/evil2", E::Regular, b"y", 0o644),
        ("abs/victim", E::Regular, b"overwritten?", 0o644),
    ]);
    apply(&f, &layer).unwrap();
    outside_untouched(&f);
    // The writes landed where the symlinks point when the root is taken as `/`.
    let inside = f.root.join(f.outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside.join("evil")).unwrap(), b"x");
    assert_eq!(fs::read(f.root.join("outside/evil2")).unwrap(), b"y");
}

#[test]
fn hard_links_to_outside_are_refused() {
    let f = fixture();
    let abs = format!("{}/victim", f.outside.display());
    let err = apply(&f, &tar(&[("h", E::Link, abs.as_bytes(), 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::HardLinkOutside { .. }), "{err}");
    let err = apply(&f, &tar(&[("h", E::Link, b"../outside/victim", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::HardLinkOutside { .. }), "{err}");
    // Through a symlinked directory: resolved inside the root, where there is no such file.
    let abs_dir = f.outside.display().to_string();
    let err = apply(&f, &tar(&[("d", E::Symlink, abs_dir.as_bytes(), 0o777), ("h2", E::Link, b"d/victim", 0o644)]))
        .unwrap_err();
    assert!(matches!(err, UnpackError::HardLinkOutside { .. }), "{err}");
    outside_untouched(&f);
}

#[test]
fn whiteouts_naming_outside_paths_touch_nothing_outside() {
    let f = fixture();
    let err = apply(&f, &tar(&[("../outside/.wh.victim", E::Regular, b"", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::PathTraversal { .. }), "{err}");
    let err = apply(&f, &tar(&[("a/.wh..", E::Regular, b"", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::PathTraversal { .. }), "{err}");
    let abs_dir = f.outside.display().to_string();
    apply(&f, &tar(&[("d", E::Symlink, abs_dir.as_bytes(), 0o777), ("d/.wh.victim", E::Regular, b"", 0o644)])).unwrap();
    apply(&f, &tar(&[("e", E::Symlink, abs_dir.as_bytes(), 0o777), ("e/.wh..wh..opq", E::Regular, b"", 0o644)]))
        .unwrap();
    outside_untouched(&f);
}

#[test]
fn device_nodes_become_placeholders_unless_allowed() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let f = fixture();
    // The default, even as root: no device node is created.
    let opts = UnpackOptions { preserve_ownership: false, ..UnpackOptions::default() };
    assert!(!opts.devices);
    let layer = tar(&[("dev/mem", E::Char, b"", 0o666), ("dev/sda", E::Block, b"", 0o660)]);
    let s = apply_layer(&f.root, &layer[..], &opts).unwrap();
    assert_eq!(s.placeholder_devices, vec!["dev/mem".to_string(), "dev/sda".to_string()]);
    let m = std::fs::symlink_metadata(f.root.join("dev/mem")).unwrap();
    assert!(m.file_type().is_file() && m.len() == 0, "{m:?}");
    assert!(!m.file_type().is_char_device());
    // --allow-devices restores real nodes (needs root to mknod).
    if rustix::process::geteuid().is_root() {
        let f = fixture();
        let allow = UnpackOptions { devices: true, ..opts };
        let s = apply_layer(&f.root, &tar(&[("dev/null", E::Char, b"", 0o666)])[..], &allow).unwrap();
        assert!(s.placeholder_devices.is_empty());
        let m = std::fs::symlink_metadata(f.root.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device(), "{m:?}");
        let _ = m.rdev();
    }
}

#[test]
fn setid_bits_on_world_writable_files_are_dropped() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let opts = UnpackOptions { preserve_ownership: false, ..UnpackOptions::default() };
    let layer = tar(&[("bin/open", E::Regular, b"x", 0o6777), ("bin/su", E::Regular, b"y", 0o4755)]);
    let s = apply_layer(&f.root, &layer[..], &opts).unwrap();
    assert_eq!(s.setid_dropped, 1);
    let mode = |p: &str| std::fs::metadata(f.root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/open"), 0o777);
    assert_eq!(mode("bin/su"), 0o4755);
}

#[test]
fn unpacked_bytes_are_limited_across_layers() {
    let f = fixture();
    let opts = UnpackOptions { preserve_ownership: false, max_bytes: 1000, ..UnpackOptions::default() };
    let first = apply_layer(&f.root, &gz(&tar(&[("a", E::Regular, &[1u8; 600], 0o644)]))[..], &opts).unwrap();
    assert_eq!(first.bytes, 600);
    let next = opts.after(&first);
    let err = apply_layer(&f.root, &gz(&tar(&[("b", E::Regular, &[2u8; 600], 0o644)]))[..], &next).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { max: 400, .. }), "{err}");
    assert!(!f.root.join("b").exists(), "the entry over the limit was written");
}
