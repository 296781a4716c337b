//! A faulty S3: an HTTP/1.1 proxy in front of the test's s3s-fs (`common::s3`) that answers some requests with
//! S3's `500 InternalError` or `503 SlowDown` (XML bodies, the request not passed on), resets the connection or
//! cuts the body short after the upstream did the work, or delays the answer. Which request gets what follows a
//! seeded schedule: the `n`th request's fault is a function of the seed and `n` (`WHARF_FAULT_SEED` reproduces a
//! run; the seed is printed). It speaks just enough HTTP for object_store's requests: `Content-Length` bodies,
//! keep-alive.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to requests.
pub const CLEAN: u8 = 0;
/// Faults by the seeded schedule (rates in [`Faulty::fault_for`]).
pub const SCHEDULE: u8 = 1;
/// Every request answers `503 SlowDown`: an outage longer than any retry.
pub const OUTAGE: u8 = 2;
/// Every GET's body is cut off halfway (the connection closed): a store that keeps truncating.
pub const TRUNCATE_GETS: u8 = 3;
/// Every GET's body stops halfway and the connection stays open, silent: a stalled store.
pub const STALL_GETS: u8 = 4;

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    InternalError,
    SlowDown,
    /// The request is carried out, then the connection is reset (`SO_LINGER` 0) halfway through the answer's body.
    Reset,
    /// The request is carried out, then half the body is sent under the full `Content-Length` and the connection
    /// is closed.
    Truncate,
    /// The answer waits 50 to 500 ms.
    Delay,
    /// Half the body is sent, then nothing more, the connection held open.
    Stall,
}

pub struct Faulty {
    upstream: String,
    seed: u64,
    pub mode: AtomicU8,
    next: AtomicU64,
    http: reqwest::Client,
    /// How many of each fault were injected.
    pub injected: Mutex<std::collections::BTreeMap<Fault, u64>>,
}

/// SplitMix64: a good enough mix of the seed and a request's number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed: `WHARF_FAULT_SEED`, else the clock's; printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("WHARF_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("S3 fault schedule: WHARF_FAULT_SEED={seed}");
    seed
}

impl Faulty {
    /// The fault for request number `n` under the schedule, and a number for its details: 3% `InternalError`,
    /// 6% `SlowDown`, 3% reset, 3% truncated, 5% delayed.
    fn fault_for(&self, n: u64) -> (Option<Fault>, u64) {
        let r = mix(self.seed ^ mix(n));
        let fault = match r % 100 {
            0..3 => Some(Fault::InternalError),
            3..9 => Some(Fault::SlowDown),
            9..12 => Some(Fault::Reset),
            12..15 => Some(Fault::Truncate),
            15..20 => Some(Fault::Delay),
            _ => None,
        };
        (fault, r >> 8)
    }

    pub fn total(&self) -> u64 {
        self.injected.lock().unwrap().values().sum()
    }
}

/// Starts the proxy on a free loopback port in front of `upstream`: its URL and its handle.
pub fn start(rt: &tokio::runtime::Runtime, upstream: &str, seed: u64) -> (String, Arc<Faulty>) {
    let f = Arc::new(Faulty {
        upstream: upstream.trim_end_matches('/').to_string(),
        seed,
        mode: AtomicU8::new(CLEAN),
        next: AtomicU64::new(0),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        injected: Mutex::new(Default::default()),
    });
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f2 = Arc::clone(&f);
    rt.spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else { return };
            tokio::spawn(connection(Arc::clone(&f2), conn));
        }
    });
    (url, f)
}

/// One request as read off the wire.
struct Request {
    method: reqwest::Method,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = reqwest::Method::from_bytes(parts.next()?.as_bytes()).ok()?;
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        assert!(k != "transfer-encoding", "the fault proxy reads Content-Length bodies only");
        if k == "content-length" {
            len = v.parse().ok()?;
        }
        headers.push((k, v));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some(Request { method, target, headers, body })
}

async fn connection(f: Arc<Faulty>, conn: TcpStream) {
    let (r, mut w) = conn.into_split();
    let mut r = BufReader::new(r);
    while let Some(req) = read_request(&mut r).await {
        let n = f.next.fetch_add(1, Ordering::SeqCst);
        let (fault, detail) = match f.mode.load(Ordering::SeqCst) {
            SCHEDULE => f.fault_for(n),
            OUTAGE => (Some(Fault::SlowDown), 0),
            TRUNCATE_GETS if req.method == reqwest::Method::GET => (Some(Fault::Truncate), 0),
            STALL_GETS if req.method == reqwest::Method::GET => (Some(Fault::Stall), 0),
            _ => (None, 0),
        };
        if let Some(fault) = fault {
            *f.injected.lock().unwrap().entry(fault).or_default() += 1;
        }
        let head = req.method == reqwest::Method::HEAD;
        let error = |status: &str, code: &str| {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected</Message>\
                 <RequestId>fault-{n}</RequestId></Error>"
            );
            let len = body.len();
            let body = if head { "" } else { body.as_str() };
            format!("HTTP/1.1 {status}\r\ncontent-type: application/xml\r\ncontent-length: {len}\r\n\r\n{body}")
        };
        match fault {
            Some(Fault::InternalError) => {
                if w.write_all(error("500 Internal Server Error", "InternalError").as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::SlowDown) => {
                if w.write_all(error("503 Slow Down", "SlowDown").as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::Delay) => tokio::time::sleep(Duration::from_millis(50 + detail % 450)).await,
            _ => {}
        }
        let mut fwd = f.http.request(req.method, format!("{}{}", f.upstream, req.target));
        for (k, v) in &req.headers {
            // The Host header too: it is signed.
            if k != "content-length" && k != "connection" {
                fwd = fwd.header(k, v);
            }
        }
        let Ok(resp) = fwd.body(req.body).send().await else { return };
        let status = resp.status();
        let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
        for (k, v) in resp.headers() {
            if !matches!(k.as_str(), "transfer-encoding" | "connection" | "content-length") || head {
                out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
            }
        }
        let Ok(body) = resp.bytes().await else { return };
        if !head {
            out.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        // Where a broken answer stops: halfway through its body, or before anything when it has none.
        let cut = if head || body.is_empty() { 0 } else { bytes.len() + body.len() / 2 };
        if !head {
            bytes.extend_from_slice(&body);
        }
        match fault {
            Some(Fault::Reset) => {
                let _ = w.write_all(&bytes[..cut]).await;
                #[allow(deprecated)]
                let _ = w.as_ref().set_linger(Some(Duration::ZERO));
                return;
            }
            Some(Fault::Truncate) => {
                let _ = w.write_all(&bytes[..cut]).await;
                let _ = w.shutdown().await;
                return;
            }
            Some(Fault::Stall) => {
                let _ = w.write_all(&bytes[..cut]).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            _ => {
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}
