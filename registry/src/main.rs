//! `wharf`: the service (`wharf serve`); client commands arrive with the client issue.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wharf_registry::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "wharf", version, about = "Wharf: a content-addressed container image registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the registry on embedded defaults (SQLite and disk under the data directory).
    Serve {
        /// A TOML configuration file (also `WHARF_CONFIG`).
        #[arg(long, env = "WHARF_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on, HOST:PORT (default 127.0.0.1:5000; port 0 picks a free one).
        #[arg(long)]
        addr: Option<String>,
        /// Directory for the database and stored content (default ./wharf-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, addr, data_dir } => {
            let mut cfg = match &config {
                Some(p) => Config::from_file(p)?,
                None => Config::default(),
            };
            cfg.apply_env(|k| std::env::var(k).ok())?;
            let settings = cfg.settings(Overrides { addr, data_dir })?;
            init_logging(settings.log_json, &settings.log_level)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(wharf_registry::serve::run(settings, wharf_registry::serve::signal()))
                .context("wharf serve")?;
        }
    }
    Ok(())
}

fn init_logging(json: bool, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).context("log level")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}
