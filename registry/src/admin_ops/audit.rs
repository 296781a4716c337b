//! The audit log: `wharf admin audit [--repository P] [--account A] [--since T] [--json]`. (Skeleton; issue 23's work fills it.)

use wharf_storage::Metadata;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_settings: &Settings, _meta: &Metadata, _cmd: AuditArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
