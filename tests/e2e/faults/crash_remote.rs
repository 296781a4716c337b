//! Crash at every point on PostgreSQL + S3: the workload of `crash` (pushes monolithic and chunked, tags, a
//! delete, the collector every 0.2 s) against a server with strace attached, which kills it (SIGKILL) at the N-th
//! call that sends or receives on a socket, N stepped across the workload. On this stack everything the server
//! keeps leaves through a socket (PostgreSQL statements and commits, S3 requests and their bodies), so these are
//! its write points: `sendto` (statements, S3 requests, answers), `writev` (request and answer bodies), `recvfrom`
//! (an answer coming back, so a kill lands between a commit and the server learning of it), and `write` (the
//! runtime's wake-ups between tasks: a kill at an arbitrary moment of a request). After each crash the
//! server restarts on the same database and bucket, every push that got its 201 pulls verified, nothing
//! half-written is served, and `wharf admin check` finds nothing wrong.
//!
//! Each chain has a database and a bucket of its own, seeded by one iteration of the workload.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::crash::{busiest_thread, spread, verify_served, workloads_again, Ledger, GC_ENV};
use super::disk::store::{self, Client, Strace};
use crate::common::{self, Server};

/// Kill points per call, at most.
const KILLS: [(&str, usize); 4] = [("sendto", 80), ("writev", 50), ("recvfrom", 80), ("write", 30)];
const CHAIN: usize = 10;
const PARALLEL: usize = 3;

/// A server on a fresh PostgreSQL database and S3 bucket, its data dir (keys, config) in `data`.
fn serve(data: &Path) -> Server {
    let mut env = common::shared_stack();
    env.extend(GC_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::start_wrapped_on(&[], data, &env)
}

/// Each thread's calls of `syscall` in one clean run (after a seeding iteration): the busiest bounds N.
fn busiest(root: &Path, syscall: &str) -> usize {
    let dir = root.join(format!("count-{syscall}"));
    let s = serve(&dir);
    let mut l = Ledger::default();
    let seeded = workloads_again(&Client::new(&s), 100_000, &mut l);
    assert!(seeded.is_none(), "seeding: {seeded:?}");
    let st = Strace::attach(s.pid(), syscall, "signal=SIGKILL", "65535", root.join(format!("count-{syscall}.trace")));
    let failed = workloads_again(&Client::new(&s), 0, &mut l);
    assert!(failed.is_none(), "a clean run: {failed:?}");
    busiest_thread(&st.detach(), syscall)
}

/// Runs `points` in chains of `CHAIN`, `PARALLEL` chains at once; per call: (points, kills, failed requests).
fn sweep(root: &Path, points: Vec<(String, usize)>) -> BTreeMap<String, (usize, usize, usize)> {
    let tally = Mutex::new(BTreeMap::<String, (usize, usize, usize)>::new());
    let chains: Vec<Vec<(String, usize)>> = points.chunks(CHAIN).map(<[_]>::to_vec).collect();
    let next = Mutex::new(chains.into_iter().enumerate());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let Some((k, chain)) = next.lock().unwrap().next() else { return };
                let dir = root.join(format!("kill-{k}"));
                let mut s = serve(&dir);
                let mut l = Ledger::default();
                // Seeded as the points run: a push the collector's short grace beats is pushed again.
                let seeded = workloads_again(&Client::new(&s), 100_000 + 2 * k, &mut l);
                assert!(seeded.is_none(), "seeding chain {k}: {seeded:?}");
                for (i, (call, n)) in chain.into_iter().enumerate() {
                    let when = format!("{call}@{n} (chain {k}, step {i})");
                    let trace = dir.with_extension(format!("{i}.trace"));
                    let mut st = Strace::attach(s.pid(), &call, "signal=SIGKILL", &n.to_string(), trace);
                    let at = 2 + k * 1000 + 2 * i;
                    let mut failed = workloads_again(&Client::new(&s), at, &mut l);
                    // A failed request: the server is dying. Else a collection may still meet the point.
                    let wait =
                        |f: &Option<store::Answer>| Duration::from_millis(if f.is_some() { 15_000 } else { 300 });
                    let mut died = st.ended(wait(&failed));
                    if !died && failed.as_ref().is_some_and(|a| a.status == 0) {
                        // No answer, and the server lives: a pooled connection it had closed as the request went
                        // out. The client tries again (an HTTP error answer is never retried here).
                        failed = workloads_again(&Client::new(&s), at, &mut l);
                        died = st.ended(wait(&failed));
                    }
                    assert!(died || failed.is_none(), "{when}: a request failed but the server lives: {failed:?}");
                    if died {
                        drop(st);
                        s.restart();
                        verify_served(&s, &l, &when);
                        store::assert_check_clean(&s.data_dir, &s.env, &when);
                    } else {
                        st.detach();
                    }
                    let mut t = tally.lock().unwrap();
                    let e = t.entry(call).or_default();
                    *e = (e.0 + 1, e.1 + usize::from(died), e.2 + usize::from(failed.is_some()));
                }
            });
        }
    });
    tally.into_inner().unwrap()
}

#[test]
fn a_crash_at_any_statement_or_request_on_postgres_and_s3_loses_nothing_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let mut points = Vec::new();
    for (call, k) in KILLS {
        let max = busiest(root.path(), call);
        points.extend(spread(max, k).into_iter().map(|n| (call.to_owned(), n)));
    }
    let t = sweep(root.path(), points);
    let (mut tried, mut kills) = (0, 0);
    for (call, (n, hit, failed)) in &t {
        println!("SIGKILL on PostgreSQL + S3 {call}: {n} points, {hit} hit, {failed} requests failed");
        assert!(*hit > 0, "no crash at {call} in {n} points");
        (tried, kills) = (tried + n, kills + hit);
    }
    // Points past the calls a run makes under this load do not fire: three in four must.
    assert!(kills * 4 >= tried * 3, "only {kills} of {tried} crash points killed the server");
    assert!(kills >= 150, "only {kills} crashes");
}
