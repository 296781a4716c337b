//! Verified pull: a tag is resolved only through trust data; the manifest is fetched by digest and checked against
//! the signed length and sha256; every blob is verified while it streams into the content store. Mirrors are tried
//! first; a mirror that fails is reported once, with the source the pull goes on from (see [`crate::io::source`]).

use std::path::Path;

use url::Url;

use crate::io::source::{Failure, Failures, Source, SourceError};
use crate::io::store::{ContentStore, FetchError};
use crate::io::transport::TransportError;
use crate::io::trust::{SignedTarget, TrustError, TrustFormat};
use crate::io::unpack::UnpackOptions;
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;
use wharf_format::manifest::{Descriptor, ManifestError, ParsedManifest};
use wharf_format::media_type::MediaType;
use wharf_format::name::Reference;

mod extract;
mod manifest;
mod trusted;

pub use trusted::{anchor, refresh_trusted, Anchor, Refreshed};

/// The largest manifest fetched when no signed length bounds it.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The manifest media types a pull (and `trust sign`) asks for.
pub const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// How the first root of a repository is trusted.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Skip trust data entirely (`--insecure-skip-trust`): the tag is whatever the registry says.
    pub skip: bool,
    /// A pinned root (`--trust-root FILE`), used when nothing is recorded yet.
    pub pinned_root: Option<Vec<u8>>,
    /// Trust the repository's first root as served, then record and enforce it (explicit opt-in).
    pub trust_on_first_use: bool,
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub image: ImageRef,
    pub insecure: Vec<String>,
    pub mirrors: Vec<Url>,
    pub trust: TrustPolicy,
    /// `os/architecture` chosen from an index.
    pub platform: (String, String),
    pub concurrency: usize,
    pub now: i64,
    /// The slowest pace a source may keep before it is skipped.
    pub speed: crate::io::transport::SpeedLimit,
    /// The digest a signature policy accepted for the reference ([`crate::io::policy::decide`]), pulled instead of
    /// resolving the tag through trust data; with its signed target when trust data signed it.
    pub decided: Option<(Digest, Option<SignedTarget>)>,
}

