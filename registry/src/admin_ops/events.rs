//! Webhook deliveries: `wharf admin events list|retry`. (Skeleton; issue 23's work fills it.)

use wharf_storage::Metadata;

use crate::config::Settings;

#[derive(clap::Subcommand, Debug)]
pub enum EventsCommand {
    /// List.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(_settings: &Settings, _meta: &Metadata, _cmd: EventsCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
