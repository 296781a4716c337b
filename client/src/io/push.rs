//! Push from an OCI image layout (a directory or an `oci-archive` tarball): blobs upload in parallel, blobs the
//! registry has are skipped, large blobs go up in chunks that resume after a dropped connection, an index pushes
//! every child first.

mod archive;
mod tag;

use archive::{docker_archive_to_layout, tempdir};
pub use tag::put_tag;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde_json::Value;

use crate::io::transport::{Transport, TransportError};
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;
use wharf_format::manifest::{Descriptor, ManifestError, ParsedManifest};
use wharf_format::name::Reference;

/// Blobs larger than this go up in chunks of `CHUNK` bytes.
const CHUNKED_ABOVE: u64 = 64 << 20;
const CHUNK: u64 = 16 << 20;
const RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// What is wrong with the image source (its layout or archive), said in words: a cause of its own is in the
    /// variants below.
    #[error("source {0}: {1}")]
    Source(String, String),
    #[error("source {path}: unpacking the archive")]
    Unpack {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("source {path}: {what}")]
    Json {
        path: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("source {digest}: the layout's manifest")]
    Manifest {
        digest: Digest,
        #[source]
        source: ManifestError,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{what}: registry answered {status}: {body}")]
    Refused { what: String, status: u16, body: String },
    #[error("{path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl PushError {
    /// The class of this failure (for the exit code).
    pub fn failure(&self) -> crate::io::source::Failure {
        use crate::io::source::Failure;
        match self {
            PushError::Transport(e) => e.failure(),
            PushError::Refused { status: 401 | 403, .. } => Failure::Denied,
            PushError::Refused { status: 500 | 502 | 503 | 504, .. } => Failure::Unreachable,
            PushError::Source(..)
            | PushError::Unpack { .. }
            | PushError::Json { .. }
            | PushError::Manifest { .. }
            | PushError::Refused { .. }
            | PushError::File { .. }
            | PushError::Io(_) => Failure::Other,
        }
    }
}

/// Names the file an I/O error is about.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> PushError + '_ {
    move |source| PushError::File { path: path.display().to_string(), source }
}

/// Where an image comes from: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME:TAG]` (the
/// `docker save` format).
#[derive(Debug, Clone)]
pub enum PushSource {
    OciDir { dir: PathBuf, tag: Option<String> },
    OciArchive { file: PathBuf, tag: Option<String> },
    DockerArchive { file: PathBuf, name: Option<String> },
}

impl std::str::FromStr for PushSource {
    type Err = PushError;

    fn from_str(s: &str) -> Result<Self, PushError> {
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !t.is_empty() => (p.into(), Some(t.into())),
                _ => (rest.into(), None),
            }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split(rest);
            Ok(PushSource::OciDir { dir, tag })
        } else if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split(rest);
            Ok(PushSource::OciArchive { file, tag })
        } else if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = match rest.split_once(':') {
                Some((f, n)) => (f.into(), Some(n.to_string())),
                None => (rest.into(), None),
            };
            Ok(PushSource::DockerArchive { file, name })
        } else {
            Err(PushError::Source(
                s.into(),
                "use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]".into(),
            ))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// Blobs uploaded and blobs the registry already had.
    pub uploaded: usize,
    pub skipped: usize,
    pub mounted: usize,
    /// The top manifest's bytes, for [`put_tag`].
    pub manifest: Vec<u8>,
}

pub struct PushOptions {
    pub image: ImageRef,
    pub insecure: Vec<String>,
    pub concurrency: usize,
    pub progress: crate::io::progress::ProgressSink,
    /// Where to remember which repository of a registry holds each blob pushed, so that a later push to another
    /// repository mounts it instead of uploading it again.
    pub mount_records: Option<PathBuf>,
    /// Push the top manifest by digest and leave the tag to [`put_tag`]: a signed push publishes its trust data
    /// first, so that a registry that protects the tag (a signature policy) accepts it.
    pub defer_tag: bool,
}