impl PullOptions {
    pub fn new(image: ImageRef, now: i64) -> PullOptions {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        PullOptions {
            image,
            insecure: Vec::new(),
            mirrors: Vec::new(),
            trust: TrustPolicy::default(),
            platform: ("linux".into(), arch.into()),
            concurrency: 4,
            now,
            speed: crate::io::transport::SpeedLimit::default(),
            decided: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "no trusted root for {0}: pin the publisher's root with --trust-root FILE, or accept the registry's with \
         --trust-on-first-use"
    )]
    NoTrustedRoot(String),
    #[error(
        "{0} has no signed tags (the registry holds no trust data for it): its publisher signs with \
         `wharf trust init HOST/REPOSITORY` then `wharf trust sign HOST/REPOSITORY:TAG` (or `wharf push --sign`); \
         to pull anyway, pull by digest (HOST/REPOSITORY@sha256:...) or pass --insecure-skip-trust"
    )]
    NoTrustData(String),
    #[error(
        "{repo} has a recorded {recorded} root, and the pinned root (--trust-root or config.toml) is {pinned}: \
         a repository's trust format changes only deliberately: run `wharf trust forget {repo}` first"
    )]
    FormatConflict { repo: String, recorded: TrustFormat, pinned: TrustFormat },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("trust data of {repo}: {failures}")]
    TrustSources { repo: String, failures: Failures },
    #[error(
        "{repo} is held to {format} trust data, and {failures}; a pull never falls back to another trust format: \
         if its publisher changed formats on purpose, run `wharf trust forget {repo}`, then pull with \
         --trust-root FILE or --trust-on-first-use"
    )]
    TrustMissing { repo: String, format: TrustFormat, failures: Failures },
    #[error("manifest {digest}")]
    Manifest {
        digest: Digest,
        #[source]
        source: ManifestError,
    },
    #[error("manifest {digest}: no config")]
    NoConfig { digest: Digest },
    #[error("manifest {digest}: {failures}")]
    ManifestSources { digest: Digest, failures: Failures },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("no manifest for platform {os}/{arch} in index {digest}")]
    NoPlatform { digest: Digest, os: String, arch: String },
    #[error(transparent)]
    Snapshot(#[from] crate::io::snapshot::SnapshotError),
    #[error("local content store")]
    Io(#[from] std::io::Error),
    #[error("a pull task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A broken invariant of the pull itself, reported rather than panicking.
    #[error("internal error: {0}")]
    Invariant(&'static str),
}

impl PullError {
    /// The class of this failure: what the `wharf` exit code reports.
    pub fn failure(&self) -> Failure {
        match self {
            PullError::Transport(e) | PullError::Source(SourceError::Transport(e)) => e.failure(),
            PullError::Trust(e) => e.failure(),
            PullError::TrustSources { failures, .. } | PullError::ManifestSources { failures, .. } => failures.worst(),
            PullError::Fetch(e) => e.failure(),
            // Held to a format whose data is missing: a verification failure, whatever else went wrong.
            PullError::TrustMissing { .. }
            | PullError::NoTrustData(_)
            | PullError::Manifest { .. }
            | PullError::NoConfig { .. } => Failure::Verification,
            PullError::Snapshot(crate::io::snapshot::SnapshotError::Unpack {
                source: crate::io::unpack::UnpackError::DiffIdMismatch { .. },
                ..
            }) => Failure::Verification,
            PullError::Source(SourceError::BadMirror { .. } | SourceError::MirrorPrefix { .. })
            | PullError::NoTrustedRoot(_)
            | PullError::FormatConflict { .. }
            | PullError::NoPlatform { .. }
            | PullError::Snapshot(_)
            | PullError::Io(_)
            | PullError::Task(_)
            | PullError::Invariant(_) => Failure::Other,
        }
    }
}

/// What a pull verified and stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The digest the reference resolved to (an index or a manifest).
    pub digest: Digest,
    pub media_type: MediaType,
    /// The image manifest for the chosen platform.
    pub manifest: Digest,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The signed target, when resolved through trust data.
    pub signed: Option<SignedTarget>,
    /// The layers' snapshots (bottom first) when extracted.
    pub snapshots: Vec<crate::io::snapshot::Snapshot>,
}

/// The sources to try, mirrors first; the origin is always the last.
pub fn sources(opts: &PullOptions) -> Result<Vec<Source>, PullError> {
    let repo = &opts.image.repository;
    let origin = Source::origin(&opts.image.host, &opts.insecure, repo, opts.speed)?;
    let mut out = Vec::with_capacity(opts.mirrors.len() + 1);
    for (i, m) in opts.mirrors.iter().enumerate() {
        let next = opts.mirrors.get(i + 1).map_or_else(|| origin.name.clone(), |n| format!("mirror {n}"));
        out.push(Source::mirror(m, repo, opts.speed, &next)?);
    }
    out.push(origin);
    Ok(out)
}

/// The origin registry: the last source.
fn origin(srcs: &[Source]) -> Result<&Source, PullError> {
    // Invariant: `sources` always ends with the origin; an empty list is a caller's mistake, reported as one.
    srcs.last().ok_or(PullError::Invariant("no sources to pull from"))
}

/// What a pull does with the layers once each has downloaded and verified.
#[derive(Debug, Clone, Copy)]
enum Extraction {
    /// Extract nothing: the layers stay in the content store (`wharf pull --no-unpack`).
    Skip,
    /// Extract each into the snapshot store, when the config is an image config (has `rootfs.diff_ids`); the
    /// layers of an artifact whose config is something else stay downloaded content.
    IfImage(UnpackOptions),
    /// Extract each into the snapshot store, and fail when the config is not an image config: the caller builds a
    /// tree from the snapshots.
    Required(UnpackOptions),
}

/// Pulls without extracting layers.
pub async fn pull(store: &ContentStore, opts: &PullOptions) -> Result<Pulled, PullError> {
    pull_inner(store, opts, Extraction::Skip).await
}

/// Pulls and extracts every layer into the snapshot store at once: layers download in parallel, and each is
/// extracted (checked against its `diff_id`) as soon as it has arrived and verified, on all cores, while later
/// ones still download. Layers already extracted for another image are not extracted again.
pub async fn pull_extract(
    store: &ContentStore,
    opts: &PullOptions,
    unpack: UnpackOptions,
) -> Result<Pulled, PullError> {
    pull_inner(store, opts, Extraction::IfImage(unpack)).await
}

/// Pulls, extracts, and builds a flattened tree in `dir` from the snapshots.
pub async fn pull_unpack(
    store: &ContentStore,
    opts: &PullOptions,
    dir: &Path,
    unpack: UnpackOptions,
) -> Result<Pulled, PullError> {
    let p = pull_inner(store, opts, Extraction::Required(unpack)).await?;
    let (snaps, dir) = (p.snapshots.clone(), dir.to_path_buf());
    joined(tokio::task::spawn_blocking(move || crate::io::snapshot::flatten(&snaps, &dir)).await)??;
    Ok(p)
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, PullError> {
    r.map_err(PullError::Task)
}

/// The manifest (or index) a reference names, and what bounds it.
struct Resolved {
    digest: Digest,
    /// The most bytes fetched for it: its signed length, else [`MAX_MANIFEST`].
    max_len: u64,
    signed: Option<SignedTarget>,
}

/// The steps of a pull: resolve the reference, fetch the manifest (the platform's, from an index), download the
/// blobs (config first), extract the layers as `extraction` says, and record the tag.
async fn pull_inner(store: &ContentStore, opts: &PullOptions, extraction: Extraction) -> Result<Pulled, PullError> {
    let srcs = sources(opts)?;
    let Resolved { digest, max_len, signed } = resolve(store, &srcs, opts).await?;
    let top = manifest::fetch(store, &srcs, &digest, max_len, signed.as_ref().map(|s| s.length)).await?;
    let (manifest_digest, parsed) = platform_manifest(store, &srcs, opts, &digest, &top).await?;
    let config = parsed.config.clone().ok_or_else(|| PullError::NoConfig { digest: manifest_digest.clone() })?;
    let blobs: Vec<Descriptor> = std::iter::once(config.clone()).chain(parsed.layers.iter().cloned()).collect();
    if let Some(p) = store.progress() {
        p.start(blobs.iter().filter(|b| !store.has(&b.digest)).map(|b| b.size).sum());
    }
    // New content is written under the store lock (shared): `prune` waits until the ref makes it reachable.
    let _lock = crate::io::images::StoreLock::shared(store)?;
    let snapshots = download(store, &srcs, opts, &blobs, extraction).await?;
    if let Some(p) = store.progress() {
        p.finish();
    }
    if let Reference::Tag(_) = opts.image.reference {
        store.set_ref(&opts.image, &digest)?;
    }
    Ok(Pulled {
        digest,
        media_type: top.media_type,
        manifest: manifest_digest,
        config,
        layers: parsed.layers,
        signed,
        snapshots,
    })
}

/// Step 1: the digest a reference names: itself, the signed target of a tag, or (`--insecure-skip-trust`) what
/// the registry says.
async fn resolve(store: &ContentStore, srcs: &[Source], opts: &PullOptions) -> Result<Resolved, PullError> {
    if let Some((digest, signed)) = &opts.decided {
        let max_len = signed.as_ref().map_or(MAX_MANIFEST, |s| s.length);
        return Ok(Resolved { digest: digest.clone(), max_len, signed: signed.clone() });
    }
    match &opts.image.reference {
        Reference::Digest(d) => Ok(Resolved { digest: d.clone(), max_len: MAX_MANIFEST, signed: None }),
        Reference::Tag(_) if opts.trust.skip => {
            tracing::warn!("--insecure-skip-trust: the tag is NOT verified; whoever controls the registry or the network chooses the image");
            let digest = resolve_unverified(srcs, opts).await?;
            Ok(Resolved { digest, max_len: MAX_MANIFEST, signed: None })
        }
        Reference::Tag(tag) => {
            let t = trusted::resolve_signed(store, srcs, opts, tag.as_str()).await?;
            Ok(Resolved { digest: t.digest.clone(), max_len: t.length, signed: Some(t) })
        }
    }
}

/// Step 2: the image manifest: `top` itself, or the one an index lists for the wanted platform.
async fn platform_manifest(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    digest: &Digest,
    top: &ParsedManifest,
) -> Result<(Digest, ParsedManifest), PullError> {
    if !top.media_type.is_index() {
        return Ok((digest.clone(), top.clone()));
    }
    let (os, arch) = &opts.platform;
    let child = top
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p["os"] == os.as_str() && p["architecture"] == arch.as_str()))
        .ok_or_else(|| PullError::NoPlatform { digest: digest.clone(), os: os.clone(), arch: arch.clone() })?;
    let parsed = manifest::fetch(store, srcs, &child.digest, child.size, Some(child.size)).await?;
    Ok((child.digest.clone(), parsed))
}

