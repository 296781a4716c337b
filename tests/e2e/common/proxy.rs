//! A hostile proxy in front of a registry, for mirror tests: it passes requests through, or corrupts blob bytes,
//! swaps manifests for others, or holds back a blob's last byte until released.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// What the hostile proxy in front of the origin does.
pub const CLEAN: u8 = 0;
pub const CORRUPT: u8 = 1;
pub const SWAP: u8 = 2;
pub const HOLD: u8 = 3;

pub struct Proxy {
    upstream: String,
    pub mode: AtomicU8,
    http: reqwest::Client,
    /// Released by the test to let a held body finish.
    pub release: tokio::sync::Notify,
}

async fn proxy_handle(
    axum::extract::State(p): axum::extract::State<Arc<Proxy>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::body::Body;
    let path = req.uri().path_and_query().map(|x| x.to_string()).unwrap_or_default();
    let mut fwd = p.http.request(req.method().clone(), format!("{}{path}", p.upstream));
    for (k, v) in req.headers() {
        if k != "host" {
            fwd = fwd.header(k, v);
        }
    }
    let resp = fwd.send().await.unwrap();
    let status = resp.status();
    let mut headers = resp.headers().clone();
    let mut body = resp.bytes().await.unwrap().to_vec();
    let mode = p.mode.load(Ordering::SeqCst);
    let is_blob = path.contains("/blobs/sha256:");
    if mode == CORRUPT && is_blob && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    if mode == SWAP && path.contains("/manifests/") && !body.is_empty() {
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["annotations"] = serde_json::json!({ "swapped": "yes" });
        body = serde_json::to_vec(&v).unwrap();
        headers.insert("content-length", body.len().into());
    }
    let mut r = axum::response::Response::builder().status(status);
    for (k, v) in &headers {
        r = r.header(k, v);
    }
    if mode == HOLD && is_blob && body.len() > 1 {
        // All but the last byte at once, the last one only when the test says so.
        let last = body.split_off(body.len() - 1);
        let p2 = Arc::clone(&p);
        let rest = futures::stream::once(async move {
            p2.release.notified().await;
            Ok::<_, std::io::Error>(bytes::Bytes::from(last))
        });
        let first = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(body)) });
        return r.body(Body::from_stream(futures::StreamExt::chain(first, rest))).unwrap();
    }
    r.body(Body::from(body)).unwrap()
}

pub fn start_proxy(rt: &tokio::runtime::Runtime, upstream: &str) -> (String, Arc<Proxy>) {
    let p = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_string(),
        mode: AtomicU8::new(CLEAN),
        http: reqwest::Client::new(),
        release: tokio::sync::Notify::new(),
    });
    let app = axum::Router::new().fallback(proxy_handle).with_state(Arc::clone(&p));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), p)
}