enum Outcome {
    Uploaded,
    Skipped,
    Mounted,
}

struct Ctx<'a> {
    t: Transport,
    layout: &'a Path,
    opts: &'a PushOptions,
}

fn blob_path(layout: &Path, d: &Digest) -> PathBuf {
    layout.join("blobs").join(d.algorithm().as_str()).join(d.hex())
}

pub async fn push(source: &PushSource, opts: &PushOptions) -> Result<Pushed, PushError> {
    let (layout, tag, _tmp) = match source {
        PushSource::OciDir { dir, tag } => (dir.clone(), tag.clone(), None),
        PushSource::OciArchive { file, tag } => {
            let tmp = tempdir()?;
            let f = std::fs::File::open(file).map_err(at(file))?;
            tar::Archive::new(f)
                .unpack(&tmp.0)
                .map_err(|source| PushError::Unpack { path: file.display().to_string(), source })?;
            (tmp.0.clone(), tag.clone(), Some(tmp))
        }
        PushSource::DockerArchive { file, name } => {
            let tmp = tempdir()?;
            docker_archive_to_layout(file, name.as_deref(), &tmp.0)?;
            (tmp.0.clone(), None, Some(tmp))
        }
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).map_err(at(&layout.join("index.json")))?)
            .map_err(|source| PushError::Json { path: layout.display().to_string(), what: "index.json", source })?;
    let manifests = index["manifests"]
        .as_array()
        .cloned()
        .ok_or_else(|| PushError::Source(layout.display().to_string(), "index.json has no manifests array".into()))?;
    let chosen = match &tag {
        Some(t) => manifests.iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t.as_str()),
        None if manifests.len() == 1 => manifests.first(),
        None => None,
    }
    .ok_or_else(|| {
        PushError::Source(
            layout.display().to_string(),
            "name the image with :TAG (the layout holds several or none)".into(),
        )
    })?;
    let desc: Descriptor = serde_json::from_value(chosen.clone()).map_err(|source| PushError::Json {
        path: layout.display().to_string(),
        what: "the chosen descriptor in index.json",
        source,
    })?;
    let ctx = Ctx { t: Transport::new(&opts.image.host, &opts.insecure)?, layout: &layout, opts };
    ctx.t.want_scopes(&[format!("repository:{}:pull,push", opts.image.repository)]).await;
    let mut counts = (0, 0, 0);
    let top = if opts.defer_tag { Reference::Digest(desc.digest.clone()) } else { opts.image.reference.clone() };
    push_manifest(&ctx, &desc, &top, &mut counts).await?;
    let manifest = std::fs::read(blob_path(&layout, &desc.digest)).map_err(at(&blob_path(&layout, &desc.digest)))?;
    Ok(Pushed {
        digest: desc.digest,
        size: desc.size,
        media_type: desc.media_type.to_string(),
        uploaded: counts.0,
        skipped: counts.1,
        mounted: counts.2,
        manifest,
    })
}

/// The manifests to push, children before parents, each with its bytes and parsed form.
fn plan(
    layout: &Path,
    desc: &Descriptor,
    out: &mut Vec<(Descriptor, Vec<u8>, ParsedManifest)>,
) -> Result<(), PushError> {
    let bytes = std::fs::read(blob_path(layout, &desc.digest)).map_err(at(&blob_path(layout, &desc.digest)))?;
    if !desc.digest.matches(&bytes) {
        return Err(PushError::Source(
            desc.digest.to_string(),
            "the layout's manifest does not match its digest".into(),
        ));
    }
    let parsed = ParsedManifest::parse(&bytes, Some(&desc.media_type))
        .map_err(|source| PushError::Manifest { digest: desc.digest.clone(), source })?;
    for child in &parsed.manifests {
        plan(layout, child, out)?;
    }
    out.push((desc.clone(), bytes, parsed));
    Ok(())
}

