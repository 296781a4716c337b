//! Starting the real `wharf serve` on an ephemeral loopback port in a temp data directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sha2::Digest as _;

pub mod auth_support;
pub mod browser;
pub mod client;
pub mod lb;
pub mod notary;
pub mod oci;
pub mod peers;
pub mod pg;
pub mod proxy;
pub mod s3;
pub mod s3faults;

/// With `WHARF_TEST_STACK=postgres+s3`, servers keep their metadata in a fresh PostgreSQL database and their blobs
/// in a fresh bucket of an S3-compatible server (and take the key-encryption key from the environment, as replicas
/// on a shared database must). `WHARF_TEST_STACK=postgres` moves only the metadata.
fn stack_env(env: &mut Vec<(String, String)>) {
    let stack = std::env::var("WHARF_TEST_STACK").unwrap_or_default();
    let has = |env: &Vec<(String, String)>, k: &str| env.iter().any(|(n, _)| n == k);
    if stack.starts_with("postgres") && !has(env, "WHARF_DATABASE_URL") {
        env.push(("WHARF_DATABASE_URL".into(), pg::database()));
        env.push(("WHARF_TRUST_KEY_ENCRYPTION_KEY".into(), "test-key-encryption-secret".into()));
    }
    if stack.ends_with("+s3") && !has(env, "WHARF_STORAGE_URL") {
        env.extend(s3_env());
    }
}

/// The storage settings of a fresh bucket on the test S3 server.
fn s3_env() -> Vec<(String, String)> {
    let (endpoint, bucket) = s3::bucket();
    vec![
        ("WHARF_STORAGE_URL".into(), format!("s3://{bucket}/wharf")),
        ("WHARF_STORAGE_ENDPOINT".into(), endpoint),
        ("WHARF_STORAGE_REGION".into(), "us-east-1".into()),
        ("WHARF_STORAGE_PATH_STYLE".into(), "true".into()),
        ("AWS_ACCESS_KEY_ID".into(), s3::ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), s3::SECRET_KEY.into()),
    ]
}

/// The environment of replicas sharing one fresh PostgreSQL database and one fresh S3 bucket (with the one
/// key-encryption key that replicas on a shared database need).
pub fn shared_stack() -> Vec<(String, String)> {
    let mut env = vec![("WHARF_TRUST_KEY_ENCRYPTION_KEY".to_string(), "shared-test-secret".to_string())];
    env.push(("WHARF_DATABASE_URL".into(), pg::database()));
    env.extend(s3_env());
    env
}

/// The `wharf` binary: `WHARF_BIN`, else the workspace's release or debug build.
pub fn wharf_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WHARF_BIN") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let bin = root.join("target").join(profile).join("wharf");
    assert!(bin.exists(), "{} is missing: build it first (cargo build --release --bin wharf)", bin.display());
    bin
}

pub struct Server {
    child: Child,
    pub addr: String,
    /// `http` or `https`, as the server announced.
    pub scheme: String,
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

/// Whether servers store blobs in S3 in this run (checks of the local store's files apply on disk only).
pub fn on_s3() -> bool {
    std::env::var("WHARF_TEST_STACK").is_ok_and(|s| s.ends_with("+s3"))
}

impl Server {
    /// Starts a server on a fresh temp data dir with extra environment variables.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        stack_env(&mut env);
        let (child, addr, scheme) = spawn(&data_dir, &env, "127.0.0.1:0");
        Server { child, addr, scheme, data_dir, env, _tmp: Some(tmp) }
    }

