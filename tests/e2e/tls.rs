//! HTTPS: HTTP/2 and HTTP/1.1 by ALPN, the certificate re-read on SIGHUP without dropping open connections, and the
//! refusal to listen beyond loopback unprotected.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;

fn certs(dir: &Path) {
    let out = Command::new(common::wharf_bin()).arg("cert").arg("--out").arg(dir).arg("127.0.0.1").output().unwrap();
    assert!(out.status.success(), "wharf cert: {}", String::from_utf8_lossy(&out.stderr));
}

fn client(ca: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn tls_server(dir: &Path) -> Server {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    Server::start(&[("WHARF_TLS_CERT", cert.to_str().unwrap()), ("WHARF_TLS_KEY", key.to_str().unwrap())])
}

#[test]
fn https_speaks_http2_and_http1_by_alpn() {
    let tmp = tempfile::tempdir().unwrap();
    certs(tmp.path());
    let s = tls_server(tmp.path());
    assert_eq!(s.scheme, "https");
    for (flag, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = Command::new("curl")
            .args(["-sS", flag, "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--cacert"])
            .arg(tmp.path().join("ca.crt"))
            .arg(s.url("/v2/"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{want} 200"),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Plain HTTP to the TLS port is not served.
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v2/", s.addr))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
}

#[test]
fn certificate_is_reloaded_on_sighup_and_open_connections_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, live) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("live"));
    certs(&a);
    certs(&b);
    std::fs::create_dir_all(&live).unwrap();
    for f in ["server.crt", "server.key"] {
        std::fs::copy(a.join(f), live.join(f)).unwrap();
    }
    let s = tls_server(&live);
    let old = client(&a.join("ca.crt"));
    assert_eq!(old.get(s.url("/v2/")).send().unwrap().status(), 200);

    for f in ["server.crt", "server.key"] {
        std::fs::copy(b.join(f), live.join(f)).unwrap();
    }
    assert!(Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    // The open connection (made under certificate A) still answers: it was not dropped. Were it dropped, the client
    // would reconnect and fail to verify certificate B.
    assert_eq!(old.get(s.url("/v2/")).send().unwrap().status(), 200, "the open connection was dropped");
    // New handshakes get certificate B.
    assert!(client(&a.join("ca.crt")).get(s.url("/v2/")).send().is_err(), "a new connection still got A");
    assert_eq!(client(&b.join("ca.crt")).get(s.url("/v2/")).send().unwrap().status(), 200);

    // A broken file on reload keeps the certificate in use.
    std::fs::write(live.join("server.crt"), "not a certificate").unwrap();
    assert!(Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(client(&b.join("ca.crt")).get(s.url("/v2/")).send().unwrap().status(), 200);
}

fn serve_status(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::wharf_bin());
    cmd.arg("serve").arg("--data-dir").arg(tmp.path().join("d")).args(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..50 {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (st.code(), String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, String::new())
}

#[test]
fn refuses_to_listen_beyond_loopback_without_tls_and_auth() {
    let (code, err) = serve_status(&["--addr", "0.0.0.0:0"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--tls-cert") && err.contains("listen_without_tls"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    certs(tmp.path());
    let (cert, key) = (tmp.path().join("server.crt"), tmp.path().join("server.key"));
    let tls = ["--addr", "0.0.0.0:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let (code, err) = serve_status(&tls, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--auth") && err.contains("listen_without_auth"), "{err}");

    // With both, or with the switches named so, it starts (still running when checked).
    let (code, _) = serve_status(&[&tls[..], &["--auth"]].concat(), &[("WHARF_ADMIN_PASSWORD", "admin-pass-1")]);
    assert_eq!(code, None, "TLS and auth: should be serving");
    let insecure = [("WHARF_INSECURE_LISTEN_WITHOUT_TLS", "1"), ("WHARF_INSECURE_LISTEN_WITHOUT_AUTH", "1")];
    let (code, _) = serve_status(&["--addr", "0.0.0.0:0"], &insecure);
    assert_eq!(code, None, "insecure switches: should be serving");
}
