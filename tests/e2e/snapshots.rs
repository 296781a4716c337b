//! The snapshot store end to end, on the shared test images loaded into a local store (no registry needed: the
//! refs point at content already verified in the store): trees flattened from snapshots and the overlay mount equal
//! umoci's unpack; a second image on the same base extracts only its own layer and both run; a SIGKILL during an
//! extraction leaves nothing that looks complete; `image rm` and `prune` remove exactly what no image uses; a layer
//! whose content does not match its config's diff_id is refused.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use wharf_client::io::snapshot::{flatten, mount_overlay, SnapshotStore};
use wharf_client::io::store::ContentStore;
use wharf_client::io::unpack::UnpackOptions;
use wharf_format::image_ref::ImageRef;
use wharf_format::manifest::Descriptor;
use wharf_format::Digest;

fn images() -> &'static Path {
    common::peers::shared_images()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

/// Puts `small`'s manifest, config and layers into `store` under `reference`; returns (config, layers).
fn load_small(store: &ContentStore, reference: &str) -> (Descriptor, Vec<Descriptor>) {
    let layout = images().join("small");
    let index = read_json(&layout.join("index.json"));
    let md = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest = read_json(&blob(&layout, &md));
    let mut digests = vec![md.clone(), manifest["config"]["digest"].as_str().unwrap().to_string()];
    digests.extend(manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    for d in &digests {
        store.put_verified(&d.parse().unwrap(), &std::fs::read(blob(&layout, d)).unwrap()).unwrap();
    }
    let image: ImageRef = reference.parse().unwrap();
    store.set_ref(&image, &md.parse().unwrap()).unwrap();
    let config: Descriptor = serde_json::from_value(manifest["config"].clone()).unwrap();
    let layers: Vec<Descriptor> = serde_json::from_value(manifest["layers"].clone()).unwrap();
    (config, layers)
}

/// A tar layer (uncompressed) of regular files.
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An image on `small`'s layers plus `extra` (an uncompressed tar), with `diff_id` recorded for it (its own digest
/// unless given), stored under `reference`. Returns the new layer's digest.
fn load_variant(store: &ContentStore, reference: &str, extra: &[u8], diff_id: Option<&str>) -> Digest {
    let layout = images().join("small");
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob(&layout, index["manifests"][0]["digest"].as_str().unwrap()));
    load_small(store, "example.invalid/base/small:latest");
    let mut config = read_json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
    let extra_digest = Digest::sha256_of(extra);
    let id = diff_id.map_or(extra_digest.to_string(), str::to_string);
    config["rootfs"]["diff_ids"].as_array_mut().unwrap().push(json!(id));
    // The variant prints its own file when run.
    config["config"]["Entrypoint"] = json!(["/bin/cat", "/etc/variant"]);
    config["config"]["Cmd"] = Value::Null;
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = Digest::sha256_of(&config_bytes);
    store.put_verified(&config_digest, &config_bytes).unwrap();
    store.put_verified(&extra_digest, extra).unwrap();
    let mut m = manifest.clone();
    m["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len()});
    m["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": extra_digest.to_string(), "size": extra.len()
    }));
    let mb = serde_json::to_vec(&m).unwrap();
    let md = Digest::sha256_of(&mb);
    store.put_verified(&md, &mb).unwrap();
    store.set_ref(&reference.parse().unwrap(), &md).unwrap();
    extra_digest
}

fn wharf(store: &Path, args: &[&str]) -> Output {
    Command::new(common::wharf_bin())
        .args(args)
        .env("WHARF_STORE", store)
        .env("WHARF_CONFIG_DIR", store.join("config"))
        .env("WHARF_LOG", "info")
        .output()
        .unwrap()
}

fn ok(store: &Path, args: &[&str]) -> (String, String) {
    let o = wharf(store, args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), plain(&String::from_utf8_lossy(&o.stderr)));
    assert!(o.status.success(), "wharf {args:?} failed: {out}\n{err}");
    (out, err)
}

