//! The `wharf` client commands (push, pull, unpack, run, trust), modelled on `docker` and `docker trust`.
//!
//! Exit codes (the README's table): 0 success; 3 verification failed (a signature, digest, length or trust document
//! is wrong, or missing where the repository's trusted format requires it); 4 could not connect (no source could be
//! reached); 5 access denied (`401` without usable credentials, `403`); 1 anything else. When sources failed in
//! different ways, the most serious failure decides: verification, then denial, then an outage.

mod cosign;
mod image;
mod migrate;
mod policy;
mod progress;
mod trust;
pub mod tuf_client;

pub use cosign::{SignFormat, SigstoreSignArgs};
pub use image::{TrustArgs, UnpackArgs};
pub use migrate::MigrateArgs;
pub use policy::PolicyCommand;
mod engine;
pub use trust::{KeyCommand, SignerCommand, TrustCommand};

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::io::publish::PublishError;
use crate::io::pull::PullError;
use crate::io::source::Failure;
use crate::io::store::ContentStore;

pub const EXIT_VERIFY: u8 = 3;
pub const EXIT_CONNECT: u8 = 4;
pub const EXIT_DENIED: u8 = 5;

/// What the passphrase variables are, for the help of the commands that ask for a key's passphrase.
pub const PASSPHRASES: &str = "\
Passphrases (asked on the terminal when unset):
  WHARF_ROOT_PASSPHRASE        the passphrase of the repository's root key
  WHARF_REPOSITORY_PASSPHRASE  the passphrase of the repository's targets key and of signer keys";

/// The options every client command takes. They are listed on the client commands only (not on `wharf serve`),
/// are inherited by their subcommands (`wharf trust sign --store DIR`), and are also accepted, unlisted, before the
/// command name (`wharf --store DIR pull ...`) as earlier releases documented: see [`Global::add_to`].
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Client options")]
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
    /// Trust this CA certificate (PEM) for every registry, besides the system roots and docker's
    /// `certs.d/HOST:PORT/*.crt` (repeatable).
    #[arg(long = "ca-cert", global = true)]
    pub ca_cert: Vec<PathBuf>,
}

impl Global {
    /// Adds the client options to `cmd`, the whole `wharf` command: listed on each client command (and global
    /// there, so their subcommands take them too), and accepted but not listed before the command name.
    pub fn add_to(cmd: clap::Command) -> clap::Command {
        let ids: Vec<clap::Id> =
            Global::augment_args(clap::Command::new("ids")).get_arguments().map(|a| a.get_id().clone()).collect();
        let mut cmd =
            Global::augment_args(cmd)
                .mut_args(|a| if ids.contains(a.get_id()) { a.global(false).hide(true) } else { a });
        for name in client_commands() {
            cmd = cmd.mut_subcommand(name, Global::augment_args);
        }
        cmd
    }
}

