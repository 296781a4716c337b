//! The accept loop: HTTP/1.1 and HTTP/2 (ALPN over TLS, or prior knowledge in the clear) through hyper's auto
//! connection builder, each request tagged with its peer address, and a graceful shutdown that lets in-flight
//! requests finish.

use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::ClientAddr;

/// How long a client may take to finish the TLS handshake, and to send a request's headers.
const HANDSHAKE: Duration = Duration::from_secs(30);
/// How long in-flight requests get after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HANDSHAKE);
    // As much header as HTTP/1.1 accepts, so that an oversized header gets the same answer on both (the gate's
    // `401` for a huge `Authorization`) instead of HTTP/2's connection-level refusal at 16 KiB.
    builder.http2().max_header_list_size(256 * 1024);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let svc = router.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(peer));
            req
        });
        let svc = TowerToHyperService::new(svc);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match tls.clone() {
            None => {
                tokio::spawn(async move {
                    let conn = builder.serve_connection(TokioIo::new(tcp), svc).into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open after {} s; closing them", DRAIN.as_secs());
    }
}
