//! A hostile mirror (or registry) between the client and an honest `wharf serve`: it tampers with blobs and
//! manifests, streams more than declared, rolls trust metadata back, freezes it, mixes versions and strips
//! signatures. Through it as a mirror, every pull still succeeds from the origin with a warning naming the failure;
//! through it as the only source, every pull fails with an error naming what failed, leaves nothing half-written
//! in the content store and exits 3.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use common::{wharf_bin, Server};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    TamperBlob,
    TamperManifest,
    Endless,
    StripSignatures,
    RollbackTimestamp,
    /// Honest, but the first full GET of each blob breaks off halfway.
    CutOnce,
    Freeze,
    MixAndMatch,
    /// Blobs trickle at 16 bytes a second.
    Trickle,
}

struct Proxy {
    upstream: String,
    mode: Mode,
    /// Range headers seen, for the resume test.
    ranges: Mutex<Vec<String>>,
    /// First answer seen per path, for replaying stale metadata.
    first: Mutex<HashMap<String, bytes::Bytes>>,
    http: reqwest::Client,
}

async fn handle(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let path = req.uri().path_and_query().map(|x| x.as_str().to_string()).unwrap_or_default();
    let range = req.headers().get("range").map(|v| v.to_str().unwrap_or("").to_string());
    if let Some(r) = &range {
        p.ranges.lock().unwrap().push(r.clone());
    }
    let mut up = p.http.request(req.method().clone(), format!("{}{path}", p.upstream));
    for (k, v) in req.headers() {
        if k != "host" {
            up = up.header(k, v);
        }
    }
    let resp = up.send().await.expect("upstream");
    let status = resp.status();
    let mut headers = resp.headers().clone();
    let mut body = resp.bytes().await.unwrap_or_default();
    let is_blob = path.contains("/blobs/sha256:");
    let is_manifest = path.contains("/manifests/sha256:");
    match p.mode {
        Mode::TamperBlob if is_blob && !body.is_empty() => {
            let mut v = body.to_vec();
            let last = v.len() - 1;
            v[last] ^= 0xff;
            body = v.into();
        }
        Mode::TamperManifest if is_manifest && !body.is_empty() => {
            let mut v = body.to_vec();
            let mid = v.len() / 2;
            v[mid] ^= 0x01;
            body = v.into();
        }
        Mode::Endless if is_blob => {
            let mut v = body.to_vec();
            v.extend(std::iter::repeat_n(0u8, 1 << 20));
            body = v.into();
        }
        Mode::StripSignatures if path.ends_with(".targets.json") => {
            let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["signatures"] = serde_json::json!([]);
            body = serde_json::to_vec(&v).unwrap().into();
        }
        Mode::RollbackTimestamp | Mode::Freeze if path.ends_with("/timestamp.json") => {
            let mut first = p.first.lock().unwrap();
            body = first.entry("ts".into()).or_insert(body).clone();
        }
        Mode::MixAndMatch if path.ends_with(".snapshot.json") => {
            let mut first = p.first.lock().unwrap();
            body = first.entry("snap".into()).or_insert(body).clone();
        }
        Mode::CutOnce
            if is_blob
                && range.is_none()
                && body.len() > 1
                && p.first.lock().unwrap().insert(path.clone(), body.clone()).is_none() =>
        {
            // Declare the full length, send half, then break the connection.
            let half = body.slice(..body.len() / 2);
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![Ok(half), Err(std::io::Error::other("cut"))];
            let mut r = Response::builder().status(status);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            // A pause before the break, so the half reaches the client before the connection dies.
            let slow = futures::StreamExt::then(futures::stream::iter(chunks), |c| async move {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                c
            });
            return r.body(Body::from_stream(slow)).unwrap();
        }
        Mode::Trickle if is_blob && body.len() > 16 => {
            let mut r = Response::builder().status(status);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            let chunks: Vec<bytes::Bytes> = body.chunks(16).map(bytes::Bytes::copy_from_slice).collect();
            let slow = futures::StreamExt::then(futures::stream::iter(chunks), |c| async move {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(c)
            });
            return r.body(Body::from_stream(slow)).unwrap();
        }
        _ => {}
    }
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    let mut r = Response::builder().status(status);
    for (k, v) in &headers {
        r = r.header(k, v);
    }
    r.body(Body::from(body)).unwrap()
}

async fn start_proxy(upstream: &str, mode: Mode) -> String {
    start_proxy_with(upstream, mode).await.0
}