async fn push_manifest(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    reference: &Reference,
    counts: &mut (usize, usize, usize),
) -> Result<(), PushError> {
    let mut steps = Vec::new();
    plan(ctx.layout, desc, &mut steps)?;
    if let Some(p) = &ctx.opts.progress {
        p.start(steps.iter().flat_map(|(_, _, m)| m.blobs().map(|b| b.size)).sum());
    }
    let last = steps.len() - 1;
    for (i, (d, bytes, parsed)) in steps.into_iter().enumerate() {
        let blobs: Vec<Descriptor> = parsed.blobs().cloned().collect();
        let mut uploads = futures::stream::iter(blobs.iter().map(|b| push_blob(ctx, b)))
            .buffer_unordered(ctx.opts.concurrency.max(1));
        while let Some(outcome) = uploads.next().await {
            match outcome? {
                Outcome::Uploaded => counts.0 += 1,
                Outcome::Skipped => counts.1 += 1,
                Outcome::Mounted => counts.2 += 1,
            }
        }
        let target = if i == last { reference.to_string() } else { d.digest.to_string() };
        let repo = &ctx.opts.image.repository;
        let url = ctx.t.url(&format!("/v2/{repo}/manifests/{target}"));
        let resp = ctx
            .t
            .send(|| ctx.t.http().put(&url).header("content-type", parsed.media_type.as_str()).body(bytes.clone()))
            .await?;
        refused(resp, &format!("manifest {}", d.digest)).await?;
    }
    if let Some(p) = &ctx.opts.progress {
        p.finish();
    }
    Ok(())
}

async fn refused(resp: reqwest::Response, what: &str) -> Result<(), PushError> {
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_else(|e| format!("(unreadable: {e})")).chars().take(300).collect();
    Err(PushError::Refused { what: what.into(), status, body })
}

/// The record of which repository on this registry last received blob `d`.
fn record_path(ctx: &Ctx<'_>, d: &Digest) -> Option<PathBuf> {
    let host = crate::io::store::host_dir(&ctx.opts.image.host);
    ctx.opts.mount_records.as_ref().map(|r| r.join(host).join(d.hex()))
}

fn remember(ctx: &Ctx<'_>, d: &Digest) {
    if let Some(p) = record_path(ctx, d) {
        let _ = p.parent().map(crate::io::modes::create_dir_all);
        let _ = crate::io::modes::write(&p, ctx.opts.image.repository.as_str().as_bytes());
    }
}

