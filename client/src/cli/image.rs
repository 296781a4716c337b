//! `wharf push`, `pull`, `unpack` and `run`: the image commands.

use std::path::{Path, PathBuf};

use clap::Args;

use super::cosign::{load_key, sign_sigstore, transport, SignFormat, SigstoreSignArgs, SIGSTORE_PASSPHRASE};
use super::progress::{bar, store_with_bar};
use super::trust::publisher;
use super::{now, passphrase, ClientConfig, Global};
use crate::io::publish::{SignOptions, SignedManifest};
use crate::io::pull::{pull, PullOptions, TrustPolicy};
use crate::io::push::{push, PushOptions, PushSource};
use wharf_format::image_ref::ImageRef;
use wharf_format::name::Reference;

#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// A root metadata file to trust for the repository (pinned).
    #[arg(long)]
    pub trust_root: Option<PathBuf>,
    /// Trust the repository's root as first served, then record and enforce it.
    #[arg(long)]
    pub trust_on_first_use: bool,
    /// DANGER: skip trust data; the registry alone decides what a tag means.
    #[arg(long)]
    pub insecure_skip_trust: bool,
    /// Mirrors tried before the origin (repeatable).
    #[arg(long = "mirror")]
    pub mirrors: Vec<url::Url>,
    /// A signature policy: a Wharf policy (TOML or JSON) or a containers policy.json (also `policy` in
    /// config.toml). Without one, a tag must be signed in the repository's TUF 1.0 or Notary v1 trust data.
    #[arg(long, env = "WHARF_POLICY")]
    pub policy: Option<PathBuf>,
}

pub(super) fn pull_options(g: &Global, image: ImageRef, t: &TrustArgs) -> anyhow::Result<PullOptions> {
    let cfg = ClientConfig::load(&g.config())?;
    let mut o = PullOptions::new(image.clone(), now());
    o.insecure = g.insecure.iter().chain(cfg.insecure_registries.iter()).cloned().collect();
    o.mirrors = t.mirrors.iter().chain(cfg.mirrors.iter()).cloned().collect();
    o.speed = crate::io::transport::SpeedLimit {
        min_bytes_per_sec: g.low_speed_limit,
        window: std::time::Duration::from_secs(g.low_speed_time.max(1)),
    };
    let configured = cfg.trust_roots.get(&format!("{}/{}", image.host, image.repository)).cloned();
    let pinned = match t.trust_root.as_ref().or(configured.as_ref()) {
        Some(p) => Some(anyhow::Context::with_context(std::fs::read(p), || format!("--trust-root {}", p.display()))?),
        None => None,
    };
    o.trust =
        TrustPolicy { skip: t.insecure_skip_trust, pinned_root: pinned, trust_on_first_use: t.trust_on_first_use };
    if t.insecure_skip_trust {
        eprintln!("WARNING: --insecure-skip-trust: tags are NOT verified against signed trust data; the registry (or anyone between you and it) decides which image you get. Content is still checked against its digest.");
    }
    Ok(o)
}

/// Maps an error to the documented exit code.
/// How layers are applied: the device policy and the unpacked-size limit.
#[derive(Args, Debug, Clone)]
pub struct UnpackArgs {
    /// Create character and block device nodes the image contains (trusted images only). Without it each is an
    /// empty placeholder file, named in a warning.
    #[arg(long)]
    allow_devices: bool,
    /// Stop when the image unpacks to more than this many bytes (default 64 GiB): decompression bombs.
    #[arg(long, default_value_t = crate::io::unpack::DEFAULT_MAX_UNPACKED)]
    max_unpacked_bytes: u64,
}

impl UnpackArgs {
    fn options(&self) -> crate::io::unpack::UnpackOptions {
        crate::io::unpack::UnpackOptions {
            devices: self.allow_devices,
            max_bytes: self.max_unpacked_bytes,
            ..Default::default()
        }
    }
}

pub(super) async fn push_cmd(
    g: &Global,
    src: &str,
    reference: &str,
    sign: bool,
    formats: &SigstoreSignArgs,
) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let source: PushSource = src.parse()?;
    // The sigstore key opens before the push, so that a wrong path or passphrase costs no upload.
    let sigstore_key = match (sign && formats.wants(SignFormat::Sigstore), &formats.sigstore_key) {
        (true, Some(path)) => Some(load_key(path, SIGSTORE_PASSPHRASE)?),
        (true, None) => anyhow::bail!("--sign-format sigstore needs --sigstore-key FILE"),
        (false, _) => None,
    };
    // A signed push tags last, after its signatures and trust data are published: a registry that protects the
    // tag refuses an unsigned manifest under it.
    let defer_tag = sign && matches!(image.reference, Reference::Tag(_));
    let opts = PushOptions {
        image: image.clone(),
        insecure: g.insecure.clone(),
        concurrency: 4,
        progress: bar("pushing"),
        mount_records: Some(g.store()?.root().join("mounts")),
        defer_tag,
    };
    let pushed = push(&source, &opts).await?;
    println!(
        "{image}: pushed {} ({} bytes; {} blobs uploaded, {} mounted, {} already there)",
        pushed.digest, pushed.size, pushed.uploaded, pushed.mounted, pushed.skipped
    );
    if let Some(key) = &sigstore_key {
        sign_sigstore(&transport(g, &image)?, &image, &pushed.digest, key).await?;
    }
    if sign && formats.wants(SignFormat::Tuf) {
        let Reference::Tag(tag) = &image.reference else { anyhow::bail!("--sign needs a tag") };
        let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
        let manifest = SignedManifest {
            length: pushed.size,
            digest: pushed.digest.clone(),
            media_type: pushed.media_type.clone(),
        };
        let sign_opts = SignOptions { tag, manifest: &manifest, signer: None, pass: &pass, now: now() };
        let v = publisher(g, &image)?.sign(&sign_opts).await?;
        println!("{image}: signed {} (targets version {v})", pushed.digest);
    }
    if defer_tag {
        crate::io::push::put_tag(&opts, &pushed).await?;
    }
    Ok(())
}

