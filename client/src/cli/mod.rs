//! The `wharf` client commands (push, pull, unpack, run, trust), modelled on `docker` and `docker trust`.
//!
//! Exit codes: 0 success, 1 other failure, 3 verification failed (signatures, digests, trust data), 4 could not
//! connect.

pub mod tuf_client;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::image_ref::ImageRef;
use crate::name::Reference;
use crate::publish::{KeyStore, Passphrases, PublishError, Publisher, SignOptions, SignedManifest};
use crate::pull::{pull, PullError, PullOptions, TrustPolicy};
use crate::push::{push, PushOptions, PushSource};
use crate::store::ContentStore;
use crate::transport::Transport;

pub const EXIT_VERIFY: u8 = 3;
pub const EXIT_CONNECT: u8 = 4;

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The local content store (default: $XDG_DATA_HOME/wharf or ~/.local/share/wharf).
    #[arg(long, env = "WHARF_STORE", global = true)]
    pub store: Option<PathBuf>,
    /// Keys and trust state (default: $XDG_CONFIG_HOME/wharf or ~/.config/wharf).
    #[arg(long, env = "WHARF_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    /// Registries to reach over plain HTTP besides loopback ones (repeatable).
    #[arg(long = "insecure-registry", global = true)]
    pub insecure: Vec<String>,
    /// A download slower than this many bytes per second over --low-speed-time is abandoned and the next source
    /// tried (slow-retrieval protection).
    #[arg(long, global = true, default_value_t = 1024)]
    pub low_speed_limit: u64,
    /// The window, in seconds, over which --low-speed-limit is measured; also the longest wait for an answer.
    #[arg(long, global = true, default_value_t = 30)]
    pub low_speed_time: u64,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Push an image: SRC is oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]; REF is HOST/REPOSITORY[:TAG].
    Push {
        src: String,
        reference: String,
        /// Sign the tag after pushing (as `wharf trust sign`).
        #[arg(long)]
        sign: bool,
    },
    /// Pull an image, verified: a tag resolves only through the repository's signed trust data.
    Pull {
        reference: String,
        #[command(flatten)]
        trust: TrustArgs,
        /// Also write the image as an OCI layout: oci:DIR.
        #[arg(long)]
        output: Option<String>,
    },
    /// Apply a pulled image's layers into DIR (pulling it first if needed).
    Unpack {
        reference: String,
        dir: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        unpack: UnpackArgs,
    },
    /// Run a pulled image with an installed OCI runtime (runc or crun).
    Run {
        reference: String,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        unpack: UnpackArgs,
        /// Arguments replacing the image's Cmd.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Sign and inspect tags (like `docker trust`).
    #[command(subcommand)]
    Trust(TrustCommand),
}

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
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Create root and targets keys, fetch the service's keys, publish the first metadata. REF is HOST/REPOSITORY.
    Init { reference: String },
    /// Sign the manifest a tag points to now (into the top-level targets, or as a delegated signer).
    Sign {
        reference: String,
        /// Sign as this delegated signer, with the local key of that name (see `trust key generate`).
        #[arg(long)]
        signer: Option<String>,
    },
    /// Keys: `generate NAME` makes a signer key (writes NAME.pub); `rotate REF ROLE` replaces a role's key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Delegations: let a signer's key sign tags of a repository, or stop letting it.
    #[command(subcommand)]
    Signer(SignerCommand),
    /// Remove a tag's signature.
    Revoke { reference: String },
    /// Show the signed tags of a repository (verified).
    Inspect {
        reference: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a signer key NAME, sealed under the repository passphrase; writes NAME.pub.
    Generate {
        name: String,
        /// Where to write NAME.pub (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Rotate ROLE's key (root, targets, timestamp or snapshot) of HOST/REPOSITORY.
    Rotate { reference: String, role: String },
}

#[derive(Subcommand, Debug)]
pub enum SignerCommand {
    /// Delegate every tag of HOST/REPOSITORY to the public key in FILE, as signer NAME.
    Add {
        name: String,
        reference: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Revoke signer NAME of HOST/REPOSITORY.
    Remove { name: String, reference: String },
}

/// `<config dir>/config.toml`: defaults for every command; flags add to them.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Registries reached over plain HTTP besides loopback ones.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Mirrors tried before the origin, for every pull.
    #[serde(default)]
    pub mirrors: Vec<url::Url>,
    /// Pinned roots: `"HOST/REPOSITORY" = "/path/to/root.json"`.
    #[serde(default)]
    pub trust_roots: std::collections::BTreeMap<String, PathBuf>,
}

impl ClientConfig {
    fn load(dir: &std::path::Path) -> anyhow::Result<ClientConfig> {
        let p = dir.join("config.toml");
        match std::fs::read_to_string(&p) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", p.display())),
        }
    }
}