/// Uploads one blob unless the registry has it in this repository or can mount it from another.
async fn push_blob(ctx: &Ctx<'_>, b: &Descriptor) -> Result<Outcome, PushError> {
    let repo = &ctx.opts.image.repository;
    let advance = || {
        if let Some(p) = &ctx.opts.progress {
            p.advance(b.size);
        }
    };
    let head_url = ctx.t.url(&format!("/v2/{repo}/blobs/{}", b.digest));
    let head = ctx.t.send(|| ctx.t.http().head(&head_url)).await;
    if head.is_ok_and(|r| r.status().is_success()) {
        advance();
        return Ok(Outcome::Skipped);
    }
    let from = record_path(ctx, &b.digest)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .filter(|f| f.as_str() != repo.as_str());
    if let Some(from) = from.and_then(|f| f.parse::<wharf_format::name::RepositoryName>().ok()) {
        let url = ctx.t.url(&format!("/v2/{repo}/blobs/uploads/?mount={}&from={from}", b.digest));
        if let Ok(r) = ctx.t.send(|| ctx.t.http().post(&url)).await {
            if r.status().as_u16() == 201 {
                advance();
                remember(ctx, &b.digest);
                return Ok(Outcome::Mounted);
            }
            // Not mountable: the registry opened an ordinary session instead; let it expire unused.
        }
    }
    let path = blob_path(ctx.layout, &b.digest);
    let mut last = None;
    for _ in 0..RETRIES {
        let result =
            if b.size > CHUNKED_ABOVE { chunked(ctx, b, &path).await } else { monolithic(ctx, b, &path).await };
        match result {
            Ok(()) => {
                remember(ctx, &b.digest);
                return Ok(Outcome::Uploaded);
            }
            Err(e @ PushError::Refused { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| PushError::Source(b.digest.to_string(), "upload failed".into())))
}

async fn start(ctx: &Ctx<'_>) -> Result<String, PushError> {
    let repo = &ctx.opts.image.repository;
    let url = ctx.t.url(&format!("/v2/{repo}/blobs/uploads/"));
    let resp = ctx.t.send(|| ctx.t.http().post(&url)).await?;
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
    let status = resp.status();
    if status.as_u16() != 202 {
        refused(resp, "starting an upload").await?;
    }
    let loc = location.ok_or_else(|| PushError::Source(url, "no Location on upload start".into()))?;
    Ok(if loc.starts_with("http") { loc } else { ctx.t.url(&loc) })
}

fn with_digest(loc: &str, d: &Digest) -> String {
    format!("{loc}{}digest={d}", if loc.contains('?') { '&' } else { '?' })
}

async fn monolithic(ctx: &Ctx<'_>, b: &Descriptor, path: &Path) -> Result<(), PushError> {
    let loc = start(ctx).await?;
    let file = tokio::fs::File::open(path).await.map_err(at(path))?;
    let progress = ctx.opts.progress.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).inspect(move |c| {
        if let (Some(p), Ok(c)) = (&progress, c) {
            p.advance(c.len() as u64);
        }
    });
    let body = reqwest::Body::wrap_stream(stream);
    let url = with_digest(&loc, &b.digest);
    let req = ctx
        .t
        .http()
        .put(&url)
        .header("content-type", "application/octet-stream")
        .header("content-length", b.size)
        .body(body);
    let resp = ctx.t.send_once(req).await?;
    refused(resp, &format!("blob {}", b.digest)).await
}

/// PATCHes in chunks; after a failure, asks the session where it stands and continues from there.
async fn chunked(ctx: &Ctx<'_>, b: &Descriptor, path: &Path) -> Result<(), PushError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut loc = start(ctx).await?;
    let mut offset = 0u64;
    let mut file = tokio::fs::File::open(path).await.map_err(at(path))?;
    let mut failures = 0;
    while offset < b.size {
        let len = CHUNK.min(b.size - offset);
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).await?;
        let req = ctx
            .t
            .http()
            .patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{}", offset + len - 1))
            .body(buf);
        let sent = ctx.t.send_once(req).await;
        match sent {
            Ok(r) if r.status().as_u16() == 202 => {
                if let Some(p) = &ctx.opts.progress {
                    p.advance(len);
                }
                if let Some(l) = r.headers().get("location").and_then(|v| v.to_str().ok()) {
                    loc = if l.starts_with("http") { l.into() } else { ctx.t.url(l) };
                }
                offset += len;
            }
            Ok(r) if r.status().as_u16() != 416 => return refused(r, &format!("blob {} chunk", b.digest)).await,
            _ => {
                failures += 1;
                if failures > RETRIES {
                    return Err(PushError::Source(b.digest.to_string(), "too many failed chunks".into()));
                }
                // Resume from what the registry holds.
                let st = ctx.t.send(|| ctx.t.http().get(&loc)).await?;
                let range = st.headers().get("range").and_then(|v| v.to_str().ok()).unwrap_or("0-0").to_string();
                let end: u64 = range.split('-').nth(1).and_then(|e| e.parse().ok()).unwrap_or(0);
                offset = if range == "0-0" { 0 } else { end + 1 };
            }
        }
    }
    let url = with_digest(&loc, &b.digest);
    let resp = ctx.t.send(|| ctx.t.http().put(&url)).await?;
    refused(resp, &format!("blob {}", b.digest)).await
}
