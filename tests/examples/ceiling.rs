//! The machine's push ceiling, for `deploy/bench/compare`: the least an OCI blob upload endpoint can do and still
//! be honest. It receives the body, hashes it (sha256) while writing, syncs the file, checks the digest, renames the
//! file to its address and syncs the directory, then answers `201`. No database, no limits, no checks of names: a
//! registry that pushes at 0.8x of this is spending little beyond the unavoidable.
//!
//! Usage: `ceiling ADDR DIR` (prints `listening on http://ADDR`). Endpoints: `GET /v2/`, `POST .../blobs/uploads/`,
//! `PATCH` and `PUT ...?digest=` on the upload, `HEAD .../blobs/<digest>`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sha2::Digest as _;

const BATCH: usize = 4 << 20;

struct Upload {
    file: std::fs::File,
    hasher: sha2::Sha256,
    len: u64,
}

struct Ceiling {
    dir: PathBuf,
    uploads: Mutex<HashMap<String, Arc<Mutex<Upload>>>>,
    next: std::sync::atomic::AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "ceiling-data".into()));
    std::fs::create_dir_all(dir.join("blobs"))?;
    std::fs::create_dir_all(dir.join("uploads"))?;
    let state = Arc::new(Ceiling { dir, uploads: Mutex::new(HashMap::new()), next: 0.into() });
    let app = axum::Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn handle(State(c): State<Arc<Ceiling>>, req: Request) -> Response {
    match run(&c, req).await {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn run(c: &Ceiling, req: Request) -> anyhow::Result<Response> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    if path == "/v2/" || path == "/v2" {
        return Ok(StatusCode::OK.into_response());
    }
    if method == Method::POST && path.ends_with("/blobs/uploads/") {
        let id = c.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string();
        let file = std::fs::File::create(c.dir.join("uploads").join(&id))?;
        let up = Upload { file, hasher: sha2::Sha256::new(), len: 0 };
        c.uploads.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), Arc::new(Mutex::new(up)));
        return Ok(location(StatusCode::ACCEPTED, &format!("{path}{id}"), 0));
    }
    if let Some((_, id)) = path.rsplit_once("/blobs/uploads/") {
        let id = id.to_string();
        let up = c.uploads.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
        let Some(up) = up else { return Ok(StatusCode::NOT_FOUND.into_response()) };
        // Bytes are gathered into 4 MiB batches, each hashed and written in one go off the async workers.
        let mut body = req.into_body().into_data_stream();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let next = body.next().await.transpose()?;
            if let Some(chunk) = &next {
                batch.extend_from_slice(chunk);
            }
            if batch.len() >= BATCH || (next.is_none() && !batch.is_empty()) {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                let up = Arc::clone(&up);
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let mut u = up.lock().unwrap_or_else(|p| p.into_inner());
                    u.hasher.update(&full);
                    u.len += full.len() as u64;
                    u.file.write_all(&full)
                })
                .await??;
            }
            if next.is_none() {
                break;
            }
        }
        if method == Method::PATCH {
            let len = up.lock().unwrap_or_else(|p| p.into_inner()).len;
            return Ok(location(StatusCode::ACCEPTED, &path, len));
        }
        let want = query.split('&').find_map(|kv| kv.strip_prefix("digest=")).unwrap_or("").replace("%3A", ":");
        c.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        let (from, to, blobs) = (c.dir.join("uploads").join(&id), c.dir.join("blobs"), c.dir.join("blobs"));
        let expected = want.clone();
        let ok = tokio::task::block_in_place(move || -> std::io::Result<bool> {
            let u = Arc::try_unwrap(up).map_err(|_| std::io::Error::other("upload busy"))?;
            let u = u.into_inner().unwrap_or_else(|p| p.into_inner());
            u.file.sync_all()?;
            let got = format!("sha256:{}", hex::encode(u.hasher.finalize()));
            if got != expected {
                std::fs::remove_file(&from)?;
                return Ok(false);
            }
            std::fs::rename(&from, to.join(got.trim_start_matches("sha256:")))?;
            std::fs::File::open(&blobs)?.sync_all()?;
            Ok(true)
        })?;
        let status = if ok { StatusCode::CREATED } else { StatusCode::BAD_REQUEST };
        return Ok(Response::builder().status(status).header("docker-content-digest", want).body(Body::empty())?);
    }
    if let Some((_, digest)) = path.rsplit_once("/blobs/") {
        let hex = digest.trim_start_matches("sha256:");
        return Ok(match std::fs::metadata(c.dir.join("blobs").join(hex)) {
            Ok(m) => Response::builder()
                .status(StatusCode::OK)
                .header("content-length", m.len())
                .header("docker-content-digest", digest)
                .body(Body::empty())?,
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        });
    }
    Ok(StatusCode::NOT_FOUND.into_response())
}

fn location(status: StatusCode, loc: &str, len: u64) -> Response {
    let range = format!("0-{}", len.saturating_sub(1));
    let mut r = Response::builder().status(status).header("location", loc).header("range", range);
    r = r.header("content-length", "0");
    r.body(Body::empty()).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
