//! The `wharf` command line: the server commands here, the client commands from `wharf_client::cli`, and the
//! client options placed on the client commands only.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use wharf_client::cli::{ClientCommand, Global};

/// Variables that are not configuration keys, for the top-level help.
const ENVIRONMENT: &str = "\
Environment:
  WHARF_CONFIG                 the server's configuration file (serve, admin)
  WHARF_<SECTION>_<KEY>        any configuration key, e.g. WHARF_LIMITS_MAX_BLOB_SIZE (see the README's Configuration)
  WHARF_ADMIN_PASSWORD         the first administrator's password (serve with access control on)
  WHARF_LOG                    the log filter: the server's log.level, and the client's (default warn)
  WHARF_STORE, WHARF_CONFIG_DIR  the client's content store and its keys and trust state
  WHARF_ROOT_PASSPHRASE        the passphrase of a repository's root key (trust commands)
  WHARF_REPOSITORY_PASSPHRASE  the passphrase of targets and signer keys (trust commands, push --sign)
  DOCKER_CONFIG                where registry credentials are kept (default ~/.docker)

The client options (--store, --config-dir, --insecure-registry, --ca-cert, --low-speed-limit, --low-speed-time)
are listed on the client commands; they may also come before the command name.";

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "Wharf: a content-addressed container image registry with signed tags",
    after_help = ENVIRONMENT
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the registry and trust service on embedded defaults (SQLite and disk under the data directory).
    Serve {
        /// A TOML configuration file.
        #[arg(long, env = "WHARF_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on, HOST:PORT (default 127.0.0.1:5000; port 0 picks a free one; also `WHARF_ADDR`).
        #[arg(long)]
        addr: Option<String>,
        /// Directory for the database and stored content (default ./wharf-data; also `WHARF_DATA_DIR`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve HTTPS with this PEM certificate chain (re-read on SIGHUP; also `WHARF_TLS_CERT`).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's PEM private key (also `WHARF_TLS_KEY`).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Turn access control on (also `[auth] enabled = true`, `WHARF_AUTH_ENABLED=1`).
        #[arg(long)]
        auth: bool,
    },
    /// Manage accounts, robots and grants, collect garbage and apply retention rules, in the service's database
    /// and store (the server need not be stopped).
    Admin {
        /// The service's TOML configuration file.
        #[arg(long, env = "WHARF_CONFIG")]
        config: Option<PathBuf>,
        /// The service's data directory (default ./wharf-data; also `WHARF_DATA_DIR`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Create the database if there is none (otherwise a directory or URL without one is refused).
        #[arg(long, global = true)]
        init: bool,
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
        /// The names and addresses the certificate is for.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// Check the service's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a completion script for a shell: `wharf completions bash > /etc/bash_completion.d/wharf`,
    /// `wharf completions zsh > ~/.zfunc/_wharf`, `wharf completions fish > ~/.config/fish/completions/wharf.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE with the `WHARF_*` variables as `wharf serve` would, and print the effective configuration
    /// (the file, then the variables, then defaults) with passwords, keys and secrets masked. Exits 1 on an
    /// invalid file, an unknown key or variable, or a value `wharf serve` would refuse.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

/// The whole command: the derived one, with the client options added where they belong.
pub fn command() -> clap::Command {
    Global::add_to(Cli::command())
}

/// Parses the process's arguments: the command, and the client options (given before or after the command name).
pub fn parse() -> (Command, Option<Global>) {
    let matches = command().get_matches();
    let global = match matches.subcommand() {
        Some((name, sub)) if wharf_client::cli::client_commands().iter().any(|c| c == name) => {
            Some(Global::from_arg_matches(sub).unwrap_or_else(|e| e.exit()))
        }
        _ => None,
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (cli.command, global)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(args: &[&str]) -> Global {
        let matches = command().try_get_matches_from(args).unwrap();
        let (_, sub) = matches.subcommand().unwrap();
        Global::from_arg_matches(sub).unwrap()
    }

    #[test]
    fn client_options_go_before_or_after_the_command_name() {
        let g = global(&["wharf", "--store", "/a", "--low-speed-time", "2", "pull", "h/r:1"]);
        assert_eq!((g.store.as_deref(), g.low_speed_time), (Some(std::path::Path::new("/a")), 2));
        let g = global(&["wharf", "pull", "--store", "/b", "h/r:1"]);
        assert_eq!(g.store.as_deref(), Some(std::path::Path::new("/b")));
        let g = global(&["wharf", "trust", "sign", "--ca-cert", "/c.pem", "h/r:1"]);
        assert_eq!(g.ca_cert, vec![PathBuf::from("/c.pem")]);
        let g = global(&["wharf", "--ca-cert", "/d.pem", "trust", "sign", "h/r:1"]);
        assert_eq!(g.ca_cert, vec![PathBuf::from("/d.pem")]);
        assert_eq!(global(&["wharf", "images"]).low_speed_limit, 1024);
        assert!(command().try_get_matches_from(["wharf", "serve", "--store", "/a"]).is_err(), "not a server option");
    }

    /// Every command says what it does and every argument (positional ones included) what it is; client options
    /// are listed on client commands only.
    #[test]
    fn help_is_complete() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sc in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
                let path = format!("{path} {}", sc.get_name());
                if sc.get_about().is_none() {
                    missing.push(format!("{path} (the command)"));
                }
                walk(sc, &path, missing);
            }
        }
        let mut cmd = command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "wharf", &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
        let listed = |name: &str| {
            let sc = cmd.find_subcommand(name).unwrap();
            sc.get_arguments().any(|a| a.get_id() == "store" && !a.is_hide_set())
        };
        assert!(listed("pull") && listed("trust") && listed("login"));
        assert!(!listed("serve") && !listed("admin") && !listed("config"));
        assert!(cmd.get_arguments().all(|a| a.get_id() != "store" || a.is_hide_set()));
    }

    #[test]
    fn completions_name_the_commands() {
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut command(), "wharf", &mut out);
        let script = String::from_utf8(out).unwrap();
        for word in ["serve", "pull", "completions", "--store"] {
            assert!(script.contains(word), "{word}");
        }
    }
}
