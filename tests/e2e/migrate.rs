//! Leaving Docker Content Trust, and signing for admission tools: tags signed with real `docker trust sign` against
//! Wharf are migrated by `wharf trust migrate` and verified through TUF (`wharf pull`, python-tuf) and as keyed
//! cosign signatures of the same digests by an independent verifier (`helpers/cosign_verify.py`, pyca/cryptography);
//! `wharf push --sign --sign-format tuf,sigstore` signs so that the same verifier accepts it, and a second push
//! appends. The steps are in `tests/data/migrate-clients`, with the set-up of the Docker Content Trust suite
//! (`notary_v1.rs`): Wharf over HTTPS with a certificate from `wharf cert`, and a private dockerd.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::Server;

#[test]
fn docker_content_trust_tags_migrate_to_tuf_and_sigstore() {
    let _engines = common::engines();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let st = Command::new(common::wharf_bin())
        .arg("cert")
        .arg("--out")
        .arg(&certs)
        .args(["127.0.0.1", "localhost"])
        .status()
        .unwrap();
    assert!(st.success(), "wharf cert");
    let images = tmp.path().join("images");
    common::peers::make_test_images(&images, false);
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let s = Server::start(&[("WHARF_TLS_CERT", cert.to_str().unwrap()), ("WHARF_TLS_KEY", key.to_str().unwrap())]);
    assert_eq!(s.scheme, "https");
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/migrate-clients"))
        .args([&s.addr, certs.join("ca.crt").to_str().unwrap(), images.to_str().unwrap()])
        .env("WHARF_BIN", common::wharf_bin())
        .output()
        .expect("run migrate-clients");
    common::check_harness(&out, 54);
}
