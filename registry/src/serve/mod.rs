//! Running the service: open storage, bind, serve until a signal, let in-flight requests finish.

mod listen;
mod modes;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::Router;
use tower::ServiceExt;
use wharf_notary::Notary;
use wharf_storage::{BlobStore, Metadata, Uploads};

use crate::auth::Auth;
use crate::config::{KekSource, Settings};
use crate::error::{ApiError, Kind};
use crate::route::{classify, Classified, Route};
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
    #[error("starting the trust service")]
    Trust(#[from] wharf_notary::Error),
    #[error("key-encryption key file {path}")]
    KekFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("starting access control")]
    Auth(#[from] crate::auth::AuthError),
    #[error("TLS")]
    Tls(#[from] tls::TlsError),
    #[error("mirror: {0}")]
    Mirror(String),
    #[error("reading the files the policy names")]
    Policy(#[from] wharf_format::policy::MaterialError),
}

/// Everything `run` serves.
pub struct Services {
    pub registry: Arc<Registry>,
    pub notary: Arc<Notary>,
    /// `None` when access control is off.
    pub auth: Option<Arc<Auth>>,
}

/// Builds the registry's, the notary's and access control's state from settings.
pub async fn open(settings: &Settings) -> Result<Services, ServeError> {
    modes::close_data(settings).await?;
    let mut blobs = BlobStore::connect(&settings.storage_url, &settings.s3)?;
    if let Some((dir, max)) = &settings.blob_cache {
        blobs = blobs.with_cache(wharf_storage::BlobCache::open(dir, *max)?);
    }
    let meta = Metadata::open(&settings.database_url).await?;
    let uploads = Uploads::new(blobs.clone(), meta.clone(), settings.upload);
    let secret = match &settings.kek {
        KekSource::Secret(s) => s.clone().into_bytes(),
        KekSource::File(path) => std::fs::read(path)
            .map(|b| b.trim_ascii().to_vec())
            .map_err(|source| ServeError::KekFile { path: path.clone(), source })?,
        KekSource::DataDir => kek_file(&settings.data_dir.join("trust.kek"))?,
    };
    let kek = wharf_notary::kek::derive(&meta, &secret).await?;
    let ops = Arc::new(crate::ops::Ops::new(settings.ops.clone()));
    let auth = match &settings.auth {
        Some(a) => {
            let mut auth =
                Auth::open(meta.clone(), &kek, a.clone(), Box::new(SystemClock), settings.tls.is_some()).await?;
            auth.recorder = Arc::clone(&ops.recorder) as Arc<dyn wharf_storage::Recorder>;
            Some(Arc::new(auth))
        }
        None => None,
    };
    ops.limits.share(meta.clone());
    let mut notary = Notary::new(meta.clone(), kek, Box::new(SystemClock), settings.trust.clone());
    notary.recorder = Arc::clone(&ops.recorder) as Arc<dyn wharf_storage::Recorder>;
    ops.metrics.attach_trust(Arc::clone(&notary.counters));
    let redirect = settings.redirect;
    let mirror = if settings.mirrors.is_empty() {
        None
    } else {
        let spool = settings.data_dir.join("mirror-spool");
        let material = wharf_format::policy::Material::gather(&settings.policy, &crate::policy::StdFiles)
            .map_err(|e| ServeError::Mirror(crate::error::chain(&e)))?;
        let policy = wharf_format::policy::Policy { rules: settings.policy.clone() };
        let mirrors = crate::mirror::Mirrors::new(&settings.mirrors, spool).map_err(ServeError::Mirror)?;
        Some(Arc::new(mirrors.with_policy(policy, material)))
    };
    let policy = policy(&settings.policy)?;
    let clock = Box::new(SystemClock);
    let ui = settings.ui.clone();
    let registry = Registry { blobs, uploads, meta, limits: settings.limits, clock, redirect, mirror, policy, ops, ui };
    Ok(Services { registry: Arc::new(registry), notary: Arc::new(notary), auth })
}

/// The enforcer of `rules`, with every key, trusted root and trust store they name read now: a file that cannot be
/// read refuses the start, so that a server never runs a policy it could not apply.
fn policy(rules: &[wharf_format::policy::Rule]) -> Result<Option<Arc<crate::policy::Enforcer>>, ServeError> {
    if rules.is_empty() {
        return Ok(None);
    }
    let material = wharf_format::policy::Material::gather(rules, &crate::policy::StdFiles)?;
    let policy = wharf_format::policy::Policy { rules: rules.to_vec() };
    tracing::info!(rules = rules.len(), "signature policy");
    Ok(Some(Arc::new(crate::policy::Enforcer::new(policy, material))))
}

/// Reads the key-encryption secret from `path`, creating it (32 random bytes, hex, mode 0600) on first start.
fn kek_file(path: &std::path::Path) -> Result<Vec<u8>, ServeError> {
    let err = |source| ServeError::KekFile { path: path.to_path_buf(), source };
    match std::fs::read(path) {
        Ok(b) => return Ok(b),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        Err(_) => {}
    }
    let mut secret = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
    let text = hex::encode(secret);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(err)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(err)?;
    tracing::warn!(path = %path.display(), "created a key-encryption key for the trust service; back it up with the database");
    Ok(text.into_bytes())
}

/// One router for both services. Every request is classified once ([`crate::route::classify`], kept in its
/// extensions); with access control on, the gate decides on that classification, then this dispatch sends it on:
/// `/_tuf/` routes to the notary (or, for a mirrored repository, to `mirror::trust`), Notary v1 routes to the notary,
/// registry routes to the registry, and a path nothing classifies is refused here without reaching any handler.
pub fn compose(state: Arc<Registry>, notary: Router, auth: Option<Arc<Auth>>) -> Router {
    let registry = app(Arc::clone(&state));
    let dispatch_state = Arc::clone(&state);
    let ui_auth = auth.clone();
    let both = Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let (registry, notary, state) = (registry.clone(), notary.clone(), Arc::clone(&dispatch_state));
        let ui_auth = ui_auth.clone();
        async move {
            let Some(c) = req.extensions().get::<Classified>().cloned() else {
                return Ok(ApiError::new(Kind::Internal, "request not classified").into_response());
            };
            match c.route {
                Route::Invalid(i) => Ok(crate::with_api_version(i.answer().into_response())),
                Route::Tuf(repo, path) if c.mirrored => match state.mirror.as_ref().and_then(|m| m.route(&repo)) {
                    Some(found) => Ok(crate::mirror::trust::serve(&state, req, (repo, found, path)).await),
                    None => Ok(ApiError::new(Kind::Internal, "mirror route vanished").into_response()),
                },
                // A mirror holds no Notary v1 collection of its own: writes are refused, reads find none.
                Route::NotaryV1 { ref repository, .. } if c.mirrored => {
                    let write = c.kind(req.method()) == crate::route::Kind::MirrorTufWrite;
                    let e = match state.mirror.as_ref().and_then(|m| m.route(repository)) {
                        Some(r) if write => crate::mirror::denied(repository, &r),
                        _ => ApiError::new(Kind::NameUnknown, format!("{repository} is mirrored: no collection here")),
                    };
                    Ok(crate::with_api_version(e.into_response()))
                }
                // A trust write changes what the policy's verdicts for the repository read.
                Route::Tuf(ref repo, _) | Route::NotaryV1 { repository: ref repo, .. }
                    if !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) =>
                {
                    let repo = repo.clone();
                    let resp = notary.oneshot(req).await;
                    crate::policy::gate::changed(&state, &repo);
                    resp
                }
                Route::Tuf(..) | Route::NotaryV1 { .. } | Route::Changefeed => notary.oneshot(req).await,
                Route::Health if req.uri().path() == "/_notary_server/health" => notary.oneshot(req).await,
                Route::Metrics => Ok(crate::ops::metrics::scrape::main_port(&state, req).await),
                Route::Ui(path) => Ok(crate::ui::serve(state, ui_auth, path, req).await),
                Route::DockerV1(which) => Ok(crate::ui::search::serve(state, which, req).await),
                Route::Base | Route::Registry(_) | Route::Health | Route::Token => registry.oneshot(req).await,
            }
        }
    }));
    let ops = Arc::clone(&state.ops);
    // Inside the gate: the per-caller rate limits, then the request's origin (who, from where) for what it records.
    let origin_ops = Arc::clone(&ops);
    let both = both
        .layer(axum::middleware::from_fn(move |req: Request, next: axum::middleware::Next| {
            crate::ops::origin::layer(Arc::clone(&origin_ops), req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&ops), crate::ops::limit::by_account));
    let both = match auth {
        None => both,
        Some(auth) => Router::new()
            .route("/auth/token", axum::routing::any(crate::auth::endpoint::token).with_state(Arc::clone(&auth)))
            .merge(both)
            .layer(axum::middleware::from_fn_with_state(auth, crate::auth::gate::check)),
    };
    // Before the gate: the per-address rate limits, so a flood is refused before any credential is checked.
    let both = both.layer(axum::middleware::from_fn_with_state(Arc::clone(&ops), crate::ops::limit::by_address));
    // Outside that: the classification, before the gate and the dispatch; outermost, the access log and metrics.
    // The classification goes back out in the response's extensions (`ops::access::Seen`) for the access log.
    let log = ops.settings.access_log;
    both.layer(axum::middleware::from_fn(move |mut req: Request, next: axum::middleware::Next| {
        let mirrors = state.mirror.clone();
        async move {
            let mirrored = |r: &wharf_format::RepositoryName| mirrors.as_ref().is_some_and(|m| m.route(r).is_some());
            let c = classify(req.uri().path(), &mirrored);
            let kind = c.kind(req.method());
            let repository = if log { c.route.repository().cloned() } else { None };
            req.extensions_mut().insert(c);
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(crate::ops::access::Seen { kind, repository });
            resp
        }
    }))
    .layer(axum::middleware::from_fn_with_state(ops, crate::ops::access::layer))
}

