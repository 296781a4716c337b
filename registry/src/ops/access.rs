//! The outermost layer: the request metrics and one access-log line per request.
//!
//! Both bodies are wrapped to count their bytes as they stream (nothing is buffered). The request is finished, and
//! counted and logged, when its answer's body has been sent or dropped, so the duration and the bytes sent are the
//! whole answer's. What happened inside comes back in the response's extensions: the route kind and repository
//! ([`Seen`], from the classification), who and from where ([`Origin`], from `ops::origin`), or the gate's refusal
//! ([`Refused`]) and the backend of a server fault ([`Fault`]).
//!
//! The line (target `wharf::access`, level `info`, `log.access = false` turns it off) holds the route kind, the
//! repository, the method, the path without its query, the status, the bytes in and out, the duration, the account
//! and the client address. Never a query string, a header, a token or a password.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use wharf_format::RepositoryName;
use wharf_storage::Origin;

use super::metrics::labels::{self, RequestLabels};
use super::Ops;
use crate::auth::gate::{Reason, Refused};
use crate::auth::ClientAddr;
use crate::error::Fault;
use crate::route::Kind;

/// What the classification saw, left in the response's extensions for this layer.
#[derive(Debug, Clone)]
pub struct Seen {
    pub kind: Kind,
    /// Only when the access log is on.
    pub repository: Option<RepositoryName>,
}

pub async fn layer(State(ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    // Off, or filtered out by the log level: nothing of the line is gathered.
    let log = ops.settings.access_log && tracing::enabled!(target: "wharf::access", tracing::Level::INFO);
    let record = ops.metrics.settings.enabled;
    if !log && !record {
        return next.run(req).await;
    }
    let started = Instant::now();
    let method = labels::Method::from(req.method());
    let peer = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    let path = log.then(|| req.uri().path().to_owned());
    let upload = is_upload(req.method(), req.uri().path());
    if upload {
        ops.metrics.uploads().inc();
    }
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    let req = req.map(|inner| {
        Body::new(Counted {
            inner,
            on_data: move |n: usize| {
                counted.fetch_add(n as u64, Ordering::Relaxed);
            },
        })
    });
    let resp = next.run(req).await;
    let seen = resp.extensions().get::<Seen>();
    let kind = seen.map_or(Kind::Invalid, |s| s.kind);
    let line = log.then(|| {
        let origin = resp.extensions().get::<Origin>();
        let refused = resp.extensions().get::<Refused>();
        let account = match (origin, refused) {
            (Some(o), _) => Some(o.actor.name().to_owned()),
            // A refused login's name is the client's text: escaped, so that it cannot forge a line of its own.
            (None, Some(r)) => r.account.as_deref().map(|a| a.escape_debug().to_string()),
            (None, None) => None,
        };
        Box::new(Line {
            path: path.unwrap_or_default(),
            repository: seen.and_then(|s| s.repository.clone()),
            account,
            address: origin.and_then(|o| o.address).or(peer),
            request_id: origin.map(|o| o.request_id.clone()),
        })
    });
    if record {
        if let Some(f) = resp.extensions().get::<Fault>() {
            ops.metrics.backend_error(*f);
        }
        let refusal = resp.extensions().get::<Refused>().map(|r| r.reason);
        if let Some(reason) = refusal {
            ops.metrics.auth_refusal(reason);
        }
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            ops.metrics.throttled(refusal == Some(Reason::Throttled));
        }
    }
    let sent = record.then(|| ops.metrics.sent(kind));
    if let Some(r) = record.then(|| ops.metrics.received(kind)) {
        // Bytes the handler has read so far; what it reads later (a body read after the answer) is not counted.
        r.inc_by(received.load(Ordering::Relaxed));
    }
    let status = resp.status().as_u16();
    let mut tally = Tally { ops, started, kind, method, status, received, sent_bytes: 0, sent, upload, record, line };
    resp.map(|inner| {
        Body::new(Counted {
            inner,
            on_data: move |n: usize| {
                tally.sent_bytes += n as u64;
                if let Some(c) = &tally.sent {
                    c.inc_by(n as u64);
                }
            },
        })
    })
}

/// A body that tells `on_data` the length of each data frame as it passes, and keeps the inner body's size hint
/// (so that a known length still becomes `Content-Length`).
struct Counted<F> {
    inner: Body,
    on_data: F,
}

impl<F: FnMut(usize) + Unpin + Send + 'static> HttpBody for Counted<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                (this.on_data)(d.len());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A blob upload request (its body is a layer): `POST`, `PATCH` or `PUT` under `/blobs/uploads/`.
fn is_upload(method: &Method, path: &str) -> bool {
    matches!(*method, Method::POST | Method::PATCH | Method::PUT) && path.contains("/blobs/uploads/")
}

/// The access-log fields that need allocating, made only when the log is on.
struct Line {
    path: String,
    repository: Option<RepositoryName>,
    account: Option<String>,
    address: Option<IpAddr>,
    request_id: Option<String>,
}

/// One request in flight: finished when its answer's body is dropped (sent, or abandoned by the client).
struct Tally {
    ops: Arc<Ops>,
    started: Instant,
    kind: Kind,
    method: labels::Method,
    status: u16,
    received: Arc<AtomicU64>,
    sent_bytes: u64,
    sent: Option<Counter>,
    upload: bool,
    record: bool,
    line: Option<Box<Line>>,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if self.upload {
            self.ops.metrics.uploads().dec();
        }
        if self.record {
            let labels = RequestLabels { route: self.kind, method: self.method, status: self.status };
            self.ops.metrics.request(labels, elapsed.as_secs_f64());
        }
        if let Some(l) = self.line.take() {
            let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            tracing::info!(
                target: "wharf::access",
                route = %self.kind.as_str(),
                method = %self.method.as_str(),
                path = %l.path,
                repository = %dash(l.repository.map(|r| r.to_string())),
                status = self.status,
                bytes_in = self.received.load(Ordering::Relaxed),
                bytes_out = self.sent_bytes,
                duration_us = elapsed.as_micros() as u64,
                account = %dash(l.account),
                address = %dash(l.address.map(|a| a.to_string())),
                request_id = %dash(l.request_id),
                "request"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads() {
        for (m, p, want) in [
            (Method::POST, "/v2/a/blobs/uploads/", true),
            (Method::PATCH, "/v2/a/blobs/uploads/abc", true),
            (Method::PUT, "/v2/a/blobs/uploads/abc", true),
            (Method::GET, "/v2/a/blobs/uploads/abc", false),
            (Method::PUT, "/v2/a/manifests/v1", false),
        ] {
            assert_eq!(is_upload(&m, p), want, "{m} {p}");
        }
    }
}
