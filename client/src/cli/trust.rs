//! `wharf trust`: init, sign, revoke, inspect, keys and signers, modelled on `docker trust` and `notary`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use super::image::{pull_options, TrustArgs};
use super::{now, passphrase, ClientConfig, Global};
use crate::io::publish::{KeyStore, Passphrases, Publisher, SignOptions};
use crate::io::transport::Transport;
use wharf_format::image_ref::ImageRef;
use wharf_format::name::Reference;

const MIGRATE_HELP: &str = "\
Passphrases (asked on the terminal when unset):
  DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE  the DCT key that makes the sigstore signatures
  WHARF_SIGSTORE_PASSPHRASE                   an encrypted --sigstore-key
  WHARF_ROOT_PASSPHRASE, WHARF_REPOSITORY_PASSPHRASE  the Wharf TUF keys (made on first use)";

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Create root and targets keys, fetch the service's keys, publish the first metadata.
    #[command(after_help = super::PASSPHRASES)]
    Init {
        /// The repository: HOST/REPOSITORY.
        reference: String,
    },
    /// Sign the manifest a tag points to now (into the top-level targets, or as a delegated signer).
    #[command(after_help = super::PASSPHRASES)]
    Sign {
        /// The tag to sign: HOST/REPOSITORY:TAG.
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
    #[command(after_help = super::PASSPHRASES)]
    Revoke {
        /// The tag: HOST/REPOSITORY:TAG.
        reference: String,
    },
    /// Forget the recorded root(s) of HOST/REPOSITORY in the local store, so that the next pull trusts a root anew
    /// (with --trust-root FILE or --trust-on-first-use), in whichever format the publisher now signs.
    Forget {
        /// The repository: HOST/REPOSITORY.
        reference: String,
    },
    /// Re-publish a Docker Content Trust repository's signed tags as TUF 1.0 targets and/or keyed cosign
    /// signatures, from its verified Notary v1 collection and the publisher's docker keys. Tags whose registry
    /// digest differs from the signed one are refused (exit 3).
    #[command(after_help = MIGRATE_HELP)]
    Migrate(super::migrate::MigrateArgs),
    /// Show the signed tags of a repository (verified).
    Inspect {
        /// The repository (HOST/REPOSITORY), or one tag of it (HOST/REPOSITORY:TAG).
        reference: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a signer key NAME, sealed under the repository passphrase; writes NAME.pub.
    #[command(after_help = super::PASSPHRASES)]
    Generate {
        /// The signer's name: letters, digits, '-' and '_'.
        name: String,
        /// Where to write NAME.pub (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Rotate ROLE's key (root, targets, timestamp or snapshot) of HOST/REPOSITORY.
    #[command(after_help = super::PASSPHRASES)]
    Rotate {
        /// The repository: HOST/REPOSITORY.
        reference: String,
        /// The role whose key is replaced: root, targets, timestamp or snapshot.
        role: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SignerCommand {
    /// Delegate every tag of HOST/REPOSITORY to the public key in FILE, as signer NAME.
    #[command(after_help = super::PASSPHRASES)]
    Add {
        /// The signer's name.
        name: String,
        /// The repository: HOST/REPOSITORY.
        reference: String,
        /// The signer's public key: the NAME.pub file `trust key generate` wrote.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Revoke signer NAME of HOST/REPOSITORY.
    #[command(after_help = super::PASSPHRASES)]
    Remove {
        /// The signer's name.
        name: String,
        /// The repository: HOST/REPOSITORY.
        reference: String,
    },
}

pub(super) fn publisher(g: &Global, image: &ImageRef) -> anyhow::Result<Publisher> {
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

pub(super) async fn run(g: Global, cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::Init { reference } => init(&g, &reference).await,
        TrustCommand::Key(KeyCommand::Generate { name, dir }) => generate_key(&g, &name, &dir),
        TrustCommand::Key(KeyCommand::Rotate { reference, role }) => rotate_key(&g, &reference, &role).await,
        TrustCommand::Signer(SignerCommand::Add { name, reference, key }) => {
            add_signer(&g, &name, &reference, &key).await
        }
        TrustCommand::Signer(SignerCommand::Remove { name, reference }) => remove_signer(&g, &name, &reference).await,
        TrustCommand::Sign { reference, signer } => sign(&g, &reference, signer.as_deref()).await,
        TrustCommand::Revoke { reference } => revoke(&g, &reference).await,
        TrustCommand::Forget { reference } => forget(&g, &reference),
        TrustCommand::Inspect { reference, json, trust } => inspect(&g, &reference, json, &trust).await,
        TrustCommand::Migrate(a) => super::migrate::run(&g, &a).await,
    }
}

/// `trust init HOST/REPOSITORY`: new keys and first metadata; the new root is pinned for this machine's pulls.
async fn init(g: &Global, reference: &str) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let pass = Passphrases {
        root: passphrase("WHARF_ROOT_PASSPHRASE", "Passphrase for the new root key: ")?,
        repository: passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the new repository key: ")?,
    };
    let root = publisher(g, &image)?.init(&pass, now()).await?;
    // The publisher trusts the root it just made: pin it for this machine's pulls.
    let bytes = std::fs::read(&root).with_context(|| format!("reading {}", root.display()))?;
    g.store()?.pin_root(&image.host, &image.repository, &bytes, true)?;
    println!("{}/{}: trust initialised; root metadata to pin: {}", image.host, image.repository, root.display());
    Ok(())
}

/// `trust key generate NAME`: a signer key, sealed in the key store; its public half written to `dir`.
fn generate_key(g: &Global, name: &str, dir: &Path) -> anyhow::Result<()> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') || name.is_empty() {
        anyhow::bail!("a signer name is letters, digits, '-' and '_'");
    }
    let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the new key: ")?;
    let keys = KeyStore::open(&g.config().join("trust/private"))?;
    let key = keys.generate(&format!("signer:{name}"), &pass)?;
    let path = dir.join(format!("{name}.pub"));
    std::fs::write(&path, serde_json::to_vec_pretty(key.public())?)?;
    println!("generated signer key {name} ({}); public key in {}", key.key_id(), path.display());
    Ok(())
}

/// `trust key rotate HOST/REPOSITORY ROLE`: a new key for the role, in a new root, which is pinned.
async fn rotate_key(g: &Global, reference: &str, role: &str) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let pass = Passphrases {
        root: passphrase("WHARF_ROOT_PASSPHRASE", "Passphrase for the root key: ")?,
        repository: passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?,
    };
    let p = publisher(g, &image)?;
    let v = p.rotate(role, &pass, now()).await?;
    // Every rotation makes a new root version, signed by the old root: pin the newest.
    let path = p.root_path();
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    g.store()?.pin_root(&image.host, &image.repository, &bytes, false)?;
    println!("{}/{}: {role} key rotated (root version {v})", image.host, image.repository);
    Ok(())
}

/// `trust signer add NAME HOST/REPOSITORY --key FILE`.
async fn add_signer(g: &Global, name: &str, reference: &str, key: &Path) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let public: wharf_format::tuf::PublicKey = serde_json::from_slice(&std::fs::read(key)?)?;
    let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
    let v = publisher(g, &image)?.add_signer(name, &public, &pass, now()).await?;
    println!("{}/{}: signer {name} added (targets version {v})", image.host, image.repository);
    Ok(())
}