pub(super) async fn pull_cmd(
    g: &Global,
    reference: &str,
    trust: &TrustArgs,
    output: Option<String>,
    unpack: Option<&UnpackArgs>,
) -> anyhow::Result<()> {
    let store = store_with_bar(g, "pulling")?;
    let mut opts = pull_options(g, reference.parse()?, trust)?;
    let by_policy = super::policy::apply(g, &store, &mut opts, trust).await?;
    let p = match unpack {
        Some(u) => crate::io::pull::pull_extract(&store, &opts, u.options()).await?,
        None => pull(&store, &opts).await?,
    };
    match (&p.signed, by_policy) {
        (Some(s), false) if matches!(opts.image.reference, Reference::Tag(_)) => println!(
            "{reference}: verified {} (signed by {} in {}; the default policy: a verified TUF 1.0 or Notary v1 tag)",
            p.digest, s.role, s.format
        ),
        (Some(s), _) => println!("{reference}: verified {} (signed by {} in {})", p.digest, s.role, s.format),
        (None, true) => println!("{reference}: {} (accepted by the policy)", p.digest),
        (None, false) => println!("{reference}: {}", p.digest),
    }
    if let Some(out) = output {
        let dir = out.strip_prefix("oci:").ok_or_else(|| anyhow::anyhow!("--output takes oci:DIR"))?;
        crate::io::layout::export(&store, &p, &reference.parse::<ImageRef>()?, std::path::Path::new(dir))?;
        println!("wrote OCI layout {dir}");
    }
    Ok(())
}

pub(super) async fn unpack_cmd(
    g: &Global,
    reference: &str,
    dir: &Path,
    trust: &TrustArgs,
    unpack: &UnpackArgs,
) -> anyhow::Result<()> {
    let store = store_with_bar(g, "pulling")?;
    let image: ImageRef = reference.parse()?;
    let mut opts = pull_options(g, image.clone(), trust)?;
    let by_policy = super::policy::apply(g, &store, &mut opts, trust).await?;
    let n = if by_policy || store.get_ref(&image).is_none() || !trust.mirrors.is_empty() {
        // Not pulled yet: download and extract layers in one pipeline, then flatten.
        crate::io::pull::pull_unpack(&store, &opts, dir, unpack.options()).await?.layers.len()
    } else {
        let (config, layers) = crate::io::runtime::local_image(&store, &image, &opts.platform)?;
        let n = layers.len();
        let (store, dir, uopts) = (store.clone(), dir.to_path_buf(), unpack.options());
        tokio::task::spawn_blocking(move || crate::io::runtime::unpack_image(&store, &config, &layers, &dir, &uopts))
            .await??;
        n
    };
    println!("{reference}: unpacked {n} layers into {}", dir.display());
    Ok(())
}

pub(super) async fn run_cmd(
    g: &Global,
    reference: &str,
    trust: &TrustArgs,
    unpack: &UnpackArgs,
    args: &[String],
) -> anyhow::Result<()> {
    let store = store_with_bar(g, "pulling")?;
    let image: ImageRef = reference.parse()?;
    let mut opts = pull_options(g, image.clone(), trust)?;
    // With a policy, the decision is made again on every run (a tag may have moved or lost its signature).
    let by_policy = super::policy::apply(g, &store, &mut opts, trust).await?;
    if by_policy || store.get_ref(&image).is_none() {
        crate::io::pull::pull_extract(&store, &opts, unpack.options()).await?;
    }
    let (config, layers) = crate::io::runtime::local_image(&store, &image, &opts.platform)?;
    let id = format!("wharf-{}", std::process::id());
    let (s, i, a, u) = (store.clone(), id.clone(), args.to_vec(), unpack.options());
    let bundle = tokio::task::spawn_blocking(move || crate::io::runtime::make_bundle(&s, &config, &layers, &i, &a, &u))
        .await??;
    tracing::info!(extracted = bundle.extracted, "bundle ready");
    let code = crate::io::runtime::run_bundle(&bundle.dir, &id);
    drop(bundle);
    let code = code?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
