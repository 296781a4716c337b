//! `wharf-tuf-client`: see `wharf_client::cli::tuf_client`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 1 like every other failure (clap's own code is 2); --help and --version exit 0.
    let args = match wharf_client::cli::tuf_client::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wharf-tuf-client: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(wharf_client::cli::tuf_client::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf-tuf-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}
