//! HAProxy from Debian in front of replicas: round-robin, no stickiness, health checks on `/readyz`, connection
//! failures retried on another replica. Started on a free loopback port, stopped on drop or when the test process
//! ends (a watchdog shell waits for either).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Balancer {
    pub addr: String,
    pid_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Balancer {
    pub fn start(backends: &[&str]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let servers: String =
            backends.iter().enumerate().map(|(i, b)| format!("    server r{i} {b} check\n")).collect();
        let config = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10m\n    timeout server 10m\n    \
             retries 3\n    option redispatch 1\n\
             frontend registry\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
             backend replicas\n    balance roundrobin\n    option forwardfor\n    option httpchk GET /readyz\n    \
             default-server inter 300ms fall 2 rise 1\n{servers}"
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let check =
            Command::new("haproxy").arg("-c").arg("-f").arg(&cfg).output().expect("haproxy (tests/run installs it)");
        assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
        let pid_file = dir.path().join("haproxy.pid");
        let script = format!(
            "haproxy -db -f {} & h=$!; echo $h > {}; while kill -0 {} 2>/dev/null && kill -0 $h 2>/dev/null; do sleep 1; done; kill $h 2>/dev/null",
            cfg.display(),
            pid_file.display(),
            std::process::id()
        );
        // The watchdog is not waited for: it ends with haproxy or with the test process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let http = reqwest::blocking::Client::new();
        // Ready once every replica has passed a health check: as many good answers in a row as there are replicas.
        let mut good = 0;
        while good < backends.len() * 2 {
            assert!(started.elapsed() < Duration::from_secs(20), "haproxy did not become ready");
            match http.get(format!("http://{addr}/v2/")).send() {
                Ok(r) if r.status().is_success() => good += 1,
                _ => {
                    good = 0;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        Balancer { addr, pid_file, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
