//! What the disk and crash suites share: a small file system of the test's own, a registry client that records
//! what was acknowledged, strace attached to a running server, and the checks that nothing half-written is visible.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client as Http, Response};
use serde_json::{json, Value};

use crate::common::{self, sha256, Server};

/// A size-limited tmpfs the test mounts (tests run as root), unmounted on drop even when the test fails.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(ok.success(), "mounting a tmpfs of {size} at {}", path.display());
        Tmpfs { path, _dir: dir }
    }

    /// Bytes free for files.
    pub fn free(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.path).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Writes a filler file that leaves about `leave` bytes free; returns its path.
    pub fn fill(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.path.join(name);
        let len = self.free().saturating_sub(leave);
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0x5a_u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if std::io::Write::write_all(&mut f, &block[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a server still holding files open does not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The environment that keeps a server on SQLite and the local store in `data`, whatever stack the pass uses.
pub fn local_env(data: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("WHARF_DATABASE_URL".to_string(), format!("sqlite://{}", data.join("wharf.db").display())),
        ("WHARF_STORAGE_URL".to_string(), format!("file://{}", data.join("store").display())),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Starts `wharf serve` on `data`, pinned to SQLite and the local store.
pub fn serve(data: &Path, extra: &[(&str, &str)]) -> Server {
    let env = local_env(data, extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::start_wrapped_on(&[], data, &env)
}

/// strace attached to every thread of a running server, injecting `what` (`signal=SIGKILL`, `error=EIO`) at each
/// thread's `when`-th call of `syscall` (strace counts per thread), tracing only that call into a file.
pub struct Strace {
    child: Child,
    /// The traced server.
    pid: u32,
    pub trace: PathBuf,
}

impl Strace {
    pub fn attach(pid: u32, syscall: &str, what: &str, when: &str, trace: PathBuf) -> Strace {
        let mut child = Command::new("strace")
            .args(["-f", "-y", "-s", "0", "-p", &pid.to_string(), "-o"])
            .arg(&trace)
            .args(["-e", &format!("trace={syscall}"), "-e", &format!("inject={syscall}:{what}:when={when}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace");
        // strace says "Process N attached" on stderr once every thread is held.
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("attached") {
            match err.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => panic!("strace did not attach: {}", String::from_utf8_lossy(&seen)),
            }
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Strace { child, pid, trace }
    }

    /// Waits up to `wait` for strace to end by itself (its tracee died); whether it did.
    pub fn ended(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            // A server killed while strace still holds some of its threads stays a zombie (`Zl`) for as long as
            // strace lives, and strace may not end by itself (seen once on PostgreSQL + S3): the server is dead, so
            // strace goes, which lets the last threads go and the server be reaped.
            if zombie(self.pid) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Detaches from a server that is still running (SIGTERM makes strace let its tracees go).
    pub fn detach(mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.trace).unwrap_or_default()
    }
}

/// Whether process `pid` has died and awaits its parent (state `Z` or `X` in `/proc/PID/stat`).
fn zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The command name (in parentheses) may hold spaces: the state follows the last `)`.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|c| c == 'Z' || c == 'X')
}

impl Drop for Strace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry client for fault tests: every request's status, never a panic on a refused or broken one.
pub struct Client {
    http: Http,
    base: String,
}

/// How a request ended: its status and body, or the connection failed (`0`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub range: Option<String>,
}

impl Answer {
    fn of(r: reqwest::Result<Response>) -> Answer {
        match r {
            Ok(r) => {
                let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let (status, location, range) = (r.status().as_u16(), h("location"), h("range"));
                Answer { status, location, range, body: r.text().unwrap_or_default() }
            }
            Err(e) => Answer { status: 0, body: e.to_string(), location: None, range: None },
        }
    }

    /// The OCI error's code and message.
    pub fn error(&self) -> (String, String) {
        let v: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        let e = &v["errors"][0];
        (e["code"].as_str().unwrap_or("").to_owned(), e["message"].as_str().unwrap_or("").to_owned())
    }
}

impl Client {
    pub fn new(s: &Server) -> Client {
        Client::at(&s.url(""))
    }

    pub fn at(base: &str) -> Client {
        let http = Http::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).build().unwrap();
        Client { http, base: base.to_owned() }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        Answer::of(self.http.get(self.url(path)).send())
    }

    pub fn head(&self, path: &str) -> u16 {
        self.http.head(self.url(path)).send().map_or(0, |r| r.status().as_u16())
    }

    /// A monolithic upload: `POST ?digest=` with the whole blob.
    pub fn mono(&self, repo: &str, blob: &[u8]) -> Answer {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob)));
        Answer::of(self.http.post(url).body(blob.to_vec()).send())
    }

    /// Opens a session; its location.
    pub fn start(&self, repo: &str) -> Answer {
        Answer::of(self.http.post(self.url(&format!("/v2/{repo}/blobs/uploads/"))).send())
    }

    pub fn patch(&self, location: &str, at: u64, chunk: &[u8]) -> Answer {
        let range = format!("{at}-{}", at + chunk.len() as u64 - 1);
        Answer::of(self.http.patch(self.url(location)).header("content-range", range).body(chunk.to_vec()).send())
    }

    pub fn finish(&self, location: &str, digest: &str) -> Answer {
        let sep = if location.contains('?') { '&' } else { '?' };
        Answer::of(self.http.put(self.url(&format!("{location}{sep}digest={digest}"))).send())
    }

    /// A chunked upload in chunks of `chunk` bytes; the first answer that is not a success ends it.
    pub fn chunked(&self, repo: &str, blob: &[u8], chunk: usize) -> Answer {
        let started = self.start(repo);
        let Some(mut loc) = started.location.clone().filter(|_| started.status == 202) else { return started };
        let mut at = 0;
        for c in blob.chunks(chunk) {
            let a = self.patch(&loc, at, c);
            if a.status != 202 {
                return a;
            }
            loc = a.location.unwrap_or(loc);
            at += c.len() as u64;
        }
        self.finish(&loc, &sha256(blob))
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, manifest: &str) -> Answer {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let r = self.http.put(url).header("content-type", "application/vnd.oci.image.manifest.v1+json");
        Answer::of(r.body(manifest.to_owned()).send())
    }

    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Answer {
        Answer::of(self.http.delete(self.url(&format!("/v2/{repo}/manifests/{digest}"))).send())
    }

    /// Pulls `reference` completely, checking every byte against its digest; the manifest's digest.
    pub fn pull(&self, repo: &str, reference: &str) -> Result<String, String> {
        let r = self
            .http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("manifest {repo}:{reference}: {}", r.status()));
        }
        let bytes = r.bytes().map_err(|e| e.to_string())?;
        let m: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten()) {
            let want = d["digest"].as_str().unwrap_or_default();
            self.blob_verified(repo, want)?;
        }
        Ok(sha256(&bytes))
    }

    /// GETs a blob and checks its bytes against its digest.
    pub fn blob_verified(&self, repo: &str, digest: &str) -> Result<(), String> {
        let b = self.http.get(self.url(&format!("/v2/{repo}/blobs/{digest}"))).send().map_err(|e| e.to_string())?;
        if b.status() != 200 {
            return Err(format!("blob {digest} of {repo}: {}", b.status()));
        }
        let got = sha256(&b.bytes().map_err(|e| format!("blob {digest} of {repo}: {e}"))?);
        if got != digest {
            return Err(format!("blob {digest} of {repo} serves bytes hashing to {got}"));
        }
        Ok(())
    }
}