/// Log text without its terminal colours.
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn umoci_small(dest: &Path) -> PathBuf {
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", images().join("small").display()))
        .arg(dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    dest.join("rootfs")
}

fn snapshot_keys(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("snapshots/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn flattened_and_overlay_trees_equal_umocis_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&tmp.path().join("store")).unwrap();
    let (config, layers) = load_small(&store, "example.invalid/t/small:latest");
    let snaps = SnapshotStore::open(&store).unwrap();
    let (snapshots, fresh) = snaps.prepare(&store, &config, &layers, &UnpackOptions::default()).unwrap();
    assert_eq!((snapshots.len(), fresh), (3, 3));
    let theirs = common::tree(&umoci_small(&tmp.path().join("umoci")));
    assert!(theirs.len() > 10, "suspiciously small tree");

    let flat = tmp.path().join("flat");
    flatten(&snapshots, &flat).unwrap();
    let diff = common::tree_diff(&common::tree(&flat), &theirs);
    assert!(diff.is_empty(), "flattened from snapshots: {} differences:\n{}", diff.len(), diff.join("\n"));

    // The same tree through the kernel's overlayfs, whiteouts and opaque directories applied by it.
    let (upper, work, target) = (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("mnt"));
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mounted = mount_overlay(&snapshots, &upper, &work, &target, false).unwrap();
    let ours = common::tree(&target);
    drop(mounted);
    let diff = common::tree_diff(&ours, &theirs);
    assert!(diff.is_empty(), "overlay mount: {} differences:\n{}", diff.len(), diff.join("\n"));
    // Asked again, nothing is extracted: the snapshots are shared.
    let (_, fresh) = snaps.prepare(&store, &config, &layers, &UnpackOptions::default()).unwrap();
    assert_eq!(fresh, 0);
}

#[test]
fn a_second_image_on_the_same_base_extracts_only_its_own_layer_and_both_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ContentStore::open(&root).unwrap();
    load_variant(&store, "example.invalid/t/variant:latest", &layer(&[("etc/variant", b"variant-ok\n")]), None);
    let base = "example.invalid/base/small:latest";
    let (out, err) = ok(&root, &["run", base]);
    assert!(out.contains("interop-small-ok"), "{out}");
    assert!(err.contains("extracted=3"), "the first run extracts the three base layers: {err}");
    let before = snapshot_keys(&root);
    assert_eq!(before.len(), 3);
    let inode = |k: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(root.join("snapshots/sha256").join(k).join("fs")).unwrap().ino()
    };
    let inodes: Vec<u64> = before.iter().map(|k| inode(k)).collect();
    let (out, err) = ok(&root, &["run", "example.invalid/t/variant:latest"]);
    assert_eq!(out.trim(), "variant-ok");
    assert!(err.contains("extracted=1"), "the second run extracts only its own layer: {err}");
    let after = snapshot_keys(&root);
    assert_eq!(after.len(), 4);
    assert!(before.iter().all(|k| after.contains(k)));
    assert_eq!(inodes, before.iter().map(|k| inode(k)).collect::<Vec<_>>(), "the shared snapshots were rebuilt");
    // Both run again, sharing everything; no container is left behind.
    let (out, _) = ok(&root, &["run", base]);
    assert!(out.contains("interop-small-ok"), "{out}");
    assert_eq!(std::fs::read_dir(root.join("containers")).unwrap().count(), 0);
    // `images` reports the shared bytes.
    let (json, _) = ok(&root, &["images", "--json"]);
    let list: Value = serde_json::from_str(&json).unwrap();
    let small = list.as_array().unwrap().iter().find(|i| i["reference"] == base).unwrap();
    assert!(small["extracted"].as_bool().unwrap());
    assert_eq!(small["shared_bytes"], small["unpacked_bytes"], "all of small is shared with the variant");
    assert!(small["shared_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn a_killed_extraction_leaves_no_snapshot_that_looks_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ContentStore::open(&root).unwrap();
    // A layer of 40,000 files: long enough to be caught in the middle.
    let names: Vec<String> = (0..40_000).map(|i| format!("many/{}/f{i}", i % 100)).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"data"[..])).collect();
    let extra = load_variant(&store, "example.invalid/t/many:latest", &layer(&files), None);
    let key = extra.hex().to_string();
    let mut child = Command::new(common::wharf_bin())
        .args(["unpack", "example.invalid/t/many:latest"])
        .arg(tmp.path().join("out1"))
        .env("WHARF_STORE", &root)
        .env("WHARF_CONFIG_DIR", root.join("config"))
        .spawn()
        .unwrap();
    // Wait until the big layer's extraction is under way, then kill.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let tmpdir = root.join("snapshots/tmp");
    loop {
        let busy = std::fs::read_dir(&tmpdir).map(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&key)
                    && std::fs::read_dir(e.path().join("fs/many")).map(|m| m.count() > 10).unwrap_or(false)
            })
        });
        if busy.unwrap_or(false) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the extraction never started");
        assert!(child.try_wait().unwrap().is_none(), "wharf finished before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!root.join("snapshots/sha256").join(&key).exists(), "a killed extraction left a complete-looking snapshot");
    assert!(std::fs::read_dir(&tmpdir).unwrap().count() > 0, "the interrupted extraction should be left in tmp/");
    let (json, _) = ok(&root, &["images", "--json"]);
    let list: Value = serde_json::from_str(&json).unwrap();
    let many = list.as_array().unwrap().iter().find(|i| i["reference"] == "example.invalid/t/many:latest").unwrap();
    assert_eq!(many["extracted"], false);
    // The next run redoes it, and the leftover of the dead process is cleared.
    let out2 = tmp.path().join("out2");
    ok(&root, &["unpack", "example.invalid/t/many:latest", out2.to_str().unwrap()]);
    assert!(root.join("snapshots/sha256").join(&key).join("info.json").is_file());
    assert_eq!(std::fs::read_dir(out2.join("many/7")).unwrap().count(), 400);
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0, "stale extraction leftovers remain");
}

