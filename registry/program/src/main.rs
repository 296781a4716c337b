//! `wharf`: the service (`wharf serve`) and the client commands (push, pull, unpack, run, trust).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use wharf_registry::config::{effective, Config, Overrides, Vars};

mod cli;

use cli::{Command, ConfigCommand};

fn main() -> ExitCode {
    let (command, global) = cli::parse();
    match command {
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
        Command::Admin { config, data_dir, init, command } => {
            // `check` tells damage (1) from a check that could not run (2).
            let check = matches!(command, wharf_registry::admin_cli::AdminCommand::Check(_));
            match admin(config, data_dir, init, command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wharf admin: {e:#}");
                    if check {
                        ExitCode::from(wharf_registry::admin_ops::check::exit_code(&e))
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
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
        Command::Config(ConfigCommand::Check { file }) => match config_check(&file) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wharf config check: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli::command(), "wharf", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
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
            // `cli::parse` reads the client options whenever the command is a client command.
            let Some(global) = global else { return ExitCode::FAILURE };
            match rt.block_on(wharf_client::cli::run(global, cmd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wharf: {e:#}");
                    ExitCode::from(wharf_client::cli::exit_code(&e))
                }
            }
        }
    }
}

/// The process's `WHARF_*` variables; one whose name or value is not UTF-8 is an error.
fn wharf_vars() -> anyhow::Result<Vars> {
    let mut vars = Vars::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("WHARF_")).map(str::to_owned) else { continue };
        let value = value.into_string().map_err(|_| anyhow::anyhow!("{name}: the value is not UTF-8"))?;
        vars.insert(name, value);
    }
    Ok(vars)
}

fn settings(config: Option<PathBuf>, o: Overrides) -> anyhow::Result<wharf_registry::config::Settings> {
    Ok(Config::load(config.as_deref(), &wharf_vars()?)?.settings(o)?)
}

/// `wharf config check FILE`: the effective configuration as TOML, secrets masked.
fn config_check(file: &Path) -> anyhow::Result<String> {
    let vars = wharf_vars()?;
    let table = Config::load_table(Some(file), &vars)?;
    let settings = Config::from_table(table.clone(), &vars)?.settings(Overrides::default())?;
    let rendered = effective::render(&settings, &table, effective::Secrets::Mask);
    let admin_password = vars.contains_key("WHARF_ADMIN_PASSWORD");
    Ok(effective::text(&rendered, &file.display().to_string(), admin_password)?)
}

fn admin(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    init: bool,
    cmd: wharf_registry::admin_cli::AdminCommand,
) -> anyhow::Result<()> {
    let settings = settings(config, Overrides { data_dir, ..Overrides::default() })?;
    // Warnings and errors only unless asked (WHARF_LOG): the commands print their own results.
    let level = std::env::var("WHARF_LOG").unwrap_or_else(|_| "warn".into());
    init_logging(settings.log_json, &level)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(wharf_registry::admin_cli::run(&settings, cmd, init))
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
