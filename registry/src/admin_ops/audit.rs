//! The audit log: `wharf admin audit [--repository P] [--account A] [--since T] [--action X] [--limit N] [--json]`.
//! Newest first; text is a table, `--json` one object per row with every field.

use anyhow::Context;
use wharf_storage::{AuditQuery, AuditRow, Clock, Metadata, SystemClock, UnixTime};

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Only rows of this repository (exactly).
    #[arg(long)]
    pub repository: Option<String>,
    /// Only rows of this actor: an account, a robot (`robot$ci`), a login's presented name, or a job (`gc`).
    #[arg(long)]
    pub account: Option<String>,
    /// Only rows since this long ago (`2h`, `7d`) or this time (RFC 3339, `2026-12-01T00:00:00Z`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only rows of this action (`push`, `delete`, `tag`, `untag`, `trust_publish`, `login_failed`, ...).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many rows, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON (an array of rows, every field).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_settings: &Settings, meta: &Metadata, cmd: AuditArgs) -> anyhow::Result<()> {
    let since = cmd.since.as_deref().map(|s| since(s, SystemClock.now())).transpose()?;
    let q = AuditQuery {
        repository: cmd.repository,
        actor: cmd.account,
        since,
        action: cmd.action,
        before: None,
        limit: cmd.limit,
    };
    let rows = meta.audit().query(&q).await.context("reading the audit log")?;
    if cmd.json {
        let all: Vec<serde_json::Value> = rows.iter().map(|(id, r)| json(*id, r)).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// `--since`: a duration before `now`, or an RFC 3339 time.
fn since(text: &str, now: UnixTime) -> anyhow::Result<UnixTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    let secs = crate::config::parse_duration(text)
        .map_err(|_| anyhow::anyhow!("--since {text:?}: give a duration (2h, 7d) or an RFC 3339 time"))?;
    Ok(now - secs)
}

fn time(at: UnixTime) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map_or_else(|| at.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn json(id: i64, r: &AuditRow) -> serde_json::Value {
    let detail = r.detail.as_deref().map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap_or_else(|_| d.into()));
    serde_json::json!({
        "id": id, "at": r.at, "time": time(r.at), "action": r.action, "actor": r.actor, "actor_kind": r.actor_kind,
        "address": r.address, "repository": r.repository, "digest": r.digest, "tag": r.tag, "detail": detail,
    })
}

/// The rows as an aligned table: time, actor, kind, address, action, repository, digest and tag.
fn table(rows: &[(i64, AuditRow)]) -> String {
    let head = ["TIME", "ACTOR", "KIND", "ADDRESS", "ACTION", "REPOSITORY", "DIGEST/TAG"].map(String::from);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut lines = vec![head.to_vec()];
    for (_, r) in rows {
        let what = match (&r.digest, &r.tag) {
            (Some(d), Some(t)) => format!("{d} ({t})"),
            (Some(d), None) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "-".into(),
        };
        lines.push(vec![
            time(r.at),
            r.actor.clone(),
            r.actor_kind.clone(),
            dash(&r.address),
            r.action.clone(),
            dash(&r.repository),
            what,
        ]);
    }
    let widths: Vec<usize> =
        (0..head.len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, w)| format!("{c:w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        assert_eq!(since("2h", 10_000).unwrap(), 10_000 - 7_200);
        assert_eq!(since("7d", 1_000_000).unwrap(), 1_000_000 - 604_800);
        assert_eq!(since("2026-12-01T00:00:00Z", 0).unwrap(), 1_796_083_200);
        assert!(since("yesterday", 0).is_err());
    }

    #[test]
    fn table_aligns_columns() {
        let row = AuditRow {
            at: 1_796_083_200,
            action: "push".into(),
            actor: "alice".into(),
            actor_kind: "account".into(),
            address: Some("10.0.0.1".into()),
            repository: Some("team/app".into()),
            digest: Some("sha256:ab".into()),
            tag: Some("v1".into()),
            detail: None,
        };
        let login = AuditRow {
            action: "login_failed".into(),
            address: None,
            repository: None,
            digest: None,
            tag: None,
            ..row.clone()
        };
        let got = table(&[(2, row), (1, login)]);
        let want = "\
TIME                  ACTOR  KIND     ADDRESS   ACTION        REPOSITORY  DIGEST/TAG
2026-12-01T00:00:00Z  alice  account  10.0.0.1  push          team/app    sha256:ab (v1)
2026-12-01T00:00:00Z  alice  account  -         login_failed  -           -
";
        assert_eq!(got, want);
    }
}
