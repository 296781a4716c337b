//! A PostgreSQL that restarts (`pg_ctl restart -m immediate`, as a crash and recovery) under a serving registry:
//! in the middle of a 1 GiB chunked push (16 MiB PATCHes), and in the middle of a collection. Each test runs its
//! own cluster (the shared one other tests use is never restarted) and a registry on the local disk. Requests that
//! were in flight fail cleanly (`503` naming the database), the next ones succeed with no restart of the registry,
//! the push completes and verifies, and the collection's next run finishes with nothing referenced lost and
//! nothing unreferenced left.

use crate::common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::oci::Oci;
use common::pg::{as_postgres, bin};
use common::{data, Server};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A PostgreSQL cluster of the test's own, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        assert!(Command::new("chown").arg("postgres:").arg(dir.path()).status().unwrap().success());
        let data = dir.path().join("data");
        let out = as_postgres(&[&bin("initdb"), "-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres"])
            .args(["--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Cluster { dir, port };
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            c.dir.path().display()
        );
        c.pg_ctl(&["start", "-w", "-o", &opts, "-l", c.log().to_str().unwrap()]);
        let out = Command::new(bin("psql"))
            .args([&format!("{}/postgres", c.base()), "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE wharf"])
            .output()
            .unwrap();
        assert!(out.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&out.stderr));
        c
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("{}/wharf", self.base())
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let out = as_postgres(&[&bin("pg_ctl"), "-D", data.to_str().unwrap()]).args(args).output().unwrap();
        assert!(out.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The postmaster's process id (changes with each restart).
    fn pid(&self) -> String {
        let pidfile = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).unwrap_or_default();
        pidfile.lines().next().unwrap_or("").to_string()
    }

    /// Kills every server process at once and starts again: what a crash and its recovery do to connections.
    fn restart_immediate(&self) {
        let before = self.pid();
        self.pg_ctl(&["restart", "-m", "immediate", "-w", "-l", self.log().to_str().unwrap()]);
        assert_ne!(self.pid(), before, "the cluster restarted");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(&[&bin("pg_ctl"), "-D", data.to_str().unwrap(), "stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn server(pg: &Cluster, extra: &[(&str, &str)]) -> Server {
    let url = pg.url();
    let mut env = vec![("WHARF_DATABASE_URL", url.as_str()), ("WHARF_TRUST_KEY_ENCRYPTION_KEY", "pg-restart-secret")];
    env.extend_from_slice(extra);
    Server::start(&env)
}

/// An answer that is not a success must be a clean refusal: `503` naming the database.
fn clean_failure(what: &str, r: reqwest::blocking::Response) {
    let status = r.status();
    let body = r.text().unwrap_or_default();
    assert_eq!(status, 503, "{what}: {body}");
    assert!(body.contains("metadata database is unavailable"), "{what}: {body}");
}

const CHUNK: u64 = 16 << 20;
const SIZE: u64 = 1 << 30;

/// The bytes of the 1 GiB blob from `offset` to the end of its 16 MiB chunk (xorshift per chunk).
fn bytes_from(offset: u64) -> Vec<u8> {
    let i = offset / CHUNK;
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut out = Vec::with_capacity(CHUNK as usize);
    while (out.len() as u64) < CHUNK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.split_off((offset % CHUNK) as usize)
}

/// Where the server says an upload stands (`GET` of its location), waiting out the restart; `None` if it is gone.
fn offset(http: &reqwest::blocking::Client, s: &Server, location: &str) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(s.url(location)).send() {
            Ok(r) if r.status() == 204 => {
                let range = r.headers()["range"].to_str().unwrap().to_string();
                return Some(range.split_once('-').unwrap().1.parse::<u64>().unwrap() + 1);
            }
            Ok(r) if r.status() == 404 => return None,
            Ok(r) => clean_failure("upload status", r),
            Err(e) => panic!("upload status: {e}"),
        }
        assert!(Instant::now() < deadline, "the upload's status never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_restart_in_the_middle_of_a_1gib_chunked_push() {
    let pg = Cluster::start();
    let s = server(&pg, &[]);
    let mut expected = Some(std::thread::spawn(|| {
        let mut h = Sha256::new();
        (0..SIZE / CHUNK).for_each(|i| h.update(bytes_from(i * CHUNK)));
        format!("sha256:{}", hex::encode(h.finalize()))
    }));
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let started = Instant::now();
    let (mut failures, mut fresh_starts) = (0, 0);
    std::thread::scope(|scope| {
        let mut restarted = None;
        'push: loop {
            let r = http.post(s.url("/v2/big/pg/blobs/uploads/")).send().unwrap();
            if r.status() != 202 {
                clean_failure("starting the upload", r);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            fresh_starts += 1;
            assert!(fresh_starts <= 3, "the push had to start over {fresh_starts} times");
            let mut location = r.headers()["location"].to_str().unwrap().to_string();
            let mut at = 0;
            while at < SIZE {
                // Halfway: the database restarts under the PATCHes that follow.
                if at >= SIZE / 2 && restarted.is_none() {
                    restarted = Some(scope.spawn(|| pg.restart_immediate()));
                }
                let body = bytes_from(at);
                let end = at + body.len() as u64 - 1;
                let sent =
                    http.patch(s.url(&location)).header("content-range", format!("{at}-{end}")).body(body).send();
                match sent {
                    Ok(r) if r.status() == 202 => {
                        location = r.headers()["location"].to_str().unwrap().to_string();
                        at = end + 1;
                        continue;
                    }
                    Ok(r) => clean_failure(&format!("PATCH at {at}"), r),
                    Err(e) => panic!("PATCH at {at}: {e}"),
                }
                failures += 1;
                // Resumed where the server says the upload stands.
                match offset(&http, &s, &location) {
                    Some(o) => at = o,
                    None => continue 'push,
                }
            }
            let digest = expected.take().unwrap().join().unwrap();
            loop {
                let r = http.put(s.url(&format!("{location}?digest={digest}"))).send().unwrap();
                if r.status() == 201 {
                    break;
                }
                clean_failure("completing the upload", r);
                std::thread::sleep(Duration::from_millis(200));
            }
            restarted.take().unwrap().join().unwrap();
            eprintln!(
                "1 GiB pushed across a PostgreSQL restart in {:?}: {failures} PATCHes failed cleanly, {fresh_starts} \
             upload(s)",
                started.elapsed()
            );
            let mut resp = http.get(s.url(&format!("/v2/big/pg/blobs/{digest}"))).send().unwrap();
            assert_eq!(resp.status(), 200);
            let (mut h, mut buf, mut total) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
            loop {
                let n = resp.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                total += n as u64;
            }
            assert_eq!((format!("sha256:{}", hex::encode(h.finalize())), total), (digest, SIZE));
            break;
        }
    });
}

/// Content-addressed blob files in the server's store.
fn stored(s: &Server) -> BTreeSet<String> {
    s.stored_blobs().into_iter().filter_map(|(p, _)| Some(p.rsplit('/').next()?.to_string())).collect()
}

fn admin(s: &Server, args: &[&str]) -> Output {
    Command::new(common::wharf_bin())
        .arg("admin")
        .arg("--data-dir")
        .arg(&s.data_dir)
        .args(args)
        .envs(s.env().iter().filter(|(k, _)| k != "__stderr").map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_restart_in_the_middle_of_a_collection() {
    let pg = Cluster::start();
    // Deletions paced at 100 a second, so that the restart lands in the middle of the sweep.
    let s = server(
        &pg,
        &[("WHARF_GC_GRACE_SECS", "0"), ("WHARF_GC_INTERVAL_SECS", "3600"), ("WHARF_GC_DELETE_RATE", "100")],
    );
    let oci = Oci::new(&s);
    let mut kept = Vec::new();
    for i in 0..40 {
        let layers: Vec<Vec<u8>> = (0..6).map(|j| data(3000 + j, (i * 7 + j) as u8)).collect();
        let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
        let config = format!(r#"{{"os":"linux","i":{i}}}"#).into_bytes();
        let p = oci.push("pg/app", &format!("t{i}"), &config, &refs, None).unwrap();
        if i < 5 {
            kept.push((format!("t{i}"), p));
        } else {
            assert_eq!(oci.delete("pg/app", &p.digest), 202);
        }
    }
    let before = stored(&s).len();
    assert_eq!(before, 40 * 7);
    let run = {
        let (dir, env) = (s.data_dir.clone(), s.env().to_vec());
        std::thread::spawn(move || {
            Command::new(common::wharf_bin())
                .arg("admin")
                .arg("--data-dir")
                .arg(dir)
                .args(["gc", "--json"])
                .envs(env.into_iter().filter(|(k, _)| k != "__stderr"))
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&s).len() > before - 20 {
        assert!(Instant::now() < deadline, "the collection did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stored(&s).len() > 5 * 7 + 100, "the collection finished before the restart");
    pg.restart_immediate();
    let first = run.join().unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    eprintln!("the interrupted run: {:?}\n{stderr}", first.status.code());
    // Failed cleanly (an error naming the database, no panic) or completed.
    assert!(matches!(first.status.code(), Some(0 | 1)), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    if !first.status.success() {
        assert!(stderr.contains("database"), "{stderr}");
    }

    // The server goes on without a restart, and the next run completes.
    let deadline = Instant::now() + Duration::from_secs(45);
    let report: Value = loop {
        let out = admin(&s, &["gc", "--json"]);
        if out.status.success() {
            break serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "no run completed: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(report["failed"], 0, "{report}");
    for (tag, p) in &kept {
        assert_eq!(oci.pull("pg/app", tag), Ok(p.digest.clone()), "{tag}");
    }
    let expected: BTreeSet<String> =
        kept.iter().flat_map(|(_, p)| p.blobs.iter().map(|d| d.trim_start_matches("sha256:").to_string())).collect();
    assert_eq!(stored(&s), expected, "exactly what the kept tags reference remains");
}
