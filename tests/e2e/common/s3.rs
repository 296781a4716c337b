//! A throwaway S3-compatible server for tests: `s3s-fs` (installed by `tests/run` with `cargo install` into
//! `$WHARF_TEST_TOOLS`, default `~/.cache/wharf-test-tools`), started once per test process on a free loopback port
//! over a temp directory and stopped by a watchdog when the process ends. Each caller gets a fresh bucket.

#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub const ACCESS_KEY: &str = "wharftest";
pub const SECRET_KEY: &str = "wharftest-secret-key";

static SERVER: OnceLock<(String, std::path::PathBuf)> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn tool() -> std::path::PathBuf {
    let dir = std::env::var_os("WHARF_TEST_TOOLS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/wharf-test-tools")
    });
    let bin = dir.join("bin/s3s-fs");
    assert!(
        bin.exists(),
        "{} is missing: tests/run installs it (cargo install s3s-fs --version 0.14.1 ...)",
        bin.display()
    );
    bin
}

fn server() -> &'static (String, std::path::PathBuf) {
    SERVER.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("wharf-test-s3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = format!(
            "{} --host 127.0.0.1 --port {port} --access-key {ACCESS_KEY} --secret-key {SECRET_KEY} {} & s=$!; \
             while kill -0 {} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 1; done; kill $s; wait $s; rm -rf {}",
            tool().display(),
            root.display(),
            std::process::id(),
            root.display()
        );
        // Not waited for on purpose: the watchdog outlives this function and ends with the test process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (format!("http://127.0.0.1:{port}"), root);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("s3s-fs did not start");
    })
}

/// A fresh bucket: (endpoint, bucket name).
pub fn bucket() -> (String, String) {
    let (endpoint, root) = server();
    let name = format!("b{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    std::fs::create_dir_all(root.join(&name)).unwrap();
    (endpoint.clone(), name)
}

/// The directory where the test server keeps the objects under `BUCKET/PREFIX` (s3s-fs stores each object as a
/// file at its key).
pub fn object_dir(bucket_and_prefix: &str) -> std::path::PathBuf {
    server().1.join(bucket_and_prefix)
}