/// Step 3: downloads every blob (`blobs` starts with the config) as its own task, at most `concurrency` at once,
/// and extracts the layers as `extraction` says while later ones still download; the snapshots, when extracted.
async fn download(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    blobs: &[Descriptor],
    extraction: Extraction,
) -> Result<Vec<crate::io::snapshot::Snapshot>, PullError> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks: Vec<_> = blobs
        .iter()
        .map(|b| {
            let (store, srcs, b, permits) = (store.clone(), srcs.to_vec(), b.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                store.fetch(&srcs, &b.digest, b.size).await
            })
        })
        .collect();
    let layer_tasks = tasks.split_off(1);
    // Invariant: `blobs` starts with the config, so there is a first task.
    let (Some(config_task), Some(config)) = (tasks.pop(), blobs.first()) else {
        return Err(PullError::Invariant("no config to download"));
    };
    if let Err(e) = joined(config_task.await).and_then(|r| r.map_err(PullError::from)) {
        let _ = extract::all(layer_tasks).await;
        return Err(e);
    }
    let digests: Vec<Digest> = blobs[1..].iter().map(|l| l.digest.clone()).collect();
    match extraction_plan(store, config, digests.len(), extraction) {
        Ok(Some((uopts, diff_ids))) => extract::as_they_arrive(store, layer_tasks, &digests, &diff_ids, uopts).await,
        Ok(None) => extract::all(layer_tasks).await.map(|()| Vec::new()),
        Err(e) => {
            let _ = extract::all(layer_tasks).await;
            Err(e)
        }
    }
}

/// Part of step 3: whether to extract the layers, and against which `diff_ids` (read from the downloaded config).
fn extraction_plan(
    store: &ContentStore,
    config: &Descriptor,
    n_layers: usize,
    extraction: Extraction,
) -> Result<Option<(UnpackOptions, Vec<Digest>)>, PullError> {
    let (uopts, required) = match extraction {
        Extraction::Skip => return Ok(None),
        Extraction::IfImage(u) => (u, false),
        Extraction::Required(u) => (u, true),
    };
    match crate::io::snapshot::diff_ids(store, config, n_layers) {
        Ok(ids) => Ok(Some((uopts, ids))),
        Err(e) if !required => {
            tracing::info!(error = %e, "not an image config: the layers are stored but not extracted");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn resolve_unverified(srcs: &[Source], opts: &PullOptions) -> Result<Digest, PullError> {
    let s = origin(srcs)?;
    let path = format!("/v2/{}/manifests/{}", opts.image.repository, opts.image.reference);
    let resp = s.transport.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await?;
    let header = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = s.transport.read_bounded(resp, &s.transport.url(&path), MAX_MANIFEST).await?;
    Ok(header.unwrap_or_else(|| Digest::sha256_of(&body)))
}
