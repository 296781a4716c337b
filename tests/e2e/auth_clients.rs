//! docker, podman, skopeo, containerd and wharf against a Wharf serving HTTPS with access control on, through
//! `tests/data/auth-clients`. The server listens on a non-loopback address, so that docker treats it as a secure
//! registry and checks its certificate against the CA in `certs.d`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::Server;

/// A non-loopback IPv4 address of this machine; one is added to `lo` if there is none.
fn routable_address() -> String {
    let out = Command::new("hostname").arg("-I").output().expect("hostname -I");
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(ip) =
        text.split_whitespace().find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
    {
        return ip.to_owned();
    }
    let added = "10.254.254.254";
    let st =
        Command::new("ip").args(["addr", "add", &format!("{added}/32"), "dev", "lo"]).status().expect("ip addr add");
    assert!(
        st.success()
            || Command::new("ip")
                .args(["addr", "show", "dev", "lo"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(added))
    );
    added.to_owned()
}

#[test]
fn real_clients_over_https_with_auth() {
    let _engines = common::engines();
    let tmp = tempfile::tempdir().unwrap();
    let ip = routable_address();
    let certs = tmp.path().join("certs");
    let st = Command::new(common::wharf_bin()).arg("cert").arg("--out").arg(&certs).arg(&ip).status().unwrap();
    assert!(st.success(), "wharf cert");
    let images = tmp.path().join("images");
    common::peers::make_test_images(&images, false);

    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let s = Server::start_at(
        &format!("{ip}:0"),
        &[
            ("WHARF_AUTH", "1"),
            ("WHARF_ADMIN_PASSWORD", "admin-pass-1"),
            ("WHARF_TLS_CERT", cert.to_str().unwrap()),
            ("WHARF_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    assert_eq!(s.scheme, "https");
    s.admin(&["user", "add", "dev", "--password-stdin"], "dev-pass-12\n");
    s.admin(&["grant", "dev", "auth/**", "push,delete,sign"], "");
    std::thread::sleep(std::time::Duration::from_millis(1200));

    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/auth-clients"))
        .args([&s.addr, certs.join("ca.crt").to_str().unwrap(), "dev", "dev-pass-12", images.to_str().unwrap()])
        .env("WHARF_BIN", common::wharf_bin())
        .output()
        .expect("run auth-clients");
    common::check_harness(&out, 21);
}