fn home_dir(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))
        .unwrap_or_else(|| PathBuf::from(".wharf"))
}

impl Global {
    fn store(&self) -> std::io::Result<ContentStore> {
        ContentStore::open(
            &self.store.clone().unwrap_or_else(|| home_dir("XDG_DATA_HOME", ".local/share").join("wharf")),
        )
    }

    fn config(&self) -> PathBuf {
        self.config_dir.clone().unwrap_or_else(|| home_dir("XDG_CONFIG_HOME", ".config").join("wharf"))
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise (quiet in scripts and logs).
struct Bar(indicatif::ProgressBar);

impl crate::progress::Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn bar(what: &str) -> crate::progress::ProgressSink {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    b.set_message(what.to_string());
    Some(std::sync::Arc::new(Bar(b)))
}

fn store_with_bar(g: &Global, what: &str) -> std::io::Result<ContentStore> {
    let mut s = g.store()?;
    s.set_progress(bar(what));
    Ok(s)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn passphrase(var: &str, prompt: &str) -> anyhow::Result<Vec<u8>> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p.into_bytes());
    }
    let p = rpassword::prompt_password(prompt)
        .map_err(|e| anyhow::anyhow!("{var} is not set and no terminal to ask on: {e}"))?;
    Ok(p.into_bytes())
}

fn publisher(g: &Global, image: &ImageRef) -> anyhow::Result<Publisher> {
    let cfg = g.config();
    let insecure: Vec<String> =
        g.insecure.iter().chain(ClientConfig::load(&cfg)?.insecure_registries.iter()).cloned().collect();
    Ok(Publisher {
        transport: Transport::new(&image.host, &insecure)?,
        host: image.host.clone(),
        repo: image.repository.clone(),
        keys: KeyStore::open(&cfg.join("trust/private"))?,
        state_dir: cfg.join("trust/repos"),
    })
}

fn pull_options(g: &Global, image: ImageRef, t: &TrustArgs) -> anyhow::Result<PullOptions> {
    let cfg = ClientConfig::load(&g.config())?;
    let mut o = PullOptions::new(image.clone(), now());
    o.insecure = g.insecure.iter().chain(cfg.insecure_registries.iter()).cloned().collect();
    o.mirrors = t.mirrors.iter().chain(cfg.mirrors.iter()).cloned().collect();
    o.speed = crate::transport::SpeedLimit {
        min_bytes_per_sec: g.low_speed_limit,
        window: std::time::Duration::from_secs(g.low_speed_time.max(1)),
    };
    let configured = cfg.trust_roots.get(&format!("{}/{}", image.host, image.repository)).cloned();
    let pinned = match t.trust_root.as_ref().or(configured.as_ref()) {
        Some(p) => Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("--trust-root {}: {e}", p.display()))?),
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
    #[arg(long, default_value_t = crate::unpack::DEFAULT_MAX_UNPACKED)]
    max_unpacked_bytes: u64,
}

impl UnpackArgs {
    fn options(&self) -> crate::unpack::UnpackOptions {
        crate::unpack::UnpackOptions {
            devices: self.allow_devices,
            max_bytes: self.max_unpacked_bytes,
            ..Default::default()
        }
    }
}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(p) = cause.downcast_ref::<PullError>() {
            return match p {
                PullError::Transport(_) => EXIT_CONNECT,
                PullError::Io(_) | PullError::NoTrustedRoot(_) | PullError::Unpack { .. } => 1,
                _ => EXIT_VERIFY,
            };
        }
        if cause.downcast_ref::<crate::transport::TransportError>().is_some() {
            return EXIT_CONNECT;
        }
        if matches!(cause.downcast_ref::<PublishError>(), Some(PublishError::Trust(_) | PublishError::Tuf(_))) {
            return EXIT_VERIFY;
        }
    }
    1
}

