//! A throwaway PostgreSQL for tests: `WHARF_TEST_POSTGRES` (a server `tests/run` started) if set, else a cluster
//! this process starts once, on a free loopback port in a temp directory, as the `postgres` user (PostgreSQL refuses
//! to run as root), stopped by a watchdog when the process ends. Each caller gets a fresh database.

#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static SERVER: OnceLock<String> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

pub fn bin(name: &str) -> String {
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin", "/usr/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("PostgreSQL's {name} is not installed (tests/run installs the postgresql package)");
}

pub fn as_postgres(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).args(args);
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The server's base URL, `postgres://postgres@127.0.0.1:PORT`.
fn server() -> &'static str {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("WHARF_TEST_POSTGRES") {
            return url.trim_end_matches('/').to_owned();
        }
        let dir = std::env::temp_dir().join(format!("wharf-test-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown").arg("postgres:").arg(&dir).status().unwrap().success());
        let data = dir.join("data");
        let data = data.to_str().unwrap();
        let out = as_postgres(&[&bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port().to_string();
        let sock = dir.to_str().unwrap();
        // The server runs as `postgres` (setpriv execs it, so $pg is the server itself); the watchdog, as root, stops
        // it when this test process is gone.
        let script = format!(
            "setpriv --reuid=postgres --regid=postgres --init-groups {} -D {data} -p {port} -k {sock} \
             -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400 & pg=$!; \
             while kill -0 {} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 1; done; kill -INT $pg; wait $pg; \
             rm -rf {sock} {sock}.log",
            bin("postgres"),
            std::process::id()
        );
        // Not waited for on purpose: the watchdog outlives this function and ends with the test process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(format!("{sock}.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let url = format!("postgres://postgres@127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                return url;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("PostgreSQL did not start: see {sock}.log");
    })
}

/// A fresh, empty database on the test server: its URL.
pub fn database() -> String {
    let base = server();
    let name = format!("w{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let out = Command::new(bin("psql"))
        .args([&format!("{base}/postgres"), "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(out.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&out.stderr));
    format!("{base}/{name}")
}
