//! The verifying mirror against real servers: an origin `wharf serve` whose tags are signed with `wharf push --sign`
//! (TUF 1.0, the publisher's own keys), and a mirror `wharf serve` with a `[[mirror]]` entry and a `[[policy]]` rule
//! pinning the publisher's root. The mirror serves the signed tag, and refuses an unsigned tag and a tag moved at
//! the origin under its signature (`403 DENIED`, naming the rule and what is missing), by tag, by digest and blob by
//! blob; docker, containerd and podman, pointed at it by their own mirror settings, get the same answers.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::client::Client;
use common::Server;

/// The origin, its publisher, and the digests of what its tags name.
struct Origin {
    server: Server,
    log: PathBuf,
    /// The publisher's root of `library/small`, the mirror's pinned root.
    root: PathBuf,
    /// `library/small:signed` (also what `tampered` was signed for).
    signed: String,
    /// `library/small:unsigned`, and where `tampered` points now.
    unsigned: String,
    /// Holds the pinned root's directory.
    _publisher: Client,
}

fn logged(dir: &Path, name: &str, env: &[(&str, &str)]) -> (Server, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut all = vec![("__stderr", log.to_str().unwrap()), ("WHARF_LOG", "info,wharf_registry::observe=debug")];
    all.extend_from_slice(env);
    (Server::start(&all), log)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

/// `GET` of `path` on `s`: status, OCI error code and message (or the digest header on success), and the body.
fn get(s: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let r = http().get(s.url(path)).header("accept", ACCEPT).send().unwrap();
    let status = r.status().as_u16();
    let digest = r.headers().get("docker-content-digest").map(|v| v.to_str().unwrap().to_string());
    let body = r.bytes().unwrap().to_vec();
    if status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (code, message) = (&v["errors"][0]["code"], &v["errors"][0]["message"]);
        let text = format!("{} {}", code.as_str().unwrap_or(""), message.as_str().unwrap_or(""));
        return (status, text, body);
    }
    (status, digest.unwrap_or_default(), body)
}

/// Signed, unsigned and tampered tags of `library/small` at a fresh origin, and `nopin/small` signed too.
fn origin(dir: &Path) -> Origin {
    let images = common::peers::shared_images();
    let (server, log) = logged(dir, "origin", &[]);
    let host = server.addr.clone();
    let publisher = Client::new();
    let small = format!("oci:{}:latest", images.join("small").display());
    let index = format!("oci:{}:latest", images.join("index").display());
    for repo in ["library/small", "nopin/small"] {
        publisher.ok(&["trust", "init", &format!("{host}/{repo}")]);
        publisher.ok(&["push", "--sign", &small, &format!("{host}/{repo}:signed")]);
    }
    publisher.ok(&["push", &index, &format!("{host}/library/small:unsigned")]);
    publisher.ok(&["push", &index, &format!("{host}/other/small:unsigned")]);
    // Signed for `small`, then moved to `index` at the origin without a new signature.
    publisher.ok(&["push", "--sign", &small, &format!("{host}/library/small:tampered")]);
    publisher.ok(&["push", &index, &format!("{host}/library/small:tampered")]);
    let digest = |tag: &str| get(&server, &format!("/v2/library/small/manifests/{tag}")).1;
    let (signed, unsigned) = (digest("signed"), digest("unsigned"));
    assert_eq!(digest("tampered"), unsigned, "the origin's tag moved");
    assert_ne!(signed, unsigned);
    let root = publisher.root_of(&host, "library/small");
    assert!(root.exists(), "{}", root.display());
    Origin { server, log, root, signed, unsigned, _publisher: publisher }
}

