//! `wharf admin check`: the scrub. Verifies every blob's bytes against its digest, that rows and stored objects
//! match, that manifests' references and tags resolve, and that each repository's trust data verifies; paced by
//! `--rate`, resumable, `--repair` for what is safe. The engine is `crate::check`.
//!
//! Exit status: 0 when no damage remains, 1 when some does ([`DamageRemains`]), 2 when the check could not run.

use std::sync::Arc;

use anyhow::Context;
use wharf_storage::{Clock, Metadata, SystemClock};

use crate::check::{parse_rate, Checker, Options, ADMIN_CURSOR};
use crate::config::Settings;

/// `wharf admin check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Repair what is safe: remove rows whose bytes are gone, refetch damaged blobs from a mirror's upstream,
    /// quarantine objects whose bytes do not match.
    #[arg(long)]
    pub repair: bool,
    /// Verify at most this many blob bytes a second (`200M`, `1G`, `512K`); default unlimited.
    #[arg(long)]
    pub rate: Option<String>,
    /// Start from the beginning instead of resuming an interrupted run.
    #[arg(long)]
    pub restart: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The check ran and found damage that remains: exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("the store is damaged: {0} problem(s) remain")]
pub struct DamageRemains(pub usize);

/// The exit status of a failed `wharf admin check`: 1 when damage remains, 2 when it could not run.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<DamageRemains>().is_some() {
        1
    } else {
        2
    }
}

/// Runs the check over this configuration's database and store.
pub async fn run(settings: &Settings, meta: &Metadata, args: CheckArgs) -> anyhow::Result<()> {
    let rate = args.rate.as_deref().map(parse_rate).transpose().map_err(anyhow::Error::msg).context("--rate")?;
    let blobs = wharf_storage::BlobStore::connect(&settings.storage_url, &settings.s3).context("opening the store")?;
    // A spool of its own: the server's mirror spool is the server's.
    let mirrors = if settings.mirrors.is_empty() {
        None
    } else {
        let spool = std::env::temp_dir().join(format!("wharf-check-{}", crate::mirror::random_id()));
        Some(Arc::new(crate::mirror::Mirrors::new(&settings.mirrors, spool).map_err(anyhow::Error::msg)?))
    };
    let recorder = Arc::new(crate::ops::record::Record::new(&settings.ops));
    let checker = Checker::new(meta.clone(), blobs, mirrors, recorder, ADMIN_CURSOR);
    let opts = Options { repair: args.repair, rate, restart: args.restart };
    let report = checker.run(&opts, SystemClock.now()).await.context("checking the store")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    match report.remaining() {
        0 => Ok(()),
        n => Err(DamageRemains(n).into()),
    }
}
