//! The updater against the in-memory repository ([`super::sim`]), one table row per case: rollback, freeze, root
//! rotation, delegation order and limits. Each row publishes a first state (`before`), refreshes from its
//! version 1 root and keeps what verified, changes the repository (`after`), refreshes again with the row's
//! limits (and, if it names one, searches for a target), and names the outcome it expects.

use super::local::Memory;
use super::sim::{target_file, Sim, NOW};
use super::updater::{Options, Updater};
use super::{quote, Limits, UpdateError};
use crate::io::transport::TransportError;
use wharf_format::tuf::TufError;

struct Row {
    name: &'static str,
    before: fn(&mut Sim),
    after: fn(&mut Sim),
    /// Limits for the second refresh (the first runs with the defaults).
    limits: fn() -> Limits,
    /// Seconds the clock moves between the two refreshes.
    later: i64,
    /// A target to search for after the second refresh.
    find: Option<&'static str>,
    want: &'static str,
}

const ROW: Row =
    Row { name: "", before: |_| {}, after: |_| {}, limits: Limits::default, later: 0, find: None, want: "" };

/// The outcome as one line: what was trusted, what was found and which delegated roles were fetched for it, or
/// the error's variant and the role or file it names.
fn outcome(sim: &Sim, result: Result<Option<String>, UpdateError>, u: &Updater<&Sim, Memory>) -> String {
    match result {
        Ok(found) => {
            let set = u.trusted();
            let ts = set.timestamp().map_or(0, |t| t.version);
            let mut out = format!("ok root={} timestamp={ts}", set.root().version);
            if let Some(role) = found {
                out.push_str(&format!(" found in {role}"));
            }
            out
        }
        Err(UpdateError::Refused(e)) => match e {
            TufError::Version { role, .. } => format!("rollback: {role}"),
            TufError::Expired { role, .. } => format!("expired: {role}"),
            TufError::Threshold { role, .. } => format!("threshold: {role}"),
            TufError::Mismatch { role, what, .. } => format!("mismatch: {role} {what}"),
            other => format!("refused: {other:?}"),
        },
        Err(UpdateError::Fetch(TransportError::TooLarge { url, max })) => format!("too large: {url} over {max}"),
        Err(UpdateError::Fetch(TransportError::Status { url, status })) => format!("status {status}: {url}"),
        Err(UpdateError::NotSigned(name)) => {
            let fetched: Vec<String> = sim.take_log().into_iter().filter(|f| f.starts_with("1.d")).collect();
            format!("not signed: {name} after {}", fetched.join(", "))
        }
        Err(other) => format!("other: {other:?}"),
    }
}

/// Runs one row; the mismatch, if any.
async fn check(row: &Row) -> Option<String> {
    let mut sim = Sim::new();
    (row.before)(&mut sim);
    sim.publish();
    let trusted_root = sim.files["1.root.json"].clone();
    let mut first = Updater::new(&trusted_root, &sim, Memory::default(), &Options::new(NOW)).expect("a valid root");
    first.refresh().await.unwrap_or_else(|e| panic!("{}: first refresh: {e:?}", row.name));
    let kept = first.local().clone();
    drop(first);
    (row.after)(&mut sim);
    sim.take_log();
    let opts = Options { limits: (row.limits)(), ..Options::new(NOW + row.later) };
    let mut u = Updater::new(&trusted_root, &sim, kept, &opts).expect("a valid root");
    let mut result = u.refresh().await.map(|()| None);
    if let (Ok(_), Some(name)) = (&result, row.find) {
        sim.take_log();
        result = u.find(name).await.map(|f| Some(f.role));
    }
    let got = outcome(&sim, result, &u);
    (got != row.want).then(|| format!("{}: got {got:?}, want {:?}", row.name, row.want))
}

/// Delegations for the search rows: targets delegates to d1 and d2 (in that order), d1 to d11.
fn tree(sim: &mut Sim, d1_terminating: bool, d1_paths: &[&str]) {
    sim.delegate("targets", "d1", 21, d1_paths, d1_terminating);
    sim.delegate("targets", "d2", 22, &["*"], false);
    sim.delegate("d1", "d11", 23, &["*"], false);
}

fn sign_x(sim: &mut Sim, role: &str) {
    sim.delegated.get_mut(role).expect("a delegated role").0.targets.insert("x".into(), target_file(b"x"));
}

/// The trusted root (version 1) has expired; version 2 has not.
fn expired_trusted_root(s: &mut Sim) {
    s.root.expires.0 = NOW - 1;
    s.publish_root();
    s.root.expires.0 = NOW + 86_400;
    s.rotate_root(&[1], 1, &[1]);
}

