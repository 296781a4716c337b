//! What storage does about a remote backend that fails for a while: an S3 store that answers 500 or `503
//! SlowDown`, resets or truncates, and a PostgreSQL server that restarts.
//!
//! - **S3 requests are retried** by `object_store` itself, with the bounds set here ([`s3_retry`]): a `5xx`, `429`
//!   or `408` answer (and a `200` whose body is S3's `InternalError` or `SlowDown`, for the requests where S3 sends
//!   one) is retried for every request; a connection that could not be made or sent, for every request; a timeout
//!   or a connection lost before the answer, for idempotent requests only (GET, HEAD, PUT of a part, an overwriting
//!   PUT, completing a multipart upload: everything but the create-only PUT of a committed blob, whose caller checks
//!   afterwards whether the object is there). Uploads send `Bytes` payloads, never streams, so every attempt resends
//!   the whole body. A GET whose body breaks off is resumed by `object_store` with a ranged GET of the rest, if the
//!   object's `ETag` is unchanged.
//! - **A read is never short.** `object_store` ends a body stream cleanly when the connection ends at a frame
//!   boundary; [`exact`] counts the bytes and turns a body that ends before the range the store announced into an
//!   error, so a response streaming it breaks off (its `Content-Length` unmet) and the blob cache drops its copy.
//! - **Which failures mean "unavailable"** ([`Error::unavailable`]): the S3 store's transient failures once
//!   retries are spent (a `5xx`, `429` or `408` answer, no answer at all: a connection refused, reset or timed out,
//!   a body cut short), and the database's lost or unobtainable connections. A permanent answer (`403`, S3's
//!   `NoSuchBucket`, a response that does not parse) is a server fault: retrying it would not help. The servers answer them `503` with `Retry-After`,
//!   naming the backend; other backend failures stay server faults. PostgreSQL's pool checks each idle connection
//!   before handing it out (`test_before_acquire`), so the connections a restart killed are replaced, and it waits
//!   for a starting server up to its acquire timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use object_store::{BackoffConfig, RetryConfig};

use crate::{Error, Result};

/// How long one S3 request (with its retries) may take by default before it fails: long enough to ride out a burst
/// of `SlowDown`, short enough that a client waiting on the answer has not given up.
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts after the first, at most, within the timeout.
const S3_MAX_RETRIES: usize = 10;

/// Retries of a DELETE whose connection was lost before its answer (see [`crate::BlobStore::delete_at`]).
pub(crate) const DELETE_RETRIES: u64 = 3;

/// The retry bounds of the S3 client: exponential backoff from 50 ms (doubling, at most 4 s between attempts) with
/// full jitter (`object_store` draws each wait uniformly between the first backoff and twice the last), at most
/// [`S3_MAX_RETRIES`] retries and no new attempt after `timeout`.
pub fn s3_retry(timeout: Option<Duration>) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: S3_MAX_RETRIES,
        retry_timeout: timeout.unwrap_or(S3_RETRY_TIMEOUT),
    }
}

/// Which backend a request could not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The object store (S3), after its retries.
    ObjectStore,
    /// The metadata database (its connection was lost, or none could be had in time).
    Database,
    /// The metadata database aborted the request's transaction so that another could proceed (a PostgreSQL
    /// deadlock or serialization failure that outlasted the request's own retries).
    Contended,
}

impl Error {
    /// Whether this error means a backend is unavailable for now (so that the request may be retried), and which.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            Error::Backend(object_store::Error::Generic { store: "S3", source }) if transient(source.as_ref()) => {
                Some(Unavailable::ObjectStore)
            }
            Error::Database(e) if database_lost(e) => Some(Unavailable::Database),
            Error::Database(e) if is_conflict(e) => Some(Unavailable::Contended),
            _ => None,
        }
    }
}

