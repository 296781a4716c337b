//! Layer unpacking: ordinary content, whiteouts, and hostile layers that try to reach outside the root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use wharf_client::io::unpack::{extract, Budget, Form, UnpackError, UnpackOptions};

thread_local! {
    /// The form the hostile-layer tests run in: each runs twice, flattening and into a snapshot (`both!`).
    static FORM: std::cell::Cell<Form> = const { std::cell::Cell::new(Form::Flatten) };
}

/// Applies a layer in the current test's form.
fn run(root: &Path, layer: &[u8], opts: &UnpackOptions) -> Result<wharf_client::io::unpack::LayerStats, UnpackError> {
    extract(root, layer, opts, FORM.get(), &Budget::new(opts.max_bytes), None)
}

/// A test run in both forms: `NAME::flatten` and `NAME::snapshot`.
macro_rules! both {
    ($name:ident $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body() $body
            #[test]
            fn flatten() {
                FORM.set(Form::Flatten);
                body()
            }
            #[test]
            fn snapshot() {
                FORM.set(Form::overlay());
                body()
            }
        }
    };
}

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

fn apply(f: &Fixture, layer: &[u8]) -> Result<wharf_client::io::unpack::LayerStats, UnpackError> {
    run(&f.root, layer, &UnpackOptions::default())
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

both!(dot_dot_entries_are_refused {
    let f = fixture();
    let err = apply(&f, &tar(&[("../outside/evil", E::Regular, b"x", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::PathTraversal { .. }), "{err}");
    let err = apply(&f, &tar(&[("a/../../outside/evil", E::Regular, b"x", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::PathTraversal { .. }), "{err}");
    outside_untouched(&f);
});

both!(absolute_paths_are_refused {
    let f = fixture();
    let name = format!("{}/evil", f.outside.display());
    let err = apply(&f, &tar(&[(&name, E::Regular, b"x", 0o644)])).unwrap_err();
    assert!(matches!(err, UnpackError::AbsolutePath { .. }), "{err}");
    outside_untouched(&f);
});

both!(a_write_through_a_symlink_stays_inside {
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
});

both!(hard_links_to_outside_are_refused {
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
});

both!(whiteouts_naming_outside_paths_touch_nothing_outside {
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
});

both!(device_nodes_become_placeholders_unless_allowed {
    use std::os::unix::fs::FileTypeExt;
    let f = fixture();
    // The default, even as root: no device node is created.
    let opts = UnpackOptions { preserve_ownership: false, ..UnpackOptions::default() };
    assert!(!opts.devices);
    let layer = tar(&[("dev/mem", E::Char, b"", 0o666), ("dev/sda", E::Block, b"", 0o660)]);
    let s = run(&f.root, &layer[..], &opts).unwrap();
    assert_eq!(s.placeholder_devices, vec!["dev/mem".to_string(), "dev/sda".to_string()]);
    let m = std::fs::symlink_metadata(f.root.join("dev/mem")).unwrap();
    assert!(m.file_type().is_file() && m.len() == 0, "{m:?}");
    assert!(!m.file_type().is_char_device());
    // --allow-devices restores real nodes (needs root to mknod).
    if rustix::process::geteuid().is_root() {
        let f = fixture();
        let allow = UnpackOptions { devices: true, ..opts };
        let s = run(&f.root, &tar(&[("dev/null", E::Char, b"", 0o666)])[..], &allow).unwrap();
        assert!(s.placeholder_devices.is_empty());
        let m = std::fs::symlink_metadata(f.root.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device(), "{m:?}");
        let _ = m.rdev();
    }
});

both!(setid_bits_on_world_writable_files_are_dropped {
    let f = fixture();
    let opts = UnpackOptions { preserve_ownership: false, ..UnpackOptions::default() };
    let layer = tar(&[("bin/open", E::Regular, b"x", 0o6777), ("bin/su", E::Regular, b"y", 0o4755)]);
    let s = run(&f.root, &layer[..], &opts).unwrap();
    assert_eq!(s.setid_dropped, 1);
    let mode = |p: &str| std::fs::metadata(f.root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/open"), 0o777);
    assert_eq!(mode("bin/su"), 0o4755);
});

both!(unpacked_bytes_are_limited_across_layers {
    let f = fixture();
    let opts = UnpackOptions { preserve_ownership: false, max_bytes: 1000, ..UnpackOptions::default() };
    let first = run(&f.root, &gz(&tar(&[("a", E::Regular, &[1u8; 600], 0o644)]))[..], &opts).unwrap();
    assert_eq!(first.bytes, 600);
    let next = opts.after(&first);
    let err = run(&f.root, &gz(&tar(&[("b", E::Regular, &[2u8; 600], 0o644)]))[..], &next).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { max: 400, .. }), "{err}");
    assert!(!f.root.join("b").exists(), "the entry over the limit was written");
});

#[test]
fn snapshots_keep_whiteouts_in_overlay_form_and_check_the_diff_id() {
    use std::os::unix::fs::FileTypeExt;
    let f = fixture();
    let layer = tar(&[
        ("etc", E::Directory, b"", 0o755),
        ("etc/.wh.gone", E::Regular, b"", 0o644),
        ("var", E::Directory, b"", 0o755),
        ("var/.wh..wh..opq", E::Regular, b"", 0o644),
        ("var/new", E::Regular, b"kept", 0o644),
    ]);
    let opts = UnpackOptions::default();
    let diff_id = wharf_format::Digest::sha256_of(&layer);
    let gzipped = gz(&layer);
    let form = Form::overlay();
    let s = extract(&f.root, &gzipped[..], &opts, form, &Budget::new(1 << 20), Some(&diff_id)).unwrap();
    assert_eq!(s.whiteouts, 2);
    let m = fs::symlink_metadata(f.root.join("etc/gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0, "a whiteout is a 0:0 character device: {m:?}");
    let Form::Overlay { opaque_xattr } = form else { unreachable!() };
    let mut v = [0u8; 4];
    let n = rustix::fs::getxattr(f.root.join("var").as_path(), opaque_xattr, &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y", "the opaque directory carries {opaque_xattr}");
    assert_eq!(fs::read(f.root.join("var/new")).unwrap(), b"kept");
    assert!(!f.root.join("etc/.wh.gone").exists() && !f.root.join("var/.wh..wh..opq").exists());

    // The same layer against a different diff_id: refused after the stream, naming both digests.
    let g = fixture();
    let wrong = wharf_format::Digest::sha256_of(b"something else");
    let err = extract(&g.root, &gzipped[..], &opts, form, &Budget::new(1 << 20), Some(&wrong)).unwrap_err();
    match err {
        UnpackError::DiffIdMismatch { expected, actual } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, diff_id);
        }
        other => panic!("expected a diff_id mismatch, got {other}"),
    }
}

#[test]
fn many_files_on_the_pool_keep_links_modes_and_directory_times() {
    let f = fixture();
    let mut entries: Vec<(String, E, Vec<u8>, u32)> = vec![("d".into(), E::Directory, vec![], 0o555)];
    for i in 0..500 {
        entries.push((format!("d/f{i}"), E::Regular, format!("file {i}").into_bytes(), 0o640));
    }
    entries.push(("d/link".into(), E::Link, b"d/f499".to_vec(), 0o640));
    entries.push(("big".into(), E::Regular, vec![7u8; 3 << 20], 0o600));
    let refs: Vec<(&str, E, &[u8], u32)> =
        entries.iter().map(|(n, k, d, m)| (n.as_str(), *k, d.as_slice(), *m)).collect();
    for form in [Form::Flatten, Form::overlay()] {
        let g = fixture();
        let s =
            extract(&g.root, &tar(&refs)[..], &UnpackOptions::default(), form, &Budget::new(1 << 30), None).unwrap();
        assert_eq!((s.files, s.hardlinks), (501, 1));
        for i in [0, 250, 499] {
            assert_eq!(fs::read(g.root.join(format!("d/f{i}"))).unwrap(), format!("file {i}").into_bytes());
        }
        let meta = |p: &str| fs::symlink_metadata(g.root.join(p)).unwrap();
        assert_eq!(meta("d/link").ino(), meta("d/f499").ino(), "the hard link shares the target's inode");
        assert_eq!(meta("d/f7").permissions().mode() & 0o7777, 0o640);
        assert_eq!(meta("d").permissions().mode() & 0o7777, 0o555, "the directory's mode is applied last");
        assert_eq!(meta("d").mtime(), 1_700_000_000, "the directory's time is applied after its children");
        assert_eq!(meta("big").len(), 3 << 20);
    }
    drop(f);
}
