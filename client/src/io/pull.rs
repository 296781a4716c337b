//! Verified pull: a tag is resolved only through trust data; the manifest is fetched by digest and checked against
//! the signed length and sha256; every blob is verified while it streams into the content store. Mirrors are tried
//! first and skipped, with a warning naming what failed, when anything they serve fails verification.

use std::path::Path;

use url::Url;

use crate::digest::Digest;
use crate::image_ref::ImageRef;
use crate::manifest::{Descriptor, ParsedManifest};
use crate::media_type::MediaType;
use crate::name::Reference;
use crate::store::{ContentStore, FetchError, Source};
use crate::transport::{Transport, TransportError};
use crate::trust::{find_target, refresh, Previous, SignedTarget, TrustError, TrustLimits};
use crate::tuf::Envelope;

mod extract;

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
    pub speed: crate::transport::SpeedLimit,
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
            speed: crate::transport::SpeedLimit::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Transport(#[from] TransportError),
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
    #[error("trust verification failed")]
    Trust(#[from] TrustError),
    #[error("every source failed trust verification: {}", .0.join("; "))]
    TrustAllSources(Vec<String>),
    #[error("manifest {digest}: {reason}")]
    Manifest { digest: Digest, reason: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("no manifest for platform {os}/{arch} in index {digest}")]
    NoPlatform { digest: Digest, os: String, arch: String },
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("local content store")]
    Io(#[from] std::io::Error),
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
    pub snapshots: Vec<crate::snapshot::Snapshot>,
}

/// The sources to try, mirrors first.
pub fn sources(opts: &PullOptions) -> Result<Vec<Source>, PullError> {
    let mut out = Vec::with_capacity(opts.mirrors.len() + 1);
    for m in &opts.mirrors {
        let transport = Transport::with_origin(m.clone())?.with_speed_limit(opts.speed);
        out.push(Source { name: format!("mirror {m}"), transport });
    }
    out.push(Source {
        name: format!("registry {}", opts.image.host),
        transport: Transport::new(&opts.image.host, &opts.insecure)?.with_speed_limit(opts.speed),
    });
    Ok(out)
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
    unpack: crate::unpack::UnpackOptions,
) -> Result<Pulled, PullError> {
    pull_inner(store, opts, Some((unpack, false))).await
}

/// Pulls, extracts, and builds a flattened tree in `dir` from the snapshots.
pub async fn pull_unpack(
    store: &ContentStore,
    opts: &PullOptions,
    dir: &Path,
    unpack: crate::unpack::UnpackOptions,
) -> Result<Pulled, PullError> {
    let p = pull_inner(store, opts, Some((unpack, true))).await?;
    let (snaps, dir) = (p.snapshots.clone(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || crate::snapshot::flatten(&snaps, &dir))
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
    unpack: Option<(crate::unpack::UnpackOptions, bool)>,
) -> Result<Pulled, PullError> {
    let srcs = sources(opts)?;
    let repo = &opts.image.repository;
    let (digest, max_len, signed) = match &opts.image.reference {
        Reference::Digest(d) => (d.clone(), MAX_MANIFEST, None),
        Reference::Tag(_) if opts.trust.skip => {
            tracing::warn!("--insecure-skip-trust: the tag is NOT verified; whoever controls the registry or the network chooses the image");
            let d = resolve_unverified(&srcs, opts).await?;
            (d, MAX_MANIFEST, None)
        }
        Reference::Tag(tag) => {
            let t = resolve_signed(store, &srcs, opts, tag.as_str()).await?;
            (t.digest.clone(), t.length, Some(t))
        }
    };
    let top = fetch_manifest(store, &srcs, opts, &digest, max_len, signed.as_ref().map(|s| s.length)).await?;
    let (manifest_digest, parsed) = if top.media_type.is_index() {
        let (os, arch) = &opts.platform;
        let child = top
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p["os"] == os.as_str() && p["architecture"] == arch.as_str()))
            .ok_or_else(|| PullError::NoPlatform { digest: digest.clone(), os: os.clone(), arch: arch.clone() })?;
        let parsed = fetch_manifest(store, &srcs, opts, &child.digest, child.size, Some(child.size)).await?;
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
    let _lock = crate::images::StoreLock::shared(store)?;
    // Every blob downloads as its own task, at most `concurrency` at once.
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks: Vec<_> = blobs
        .iter()
        .map(|b| {
            let (store, srcs, repo, b, permits) =
                (store.clone(), srcs.clone(), repo.clone(), b.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                store.fetch(&srcs, &repo, &b.digest, b.size).await
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
        Some((uopts, required)) => match crate::snapshot::diff_ids(store, &config, parsed.layers.len()) {
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
    let s = srcs.last().expect("the origin is always a source");
    let path = format!("/v2/{}/manifests/{}", opts.image.repository, opts.image.reference);
    let resp = s.transport.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await?;
    let header = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = s.transport.read_bounded(resp, &s.transport.url(&path), MAX_MANIFEST).await?;
    Ok(header.unwrap_or_else(|| Digest::sha256_of(&body)))
}

/// Refreshes trust data (mirrors first) and finds the tag; records what was trusted for the next pull.
async fn resolve_signed(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    tag: &str,
) -> Result<SignedTarget, PullError> {
    // A repository signed only with `docker trust` / `notary` has a Notary v1 collection and no TUF 1.0 data.
    let pinned_notary = opts.trust.pinned_root.as_deref().is_some_and(crate::notary_v1::is_notary_root);
    if pinned_notary || crate::notary_v1::recorded(store, opts) {
        return crate::notary_v1::resolve_for_pull(store, srcs, opts, tag).await;
    }
    let limits = TrustLimits::default();
    let owned = tag.to_string();
    let refreshed = refresh_trusted(store, srcs, opts, move |s, mut r| {
        let tag = owned.clone();
        Box::pin(async move {
            let t = find_target(s.transport, &s.repo, &mut r.set, &tag, &limits).await?;
            Ok((r, t))
        })
    })
    .await;
    match refreshed {
        Ok((_, t)) => Ok(t),
        // No TUF 1.0 repository: the tag may be signed in a Notary v1 collection.
        Err(PullError::NoTrustData(name)) => match crate::notary_v1::resolve_for_pull(store, srcs, opts, tag).await {
            Err(PullError::NoTrustData(_)) => Err(PullError::NoTrustData(name)),
            other => other,
        },
        Err(e) => Err(e),
    }
}

/// A source and the repository, as handed to the per-source step of [`refresh_trusted`].
pub struct TrustSource<'a> {
    pub transport: &'a Transport,
    pub repo: crate::name::RepositoryName,
}

type Step<'a, T> = futures::future::BoxFuture<'a, Result<(crate::trust::Refreshed, T), TrustError>>;

/// Runs the TUF workflow against each source in turn (mirrors first) from the recorded, pinned or first-use root,
/// then `step` on the refreshed set; the first source that passes both wins, and what it proved is recorded.
pub async fn refresh_trusted<T, F>(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    step: F,
) -> Result<(crate::trust::Refreshed, T), PullError>
where
    F: for<'a> Fn(TrustSource<'a>, crate::trust::Refreshed) -> Step<'a, T>,
{
    let repo = &opts.image.repository;
    let dir = store.trust_dir(&opts.image.host, repo);
    crate::io::modes::create_dir_all(&dir)?;
    let recorded = std::fs::read(dir.join("root.json")).ok();
    let limits = TrustLimits::default();
    let root = match (recorded, &opts.trust.pinned_root) {
        (Some(r), _) => r,
        (None, Some(p)) => p.clone(),
        (None, None) if opts.trust.trust_on_first_use => {
            let origin = srcs.last().expect("origin");
            let r = match origin.transport.get_bounded(&format!("/v2/{repo}/_tuf/1.root.json"), limits.root).await {
                Ok(r) => r,
                Err(e) if e.is_not_found() => return Err(PullError::NoTrustData(repo_name(opts))),
                Err(e) => return Err(e.into()),
            };
            let env = Envelope::parse(&r).map_err(TrustError::from)?;
            let ids: Vec<String> = env.signatures.iter().map(|s| s.keyid.chars().take(12).collect()).collect();
            tracing::warn!(repository = %repo, keys = ?ids, recorded = %dir.display(), "trusting the repository's root on first use; it is recorded and enforced from now on");
            r.to_vec()
        }
        (None, None) => {
            // Say "no trust data" rather than "no root" when the registry has none to pin.
            let origin = srcs.last().expect("origin");
            let probe = origin.transport.get_bounded(&format!("/v2/{repo}/_tuf/1.root.json"), limits.root).await;
            return Err(match probe {
                Err(e) if e.is_not_found() => PullError::NoTrustData(repo_name(opts)),
                _ => PullError::NoTrustedRoot(opts.image.to_string()),
            });
        }
    };
    let previous =
        Previous { timestamp: read_doc(&dir.join("timestamp.json")), snapshot: read_doc(&dir.join("snapshot.json")) };
    let mut failures = Vec::new();
    let origin = srcs.last().expect("the origin is always a source");
    let mut origin_not_found = false;
    for s in srcs {
        let result = match refresh(&s.transport, repo, &root, &previous, &limits, opts.now).await {
            Ok(r) => step(TrustSource { transport: &s.transport, repo: repo.clone() }, r).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((r, t)) => {
                crate::io::modes::write(&dir.join("root.json"), r.set.root_bytes())?;
                if let Some(ts) = &r.timestamp {
                    crate::io::modes::write(&dir.join("timestamp.json"), ts)?;
                }
                crate::io::modes::write(&dir.join("snapshot.json"), &r.snapshot)?;
                return Ok((r, t));
            }
            Err(TrustError::NotSigned(t)) if srcs.len() == 1 => return Err(TrustError::NotSigned(t).into()),
            Err(TrustError::Transport(e)) if e.is_not_found() && std::ptr::eq(s, origin) => {
                origin_not_found = true;
                failures.push(format!("{}: {}", s.name, crate::transport::report(&e)));
            }
            Err(e) => {
                tracing::warn!(source = %s.name, error = %crate::transport::report(&e), "skipping source: trust data failed verification");
                failures.push(format!("{}: {}", s.name, crate::transport::report(&e)));
            }
        }
    }
    if origin_not_found {
        return Err(PullError::NoTrustData(repo_name(opts)));
    }
    Err(PullError::TrustAllSources(failures))
}

fn repo_name(opts: &PullOptions) -> String {
    format!("{}/{}", opts.image.host, opts.image.repository)
}

fn read_doc<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    Envelope::parse(&std::fs::read(path).ok()?).ok()?.decode().ok()
}

/// Fetches a manifest by digest (mirrors first), bounded by `max`, checked against its digest and, when signed,
/// its signed length; stores it and returns it parsed.
async fn fetch_manifest(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    digest: &Digest,
    max: u64,
    signed_len: Option<u64>,
) -> Result<ParsedManifest, PullError> {
    let bytes = match store.read(digest) {
        Ok(b) => b,
        Err(_) => {
            let path = format!("/v2/{}/manifests/{digest}", opts.image.repository);
            let mut failures = Vec::new();
            let mut got = None;
            for s in srcs {
                let fetched = async {
                    let resp = s.transport.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await?;
                    let out = s.transport.read_bounded(resp, &s.transport.url(&path), max).await?;
                    Ok::<_, TransportError>(out.to_vec())
                }
                .await;
                match fetched {
                    Ok(b) if !digest.matches(&b) => {
                        failures.push(format!("{}: manifest does not hash to {digest} (tampered)", s.name))
                    }
                    Ok(b) if signed_len.is_some_and(|l| l != b.len() as u64) => {
                        failures.push(format!("{}: manifest length differs from the signed length", s.name))
                    }
                    Ok(b) => {
                        got = Some(b);
                        break;
                    }
                    Err(e) => failures.push(format!("{}: {}", s.name, crate::transport::report(&e))),
                }
                if let Some(f) = failures.last() {
                    tracing::warn!(source = %s.name, error = %f, "skipping source");
                }
            }
            let b = got.ok_or_else(|| PullError::Manifest { digest: digest.clone(), reason: failures.join("; ") })?;
            store.put_verified(digest, &b)?;
            b
        }
    };
    ParsedManifest::parse_inferred(&bytes)
        .map_err(|e| PullError::Manifest { digest: digest.clone(), reason: e.to_string() })
}
