//! Storage quotas: `wharf admin quota set PATTERN LIMIT`, `remove PATTERN`, `list [--json]`, and
//! `wharf admin quota --recount` (or `quota recount`), which recomputes every quota's usage and prints what it
//! corrected. Figures are human (`9.5 MiB`) with exact bytes beside them, and exact in `--json`.

use anyhow::Context;
use wharf_format::policy::Pattern;
use wharf_storage::meta::Recounted;
use wharf_storage::{Change, Clock, Metadata, Origin, Recorder, SystemClock};

use crate::config::Settings;
use crate::ops::quota::{human, parse_size, QuotaReport};

/// `wharf admin quota`: a subcommand, or `--recount`; alone, it lists.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QuotaArgs {
    /// Recompute every quota's usage from what its repositories reference, and print what was corrected.
    #[arg(long)]
    pub recount: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<QuotaCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum QuotaCommand {
    /// Limit the bytes that repositories matching PATTERN may hold together (each blob counted once), or change
    /// the limit. A new quota's usage is counted at once from what is stored.
    Set {
        /// The repositories: `team/app`, `team/*` (one level), `team/**` (any depth) or `**`.
        pattern: String,
        /// Bytes, or a number and a unit: 500MB, 10GiB, 1.5TB.
        limit: String,
    },
    /// Remove the quota on PATTERN.
    Remove {
        /// The pattern as set.
        pattern: String,
    },
    /// List quotas: usage, limit, percentage.
    List {
        /// Print JSON (exact bytes, percent, and human figures).
        #[arg(long)]
        json: bool,
    },
    /// The same as `--recount`.
    Recount {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: &Settings, meta: &Metadata, args: QuotaArgs) -> anyhow::Result<()> {
    let command = match (args.command, args.recount) {
        (Some(c), _) => c,
        (None, true) => QuotaCommand::Recount { json: args.json },
        (None, false) => QuotaCommand::List { json: args.json },
    };
    let now = SystemClock.now();
    let journal = |action: &str, detail: serde_json::Value| {
        let change = Change::Admin { action: action.to_owned(), detail: detail.to_string() };
        let recorder = crate::ops::record::Record::new(&settings.ops);
        Recorder::journal(&recorder, &Origin::system("admin"), &change, now)
    };
    match command {
        QuotaCommand::Set { pattern, limit } => {
            let parsed: Pattern = pattern.parse().with_context(|| format!("quota pattern {pattern:?}"))?;
            let bytes = parse_size(&limit)?;
            let detail = serde_json::json!({ "pattern": pattern, "limit": bytes });
            let row = meta.quotas().set(&parsed, bytes, now, &journal("quota_set", detail)).await?;
            let r = QuotaReport::from(&row);
            println!(
                "quota {}: limit {} ({} bytes), {} ({} bytes) used, {}%",
                r.pattern, r.limit_human, r.limit, r.usage_human, r.usage, r.percent
            );
        }
        QuotaCommand::Remove { pattern } => {
            let detail = serde_json::json!({ "pattern": pattern });
            let removed = meta.quotas().remove(&pattern, &journal("quota_remove", detail)).await?;
            anyhow::ensure!(removed, "there is no quota on {pattern:?} (see wharf admin quota list)");
            println!("removed quota {pattern}");
        }
        QuotaCommand::List { json } => {
            let rows: Vec<QuotaReport> = meta.quotas().list().await?.iter().map(QuotaReport::from).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no quotas (add one with: wharf admin quota set 'team/**' 10GiB)");
            } else {
                let width = rows.iter().map(|r| r.pattern.len()).max().unwrap_or(0).max(7);
                println!("{:width$}  {:>10}  {:>10}  {:>7}  BYTES (USED / LIMIT)", "PATTERN", "USED", "LIMIT", "USE%");
                for r in &rows {
                    println!(
                        "{:width$}  {:>10}  {:>10}  {:>6}%  {} / {}",
                        r.pattern, r.usage_human, r.limit_human, r.percent, r.usage, r.limit
                    );
                }
            }
        }
        QuotaCommand::Recount { json } => {
            let found = meta.quotas().recount().await?;
            print_recount(&found, json)?;
        }
    }
    Ok(())
}

/// What a recount corrected: one line per quota it set right, or that there was nothing to correct.
fn print_recount(found: &[Recounted], json: bool) -> anyhow::Result<()> {
    let corrected: Vec<&Recounted> = found.iter().filter(|f| f.corrected()).collect();
    if json {
        let rows: Vec<serde_json::Value> = corrected
            .iter()
            .map(|f| {
                serde_json::json!({
                    "pattern": f.pattern,
                    "usage_before": f.usage_before,
                    "usage_after": f.usage_after,
                    "members_added": f.members_added,
                    "members_removed": f.members_removed,
                    "members_fixed": f.members_fixed,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "checked": found.len(), "corrected": rows }));
        return Ok(());
    }
    for f in &corrected {
        println!(
            "corrected {}: usage {} ({} bytes) -> {} ({} bytes); {} digests added, {} removed, {} fixed",
            f.pattern,
            human(f.usage_before),
            f.usage_before,
            human(f.usage_after),
            f.usage_after,
            f.members_added,
            f.members_removed,
            f.members_fixed
        );
    }
    if corrected.is_empty() {
        println!("nothing to correct ({} quotas checked)", found.len());
    }
    Ok(())
}