/// A mirror of `o` for every name, with a rule over `library/**` pinning the publisher's root and one over
/// `nopin/**` that pins none.
fn verifying_mirror(dir: &Path, o: &Origin) -> (Server, PathBuf) {
    let config = dir.join("mirror.toml");
    let text = format!(
        "[[mirror]]\nupstream = \"{}\"\nprefix = \"*\"\ntag_freshness_secs = 60\n\n\
         [[policy]]\nname = \"upstream-signed\"\nrepositories = [\"library/**\"]\n\
         require = {{ tuf = {{ root = \"{}\" }} }}\n\n\
         [[policy]]\nname = \"no-pin\"\nrepositories = [\"nopin/**\"]\nrequire = {{ tuf = {{}} }}\n",
        o.server.url(""),
        o.root.display()
    );
    std::fs::write(&config, text).unwrap();
    logged(dir, "mirror", &[("WHARF_CONFIG", config.to_str().unwrap())])
}

/// The digests a manifest or index references.
fn references(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut out: Vec<String> = Vec::new();
    for list in ["manifests", "layers"] {
        for d in v[list].as_array().into_iter().flatten() {
            out.push(d["digest"].as_str().unwrap().to_string());
        }
    }
    if let Some(c) = v["config"]["digest"].as_str() {
        out.push(c.to_string());
    }
    out
}

fn origin_gets(log: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains("method=GET") && l.contains(needle)).count()
}

#[test]
fn the_mirror_serves_signed_upstream_content_and_denies_unsigned_and_moved_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let o = origin(tmp.path());
    let (m, mlog) = verifying_mirror(tmp.path(), &o);

    // The signed tag: served, with its blobs, and by digest.
    let (status, digest, body) = get(&m, "/v2/library/small/manifests/signed");
    assert_eq!((status, digest.as_str()), (200, o.signed.as_str()));
    for d in references(&body) {
        let (status, text, _) = get(&m, &format!("/v2/library/small/blobs/{d}"));
        assert_eq!(status, 200, "{d}: {text}");
    }
    assert_eq!(get(&m, &format!("/v2/library/small/manifests/{}", o.signed)).0, 200);

    // Unsigned and moved tags: 403 DENIED naming the rule and what is missing.
    let (status, text, _) = get(&m, "/v2/library/small/manifests/unsigned");
    assert_eq!(status, 403, "{text}");
    assert!(
        text.starts_with("DENIED") && text.contains("upstream-signed") && text.contains("tag unsigned is not signed"),
        "{text}"
    );
    let (status, text, _) = get(&m, "/v2/library/small/manifests/tampered");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains(&format!("tag tampered is signed for {}, not {}", o.signed, o.unsigned)), "{text}");

    // The denied image is not served by digest, nor are its children and blobs, although the mirror fetched it.
    let (status, text, _) = get(&m, &format!("/v2/library/small/manifests/{}", o.unsigned));
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("no signed tag names"), "{text}");
    let (_, _, index) = get(&o.server, &format!("/v2/library/small/manifests/{}", o.unsigned));
    for d in references(&index) {
        let (status, text, _) = get(&m, &format!("/v2/library/small/manifests/{d}"));
        let (bstatus, btext, _) = get(&m, &format!("/v2/library/small/blobs/{d}"));
        assert_eq!((status, bstatus), (403, 403), "{d}: {text} / {btext}");
    }

    // A rule without a pinned root denies: the mirror does not take the upstream's root on trust.
    let (status, text, _) = get(&m, "/v2/nopin/small/manifests/signed");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("no-pin") && text.contains("pins no root"), "{text}");
    // A repository no rule covers is mirrored as before; trust data stays readable through the mirror.
    assert_eq!(get(&m, "/v2/other/small/manifests/unsigned").0, 200);
    assert_eq!(get(&m, "/v2/library/small/_tuf/timestamp.json").0, 200);

    // Warm: the verdict is cached, so pulling the signed tag again asks the origin for no trust data.
    let before = origin_gets(&o.log, "/_tuf/");
    for _ in 0..3 {
        assert_eq!(get(&m, "/v2/library/small/manifests/signed").0, 200);
    }
    assert_eq!(origin_gets(&o.log, "/_tuf/"), before, "a warm verified pull reads no trust data upstream");
    assert!(std::fs::read_to_string(&mlog).unwrap().contains("mirror denied upstream content"));
}