    /// Starts a server listening on `addr` (port 0 picks one), with extra environment variables.
    pub fn start_at(addr: &str, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        stack_env(&mut env);
        let (child, addr, scheme) = spawn(&data_dir, &env, addr);
        Server { child, addr, scheme, data_dir, env, _tmp: Some(tmp) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Runs `wharf admin ARGS` on this server's data directory, with `stdin`; panics unless it succeeds.
    pub fn admin(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new(wharf_bin())
            .arg("admin")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .envs(self.env.iter().filter(|(k, _)| k != "__stderr").map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wharf admin");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("wharf admin");
        assert!(out.status.success(), "wharf admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns the exit status once the server has stopped.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success();
        assert!(ok, "kill -TERM failed");
        self.child.wait().expect("wait")
    }

    /// Waits for a server that was sent a signal to exit.
    pub fn terminate_wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Sets an environment variable for later restarts and `admin` runs.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The environment the server was started with (stack settings included).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Starts the server again on the same data directory and address.
    pub fn restart(&mut self) {
        self.kill();
        let (child, addr, scheme) = spawn(&self.data_dir, &self.env, &self.addr);
        self.child = child;
        self.addr = addr;
        self.scheme = scheme;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every committed blob file under the store, as (relative path, size).
    pub fn stored_blobs(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let on_s3 = self.env.iter().find(|(k, _)| k == "WHARF_STORAGE_URL").and_then(|(_, v)| v.strip_prefix("s3://"));
        match on_s3 {
            Some(rest) => walk(&s3::object_dir(rest).join("blobs"), &mut out),
            None => walk(&self.data_dir.join("store").join("blobs"), &mut out),
        }
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push((p.display().to_string(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A wrapped server (under strace) is the wrapper's child: kill it first, or it outlives the test and holds
        // the test's output pipe open.
        let _ = Command::new("pkill").args(["-KILL", "-P", &self.child.id().to_string()]).status();
        self.kill();
    }
}

fn spawn(data_dir: &Path, env: &[(String, String)], addr: &str) -> (Child, String, String) {
    spawn_wrapped(&[], data_dir, env, addr)
}

/// Starts a server under a wrapper command (such as `strace -f -o FILE`), in a fresh temp data dir.
pub fn start_wrapped(wrapper: &[&str]) -> Server {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("data");
    let mut env = Vec::new();
    stack_env(&mut env);
    let (child, addr, scheme) = spawn_wrapped(wrapper, &data_dir, &env, "127.0.0.1:0");
    Server { child, addr, scheme, data_dir, env, _tmp: Some(tmp) }
}

/// Starts a server under a wrapper command (such as `sh -c 'umask 000; exec "$0" "$@"'`) on `data_dir`, which the
/// caller keeps, with extra environment variables.
pub fn start_wrapped_on(wrapper: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    stack_env(&mut env);
    let (child, addr, scheme) = spawn_wrapped(wrapper, data_dir, &env, "127.0.0.1:0");
    Server { child, addr, scheme, data_dir: data_dir.to_path_buf(), env, _tmp: None }
}

fn spawn_wrapped(wrapper: &[&str], data_dir: &Path, env: &[(String, String)], addr: &str) -> (Child, String, String) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(wharf_bin());
            c
        }
        None => Command::new(wharf_bin()),
    };
    cmd.args(["serve", "--addr", addr, "--data-dir"]).arg(data_dir);
    cmd.env("WHARF_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        // `__stderr`: not a variable, a file to send the server's log to (for tests that read it).
        if k == "__stderr" {
            cmd.stderr(std::fs::File::create(v).expect("log file"));
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("spawn wharf");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read listening line");
    let rest = line
        .trim()
        .strip_prefix("wharf: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from wharf serve: {line:?}"));
    let (scheme, addr) = rest.split_once("://").unwrap_or_else(|| panic!("no scheme in {line:?}"));
    (child, addr.to_string(), scheme.to_string())
}

/// Taken by every test that starts container engines (dockerd, containerd, podman, through the harnesses in
/// `../shared/peers/` and `tests/data/`), so only one runs at a time: those suites were separate test processes
/// once, and the engines share system-wide state (cgroups, mounts, `/etc/docker/certs.d`) and would starve each
/// other's start-up timeouts on a small machine. A test that failed while holding it does not block the next.
pub fn engines() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends raw request bytes and returns whatever the server answered before closing or `wait`.
pub fn raw(addr: &str, request: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends a request head and part of its body, then drops the connection mid-body.
pub fn send_partial(addr: &str, head: &str, body: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    s.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
}

/// Every entry under `root`: path -> type, mode, owner, link target, size, sha256, link count, mtime (files).
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let sum = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
                format!("file {} sha256:{sum} nlink {}", m.len(), m.nlink())
            } else if ft.is_char_device() || ft.is_block_device() {
                format!("device {}", m.rdev())
            } else {
                "other".to_string()
            };
            let mtime = if ft.is_dir() { String::new() } else { format!(" mtime {}", m.mtime()) };
            out.insert(rel, format!("{what} mode {:o} owner {}:{}{mtime}", m.mode() & 0o7777, m.uid(), m.gid()));
        }
    }
    out
}

/// The differences between two trees, for an assertion message.
pub fn tree_diff(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: ours {v} / theirs {:?}", b.get(k)))
        .chain(b.keys().filter(|k| !a.contains_key(*k)).map(|k| format!("{k}: only in theirs")))
        .collect()
}

/// Checks a real-client harness's output (`PASS`/`FAIL` lines, then `N passed, M failed`): no FAIL line, a clean
/// summary, a zero exit and at least `min_passed` checks passed. Prints both streams first.
pub fn check_harness(out: &std::process::Output, min_passed: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:#?}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(out.status.success() && last.ends_with(" passed, 0 failed"), "summary {last:?}");
    let passed: usize = last.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
    assert!(passed >= min_passed, "only {passed} checks passed");
}