pub async fn run(g: Global, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Push { src, reference, sign } => {
            let image: ImageRef = reference.parse()?;
            let source: PushSource = src.parse()?;
            let pushed = push(
                &source,
                &PushOptions {
                    image: image.clone(),
                    insecure: g.insecure.clone(),
                    concurrency: 4,
                    progress: bar("pushing"),
                    mount_records: Some(g.store()?.root().join("mounts")),
                },
            )
            .await?;
            println!(
                "{image}: pushed {} ({} bytes; {} blobs uploaded, {} mounted, {} already there)",
                pushed.digest, pushed.size, pushed.uploaded, pushed.mounted, pushed.skipped
            );
            if sign {
                let Reference::Tag(tag) = &image.reference else { anyhow::bail!("--sign needs a tag") };
                let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
                let manifest = SignedManifest {
                    length: pushed.size,
                    digest: pushed.digest.clone(),
                    media_type: pushed.media_type.clone(),
                };
                let opts = SignOptions { tag, manifest: &manifest, signer: None, pass: &pass, now: now() };
                let v = publisher(&g, &image)?.sign(&opts).await?;
                println!("{image}: signed {} (targets version {v})", pushed.digest);
            }
        }
        ClientCommand::Pull { reference, trust, output } => {
            let store = store_with_bar(&g, "pulling")?;
            let p = pull(&store, &pull_options(&g, reference.parse()?, &trust)?).await?;
            match &p.signed {
                Some(s) => println!("{reference}: verified {} (signed by {})", p.digest, s.role),
                None => println!("{reference}: {}", p.digest),
            }
            if let Some(out) = output {
                let dir = out.strip_prefix("oci:").ok_or_else(|| anyhow::anyhow!("--output takes oci:DIR"))?;
                crate::layout::export(&store, &p, &reference.parse::<ImageRef>()?, std::path::Path::new(dir))?;
                println!("wrote OCI layout {dir}");
            }
        }
        ClientCommand::Unpack { reference, dir, trust, unpack } => {
            let store = store_with_bar(&g, "pulling")?;
            let image: ImageRef = reference.parse()?;
            let opts = pull_options(&g, image.clone(), &trust)?;
            let n = if store.get_ref(&image).is_none() || !trust.mirrors.is_empty() {
                // Not pulled yet: download and apply layers in one pipeline.
                crate::pull::pull_unpack(&store, &opts, &dir, unpack.options()).await?.layers.len()
            } else {
                let (_, layers) = crate::runtime::local_image(&store, &image, &opts.platform)?;
                crate::runtime::unpack_image(&store, &layers, &dir, &unpack.options())?;
                layers.len()
            };
            println!("{reference}: unpacked {n} layers into {}", dir.display());
        }
        ClientCommand::Run { reference, trust, unpack, args } => {
            let store = store_with_bar(&g, "pulling")?;
            let image: ImageRef = reference.parse()?;
            let opts = pull_options(&g, image.clone(), &trust)?;
            if store.get_ref(&image).is_none() {
                pull(&store, &opts).await?;
            }
            let (config, layers) = crate::runtime::local_image(&store, &image, &opts.platform)?;
            let bundle = std::env::temp_dir().join(format!("wharf-run-{}", std::process::id()));
            crate::runtime::make_bundle(&store, &config, &layers, &bundle, &args, &unpack.options())?;
            let code = crate::runtime::run_bundle(&bundle, &format!("wharf-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&bundle);
            let code = code?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        ClientCommand::Trust(t) => trust(g, t).await?,
    }
    Ok(())
}

async fn trust(g: Global, cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::Init { reference } => {
            let image: ImageRef = reference.parse()?;
            let pass = Passphrases {
                root: passphrase("WHARF_ROOT_PASSPHRASE", "Passphrase for the new root key: ")?,
                repository: passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the new repository key: ")?,
            };
            let root = publisher(&g, &image)?.init(&pass, now()).await?;
            // The publisher trusts the root it just made: pin it for this machine's pulls.
            let bytes = std::fs::read(&root).with_context(|| format!("reading {}", root.display()))?;
            g.store()?.pin_root(&image.host, &image.repository, &bytes, true)?;
            println!(
                "{}/{}: trust initialised; root metadata to pin: {}",
                image.host,
                image.repository,
                root.display()
            );
        }
        TrustCommand::Key(KeyCommand::Generate { name, dir }) => {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') || name.is_empty() {
                anyhow::bail!("a signer name is letters, digits, '-' and '_'");
            }
            let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the new key: ")?;
            let keys = KeyStore::open(&g.config().join("trust/private"))?;
            let key = keys.generate(&format!("signer:{name}"), &pass)?;
            let path = dir.join(format!("{name}.pub"));
            std::fs::write(&path, serde_json::to_vec_pretty(key.public())?)?;
            println!("generated signer key {name} ({}); public key in {}", key.key_id(), path.display());
        }
        TrustCommand::Key(KeyCommand::Rotate { reference, role }) => {
            let image: ImageRef = reference.parse()?;
            let pass = Passphrases {
                root: passphrase("WHARF_ROOT_PASSPHRASE", "Passphrase for the root key: ")?,
                repository: passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?,
            };
            let p = publisher(&g, &image)?;
            let v = p.rotate(&role, &pass, now()).await?;
            // Every rotation makes a new root version, signed by the old root: pin the newest.
            let path = p.root_path();
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            g.store()?.pin_root(&image.host, &image.repository, &bytes, false)?;
            println!("{}/{}: {role} key rotated (root version {v})", image.host, image.repository);
        }
        TrustCommand::Signer(SignerCommand::Add { name, reference, key }) => {
            let image: ImageRef = reference.parse()?;
            let public: crate::tuf::PublicKey = serde_json::from_slice(&std::fs::read(&key)?)?;
            let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
            let v = publisher(&g, &image)?.add_signer(&name, &public, &pass, now()).await?;
            println!("{}/{}: signer {name} added (targets version {v})", image.host, image.repository);
        }
        TrustCommand::Signer(SignerCommand::Remove { name, reference }) => {
            let image: ImageRef = reference.parse()?;
            let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
            let v = publisher(&g, &image)?.remove_signer(&name, &pass, now()).await?;
            println!("{}/{}: signer {name} removed (targets version {v})", image.host, image.repository);
        }
        TrustCommand::Sign { reference, signer } => {
            let image: ImageRef = reference.parse()?;
            let Reference::Tag(tag) = &image.reference else { anyhow::bail!("sign a tag: HOST/REPOSITORY:TAG") };
            let p = publisher(&g, &image)?;
            let manifest = p.fetch_manifest(tag).await?;
            let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the signing key: ")?;
            let opts = SignOptions { tag, manifest: &manifest, signer: signer.as_deref(), pass: &pass, now: now() };
            let v = p.sign(&opts).await?;
            let digest = &manifest.digest;
            println!("{image}: signed {digest} ({} version {v})", signer.as_deref().unwrap_or("targets"));
        }
        TrustCommand::Revoke { reference } => {
            let image: ImageRef = reference.parse()?;
            let Reference::Tag(tag) = &image.reference else { anyhow::bail!("revoke a tag: HOST/REPOSITORY:TAG") };
            let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
            let v = publisher(&g, &image)?.revoke(tag.as_str(), &pass, now()).await?;
            println!("{image}: signature revoked (targets version {v})");
        }
        TrustCommand::Inspect { reference, json, trust } => {
            let image: ImageRef = reference.parse()?;
            let mut t = trust.clone();
            if t.trust_root.is_none() {
                let own = publisher(&g, &image)?.root_path();
                if own.exists() {
                    t.trust_root = Some(own);
                }
            }
            let opts = pull_options(&g, image.clone(), &t)?;
            let rows = crate::inspect::signed_tags(&g.store()?, &opts).await?;
            let only = match &image.reference {
                Reference::Tag(tag) if reference.rsplit('/').next().is_some_and(|l| l.contains(':')) => {
                    Some(tag.to_string())
                }
                _ => None,
            };
            let rows: Vec<_> = rows.into_iter().filter(|r| only.as_ref().is_none_or(|o| &r.name == o)).collect();
            if json {
                let v: Vec<serde_json::Value> = rows.iter().map(|r| serde_json::json!({"tag": r.name, "digest": r.digest.to_string(), "length": r.length, "mediaType": r.media_type, "signer": r.role.as_str()})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("Signatures for {}/{}\n", image.host, image.repository);
                println!("{:<24} {:<72} SIGNER", "SIGNED TAG", "DIGEST");
                for r in rows {
                    println!("{:<24} {:<72} {}", r.name, r.digest, r.role);
                }
            }
        }
    }
    Ok(())
}
