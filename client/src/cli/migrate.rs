//! `wharf trust migrate HOST/REPOSITORY`: re-publishes a Docker Content Trust repository's signed tags as TUF 1.0
//! targets and/or keyed cosign signatures, from the verified Notary v1 collection and the publisher's docker keys.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::cosign::{load_key, sign_sigstore, transport, SIGSTORE_PASSPHRASE};
use super::image::{pull_options, TrustArgs};
use super::trust::publisher;
use super::{now, passphrase, Global};
use crate::io::migrate::{open_key, plan, Decision, DockerTrustDir, MigrateError};
use crate::io::publish::Passphrases;
use wharf_format::image_ref::ImageRef;
use wharf_format::name::Tag;

/// What a migration publishes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateTo {
    /// TUF 1.0 targets, signed with this machine's Wharf keys (`wharf trust init` runs first when needed).
    Tuf,
    /// Keyed cosign signatures, made with the repository's DCT key (or --sigstore-key).
    Sigstore,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The repository: HOST/REPOSITORY.
    pub reference: String,
    /// What to publish: tuf, sigstore, or both (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tuf")]
    pub to: Vec<MigrateTo>,
    /// Show the tags that would be migrated and those refused; publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// docker's trust directory (default: $DOCKER_CONFIG/trust, else ~/.docker/trust).
    #[arg(long, value_name = "DIR")]
    pub docker_trust_dir: Option<PathBuf>,
    /// Sign the sigstore signatures with the DCT key of this role instead of the repository key ("targets"):
    /// a signer's name, as `docker trust key generate NAME` made it.
    #[arg(long, default_value = "targets")]
    pub dct_role: String,
    /// Sign the sigstore signatures with this key (PEM, PKCS#8) instead of a DCT key.
    #[arg(long, value_name = "FILE")]
    pub sigstore_key: Option<PathBuf>,
    /// Write the sigstore public key (what `cosign verify --key` takes) to FILE.
    #[arg(long, value_name = "FILE")]
    pub public_key_out: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

pub async fn run(g: &Global, a: &MigrateArgs) -> anyhow::Result<()> {
    let image: ImageRef = a.reference.parse()?;
    let gun = format!("{}/{}", image.host, image.repository);
    let docker = DockerTrustDir::locate(a.docker_trust_dir.clone());
    let mut trust = a.trust.clone();
    anyhow::ensure!(
        !trust.insecure_skip_trust,
        "trust migrate reads the collection verified: no --insecure-skip-trust"
    );
    if trust.trust_root.is_none() && !trust.trust_on_first_use {
        // The root docker trusted when it signed: what the publisher's own machine recorded.
        trust.trust_root = docker.trusted_root(&gun);
        if let Some(p) = &trust.trust_root {
            eprintln!("{gun}: trusting the collection's root as docker recorded it ({})", p.display());
        }
    }
    let opts = pull_options(g, image.clone(), &trust)?;
    let rows = plan(&g.store()?, &opts).await?;
    println!("{:<24} {:<72} {:<20} ACTION", "SIGNED TAG", "DIGEST", "SIGNER");
    let mut ready = Vec::new();
    for r in &rows {
        let action = match &r.decision {
            Decision::Migrate(m) => {
                ready.push((r.signed.name.parse::<Tag>()?, m.clone()));
                "migrate".to_string()
            }
            Decision::Mismatch { registry } => format!("REFUSED: the registry serves {registry}"),
            Decision::Missing(why) => format!("REFUSED: {why}"),
        };
        println!("{:<24} {:<72} {:<20} {action}", r.signed.name, r.signed.digest, r.signed.role.as_str());
    }
    let refused: Vec<String> = rows.iter().filter_map(|r| r.refusal()).collect();
    if a.dry_run {
        println!("dry run: {} tag(s) would be migrated to {:?}; nothing was published", ready.len(), a.to);
    } else if !ready.is_empty() {
        if a.to.contains(&MigrateTo::Tuf) {
            to_tuf(g, &image, &ready).await?;
        }
        if a.to.contains(&MigrateTo::Sigstore) {
            to_sigstore(g, a, &docker, &gun, &image, &ready).await?;
        }
    }
    if !refused.is_empty() {
        return Err(MigrateError::Refused(refused).into());
    }
    Ok(())
}

/// Signs every ready tag into the repository's TUF targets in one version, after `trust init` when this machine
/// has not initialised the repository (its new root is pinned for this machine's pulls).
async fn to_tuf(
    g: &Global,
    image: &ImageRef,
    ready: &[(Tag, crate::io::publish::SignedManifest)],
) -> anyhow::Result<()> {
    let p = publisher(g, image)?;
    if !p.is_initialised() {
        let pass = Passphrases {
            root: passphrase("WHARF_ROOT_PASSPHRASE", "Passphrase for the new root key: ")?,
            repository: passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the new repository key: ")?,
        };
        let root = p.init(&pass, now()).await?;
        let bytes = std::fs::read(&root).with_context(|| format!("reading {}", root.display()))?;
        g.store()?.pin_root(&image.host, &image.repository, &bytes, true)?;
        println!(
            "{}/{}: TUF trust initialised; root metadata to pin: {}",
            image.host,
            image.repository,
            root.display()
        );
    }
    let pass = passphrase("WHARF_REPOSITORY_PASSPHRASE", "Passphrase for the repository key: ")?;
    let v = p.sign_all(ready, &pass, now()).await?;
    println!(
        "{}/{}: {} tag(s) signed as TUF 1.0 targets (targets version {v})",
        image.host,
        image.repository,
        ready.len()
    );
    Ok(())
}

/// Appends a keyed cosign signature for every ready tag's digest (once per digest).
async fn to_sigstore(
    g: &Global,
    a: &MigrateArgs,
    docker: &DockerTrustDir,
    gun: &str,
    image: &ImageRef,
    ready: &[(Tag, crate::io::publish::SignedManifest)],
) -> anyhow::Result<()> {
    let key = match &a.sigstore_key {
        Some(path) => load_key(path, SIGSTORE_PASSPHRASE)?,
        None => {
            let (path, pem) = docker.key(gun, &a.dct_role)?;
            eprintln!("{gun}: signing with the DCT {} key {}", a.dct_role, path.display());
            let pass = || {
                passphrase("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "Passphrase for the DCT repository key: ").ok()
            };
            open_key(&path, &pem, pass)?
        }
    };
    if let Some(out) = &a.public_key_out {
        std::fs::write(out, key.public_pem()?).with_context(|| format!("writing {}", out.display()))?;
        println!("sigstore public key (for cosign verify --key): {}", out.display());
    }
    let t = transport(g, image)?;
    let mut digests: Vec<_> = ready.iter().map(|(_, m)| m.digest.clone()).collect();
    digests.sort_by_key(|d| d.to_string());
    digests.dedup();
    for d in &digests {
        sign_sigstore(&t, image, d, &key).await?;
    }
    Ok(())
}