/// `trust signer remove NAME HOST/REPOSITORY`.
async fn remove_signer(g: &Global, name: &str, reference: &str) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
    let v = publisher(g, &image)?.remove_signer(name, &pass, now()).await?;
    println!("{}/{}: signer {name} removed (targets version {v})", image.host, image.repository);
    Ok(())
}

/// `trust sign HOST/REPOSITORY:TAG [--signer NAME]`: signs the manifest the tag names on the registry now.
async fn sign(g: &Global, reference: &str, signer: Option<&str>) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let Reference::Tag(tag) = &image.reference else { anyhow::bail!("sign a tag: HOST/REPOSITORY:TAG") };
    let p = publisher(g, &image)?;
    let manifest = p.fetch_manifest(tag).await?;
    let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the signing key: ")?;
    let opts = SignOptions { tag, manifest: &manifest, signer, pass: &pass, now: now() };
    let v = p.sign(&opts).await?;
    let digest = &manifest.digest;
    println!("{image}: signed {digest} ({} version {v})", signer.unwrap_or("targets"));
    Ok(())
}

/// `trust revoke HOST/REPOSITORY:TAG`.
async fn revoke(g: &Global, reference: &str) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let Reference::Tag(tag) = &image.reference else { anyhow::bail!("revoke a tag: HOST/REPOSITORY:TAG") };
    let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
    let v = publisher(g, &image)?.revoke(tag.as_str(), &pass, now()).await?;
    println!("{image}: signature revoked (targets version {v})");
    Ok(())
}

