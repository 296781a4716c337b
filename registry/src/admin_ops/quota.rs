//! Storage quotas: `wharf admin quota set|list|--recount`. (Skeleton; issue 23's work fills it.)

use wharf_storage::Metadata;

use crate::config::Settings;

#[derive(clap::Subcommand, Debug)]
pub enum QuotaCommand {
    /// List.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(_settings: &Settings, _meta: &Metadata, _cmd: QuotaCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