#[test]
fn docker_containerd_and_podman_get_only_verified_content_through_their_mirror_settings() {
    let _engines = common::engines();
    let tmp = tempfile::tempdir().unwrap();
    let o = origin(tmp.path());
    let (m, _) = verifying_mirror(tmp.path(), &o);
    let out = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/policy-mirror-engines"))
        .arg(&m.addr)
        .arg(&o.signed)
        .output()
        .expect("policy-mirror-engines");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success() && text.contains("9 passed, 0 failed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Where an engine shows the mirror's answer, it is the policy's denial, not a network error.
    for line in text.lines().filter(|l| l.starts_with("DENIAL ") && l.contains("DENIED")) {
        assert!(line.contains("upstream-signed"), "{line}");
    }
}

/// The `notary` CLI (an independent Notary v1 implementation) at `dir`'s trust directory, against `s`.
fn notary(dir: &Path, s: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new("notary")
        .arg("-s")
        .arg(s.url(""))
        .arg("-d")
        .arg(dir)
        .args(args)
        .envs([
            ("NOTARY_ROOT_PASSPHRASE", "root-pass"),
            ("NOTARY_TARGETS_PASSPHRASE", "targets-pass"),
            ("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass"),
        ])
        .output()
        .expect("notary");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "notary {args:?}: {text}");
    text
}

#[test]
fn notary_v1_tags_signed_with_the_notary_cli_verify_through_the_mirror_from_a_pinned_root() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::peers::shared_images();
    let origin = Server::start(&[]);
    let publisher = Client::new();
    let host = origin.addr.clone();
    let small = format!("oci:{}:latest", images.join("small").display());
    let index = format!("oci:{}:latest", images.join("index").display());
    for (image, tag) in [(&small, "signed"), (&small, "tampered"), (&index, "unsigned")] {
        publisher.ok(&["push", image, &format!("{host}/dct/small:{tag}")]);
    }
    let (_, signed, body) = get(&origin, "/v2/dct/small/manifests/signed");
    let gun = format!("{host}/dct/small");
    let trust = tmp.path().join("notary");
    notary(&trust, &origin, &["init", &gun, "-p"]);
    let size = body.len().to_string();
    let hex = signed.trim_start_matches("sha256:");
    for tag in ["signed", "tampered"] {
        notary(&trust, &origin, &["addhash", &gun, tag, &size, "--sha256", hex]);
    }
    notary(&trust, &origin, &["publish", &gun]);
    publisher.ok(&["push", &index, &format!("{host}/dct/small:tampered")]);
    let root = trust.join("tuf").join(&gun).join("metadata/root.json");
    assert!(root.exists(), "{}", root.display());

    let config = tmp.path().join("mirror.toml");
    let text = format!(
        "[[mirror]]\nupstream = \"{}\"\nprefix = \"*\"\n\n[[policy]]\nname = \"dct\"\nrepositories = [\"dct/*\"]\n\
         require = {{ notary_v1 = {{ root = \"{}\" }} }}\n",
        origin.url(""),
        root.display()
    );
    std::fs::write(&config, text).unwrap();
    let (m, _) = logged(tmp.path(), "mirror", &[("WHARF_CONFIG", config.to_str().unwrap())]);
    let (status, digest, _) = get(&m, "/v2/dct/small/manifests/signed");
    assert_eq!((status, digest.as_str()), (200, signed.as_str()));
    let (status, text, _) = get(&m, "/v2/dct/small/manifests/unsigned");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("\"dct\"") && text.contains("tag unsigned is not signed"), "{text}");
    let (status, text, _) = get(&m, "/v2/dct/small/manifests/tampered");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains(&format!("tag tampered is signed for {signed}")), "{text}");
}
