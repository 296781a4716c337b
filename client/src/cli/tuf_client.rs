//! `wharf-tuf-client`: the TUF conformance suites' client protocol over [`crate::io::tuf_repo`].
//!
//! ```text
//! wharf-tuf-client --metadata-dir DIR init ROOT_FILE
//! wharf-tuf-client --metadata-dir DIR --metadata-url URL refresh
//! wharf-tuf-client --metadata-dir DIR --metadata-url URL --target-name NAME [--target-name NAME ...]
//!                  --target-base-url URL --target-dir DIR download
//! ```
//! Options come in any order before the subcommand word. Exit status 0 on success, 1 on any failure.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::io::tuf_repo::{init, RepoClient};

#[derive(Parser, Debug)]
#[command(name = "wharf-tuf-client", version, about = "A TUF 1.0 client with a local metadata directory")]
pub struct Args {
    /// Where trusted metadata is kept (root.json, timestamp.json, snapshot.json, targets.json, <role>.json).
    #[arg(long)]
    metadata_dir: PathBuf,
    /// The repository's metadata base URL.
    #[arg(long)]
    metadata_url: Option<url::Url>,
    /// A target to download (repeatable).
    #[arg(long)]
    target_name: Vec<String>,
    /// The base URL targets are fetched from.
    #[arg(long)]
    target_base_url: Option<url::Url>,
    /// Where downloaded targets are written, under their URL-quoted names.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy a trusted root into the metadata directory (no network).
    Init {
        /// The trusted root metadata file.
        root_file: PathBuf,
    },
    /// Run the top-level update workflow.
    Refresh,
    /// Refresh, then find, download and verify each --target-name.
    Download,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let client = |targets: Option<url::Url>| -> anyhow::Result<RepoClient> {
        let url = args.metadata_url.clone().context("--metadata-url is required")?;
        Ok(RepoClient::new(url, targets, args.metadata_dir.clone(), now)?)
    };
    match &args.command {
        Command::Init { root_file } => init(&args.metadata_dir, root_file)?,
        Command::Refresh => {
            client(None)?.refresh().await?;
        }
        Command::Download => {
            let base = args.target_base_url.clone().context("--target-base-url is required")?;
            let dir = args.target_dir.clone().context("--target-dir is required")?;
            anyhow::ensure!(!args.target_name.is_empty(), "--target-name is required");
            let mut c = client(Some(base))?;
            c.refresh().await?;
            for name in &args.target_name {
                let target = c.find(name).await?;
                c.download(name, &target, &dir).await.with_context(|| format!("target {name:?}"))?;
            }
        }
    }
    Ok(())
}