/// `trust inspect HOST/REPOSITORY[:TAG]`: the signed tags, verified (from the publisher's own root when there is
/// one and no other is given), as a table or JSON.
async fn inspect(g: &Global, reference: &str, json: bool, trust: &TrustArgs) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    let mut t = trust.clone();
    if t.trust_root.is_none() {
        let own = publisher(g, &image)?.root_path();
        if own.exists() {
            t.trust_root = Some(own);
        }
    }
    let opts = pull_options(g, image.clone(), &t)?;
    let rows = crate::io::inspect::signed_tags(&g.store()?, &opts).await?;
    let only = match &image.reference {
        Reference::Tag(tag) if reference.rsplit('/').next().is_some_and(|l| l.contains(':')) => Some(tag.to_string()),
        _ => None,
    };
    let rows: Vec<_> = rows.into_iter().filter(|r| only.as_ref().is_none_or(|o| &r.name == o)).collect();
    let checked = crate::io::inspect::served(&opts, rows).await?;
    let flagged = checked.iter().filter(|c| c.flagged()).count();
    if json {
        let v: Vec<serde_json::Value> = checked.iter().map(inspect_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("Signatures for {}/{}\n", image.host, image.repository);
        println!("{:<24} {:<72} {:<20} {:<10} REGISTRY", "SIGNED TAG", "DIGEST", "SIGNER", "FORMAT");
        for c in &checked {
            let r = &c.signed;
            let format = match r.format {
                crate::io::trust::TrustFormat::Tuf => "tuf",
                crate::io::trust::TrustFormat::NotaryV1 => "notary-v1",
            };
            println!("{:<24} {:<72} {:<20} {format:<10} {}", r.name, r.digest, r.role.as_str(), served_text(c));
        }
    }
    if flagged > 0 {
        return Err(crate::io::inspect::Flagged(flagged).into());
    }
    Ok(())
}

/// One row of `trust inspect --json`.
fn inspect_json(c: &crate::io::inspect::Checked) -> serde_json::Value {
    use crate::io::inspect::Served;
    let r = &c.signed;
    let (registry, refused) = match &c.served {
        Served::Digest(d) => (Some(d.to_string()), None),
        Served::Missing => (None, None),
        Served::Refused(status, message) => (None, Some(format!("{status} {message}"))),
    };
    serde_json::json!({"tag": r.name, "digest": r.digest.to_string(), "length": r.length, "mediaType": r.media_type,
        "signer": r.role.as_str(), "format": r.format.to_string(), "registryDigest": registry,
        "registryRefused": refused, "mismatch": c.flagged()})
}

/// What the registry serves under the tag, with a flag when it is not the signed manifest.
fn served_text(c: &crate::io::inspect::Checked) -> String {
    use crate::io::inspect::Served;
    match &c.served {
        Served::Digest(_) if !c.flagged() => "matches".into(),
        Served::Digest(d) => format!("MISMATCH: serves {d}"),
        Served::Missing => "not in the registry".into(),
        Served::Refused(status, message) => format!("MISMATCH: refused ({status} {message})"),
    }
}

/// `trust forget HOST/REPOSITORY`: removes the recorded roots and says what went, and what still pins the
/// repository.
fn forget(g: &Global, reference: &str) -> anyhow::Result<()> {
    let image: ImageRef = reference.parse()?;
    if reference.rsplit('/').next().is_some_and(|l| l.contains(':') || l.contains('@')) {
        anyhow::bail!("trust forget takes a repository, HOST/REPOSITORY, not a tag or digest");
    }
    let repo = format!("{}/{}", image.host, image.repository);
    let forgotten = g.store()?.forget_trust(&image.host, &image.repository)?;
    if forgotten.is_empty() {
        println!("{repo}: no recorded root to forget");
    }
    for (format, path) in &forgotten {
        println!("{repo}: forgot the recorded {format} root ({})", path.display());
    }
    let cfg = g.config();
    if let Some(pinned) = ClientConfig::load(&cfg)?.trust_roots.get(&repo) {
        eprintln!(
            "{repo} is still pinned to {} by {}: remove that entry to trust another root",
            pinned.display(),
            cfg.join("config.toml").display()
        );
    } else if !forgotten.is_empty() {
        eprintln!("the next pull of {repo} needs --trust-root FILE or --trust-on-first-use");
    }
    Ok(())
}
