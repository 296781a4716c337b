//! Wharf's layer unpacking against umoci's, on the shared test images: the trees must be identical (paths, types,
//! modes, owners, link targets, contents, mtimes).

use crate::common;

use common::tree;

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_client::io::unpack::{apply_layer, UnpackOptions};

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

#[test]
fn wharf_unpack_matches_umoci_on_the_test_images() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    common::peers::make_test_images(&images, false);
    for image in ["small", "index"] {
        let layout = images.join(image);
        let index = read_json(&layout.join("index.json"));
        let mut desc = index["manifests"][0].clone();
        // For an index, take its linux/amd64 image.
        if desc["mediaType"] == "application/vnd.oci.image.index.v1+json" {
            let inner = read_json(&blob(&layout, desc["digest"].as_str().unwrap()));
            desc = inner["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["platform"]["architecture"] == "amd64")
                .unwrap()
                .clone();
        }
        let manifest = read_json(&blob(&layout, desc["digest"].as_str().unwrap()));
        let ours = tmp.path().join(format!("{image}-wharf"));
        std::fs::create_dir_all(&ours).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let f = std::fs::File::open(blob(&layout, layer["digest"].as_str().unwrap())).unwrap();
            apply_layer(&ours, f, &UnpackOptions::default()).unwrap();
        }
        // umoci unpacks by reference; point a tag at the chosen manifest for the index case.
        let bundle = tmp.path().join(format!("{image}-umoci"));
        let tag = if image == "index" { "amd64" } else { "latest" };
        let out = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle)
            .output()
            .expect("umoci");
        assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
        let (a, b) = (tree(&ours), tree(&bundle.join("rootfs")));
        let diff = common::tree_diff(&a, &b);
        assert!(diff.is_empty(), "{image}: {} differences:\n{}", diff.len(), diff.join("\n"));
        assert!(a.len() > 10, "{image}: suspiciously small tree ({} entries)", a.len());
    }
}
