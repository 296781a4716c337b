//! `wharf`: the service (`wharf serve`) and the client commands (push, pull, unpack, run, trust).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wharf_client::cli::{ClientCommand, Global};
use wharf_registry::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "wharf", version, about = "Wharf: a content-addressed container image registry with signed tags")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the registry and trust service on embedded defaults (SQLite and disk under the data directory).
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
        /// Serve HTTPS with this PEM certificate chain (re-read on SIGHUP).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's PEM private key.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Turn access control on (also `[auth] enabled = true`, `WHARF_AUTH=1`).
        #[arg(long)]
        auth: bool,
    },
    /// Manage accounts, robots and grants, collect garbage and apply retention rules, in the service's database
    /// and store (the server need not be stopped).
    Admin {
        #[arg(long, env = "WHARF_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: wharf_registry::admin_cli::AdminCommand,
    },
    /// Write a throwaway CA and a server certificate for HOSTS (names or addresses): ca.crt, ca.key, server.crt,
    /// server.key. For tests and first trials, not production.
    Cert {
        /// Where to write the files.
        #[arg(long, default_value = "wharf-certs")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, addr, data_dir, tls_cert, tls_key, auth } => {
            let o = Overrides { addr, data_dir, tls_cert, tls_key, auth };
            match serve(config, o) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wharf serve: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin { config, data_dir, command } => match admin(config, data_dir, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wharf admin: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Cert { out, days, hosts } => match wharf_registry::admin_cli::write_certs(&out, &hosts, days) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wharf cert: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Client(cmd) => {
            let filter = std::env::var("WHARF_LOG").unwrap_or_else(|_| "warn".into());
            let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
                eprintln!("wharf: WHARF_LOG={filter:?} is not a log filter ({e}); using \"warn\"");
                tracing_subscriber::EnvFilter::new("warn")
            });
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("wharf: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(wharf_client::cli::run(cli.global, cmd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wharf: {e:#}");
                    ExitCode::from(wharf_client::cli::exit_code(&e))
                }
            }
        }
    }
}

fn settings(config: Option<PathBuf>, o: Overrides) -> anyhow::Result<wharf_registry::config::Settings> {
    let mut cfg = match &config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    Ok(cfg.settings(o)?)
}

fn admin(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    cmd: wharf_registry::admin_cli::AdminCommand,
) -> anyhow::Result<()> {
    let settings = settings(config, Overrides { data_dir, ..Overrides::default() })?;
    // Warnings and errors only unless asked (WHARF_LOG): the commands print their own results.
    let level = std::env::var("WHARF_LOG").unwrap_or_else(|_| "warn".into());
    init_logging(settings.log_json, &level)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(wharf_registry::admin_cli::run(&settings, cmd))
}

fn serve(config: Option<PathBuf>, o: Overrides) -> anyhow::Result<()> {
    let settings = settings(config, o)?;
    init_logging(settings.log_json, &settings.log_level)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(wharf_registry::serve::run(settings, wharf_registry::serve::signal())).context("wharf serve")?;
    Ok(())
}

fn init_logging(json: bool, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).context("log level")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}
