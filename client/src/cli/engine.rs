//! `wharf images`, `wharf image ls|rm|prune` and `wharf prune`: the local store as an engine sees it.

use clap::Subcommand;

use super::Global;
use crate::io::images::Removed;
use wharf_format::image_ref::ImageRef;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List pulled images (as `wharf images`).
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove images (their refs) and the layer snapshots no remaining image uses; `prune` then removes their blobs.
    Rm {
        /// The images: HOST/REPOSITORY[:TAG] or HOST/REPOSITORY@DIGEST.
        #[arg(required = true)]
        references: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// As `wharf prune`.
    Prune {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Bytes for people: 1.5 MB, 17 kB (SI, as docker prints sizes).
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(super) fn images_cmd(g: &Global, json: bool) -> anyhow::Result<()> {
    let store = g.store()?;
    let list = crate::io::images::images(&store)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<48} {:<19} {:>10} {:>10} {:>10}", "IMAGE", "DIGEST", "SIZE", "UNPACKED", "SHARED");
    for i in &list {
        let short = i.digest.hex().get(..12).unwrap_or_default();
        let unpacked = if i.extracted { human(i.unpacked_bytes) } else { "-".into() };
        println!(
            "{:<48} sha256:{short} {:>10} {:>10} {:>10}",
            i.reference,
            human(i.content_bytes),
            unpacked,
            human(i.shared_bytes)
        );
    }
    Ok(())
}

fn report(r: &Removed, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    for u in &r.untagged {
        println!("Untagged: {u}");
    }
    for s in &r.snapshots {
        println!("Deleted snapshot: {s}");
    }
    for b in &r.blobs {
        println!("Deleted blob: {b}");
    }
    println!(
        "Reclaimed {} ({} snapshots, {} blobs{})",
        human(r.snapshot_bytes + r.blob_bytes),
        r.snapshots.len(),
        r.blobs.len(),
        if r.stale > 0 { format!(", {} stale leftovers", r.stale) } else { String::new() }
    );
    Ok(())
}

pub(super) fn prune_cmd(g: &Global, json: bool) -> anyhow::Result<()> {
    let store = g.store()?;
    report(&crate::io::images::prune(&store)?, json)
}

pub(super) fn image_cmd(g: &Global, c: ImageCommand) -> anyhow::Result<()> {
    match c {
        ImageCommand::Ls { json } => images_cmd(g, json),
        ImageCommand::Prune { json } => prune_cmd(g, json),
        ImageCommand::Rm { references, json } => {
            let names = references.iter().map(|r| r.parse::<ImageRef>()).collect::<Result<Vec<_>, _>>()?;
            let store = g.store()?;
            report(&crate::io::images::remove_images(&store, &names)?, json)
        }
    }
}
