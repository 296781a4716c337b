//! Webhook deliveries: `wharf admin events list|retry`.

use serde_json::json;
use wharf_storage::{Change, Metadata, Origin};

use crate::config::Settings;

#[derive(clap::Subcommand, Debug)]
pub enum EventsCommand {
    /// The deliveries waiting per endpoint, failing ones first: attempts, last error, age, next attempt.
    List {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
        /// Deliveries shown at most (the per-endpoint counts are always whole).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Makes the failing deliveries due now (the deliverer sends them within a second).
    Retry {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
    },
}

pub async fn run(settings: &Settings, meta: &Metadata, cmd: EventsCommand) -> anyhow::Result<()> {
    let now = wharf_storage::Clock::now(&wharf_storage::SystemClock);
    match cmd {
        EventsCommand::List { endpoint, limit, json } => {
            let backlog = meta.events().backlog(endpoint.as_deref()).await?;
            let rows = meta.events().list(endpoint.as_deref(), limit.max(0)).await?;
            if json {
                let endpoints: Vec<_> = backlog
                    .iter()
                    .map(|b| {
                        let configured = settings.ops.notifications.endpoints.iter().any(|e| e.name == b.endpoint);
                        json!({ "endpoint": b.endpoint, "pending": b.pending, "failing": b.failing,
                                "oldest": b.oldest, "configured": configured })
                    })
                    .collect();
                let deliveries: Vec<_> = rows
                    .iter()
                    .map(|d| {
                        json!({ "id": d.id, "endpoint": d.endpoint, "action": d.action, "repository": d.repository,
                                "created_at": d.created_at, "age_secs": now - d.created_at, "attempts": d.attempts,
                                "next_attempt": d.next_attempt, "last_error": d.last_error })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "endpoints": endpoints, "deliveries": deliveries }))?
                );
                return Ok(());
            }
            if backlog.is_empty() {
                println!("no deliveries waiting");
                return Ok(());
            }
            for b in &backlog {
                let gone = settings.ops.notifications.endpoints.iter().all(|e| e.name != b.endpoint);
                let note = if gone { " (not configured: nothing delivers these)" } else { "" };
                println!(
                    "{}: {} waiting, {} failing, oldest {} ago{note}",
                    b.endpoint,
                    b.pending,
                    b.failing,
                    ago(now - b.oldest)
                );
            }
            println!();
            println!(
                "{:<8} {:<16} {:<14} {:<30} {:>8} {:>8} {:>10}  LAST ERROR",
                "ID", "ENDPOINT", "ACTION", "REPOSITORY", "ATTEMPTS", "AGE", "NEXT"
            );
            for d in &rows {
                let next =
                    if d.next_attempt <= now { "now".to_owned() } else { format!("in {}", ago(d.next_attempt - now)) };
                println!(
                    "{:<8} {:<16} {:<14} {:<30} {:>8} {:>8} {:>10}  {}",
                    d.id,
                    d.endpoint,
                    d.action,
                    d.repository,
                    d.attempts,
                    ago(now - d.created_at),
                    next,
                    d.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        EventsCommand::Retry { endpoint } => {
            let change = Change::Admin {
                action: "events_retry".into(),
                detail: endpoint.clone().unwrap_or_else(|| "all endpoints".into()),
            };
            let recorder = crate::ops::record::Record::new(&settings.ops);
            let journal = wharf_storage::Recorder::journal(&recorder, &Origin::system("admin"), &change, now);
            let n = meta.events().retry_recorded(endpoint.as_deref(), &journal).await?;
            println!("{n} failing deliveries due now");
        }
    }
    Ok(())
}

/// A duration in seconds, short: `42s`, `5m`, `3h`, `2d`.
fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
