//! The `wharf` client end to end against a real `wharf serve`: push --sign the shared test images, pull them
//! verified, unpack them (trees equal to umoci's unpack of the same layouts), run `small`, and check a tag that
//! `wharf trust sign` signed with python-tuf's reference client.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::client::Client;
use common::peers::make_test_images;
use common::{tree, tree_diff, Server};

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .expect("umoci");
    assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    bundle.join("rootfs")
}

#[test]
fn push_sign_pull_unpack_run_the_test_images() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    make_test_images(&images, true);
    let s = Server::start(&[]);
    let c = Client::new();
    let host = s.addr.clone();

    for (image, tag, umoci_tag) in
        [("small", "latest", "latest"), ("index", "latest", "amd64"), ("big", "latest", "latest")]
    {
        let repo = format!("e2e/{image}");
        let reference = format!("{host}/{repo}:{tag}");
        c.ok(&["trust", "init", &format!("{host}/{repo}")]);
        let out = c.ok(&["push", "--sign", &format!("oci:{}:{tag}", images.join(image).display()), &reference]);
        assert!(out.contains("signed sha256:"), "{out}");
        let root = c.root_of(&host, &repo);
        let ours = tmp.path().join(format!("{image}-wharf"));
        if image == "big" {
            // Not pulled before: `unpack` downloads and applies in one pipeline, verified the same way.
            c.ok(&["unpack", "--trust-root", root.to_str().unwrap(), &reference, ours.to_str().unwrap()]);
        } else {
            let out = c.ok(&["pull", "--trust-root", root.to_str().unwrap(), &reference]);
            assert!(out.contains("verified sha256:"), "{out}");
            c.ok(&["unpack", &reference, ours.to_str().unwrap()]);
        }
        let theirs = umoci_unpack(&images.join(image), umoci_tag, &tmp.path().join(format!("{image}-umoci")));
        let diff = tree_diff(&tree(&ours), &tree(&theirs));
        assert!(diff.is_empty(), "{image}: {} differences from umoci:\n{}", diff.len(), diff.join("\n"));
    }

    // Run `small` with an OCI runtime.
    let expected = std::fs::read_to_string(images.join("small.expected-output")).unwrap();
    let out = c.ok(&["run", &format!("{host}/e2e/small:latest")]);
    assert!(out.contains(expected.trim()), "run printed:\n{out}");

    // Pushing the same image to another repository mounts its blobs instead of uploading them again.
    let out =
        c.ok(&["push", &format!("oci:{}:latest", images.join("small").display()), &format!("{host}/e2e/copy:latest")]);
    assert!(out.contains("0 blobs uploaded, 4 mounted"), "{out}");

    // The registry's tag moved to another image without a signature: the pull still gets the signed image.
    c.ok(&["push", &format!("oci:{}:latest", images.join("index").display()), &format!("{host}/e2e/small:latest")]);
    let fresh = Client { store: tempfile::tempdir().unwrap(), config: tempfile::tempdir().unwrap() };
    let root = c.root_of(&host, "e2e/small");
    let out = fresh.ok(&["pull", "--trust-root", root.to_str().unwrap(), &format!("{host}/e2e/small:latest")]);
    assert!(out.contains("sha256:b8b5ec2b50b2d37fbec3270699b6bf0aedf08ea9c75b69282027a27fbda37679"), "{out}");
    // An unsigned tag does not resolve; the exit code says verification failed.
    c.ok(&["push", &format!("oci:{}:latest", images.join("small").display()), &format!("{host}/e2e/small:unsigned")]);
    let out = fresh.wharf(&["pull", "--trust-root", root.to_str().unwrap(), &format!("{host}/e2e/small:unsigned")]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));
    // A pull by digest needs no trust data.
    fresh.ok(&[
        "pull",
        &format!("{host}/e2e/small@sha256:b8b5ec2b50b2d37fbec3270699b6bf0aedf08ea9c75b69282027a27fbda37679"),
    ]);
    // Without a pinned root and without an explicit first-use opt-in, nothing is trusted.
    let out = Client::new().wharf(&["pull", &format!("{host}/e2e/small:latest")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trusted root"));
    let tofu = Client::new();
    let out = tofu.ok(&["pull", "--trust-on-first-use", &format!("{host}/e2e/small:latest")]);
    assert!(out.contains("trusting the repository's root on first use"), "{out}");
}

#[test]
fn a_tag_signed_by_wharf_trust_sign_passes_python_tuf_and_revocation_works() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    make_test_images(&images, false);
    let s = Server::start(&[]);
    let c = Client::new();
    let host = s.addr.clone();
    let reference = format!("{host}/signed/app:v1");
    c.ok(&["trust", "init", &format!("{host}/signed/app")]);
    c.ok(&["push", &format!("oci:{}:latest", images.join("small").display()), &reference]);
    let out = c.ok(&["trust", "sign", &reference]);
    assert!(out.contains("signed sha256:b8b5ec2b"), "{out}");
    let inspect = c.ok(&["trust", "inspect", "--json", &format!("{host}/signed/app")]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).unwrap_or_else(|_| panic!("{inspect}"));
    assert_eq!(v[0]["tag"], "v1");
    assert_eq!(v[0]["digest"], "sha256:b8b5ec2b50b2d37fbec3270699b6bf0aedf08ea9c75b69282027a27fbda37679");

    let root = c.root_of(&host, "signed/app");
    let out = Command::new(common::peers::peers().join("tuf-client-check"))
        .arg(s.url("/v2/signed/app/_tuf/"))
        .arg(s.url("/v2/signed/app/_tuf/targets/"))
        .arg(&root)
        .arg("v1")
        .arg("b8b5ec2b50b2d37fbec3270699b6bf0aedf08ea9c75b69282027a27fbda37679")
        .output()
        .expect("tuf-client-check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().last().unwrap_or("").ends_with(", 0 failed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The pinned root can come from the client's config file instead of a flag.
    let configured = Client::new();
    std::fs::write(
        configured.config.path().join("config.toml"),
        format!("[trust_roots]\n\"{host}/signed/app\" = {:?}\n", root.display().to_string()),
    )
    .unwrap();
    let out = configured.ok(&["pull", &reference]);
    assert!(out.contains("verified sha256:b8b5ec2b"), "{out}");

    // A `docker save` archive (written by skopeo) pushes, pulls verified and unpacks to the same tree.
    let archive = tmp.path().join("small-docker.tar");
    let out = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:latest", images.join("small").display()))
        .arg(format!("docker-archive:{}:test/small:v1", archive.display()))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dref = format!("{host}/signed/docker:v1");
    c.ok(&["trust", "init", &format!("{host}/signed/docker")]);
    c.ok(&["push", "--sign", &format!("docker-archive:{}", archive.display()), &dref]);
    let droot = c.root_of(&host, "signed/docker");
    let puller = Client::new();
    let ours = tmp.path().join("docker-wharf");
    puller.ok(&["unpack", "--trust-root", droot.to_str().unwrap(), &dref, ours.to_str().unwrap()]);
    let theirs = umoci_unpack(&images.join("small"), "latest", &tmp.path().join("docker-umoci"));
    let diff = tree_diff(&tree(&ours), &tree(&theirs));
    assert!(diff.is_empty(), "docker-archive: {}", diff.join("\n"));

    c.ok(&["trust", "revoke", &reference]);
    let out = Client::new().wharf(&["pull", "--trust-root", root.to_str().unwrap(), &reference]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn signers_delegations_and_key_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    make_test_images(&images, false);
    let s = Server::start(&[]);
    let c = Client::new();
    let host = s.addr.clone();
    let repo_ref = format!("{host}/team/app");
    let reference = format!("{repo_ref}:v1");
    let digest = "b8b5ec2b50b2d37fbec3270699b6bf0aedf08ea9c75b69282027a27fbda37679";
    c.ok(&["trust", "init", &repo_ref]);
    let first_root = tmp.path().join("root-v1.json");
    std::fs::copy(c.root_of(&host, "team/app"), &first_root).unwrap();
    let first_root = first_root.to_str().unwrap().to_string();
    c.ok(&["push", &format!("oci:{}:latest", images.join("small").display()), &reference]);
    // The publisher's own root is pinned by `trust init`: its next pull verifies without --trust-root.
    let own = format!("{repo_ref}:v0");
    c.ok(&["push", "--sign", &format!("oci:{}:latest", images.join("small").display()), &own]);
    let out = c.ok(&["pull", &own]);
    assert!(out.contains(&format!("verified sha256:{digest}")), "{out}");

    // A signer: key generated, delegated, signing into its own role.
    c.ok(&["trust", "key", "generate", "alice", "--dir", tmp.path().to_str().unwrap()]);
    c.ok(&["trust", "signer", "add", "alice", &repo_ref, "--key", tmp.path().join("alice.pub").to_str().unwrap()]);
    let out = c.ok(&["trust", "sign", "--signer", "alice", &reference]);
    assert!(out.contains("alice version 1"), "{out}");
    let out = Client::new().ok(&["pull", "--trust-root", &first_root, &reference]);
    assert!(out.contains("signed by alice"), "{out}");
    let inspect = c.ok(&["trust", "inspect", &repo_ref]);
    assert!(inspect.contains("alice"), "{inspect}");
    // python-tuf finds it through the delegation too.
    let out = Command::new(common::peers::peers().join("tuf-client-check"))
        .arg(s.url("/v2/team/app/_tuf/"))
        .arg(s.url("/v2/team/app/_tuf/targets/"))
        .arg(&first_root)
        .arg("v1")
        .arg(digest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // Revoking the signer revokes its signatures.
    c.ok(&["trust", "signer", "remove", "alice", &repo_ref]);
    let out = Client::new().wharf(&["pull", "--trust-root", &first_root, &reference]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    // Rotating every key; a client pinned to root v1 follows the chain.
    for role in ["targets", "root", "timestamp", "snapshot"] {
        let out = c.ok(&["trust", "key", "rotate", &repo_ref, role]);
        assert!(out.contains("key rotated"), "{out}");
        c.ok(&["trust", "sign", &reference]);
        let out = Client::new().ok(&["pull", "--trust-root", &first_root, &reference]);
        assert!(out.contains(&format!("verified sha256:{digest}")), "after rotating {role}: {out}");
        // The publisher's machine pinned the rotated root: no --trust-root needed.
        let out = c.ok(&["pull", &reference]);
        assert!(out.contains(&format!("verified sha256:{digest}")), "publisher after rotating {role}: {out}");
        let pinned =
            std::fs::read(c.store.path().join("trust").join(host.replace(':', "_")).join("team/app/root.json"));
        assert_eq!(pinned.unwrap(), std::fs::read(c.root_of(&host, "team/app")).unwrap(), "rotated root not pinned");
    }
}