/// A root of version 3 served as `2.root.json`.
fn skip_a_root_version(s: &mut Sim) {
    s.root.version = 2;
    s.rotate_root(&[1], 1, &[1]);
    let bytes = s.files.remove("3.root.json").expect("just published");
    s.files.insert("2.root.json".into(), bytes);
}

/// Root 2 gives timestamp a new key, which signs a timestamp of version 1.
fn rotate_timestamp_key(s: &mut Sim) {
    s.set_role("timestamp", &[14], 1);
    s.rotate_root(&[1], 1, &[1]);
    s.signer.insert("timestamp", 14);
    s.timestamp.version = 1;
    s.publish();
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Rollback (5.4.3, 5.5.5): what was kept is the floor.
    Row { name: "timestamp version goes back", before: |s| s.timestamp.version = 2,
        after: |s| { s.timestamp.version = 1; s.publish() }, want: "rollback: timestamp", ..ROW },
    Row { name: "snapshot version named by timestamp goes back",
        before: |s| { s.snapshot.version = 2; s.timestamp.version = 2 },
        after: |s| { s.snapshot.version = 1; s.timestamp.version = 3; s.publish() },
        want: "rollback: snapshot (named by timestamp)", ..ROW },
    Row { name: "targets version named by snapshot goes back",
        before: |s| { s.targets.version = 2; s.snapshot.version = 2; s.timestamp.version = 2 },
        after: |s| { s.targets.version = 1; s.snapshot.version = 3; s.timestamp.version = 3; s.publish() },
        want: "rollback: targets.json (named by snapshot)", ..ROW },
    Row { name: "a timestamp of the kept version is discarded, whatever its content",
        after: |s| { s.timestamp.expires.0 += 60; s.publish() }, want: "ok root=1 timestamp=1", ..ROW },
    Row { name: "a new release", after: Sim::release, want: "ok root=1 timestamp=2", ..ROW },
    // Freeze (5.3.10, 5.4.4, 5.5.6, 5.6.4): nothing expired is trusted.
    Row { name: "expired timestamp",
        after: |s| { s.timestamp.version = 2; s.timestamp.expires.0 = NOW - 1; s.publish() },
        want: "expired: timestamp", ..ROW },
    Row { name: "expired snapshot", after: |s| { s.snapshot.expires.0 = NOW - 1; s.release() },
        want: "expired: snapshot", ..ROW },
    Row { name: "expired targets", after: |s| { s.targets.expires.0 = NOW - 1; s.release() },
        want: "expired: targets", ..ROW },
    Row { name: "expired final root", after: |s| { s.root.expires.0 = NOW - 1; s.rotate_root(&[1], 1, &[1]) },
        want: "expired: root", ..ROW },
    Row { name: "the repository stops updating: the kept timestamp expires", later: 86_400,
        before: |s| { s.root.expires.0 = NOW + 10 * 86_400; s.publish_root() },
        want: "expired: timestamp", ..ROW },
    Row { name: "an expired trusted root is fine when a newer one follows",
        before: expired_trusted_root,
        want: "ok root=2 timestamp=1", ..ROW },
    Row { name: "expired delegated role",
        before: |s| { tree(s, false, &["*"]); s.delegated.get_mut("d1").unwrap().0.expires.0 = NOW - 1 },
        find: Some("x"), want: "expired: d1", ..ROW },
    // Root rotation (5.3.4-5.3.9): each new root by the old root's threshold and its own.
    Row { name: "two rotations to new keys",
        after: |s| { s.rotate_root(&[11], 1, &[1, 11]); s.rotate_root(&[12], 1, &[11, 12]) },
        want: "ok root=3 timestamp=1", ..ROW },
    Row { name: "threshold raised to 2, both new keys sign", after: |s| s.rotate_root(&[11, 12], 2, &[1, 11, 12]),
        want: "ok root=2 timestamp=1", ..ROW },
    Row { name: "threshold raised to 2, one new key signs", after: |s| s.rotate_root(&[11, 12], 2, &[1, 11]),
        want: "threshold: root", ..ROW },
    Row { name: "not signed by the trusted root's keys", after: |s| s.rotate_root(&[11], 1, &[11]),
        want: "threshold: root (by the trusted root's keys)", ..ROW },
    Row { name: "the trusted root's threshold of 2 is not met",
        before: |s| { s.set_role("root", &[1, 5], 2); s.root_signers = vec![1, 5]; s.publish_root() },
        after: |s| s.rotate_root(&[11], 1, &[1, 11]), want: "threshold: root (by the trusted root's keys)", ..ROW },
    Row { name: "a root that skips a version",
        after: skip_a_root_version,
        want: "rollback: root", ..ROW },
    Row { name: "timestamp key rotated: the kept timestamp is no floor (5.3.11)", before: |s| s.timestamp.version = 5,
        after: rotate_timestamp_key,
        want: "ok root=2 timestamp=1", ..ROW },
    Row { name: "403 ends the chain",
        after: |s| { s.rotate_root(&[1], 1, &[1]); s.statuses.insert("2.root.json".into(), 403); },
        want: "ok root=1 timestamp=1", ..ROW },
    Row { name: "500 does not end the chain", after: |s| { s.statuses.insert("2.root.json".into(), 500); },
        want: "status 500: 2.root.json", ..ROW },
    // Delegation order (5.6.7): pre-order, depth first, terminating delegations end the search of siblings.
    Row { name: "pre-order: a child of the first delegation before the second",
        before: |s| { tree(s, false, &["*"]); sign_x(s, "d11"); sign_x(s, "d2") }, find: Some("x"),
        want: "ok root=1 timestamp=1 found in d11", ..ROW },
    Row { name: "the first role that signs it wins",
        before: |s| { tree(s, false, &["*"]); sign_x(s, "d1"); sign_x(s, "d11") },
        find: Some("x"), want: "ok root=1 timestamp=1 found in d1", ..ROW },
    Row { name: "a terminating delegation ends the search", before: |s| { tree(s, true, &["*"]); sign_x(s, "d2") },
        find: Some("x"), want: "not signed: x after 1.d1.json, 1.d11.json", ..ROW },
    Row { name: "a delegation whose paths do not match is skipped",
        before: |s| { tree(s, false, &["other/*"]); sign_x(s, "d1"); sign_x(s, "d2") },
        find: Some("x"), want: "ok root=1 timestamp=1 found in d2", ..ROW },
    Row { name: "at most max_delegations roles are visited", before: |s| { tree(s, false, &["*"]); sign_x(s, "d2") },
        limits: || Limits { max_delegations: 3, ..Limits::default() }, find: Some("x"),
        want: "not signed: x after 1.d1.json, 1.d11.json", ..ROW },
    // Limits: every file within its limit, a signed length never raising it, a bounded root walk.
    Row { name: "root over its limit", after: |s| s.rotate_root(&[1], 1, &[1]),
        limits: || Limits { root: 100, ..Limits::default() }, want: "too large: 2.root.json over 100", ..ROW },
    Row { name: "timestamp over its limit", limits: || Limits { timestamp: 100, ..Limits::default() },
        want: "too large: timestamp.json over 100", ..ROW },
    Row { name: "snapshot over its limit", after: Sim::release,
        limits: || Limits { snapshot: 100, ..Limits::default() }, want: "too large: 2.snapshot.json over 100", ..ROW },
    Row { name: "a signed snapshot length does not raise the limit",
        after: |s| { s.snapshot_length = Some(10_000_000); s.release() },
        limits: || Limits { snapshot: 100, ..Limits::default() }, want: "too large: 2.snapshot.json over 100", ..ROW },
    Row { name: "a signed snapshot length lowers the limit", after: |s| { s.snapshot_length = Some(10); s.release() },
        want: "too large: 2.snapshot.json over 10", ..ROW },
    Row { name: "targets over its limit", after: Sim::release,
        limits: || Limits { targets: 100, ..Limits::default() }, want: "too large: 2.targets.json over 100", ..ROW },
    Row { name: "a delegated role over the targets limit", before: |s| { tree(s, false, &["*"]); sign_x(s, "d1") },
        limits: || Limits { targets: 100, ..Limits::default() }, find: Some("x"),
        want: "too large: 1.d1.json over 100", ..ROW },
    Row { name: "too many rotations: the walk stops at the bound, the next refresh goes on",
        after: |s| { for _ in 0..3 { s.rotate_root(&[1], 1, &[1]) } },
        limits: || Limits { max_root_rotations: 2, ..Limits::default() }, want: "ok root=3 timestamp=1", ..ROW },
];

#[tokio::test]
async fn updater_table() {
    let mut mismatches = Vec::new();
    for row in ROWS {
        mismatches.extend(check(row).await);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn limits_are_python_tufs_defaults() {
    let l = Limits::default();
    assert_eq!((l.root, l.timestamp, l.snapshot, l.targets), (512_000, 16_384, 2_000_000, 5_000_000));
    assert_eq!((l.max_root_rotations, l.max_delegations), (256, 32));
    assert_eq!(Limits::capped(100, Some(10)), 10);
    assert_eq!(Limits::capped(100, Some(1_000)), 100);
    assert_eq!(Limits::capped(100, None), 100);
}

#[test]
fn quoting_matches_python() {
    assert_eq!(quote("a b/c?d", true), "a%20b/c%3Fd");
    assert_eq!(quote("a b/c?d", false), "a%20b%2Fc%3Fd");
    assert_eq!(quote("release-1.0_x~y", false), "release-1.0_x~y");
    assert_eq!(quote("é", false), "%C3%A9");
}