/// Serves until `shutdown` resolves, then waits for in-flight requests. Prints the bound address on stdout.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Services { registry: state, notary, auth } = open(&settings).await?;
    let certs = match &settings.tls {
        Some((cert, key)) => Some(tls::CertSource::open(cert, key)?),
        None => None,
    };
    let acceptor = certs.as_ref().map(|c| c.acceptor()).transpose()?;
    let hangup = certs.as_ref().and_then(|c| c.spawn_reload_on_hangup());
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|source| ServeError::Bind { addr: settings.addr, source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    // `/metrics` on a listener of its own, bound before the service says it is listening.
    let scrape = match state.ops.metrics.settings.addr {
        Some(addr) if state.ops.metrics.settings.enabled => Some(
            crate::ops::metrics::scrape::listen(Arc::clone(&state), addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?,
        ),
        _ => None,
    };
    println!("wharf: listening on {}://{local}", if acceptor.is_some() { "https" } else { "http" });
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
    let collector = crate::gc::Gc::new(
        state.meta.clone(),
        state.blobs.clone(),
        Uploads::new(state.blobs.clone(), state.meta.clone(), settings.upload),
        settings.gc.clone(),
    )
    .with_recorder(Arc::clone(&state.ops.recorder) as Arc<dyn wharf_storage::Recorder>);
    let metrics = Arc::clone(&state.ops);
    let collector = collector.observed(Arc::new(move |r: &crate::gc::Report| metrics.metrics.gc_run(r)));
    let gc = crate::gc::spawn(Arc::new(collector), Arc::new(|| wharf_storage::Clock::now(&SystemClock)));
    let check = crate::check::schedule::start(&state, &settings.check);
    let audit_pruner = crate::ops::audit::spawn_pruner(
        state.meta.clone(),
        settings.ops.audit.clone(),
        Arc::new(|| wharf_storage::Clock::now(&SystemClock)),
    );
    let renewal = wharf_notary::tuf::renew::spawn_renewal(Arc::clone(&notary));
    let reload = auth.as_ref().map(|a| a.spawn_reload());
    // Webhooks: the writer of read and blob-push events, and one deliverer per endpoint.
    let later = state.ops.later.spawn(state.meta.clone());
    let deliverers = crate::ops::notify::deliver::spawn(state.meta.clone(), &state.ops.settings.notifications);
    tracing::info!(tls = acceptor.is_some(), auth = auth.is_some(), "access");
    let router = compose(state, wharf_notary::app(notary), auth);
    listen::serve(listener, router, acceptor, shutdown).await;
    let tasks = [Some(reaper), Some(renewal), reload, hangup, gc, check, later, scrape, audit_pruner];
    for task in tasks.into_iter().flatten().chain(deliverers) {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
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