#[test]
fn prune_after_image_rm_removes_exactly_what_no_remaining_image_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ContentStore::open(&root).unwrap();
    let own = load_variant(&store, "example.invalid/t/variant:latest", &layer(&[("etc/variant", b"v\n")]), None);
    let base = "example.invalid/base/small:latest";
    ok(&root, &["unpack", base, tmp.path().join("a").to_str().unwrap()]);
    ok(&root, &["unpack", "example.invalid/t/variant:latest", tmp.path().join("b").to_str().unwrap()]);
    let blobs_before = store_blobs(&root);
    assert_eq!(snapshot_keys(&root).len(), 4);
    // Nothing is unused yet.
    let (json, _) = ok(&root, &["prune", "--json"]);
    let r: Value = serde_json::from_str(&json).unwrap();
    assert_eq!((r["blobs"].as_array().unwrap().len(), r["snapshots"].as_array().unwrap().len()), (0, 0), "{r}");

    let (json, _) = ok(&root, &["image", "rm", "--json", "example.invalid/t/variant:latest"]);
    let r: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["untagged"], json!(["example.invalid/t/variant:latest"]));
    assert_eq!(r["snapshots"], json!([own.hex()]), "only the variant's own snapshot goes");
    assert_eq!(snapshot_keys(&root).len(), 3);

    let (json, _) = ok(&root, &["prune", "--json"]);
    let r: Value = serde_json::from_str(&json).unwrap();
    let removed: Vec<String> = r["blobs"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect();
    // Exactly the variant's manifest, config and own layer: the blobs before less those small still uses.
    let remaining = store_blobs(&root);
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(removed.contains(&own.to_string()));
    assert_eq!(remaining.len() + 3, blobs_before.len());
    assert!(removed.iter().all(|b| !remaining.contains(b)));
    // What remains still makes small, without extracting anything.
    let (_, err) = ok(&root, &["run", base]);
    assert!(err.contains("extracted=0"), "{err}");

    ok(&root, &["image", "rm", base]);
    ok(&root, &["prune"]);
    assert!(store_blobs(&root).is_empty() && snapshot_keys(&root).is_empty(), "an empty store keeps nothing");
    let missing = wharf(&root, &["image", "rm", base]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no such image"));
}

fn store_blobs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ContentStore::open(&root).unwrap();
    let wrong = Digest::sha256_of(b"not this layer").to_string();
    load_variant(&store, "example.invalid/t/liar:latest", &layer(&[("etc/x", b"x")]), Some(&wrong));
    let o = wharf(&root, &["unpack", "example.invalid/t/liar:latest", tmp.path().join("out").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("diff_id"), "{err}");
    assert_eq!(snapshot_keys(&root).len(), 3, "only the honest base layers became snapshots");
    assert_eq!(std::fs::read_dir(root.join("snapshots/tmp")).unwrap().count(), 0);
}
