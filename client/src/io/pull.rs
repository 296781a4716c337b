//! Verified pull: a tag is resolved only through trust data; the manifest is fetched by digest and checked against
//! the signed length and sha256; every blob is verified while it streams into the content store. Mirrors are tried
//! first; a mirror that fails is reported once, with the source the pull goes on from (see [`crate::io::source`]).

use std::path::Path;

use url::Url;

use crate::io::source::{Failure, Failures, Source, SourceError};
use crate::io::store::{ContentStore, FetchError};
use crate::io::transport::TransportError;
use crate::io::trust::{SignedTarget, TrustError, TrustFormat};
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;
use wharf_format::manifest::Descriptor;
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
    #[error("manifest {digest}: {reason}")]
    Manifest { digest: Digest, reason: String },
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
            PullError::TrustMissing { .. } | PullError::NoTrustData(_) | PullError::Manifest { .. } => {
                Failure::Verification
            }
            PullError::Snapshot(crate::io::snapshot::SnapshotError::Unpack {
                source: crate::io::unpack::UnpackError::DiffIdMismatch { .. },
                ..
            }) => Failure::Verification,
            PullError::Source(SourceError::BadMirror { .. })
            | PullError::NoTrustedRoot(_)
            | PullError::FormatConflict { .. }
            | PullError::NoPlatform { .. }
            | PullError::Snapshot(_)
            | PullError::Io(_) => Failure::Other,
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
    srcs.last().ok_or_else(|| PullError::Io(std::io::Error::other("no sources to pull from")))
}

/// Pulls without extracting layers.
pub async fn pull(store: &ContentStore, opts: &PullOptions) -> Result<Pulled, PullError> {
    pull_inner(store, opts, None).await
}

/// Pulls and extracts every layer into the snapshot store at once: layers download in parallel, and each is
/// extracted (checked against its `diff_id`) as soon as it has arrived and verified, on all cores, while later
/// ones still download. Layers already extracted for another image are not extracted again.
pub async fn pull_extract(
    store: &ContentStore,
    opts: &PullOptions,
    unpack: crate::io::unpack::UnpackOptions,
) -> Result<Pulled, PullError> {
    pull_inner(store, opts, Some((unpack, false))).await
}

/// Pulls, extracts, and builds a flattened tree in `dir` from the snapshots.
pub async fn pull_unpack(
    store: &ContentStore,
    opts: &PullOptions,
    dir: &Path,
    unpack: crate::io::unpack::UnpackOptions,
) -> Result<Pulled, PullError> {
    let p = pull_inner(store, opts, Some((unpack, true))).await?;
    let (snaps, dir) = (p.snapshots.clone(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || crate::io::snapshot::flatten(&snaps, &dir))
        .await
        .map_err(|e| PullError::Io(std::io::Error::other(e.to_string())))??;
    Ok(p)
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, PullError> {
    r.map_err(|e| PullError::Io(std::io::Error::other(e.to_string())))
}

async fn pull_inner(
    store: &ContentStore,
    opts: &PullOptions,
    unpack: Option<(crate::io::unpack::UnpackOptions, bool)>,
) -> Result<Pulled, PullError> {
    let srcs = sources(opts)?;
    let (digest, max_len, signed) = match &opts.image.reference {
        Reference::Digest(d) => (d.clone(), MAX_MANIFEST, None),
        Reference::Tag(_) if opts.trust.skip => {
            tracing::warn!("--insecure-skip-trust: the tag is NOT verified; whoever controls the registry or the network chooses the image");
            let d = resolve_unverified(&srcs, opts).await?;
            (d, MAX_MANIFEST, None)
        }
        Reference::Tag(tag) => {
            let t = trusted::resolve_signed(store, &srcs, opts, tag.as_str()).await?;
            (t.digest.clone(), t.length, Some(t))
        }
    };
    let top = manifest::fetch(store, &srcs, &digest, max_len, signed.as_ref().map(|s| s.length)).await?;
    let (manifest_digest, parsed) = if top.media_type.is_index() {
        let (os, arch) = &opts.platform;
        let child = top
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p["os"] == os.as_str() && p["architecture"] == arch.as_str()))
            .ok_or_else(|| PullError::NoPlatform { digest: digest.clone(), os: os.clone(), arch: arch.clone() })?;
        let parsed = manifest::fetch(store, &srcs, &child.digest, child.size, Some(child.size)).await?;
        (child.digest.clone(), parsed)
    } else {
        (digest.clone(), top.clone())
    };
    let config = parsed
        .config
        .clone()
        .ok_or_else(|| PullError::Manifest { digest: manifest_digest.clone(), reason: "no config".into() })?;
    let blobs: Vec<Descriptor> = std::iter::once(config.clone()).chain(parsed.layers.iter().cloned()).collect();
    if let Some(p) = store.progress() {
        p.start(blobs.iter().filter(|b| !store.has(&b.digest)).map(|b| b.size).sum());
    }
    // New content is written under the store lock (shared): `prune` waits until the ref makes it reachable.
    let _lock = crate::io::images::StoreLock::shared(store)?;
    // Every blob downloads as its own task, at most `concurrency` at once.
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks: Vec<_> = blobs
        .iter()
        .map(|b| {
            let (store, srcs, b, permits) = (store.clone(), srcs.clone(), b.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                store.fetch(&srcs, &b.digest, b.size).await
            })
        })
        .collect();
    let layer_tasks = tasks.split_off(1);
    // Invariant: `blobs` starts with the config, so there is a first task.
    let config_task = tasks.pop().ok_or_else(|| PullError::Io(std::io::Error::other("no config task")))?;
    if let Err(e) = joined(config_task.await).and_then(|r| r.map_err(PullError::from)) {
        let _ = extract::all(layer_tasks).await;
        return Err(e);
    }
    let mut snapshots = Vec::new();
    // The layers' diff_ids, when extracting: a pull that need not unpack (`required` false) leaves an artifact
    // whose config is not an image config (no `rootfs.diff_ids`) as downloaded content.
    let extract = match unpack {
        Some((uopts, required)) => match crate::io::snapshot::diff_ids(store, &config, parsed.layers.len()) {
            Ok(ids) => Some((uopts, ids)),
            Err(e) if !required => {
                tracing::info!(error = %e, "not an image config: the layers are stored but not extracted");
                None
            }
            Err(e) => {
                let _ = extract::all(layer_tasks).await;
                return Err(e.into());
            }
        },
        None => None,
    };
    if let Some((uopts, diff_ids)) = extract {
        let layers: Vec<Digest> = parsed.layers.iter().map(|l| l.digest.clone()).collect();
        snapshots = extract::as_they_arrive(store, layer_tasks, &layers, &diff_ids, uopts).await?;
    } else {
        extract::all(layer_tasks).await?;
    }
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

async fn resolve_unverified(srcs: &[Source], opts: &PullOptions) -> Result<Digest, PullError> {
    let s = origin(srcs)?;
    let path = format!("/v2/{}/manifests/{}", opts.image.repository, opts.image.reference);
    let resp = s.transport.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await?;
    let header = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = s.transport.read_bounded(resp, &s.transport.url(&path), MAX_MANIFEST).await?;
    Ok(header.unwrap_or_else(|| Digest::sha256_of(&body)))
}