async fn start_proxy_with(upstream: &str, mode: Mode) -> (String, Arc<Proxy>) {
    let state = Arc::new(Proxy {
        upstream: format!("http://{upstream}"),
        mode,
        ranges: Mutex::new(Vec::new()),
        first: Mutex::new(HashMap::new()),
        http: reqwest::Client::new(),
    });
    let shared = Arc::clone(&state);
    let app = axum::Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, shared)
}

fn images() -> &'static Path {
    common::peers::shared_images()
}

struct Env {
    server: Server,
    store: tempfile::TempDir,
    config: tempfile::TempDir,
}

impl Env {
    fn wharf(&self, store: &Path, args: &[&str]) -> Output {
        Command::new(wharf_bin())
            .args(args)
            .env("WHARF_STORE", store)
            .env("WHARF_CONFIG_DIR", self.config.path())
            .env("WHARF_ROOT_PASSPHRASE", "r")
            .env("WHARF_REPOSITORY_PASSPHRASE", "p")
            .env("WHARF_LOG", "warn")
            .output()
            .unwrap()
    }

    fn root(&self) -> PathBuf {
        self.config.path().join("trust/repos").join(self.server.addr.replace(':', "_")).join("h/app.root.json")
    }
}

/// A server with `h/app:v1` pushed and signed.
fn setup(env: &[(&str, &str)]) -> Env {
    let e =
        Env { server: Server::start(env), store: tempfile::tempdir().unwrap(), config: tempfile::tempdir().unwrap() };
    let host = e.server.addr.clone();
    for args in [
        vec!["trust".to_string(), "init".into(), format!("{host}/h/app")],
        vec![
            "push".into(),
            "--sign".into(),
            format!("oci:{}:latest", images().join("small").display()),
            format!("{host}/h/app:v1"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = e.wharf(e.store.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    e
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// No partial download and no unverified blob in the store.
fn store_clean(store: &Path) {
    let ingest: Vec<_> =
        std::fs::read_dir(store.join("ingest")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(ingest.is_empty(), "half-written downloads left: {ingest:?}");
    for e in std::fs::read_dir(store.join("blobs/sha256")).into_iter().flatten().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        assert_eq!(common::sha256(&bytes), format!("sha256:{name}"), "unverified blob in the store");
    }
}

/// A fresh store, or a copy of the one that has seen the newest trust data, also recorded for the proxy's
/// address (as if the client had pulled from that registry before).
fn store_for(e: &Env, seen: bool, proxy: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    if seen {
        let st =
            Command::new("cp").arg("-a").arg(format!("{}/.", e.store.path().display())).arg(t.path()).status().unwrap();
        assert!(st.success());
        let _ = std::fs::remove_dir_all(t.path().join("blobs"));
        let _ = std::fs::remove_dir_all(t.path().join("refs"));
        let trust = t.path().join("trust");
        let st = Command::new("cp")
            .arg("-a")
            .arg(trust.join(e.server.addr.replace(':', "_")))
            .arg(trust.join(proxy.replace(':', "_")))
            .status()
            .unwrap();
        assert!(st.success());
    }
    t
}

async fn check(mode: Mode, needle: &str, env: &[(&str, &str)], seen: bool, before: impl FnOnce(&Env, &str)) {
    let e = setup(env);
    let proxy = start_proxy(&e.server.addr, mode).await;
    before(&e, &proxy);
    let root = e.root();
    let root = root.to_str().unwrap();
    // As a mirror: the origin is honest, so the pull succeeds and the mirror is named as skipped.
    let store = store_for(&e, seen, &proxy);
    let origin_ref = format!("{}/h/app:v1", e.server.addr);
    let out =
        e.wharf(store.path(), &["pull", "--trust-root", root, "--mirror", &format!("http://{proxy}/"), &origin_ref]);
    assert!(out.status.success(), "{mode:?} as mirror: {}", text(&out));
    assert!(text(&out).contains("skipping source"), "{mode:?}: no warning about the mirror:\n{}", text(&out));
    store_clean(store.path());
    // As the only source: the pull fails, says why, exits 3, leaves the store clean.
    let store = store_for(&e, seen, &proxy);
    let out = e.wharf(store.path(), &["pull", "--trust-root", root, &format!("{proxy}/h/app:v1")]);
    assert_eq!(out.status.code(), Some(3), "{mode:?} alone: {}", text(&out));
    assert!(text(&out).contains(needle), "{mode:?}: expected {needle:?} in:\n{}", text(&out));
    let _ = std::fs::create_dir_all(store.path().join("ingest"));
    store_clean(store.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_blob() {
    check(Mode::TamperBlob, "tampered", &[], false, |_, _| {}).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_manifest() {
    check(Mode::TamperManifest, "does not hash to", &[], false, |_, _| {}).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_the_declared_length() {
    check(Mode::Endless, "sent more than", &[], false, |_, _| {}).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn too_few_signatures() {
    check(Mode::StripSignatures, "threshold", &[], false, |_, _| {}).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolled_back_timestamp() {
    // The client has seen a newer timestamp (through the origin) than the one the proxy replays.
    check(Mode::RollbackTimestamp, "version", &[], true, |e, proxy| {
        let host = &e.server.addr;
        let root = e.root();
        let root = root.to_str().unwrap();
        // The proxy captures the current timestamp; a new signature then moves the repository on...
        let _ =
            e.wharf(tempfile::tempdir().unwrap().path(), &["pull", "--trust-root", root, &format!("{proxy}/h/app:v1")]);
        let out = e.wharf(
            e.store.path(),
            &[
                "push",
                "--sign",
                &format!("oci:{}:latest", images().join("small").display()),
                &format!("{host}/h/app:v2"),
            ],
        );
        assert!(out.status.success());
        // ...and the client records the newer trust data from the origin.
        let out = e.wharf(e.store.path(), &["pull", "--trust-root", root, &format!("{host}/h/app:v2")]);
        assert!(out.status.success(), "{}", text(&out));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frozen_timestamp() {
    check(
        Mode::Freeze,
        "expired",
        &[("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", "3"), ("WHARF_TRUST_RENEW_CHECK_SECS", "1")],
        false,
        |e, proxy| {
            // The proxy captures the first timestamp, then keeps serving it after it has expired.
            let _ = e.wharf(
                tempfile::tempdir().unwrap().path(),
                &["pull", "--trust-root", e.root().to_str().unwrap(), &format!("{proxy}/h/app:v1")],
            );
            std::thread::sleep(std::time::Duration::from_secs(4));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_snapshot() {
    check(Mode::MixAndMatch, "does not match", &[], false, |e, proxy| {
        // The proxy captures snapshot v2, then a new signature moves the repository to snapshot v3.
        let _ = e.wharf(
            tempfile::tempdir().unwrap().path(),
            &["pull", "--trust-root", e.root().to_str().unwrap(), &format!("{proxy}/h/app:v1")],
        );
        let host = &e.server.addr;
        let out = e.wharf(
            e.store.path(),
            &[
                "push",
                "--sign",
                &format!("oci:{}:latest", images().join("small").display()),
                &format!("{host}/h/app:v2"),
            ],
        );
        assert!(out.status.success());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_resumes_with_range() {
    let e = setup(&[]);
    let (proxy, state) = start_proxy_with(&e.server.addr, Mode::CutOnce).await;
    let store = tempfile::tempdir().unwrap();
    let out =
        e.wharf(store.path(), &["pull", "--trust-root", e.root().to_str().unwrap(), &format!("{proxy}/h/app:v1")]);
    assert!(out.status.success(), "{}", text(&out));
    let ranges = state.ranges.lock().unwrap().clone();
    assert!(
        ranges.iter().any(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-")),
        "no resumed download: {ranges:?}"
    );
    store_clean(store.path());
}

/// A mirror that trickles blobs (16 bytes a second) is abandoned after the low-speed window and the pull goes on
/// from the origin; as the only source it fails naming the slow source, and leaves no partial file behind.
#[tokio::test(flavor = "multi_thread")]
async fn slow_retrieval_is_abandoned() {
    let e = setup(&[]);
    let proxy = start_proxy(&e.server.addr, Mode::Trickle).await;
    let root = e.root();
    let root = root.to_str().unwrap();
    let store = store_for(&e, false, &proxy);
    let origin_ref = format!("{}/h/app:v1", e.server.addr);
    let started = std::time::Instant::now();
    let args = ["--low-speed-time", "2", "pull", "--trust-root", root, "--mirror", &format!("http://{proxy}/")];
    let mut all: Vec<&str> = args.to_vec();
    all.push(&origin_ref);
    let out = e.wharf(store.path(), &all);
    assert!(out.status.success(), "trickling mirror: {}", text(&out));
    assert!(text(&out).contains("skipping source") && text(&out).contains("bytes/s"), "{}", text(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
    store_clean(store.path());
    // Alone: the pull fails within the window and says why.
    let store = store_for(&e, false, &proxy);
    let only = format!("{proxy}/h/app:v1");
    let out = e.wharf(store.path(), &["--low-speed-time", "2", "pull", "--trust-root", root, &only]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("stalled or trickling"), "{}", text(&out));
    let _ = std::fs::create_dir_all(store.path().join("ingest"));
    store_clean(store.path());
}