/// Whether an S3 failure is one that passes: walks the error's sources for what `object_store` kept of the last
/// attempt. Its retry error is not public, so its status is read from its text (`Server returned non-2xx status
/// code: 503 ...`); an `HttpError` (or its text, `HTTP error: ...`) is a request that got no answer at all.
fn transient(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<ShortBody>() {
            return true;
        }
        if let Some(h) = e.downcast_ref::<object_store::client::HttpError>() {
            return h.kind() != object_store::client::HttpErrorKind::Decode;
        }
        let text = e.to_string();
        if let Some(at) = text.find("status code: ") {
            let code = text[at + 13..].get(..3).and_then(|c| c.parse::<u16>().ok());
            return code.is_some_and(|c| c >= 500 || c == 429 || c == 408);
        }
        if let Some(at) = text.find("Server returned error response: ") {
            let body = &text[at..];
            return body.contains("InternalError") || body.contains("SlowDown");
        }
        if text.contains("HTTP error: ") {
            return true;
        }
        next = e.source();
    }
    false
}

/// A deadlock or serialization failure: the database aborted the transaction so that another could proceed, and
/// the same transaction may simply run again.
pub(crate) fn is_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40P01" || c == "40001")
}

/// Conflicts a request's transaction rides out before it gives up ([`Unavailable::Contended`]).
const CONFLICT_RETRIES: u32 = 5;

/// Runs `attempt` (one whole transaction) again, up to [`CONFLICT_RETRIES`] times with a growing pause (20 to
/// 320 ms), while PostgreSQL aborts it as a deadlock or serialization failure. An aborted transaction left nothing
/// behind, so running it again is safe; every transaction a request makes against rows the collector also writes
/// (links, candidates, quotas) goes through here, since their locks are taken in orders no one statement controls.
pub(crate) async fn retry_conflicts<T, F, Fut>(what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut conflicts = 0;
    loop {
        match attempt().await {
            Err(Error::Database(e)) if is_conflict(&e) && conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                tracing::debug!(what, conflicts, "a transaction the database aborted runs again");
                tokio::time::sleep(Duration::from_millis(10 << conflicts)).await;
            }
            other => return other,
        }
    }
}

/// A lost connection or none to be had: I/O, the pool's timeout, a broken protocol exchange, or PostgreSQL's
/// connection exceptions (class `08`) and shutdowns (`57P01` to `57P03`, as `pg_ctl restart` sends).
fn database_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// How long a read from S3 may wait for its answer, or for the next bytes of its body, by default
/// (`storage.stall_timeout_secs`).
pub const S3_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An S3 client for `bucket` configured from the environment (`AWS_*`) and `s3`. `whole` false: the client that
/// reads blobs, whose only change is a whole-request timeout of a day, that is none a read reaches ([`answer`]
/// and [`exact`] time its stalls instead).
pub(crate) fn s3_client(
    bucket: &str,
    s3: &crate::S3Options,
    whole: bool,
) -> object_store::Result<std::sync::Arc<object_store::aws::AmazonS3>> {
    let mut b =
        object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(s3_retry(s3.retry_timeout));
    if !whole {
        let timeout = object_store::aws::AmazonS3ConfigKey::Client(object_store::ClientConfigKey::Timeout);
        b = b.with_config(timeout, "24h");
    }
    if let Some(e) = &s3.endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    if let Some(r) = &s3.region {
        b = b.with_region(r);
    }
    if s3.path_style {
        b = b.with_virtual_hosted_style_request(false);
    }
    if let (Some(k), Some(sk)) = (&s3.access_key_id, &s3.secret_access_key) {
        b = b.with_access_key_id(k).with_secret_access_key(sk);
    }
    b.build().map(std::sync::Arc::new)
}

/// The answer (the headers) of a read, each attempt given `limit` to come: one that gets none is tried once more
/// (a GET is idempotent), then the read fails as a stalled one does.
pub(crate) async fn answer<F, Fut>(limit: Duration, get: F) -> Result<object_store::Result<object_store::GetResult>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<object_store::GetResult>>,
{
    for attempt in 0..2 {
        match tokio::time::timeout(limit, get()).await {
            Ok(r) => return Ok(r),
            Err(_) if attempt == 0 => tracing::warn!("a read of the store got no answer; trying once more"),
            Err(_) => {}
        }
    }
    Err(stalled(limit))
}

