//! Running the service: open storage, bind, serve until a signal, let in-flight requests finish.

use std::sync::Arc;
use std::time::Duration;

use wharf_storage::{BlobStore, Metadata, Uploads};

use crate::config::Settings;
use crate::{app, Registry, SystemClock};

/// How often idle upload sessions are looked for: half the idle timeout, between 1 and 60 seconds.
fn expiry_sweep(idle_timeout_secs: i64) -> Duration {
    Duration::from_secs((idle_timeout_secs / 2).clamp(1, 60) as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening storage")]
    Storage(#[from] wharf_storage::Error),
    #[error("listening on {addr}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("serving")]
    Serve(#[source] std::io::Error),
}

/// Builds the registry's state from settings.
pub async fn open(settings: &Settings) -> Result<Arc<Registry>, ServeError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        ServeError::Storage(wharf_storage::Error::Config(format!("creating {}: {e}", settings.data_dir.display())))
    })?;
    let blobs = BlobStore::from_url(&settings.storage_url)?;
    blobs.sweep_uploads().await?;
    let meta = Metadata::open_sqlite(&settings.database_path).await?;
    let uploads = Uploads::new(blobs.clone(), settings.upload);
    Ok(Arc::new(Registry { blobs, uploads, meta, limits: settings.limits, clock: Box::new(SystemClock) }))
}

/// Serves until `shutdown` resolves, then waits for in-flight requests. Prints the bound address on stdout.
pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let state = open(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|source| ServeError::Bind { addr: settings.addr, source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    println!("wharf: listening on http://{local}");
    tracing::info!(addr = %local, data_dir = %settings.data_dir.display(), storage = %settings.storage_url, "serving");

    let reaper_state = Arc::clone(&state);
    let sweep = expiry_sweep(settings.upload.idle_timeout_secs);
    let reaper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweep);
        loop {
            tick.tick().await;
            let now = reaper_state.clock.now();
            let n = reaper_state.uploads.expire(now).await;
            if n > 0 {
                tracing::info!(expired = n, "reclaimed idle upload sessions");
            }
        }
    });
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await;
    reaper.abort();
    tracing::info!("stopped");
    result.map_err(ServeError::Serve)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight requests");
}