/// An OCI image manifest over a config and layers (each given as its bytes).
pub fn manifest(config: &[u8], layers: &[&[u8]]) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                    "size": config.len() },
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(l), "size": l.len()
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Runs `wharf admin check --json` on a server's data dir (its configuration from `env`): the exit code and report.
pub fn admin_check(data: &Path, env: &[(String, String)]) -> (i32, Value, String) {
    let out = Command::new(common::wharf_bin())
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(["check", "--json"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("wharf admin check");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts that the check finds nothing wrong (exit 0, `clean`, no problem of severity `damage`).
pub fn assert_check_clean(data: &Path, env: &[(String, String)], when: &str) {
    let (code, report, stderr) = admin_check(data, env);
    let damage: Vec<&Value> = report["problems"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["severity"] == "damage").collect())
        .unwrap_or_default();
    assert!(
        code == 0 && report["clean"] == true && damage.is_empty(),
        "{when}: wharf admin check exited {code}: {report}\n{stderr}"
    );
}

/// Every blob row of the database (not a collector's tombstone) has its bytes in the store, and they hash to its
/// digest: no row without bytes, nothing half-written under `blobs/`.
pub fn assert_rows_have_bytes(data: &Path, when: &str) {
    let rows = blob_rows(data);
    for (digest, row) in rows.iter().filter(|(_, r)| !r.deleting) {
        let d = digest.to_string();
        let hex = d.strip_prefix("sha256:").unwrap();
        let path = match &row.location {
            Some(at) => data.join("store").join(at),
            None => data.join("store/blobs/sha256").join(&hex[..2]).join(hex),
        };
        match std::fs::read(&path) {
            Ok(bytes) => assert_eq!(sha256(&bytes), d, "{when}: {} does not hash to its digest", path.display()),
            // A serving registry's collector may have taken the blob since the rows were read: then its row is
            // now a tombstone or gone. A live row without bytes is a failure.
            Err(e) => {
                let now = blob_rows(data).into_iter().find(|(g, _)| g == digest).filter(|(_, r)| !r.deleting);
                assert!(now.is_none(), "{when}: the row of {d} has no bytes: {e}");
            }
        }
    }
}

/// Every blob row, read from the database of the data dir `data`.
fn blob_rows(data: &Path) -> Vec<(wharf_format::Digest, wharf_storage::meta::BlobRow)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let meta = wharf_storage::Metadata::open_sqlite(&data.join("wharf.db")).await.unwrap();
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let page = meta.collect().blob_rows(&after, 500).await.unwrap();
            let Some((last, _)) = page.last() else { break };
            after = last.to_string();
            all.extend(page);
        }
        all
    })
}

/// Committed files under `blobs/` whose name is not what their bytes hash to: a half-written blob.
pub fn assert_blob_files_match(data: &Path, when: &str) {
    let mut bad = BTreeMap::new();
    let root = data.join("store/blobs/sha256");
    for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            // A file the collector removed since the listing is not half-written.
            let Ok(bytes) = std::fs::read(f.path()) else { continue };
            let got = sha256(&bytes);
            if got != format!("sha256:{name}") {
                bad.insert(name, got);
            }
        }
    }
    assert!(bad.is_empty(), "{when}: files under blobs/ that do not match their names: {bad:?}");
}
