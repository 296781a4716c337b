//! Debian's notary-server 0.7 (memory storage, local signer) on a free loopback port, to compare Wharf with.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// notary-server on a free loopback port, HTTPS when given a certificate and key.
pub struct NotaryServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl NotaryServer {
    pub fn start(tls: Option<(&Path, &Path)>) -> NotaryServer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = json!({ "http_addr": format!("127.0.0.1:{port}") });
        if let Some((cert, key)) = tls {
            server["tls_cert_file"] = json!(cert);
            server["tls_key_file"] = json!(key);
        }
        let config = json!({
            "server": server, "logging": { "level": "info" }, "storage": { "backend": "memory" },
            "trust_service": { "type": "local", "hostname": "", "port": "", "key_algorithm": "ed25519" },
        });
        let path = dir.path().join("server.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child =
            Command::new("notary-server").arg("-config").arg(&path).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{url}/_notary_server/health")).send().map(|r| r.status().is_success()).ok()
            != Some(true)
        {
            assert!(Instant::now() < until, "notary-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        NotaryServer { child, url, _dir: dir }
    }
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
