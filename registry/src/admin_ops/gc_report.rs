//! The report of `wharf admin gc` and `wharf admin retention`: JSON with exact figures, or lines a person reads
//! with sizes in binary units and times in RFC 3339.

use super::human;
use crate::gc::Report;

/// Prints a run's report.
pub fn print(r: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    for t in &r.tags {
        println!("{verb} tag\t{}:{}\t{}", t.repository, t.tag.as_deref().unwrap_or(""), t.digest);
    }
    for m in &r.manifests {
        println!("{verb} manifest\t{}@{}", m.repository, m.digest);
    }
    for b in &r.blobs {
        println!("{verb} blob\t{b}");
    }
    if let Some(w) = &r.waiting {
        for b in &w.list {
            println!("waiting blob\t{}\t{}\teligible {}", b.digest, human::bytes(b.size), human::time(b.eligible_at));
        }
    }
    println!(
        "{verb}: {} tags, {} manifests, {} blobs ({}), {} blob links; {} uploads expired; {} orphans ({}) \
         of {} objects listed; {} ms",
        r.tags_removed,
        r.manifests_removed,
        r.blobs_removed,
        human::bytes(r.bytes_removed),
        r.links_removed,
        r.uploads_expired,
        r.orphans_removed,
        human::bytes(r.orphan_bytes_removed),
        r.objects_listed,
        r.millis
    );
    if let Some(w) = &r.waiting {
        match (w.earliest_eligible_at, w.latest_eligible_at) {
            (Some(first), Some(last)) => println!(
                "waiting out the grace period: {} blobs ({}), eligible from {} to {}",
                w.blobs,
                human::bytes(w.bytes),
                human::time(first),
                human::time(last)
            ),
            _ => println!("waiting out the grace period: no blobs"),
        }
    }
    if r.failed > 0 {
        println!("{} blobs could not be deleted this time; the next run retries them", r.failed);
    }
    Ok(())
}