/// `body` checked to hold exactly `len` bytes: one more is an error, and so is an end before the last, and so is a
/// wait of `stall` for the next bytes (the reading client has no whole-request timeout: a 1 GiB body over a slow
/// link may take minutes, as long as it keeps moving).
pub fn exact(body: BoxStream<'static, Result<Bytes>>, len: u64, stall: Duration) -> BoxStream<'static, Result<Bytes>> {
    Exact { body, left: len, done: false, stall, timer: None }.boxed()
}

/// A read that waited `stall` for an answer or for its next bytes: as transient as a body cut short.
pub(crate) fn stalled(stall: Duration) -> Error {
    let source = Box::new(ShortBody(format!("the store sent nothing for {stall:?}")));
    Error::Backend(object_store::Error::Generic { store: "S3", source })
}

struct Exact {
    body: BoxStream<'static, Result<Bytes>>,
    left: u64,
    done: bool,
    stall: Duration,
    /// Started when the body first has nothing to give after a chunk; dropped at the next chunk.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for Exact {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let left = self.left;
        let item = match self.body.poll_next_unpin(cx) {
            Poll::Pending => {
                let stall = self.stall;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if std::future::Future::poll(timer.as_mut(), cx).is_pending() {
                    return Poll::Pending;
                }
                Some(Err(stalled(stall)))
            }
            Poll::Ready(Some(Ok(chunk))) if chunk.len() as u64 > left => Some(Err(short(left, chunk.len() as u64))),
            Poll::Ready(Some(Ok(chunk))) => {
                self.left -= chunk.len() as u64;
                self.timer = None;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(None) if left > 0 => Some(Err(short(left, 0))),
            Poll::Ready(other) => other,
        };
        self.done = item.as_ref().is_none_or(|r| r.is_err());
        Poll::Ready(item)
    }
}

/// A body that broke the range the store announced: the S3 store failed (a remote store is the only one whose
/// bodies are streams).
fn short(left: u64, got: u64) -> Error {
    let source =
        Box::new(ShortBody(format!("a body ended early or ran long: {left} bytes were still due, {got} came")));
    Error::Backend(object_store::Error::Generic { store: "S3", source })
}

/// A body that broke the range the store announced (a connection cut, as far as can be told): transient.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ShortBody(String);

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as `object_store` nests one: an outer error whose source is `inner`.
    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Nested {
        text: String,
        #[source]
        inner: Option<Box<dyn std::error::Error + Send + Sync>>,
    }

    fn s3(text: &str, inner: Option<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        let retry = Nested { text: format!("Error performing GET http://s3/b/k in 2s - {text}"), inner };
        let source =
            Box::new(Nested { text: format!("Error performing get request k: {retry}"), inner: Some(Box::new(retry)) });
        Error::Backend(object_store::Error::Generic { store: "S3", source })
    }

    /// Only what passes is "unavailable": spent retries on 5xx, 429, 408, no answer, a cut body; never a 4xx
    /// that retrying cannot change, nor an answer that does not parse.
    #[test]
    fn only_transient_s3_failures_are_unavailable() {
        use object_store::client::{HttpError, HttpErrorKind};
        let io = |k| Some(Box::new(std::io::Error::from(k)) as Box<dyn std::error::Error + Send + Sync>);
        let http = |k| Some(Box::new(HttpError::new(k, std::io::Error::other("x"))) as Box<_>);
        let cases: Vec<(Error, bool)> = vec![
            (s3("Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>", None), true),
            (s3("Server returned non-2xx status code: 500 Internal Server Error: ", None), true),
            (s3("Server returned non-2xx status code: 429 Too Many Requests: ", None), true),
            (s3("Server returned non-2xx status code: 408 Request Timeout: ", None), true),
            (s3("Server returned non-2xx status code: 403 Forbidden: <Code>AccessDenied</Code>", None), false),
            (s3("Server returned non-2xx status code: 404 Not Found: <Code>NoSuchBucket</Code>", None), false),
            (s3("Server returned non-2xx status code: 400 Bad Request: ", None), false),
            (s3("Server returned error response: <Error><Code>InternalError</Code></Error>", None), true),
            (s3("Server returned error response: <Error><Code>AccessDenied</Code></Error>", None), false),
            (s3("HTTP error: error sending request", io(std::io::ErrorKind::ConnectionRefused)), true),
            (s3("a nested connection failure", http(HttpErrorKind::Connect)), true),
            (s3("a nested timeout", http(HttpErrorKind::Timeout)), true),
            (s3("a nested reset", http(HttpErrorKind::Interrupted)), true),
            (s3("a body that does not decode", http(HttpErrorKind::Decode)), false),
            (s3("Unable to extract metadata from headers: bad", None), false),
            (short(10, 0), true),
            (Error::Backend(object_store::Error::Generic { store: "LocalFileSystem", source: "x".into() }), false),
        ];
        for (e, want) in cases {
            assert_eq!(e.unavailable() == Some(Unavailable::ObjectStore), want, "{e:?}");
        }
    }

    fn run(chunks: &[&'static [u8]], len: u64) -> Vec<std::result::Result<usize, String>> {
        let chunks: Vec<Result<Bytes>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let body = futures::stream::iter(chunks).boxed();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let out: Vec<_> = rt.block_on(exact(body, len, S3_STALL_TIMEOUT).collect());
        out.into_iter()
            .map(|r| {
                r.map(|b| b.len()).map_err(|e| std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string()))
            })
            .collect()
    }

    #[test]
    fn a_body_of_the_announced_length_passes_unchanged() {
        assert_eq!(run(&[b"abc", b"de"], 5), vec![Ok(3), Ok(2)]);
        assert_eq!(run(&[], 0), vec![]);
    }

    #[test]
    fn a_short_body_ends_in_an_error() {
        let out = run(&[b"abc"], 5);
        assert_eq!(out[0], Ok(3));
        assert!(out[1].as_ref().is_err_and(|e| e.contains("2 bytes were still due")), "{out:?}");
        assert_eq!(out.len(), 2);
    }

    /// A body that gives its first bytes, then nothing: an error after the stall, not a read that never ends; a
    /// slow body that keeps moving is not a stall, however long it takes in all.
    #[test]
    fn a_stalled_body_ends_in_an_error_and_a_slow_one_does_not() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let first = futures::stream::iter([Ok(Bytes::from_static(b"abc"))]);
        let stalled = first.chain(futures::stream::pending()).boxed();
        let out: Vec<_> = rt.block_on(exact(stalled, 5, Duration::from_millis(300)).collect());
        assert_eq!(out.len(), 2);
        let e = out[1].as_ref().unwrap_err();
        assert!(std::error::Error::source(e).unwrap().to_string().contains("the store sent nothing"), "{e}");
        assert_eq!(e.unavailable(), Some(Unavailable::ObjectStore));
        let slow = futures::stream::iter(0..10)
            .then(|_| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Bytes::from_static(b"x"))
            })
            .boxed();
        let out: Vec<_> = rt.block_on(exact(slow, 10, Duration::from_millis(300)).collect());
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|r| r.is_ok()));
    }

    #[test]
    fn a_long_body_ends_in_an_error() {
        let out = run(&[b"abc", b"def"], 5);
        assert_eq!(out[0], Ok(3));
        assert!(out[1].is_err(), "{out:?}");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn only_remote_and_connection_failures_are_unavailability() {
        let s3 = Error::Backend(object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable: SlowDown".into(),
        });
        let local = Error::Backend(object_store::Error::Generic { store: "LocalFileSystem", source: "EIO".into() });
        assert_eq!(s3.unavailable(), Some(Unavailable::ObjectStore));
        assert_eq!(local.unavailable(), None);
        assert_eq!(Error::Database(sqlx::Error::PoolTimedOut).unavailable(), Some(Unavailable::Database));
        let reset = sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(Error::Database(reset).unavailable(), Some(Unavailable::Database));
        assert_eq!(Error::Database(sqlx::Error::RowNotFound).unavailable(), None);
        assert_eq!(Error::BlobUnknown.unavailable(), None);
    }
}
