//! `wharf push --sign --sign-format tuf,sigstore --sigstore-key FILE`: which signatures a push makes, and the key
//! for keyed cosign signatures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{passphrase, ClientConfig, Global};
use crate::io::cosign::{attach, Pem, SigstoreKey};
use crate::io::transport::Transport;
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;

/// The passphrase variable of an encrypted `--sigstore-key`.
pub const SIGSTORE_PASSPHRASE: &str = "WHARF_SIGSTORE_PASSPHRASE";

/// A kind of signature `push --sign` makes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignFormat {
    /// The tag as a target of the repository's TUF 1.0 trust data (`wharf trust sign`).
    Tuf,
    /// A keyed cosign signature of the manifest digest, under cosign's `sha256-<hex>.sig` tag.
    Sigstore,
}

#[derive(Args, Debug, Clone)]
pub struct SigstoreSignArgs {
    /// What --sign makes: tuf, sigstore, or both (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tuf")]
    pub sign_format: Vec<SignFormat>,
    /// The private key of sigstore signatures: PEM, PKCS#8 (ECDSA P-256 or ed25519; an encrypted one opens with
    /// WHARF_SIGSTORE_PASSPHRASE) or an EC PRIVATE KEY. `cosign verify --key` takes its public half, `openssl pkey
    /// -pubout`.
    #[arg(long, value_name = "FILE")]
    pub sigstore_key: Option<PathBuf>,
}

impl SigstoreSignArgs {
    pub fn wants(&self, f: SignFormat) -> bool {
        self.sign_format.contains(&f)
    }
}

/// Reads a key file, asking for `pass_var`'s passphrase only when the key is encrypted.
pub fn load_key(path: &Path, pass_var: &str) -> anyhow::Result<SigstoreKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pem = Pem::parse(&text).with_context(|| path.display().to_string())?;
    let pass = if pem.is_encrypted() {
        Some(passphrase(pass_var, &format!("Passphrase for {}: ", path.display()))?)
    } else {
        None
    };
    SigstoreKey::from_pem(&pem, pass.as_deref()).with_context(|| path.display().to_string())
}

/// The transport a client command signs over: the global and configured insecure registries apply.
pub fn transport(g: &Global, image: &ImageRef) -> anyhow::Result<Transport> {
    let insecure: Vec<String> =
        g.insecure.iter().chain(ClientConfig::load(&g.config())?.insecure_registries.iter()).cloned().collect();
    Ok(Transport::new(&image.host, &insecure)?)
}

/// Signs `digest` as `image`'s repository with `key` and appends the signature to its `.sig` manifest, saying so.
pub async fn sign_sigstore(t: &Transport, image: &ImageRef, digest: &Digest, key: &SigstoreKey) -> anyhow::Result<()> {
    let reference = format!("{}/{}", image.host, image.repository);
    let a = attach(t, &image.repository, &reference, digest, key).await?;
    let what = if a.added { "signed" } else { "already signed with this key" };
    println!("{reference}@{digest}: {what} (sigstore, {}:{}, {} signature(s))", reference, a.tag, a.signatures);
    Ok(())
}