/// The names of the client commands.
pub fn client_commands() -> Vec<String> {
    ClientCommand::augment_subcommands(clap::Command::new("client"))
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect()
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Push an image from a local layout or archive to a registry.
    #[command(after_help = PASSPHRASES)]
    Push {
        /// The image to push: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG].
        src: String,
        /// Where to push it: HOST/REPOSITORY[:TAG].
        reference: String,
        /// Sign the tag after pushing (as `wharf trust sign`; see --sign-format).
        #[arg(long)]
        sign: bool,
        #[command(flatten)]
        sigstore: cosign::SigstoreSignArgs,
    },
    /// Pull an image, verified: a tag resolves only through the repository's signed trust data.
    Pull {
        /// The image: HOST/REPOSITORY[:TAG] or HOST/REPOSITORY@DIGEST.
        reference: String,
        #[command(flatten)]
        trust: TrustArgs,
        /// Also write the image as an OCI layout: oci:DIR.
        #[arg(long)]
        output: Option<String>,
        /// Only download: do not extract the layers into the snapshot store.
        #[arg(long)]
        no_unpack: bool,
        #[command(flatten)]
        unpack: UnpackArgs,
    },
    /// Write a flattened root filesystem of the image into DIR, a new or empty directory, built from its layer
    /// snapshots (pulling and extracting what is missing).
    Unpack {
        /// The image: HOST/REPOSITORY[:TAG] or HOST/REPOSITORY@DIGEST.
        reference: String,
        /// Where to write the root filesystem: a new or empty directory.
        dir: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        unpack: UnpackArgs,
    },
    /// Run an image with an installed OCI runtime (runc or crun), on an overlay of its layer snapshots (pulling and
    /// extracting what is missing).
    Run {
        /// The image: HOST/REPOSITORY[:TAG] or HOST/REPOSITORY@DIGEST.
        reference: String,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        unpack: UnpackArgs,
        /// Arguments replacing the image's Cmd.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// List pulled images with their sizes and the unpacked bytes they share with other images.
    Images {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage pulled images (like `docker image`).
    #[command(subcommand)]
    Image(engine::ImageCommand),
    /// Remove every blob and layer snapshot no pulled image (or running container) uses.
    Prune {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign and inspect tags (like `docker trust`).
    #[command(subcommand, after_help = PASSPHRASES)]
    Trust(TrustCommand),
    /// Check images against a signature policy (a Wharf policy file or containers' policy.json).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Log in to a registry; the credentials go where `docker login` keeps them (docker's config.json or its
    /// credential helper), so both programs share them.
    Login {
        /// The registry: HOST[:PORT] (or its URL).
        host: String,
        /// The user name (asked on the terminal when not given).
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget a registry's credentials.
    Logout {
        /// The registry: HOST[:PORT] (or its URL).
        host: String,
    },
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
    /// The signature policy pulls apply (a Wharf policy or a containers `policy.json`); `--policy` and
    /// `WHARF_POLICY` take precedence.
    #[serde(default)]
    pub policy: Option<PathBuf>,
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

pub(super) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub(super) fn passphrase(var: &str, prompt: &str) -> anyhow::Result<Vec<u8>> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p.into_bytes());
    }
    let p = rpassword::prompt_password(prompt)
        .map_err(|e| anyhow::anyhow!("{var} is not set and no terminal to ask on: {e}"))?;
    Ok(p.into_bytes())
}

/// `HOST[:PORT]` from what a user types (`https://host:5000/` included).
fn registry_host(s: &str) -> String {
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    s.trim_end_matches('/').to_owned()
}

async fn login(g: &Global, host: &str, username: Option<String>, password_stdin: bool) -> anyhow::Result<()> {
    use std::io::BufRead;
    let host = registry_host(host);
    let user = match username {
        Some(u) => u,
        None => {
            anyhow::ensure!(!password_stdin, "--password-stdin needs --username");
            eprint!("Username: ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    anyhow::ensure!(!user.is_empty(), "a username is required");
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        rpassword::prompt_password("Password: ")
            .map_err(|e| anyhow::anyhow!("no terminal to ask on ({e}); use --password-stdin"))?
    };
    let config = ClientConfig::load(&g.config())?;
    let mut insecure = g.insecure.clone();
    insecure.extend(config.insecure_registries);
    let transport = crate::io::transport::Transport::new(&host, &insecure)?;
    let creds = transport.login(&user, &password).await?;
    let place = crate::io::credentials::store(&host, &creds)?;
    eprintln!("Login Succeeded (credentials in {place})");
    Ok(())
}

/// The documented exit code of a failed command: from the first error in the chain that knows its class.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match failure(e) {
        Some(Failure::Verification) => EXIT_VERIFY,
        Some(Failure::Denied) => EXIT_DENIED,
        Some(Failure::Unreachable) => EXIT_CONNECT,
        Some(Failure::Other) | None => 1,
    }
}

fn failure(e: &anyhow::Error) -> Option<Failure> {
    for cause in e.chain() {
        if let Some(p) = cause.downcast_ref::<PullError>() {
            return Some(p.failure());
        }
        if let Some(p) = cause.downcast_ref::<PublishError>() {
            return Some(p.failure());
        }
        if let Some(p) = cause.downcast_ref::<crate::io::push::PushError>() {
            return Some(p.failure());
        }
        if let Some(f) = cause.downcast_ref::<crate::io::store::FetchError>() {
            return Some(f.failure());
        }
        if let Some(p) = cause.downcast_ref::<crate::io::policy::PolicyError>() {
            return Some(p.failure());
        }
        if let Some(f) = cause.downcast_ref::<crate::io::inspect::Flagged>() {
            return Some(f.failure());
        }
        if let Some(t) = cause.downcast_ref::<crate::io::trust::TrustError>() {
            return Some(t.failure());
        }
        if let Some(c) = cause.downcast_ref::<crate::io::cosign::CosignError>() {
            return Some(c.failure());
        }
        if let Some(m) = cause.downcast_ref::<crate::io::migrate::MigrateError>() {
            return Some(m.failure());
        }
        if let Some(t) = cause.downcast_ref::<crate::io::transport::TransportError>() {
            return Some(t.failure());
        }
    }
    None
}

pub async fn run(g: Global, cmd: ClientCommand) -> anyhow::Result<()> {
    crate::io::transport::trust_ca_files(g.ca_cert.clone());
    match cmd {
        ClientCommand::Login { host, username, password_stdin } => login(&g, &host, username, password_stdin).await,
        ClientCommand::Logout { host } => {
            let host = registry_host(&host);
            if crate::io::credentials::erase(&host)? {
                eprintln!("Removing login credentials for {host}");
            } else {
                eprintln!("Not logged in to {host}");
            }
            Ok(())
        }
        ClientCommand::Push { src, reference, sign, sigstore } => {
            image::push_cmd(&g, &src, &reference, sign, &sigstore).await
        }
        ClientCommand::Pull { reference, trust, output, no_unpack, unpack } => {
            image::pull_cmd(&g, &reference, &trust, output, (!no_unpack).then_some(&unpack)).await
        }
        ClientCommand::Images { json } => engine::images_cmd(&g, json),
        ClientCommand::Image(c) => engine::image_cmd(&g, c),
        ClientCommand::Prune { json } => engine::prune_cmd(&g, json),
        ClientCommand::Unpack { reference, dir, trust, unpack } => {
            image::unpack_cmd(&g, &reference, &dir, &trust, &unpack).await
        }
        ClientCommand::Run { reference, trust, unpack, args } => {
            image::run_cmd(&g, &reference, &trust, &unpack, &args).await
        }
        ClientCommand::Trust(t) => trust::run(g, t).await,
        ClientCommand::Policy(p) => policy::run(&g, p).await,
    }
}
