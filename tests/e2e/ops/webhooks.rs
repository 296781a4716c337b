//! Issue 23, webhooks: a receiver (`helpers/webhook_receiver.py`) that checks the signature and decodes each
//! envelope into Distribution's field names gets each event once and in order; a receiver down for a while, a
//! server killed with events pending, two replicas on one database, a receiver that never answers.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Server};

const SECRET: &str = "webhook-test-secret";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The receiver process and the file it appends decoded events to.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, port: u16, hang: bool) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/helpers/webhook_receiver.py");
        let out = dir.join("received.jsonl");
        let mut cmd = Command::new("python3");
        cmd.arg(script).args(["--port", &port.to_string(), "--secret", SECRET, "--out"]).arg(&out);
        if hang {
            cmd.arg("--hang");
        }
        // A receiver started again on the port it had may find it taken for a moment (another test's connection
        // was given it as its local port): it exits without printing one, and starts again shortly.
        for _ in 0..40 {
            let mut child = cmd.stdout(Stdio::piped()).spawn().expect("python3");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            if let Ok(port) = line.trim().parse() {
                return Receiver { child, port, out };
            }
            let _ = child.wait();
            assert!(port != 0, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("the receiver could not listen on port {port} for 10 s");
    }

    /// Every event received so far, in arrival order. Panics on an envelope the receiver refused.
    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let invalid: Vec<&Value> = events.iter().filter(|e| e.get("_invalid").is_some()).collect();
        assert!(invalid.is_empty(), "envelopes the receiver refused: {invalid:?}");
        events
    }

    /// Waits until `enough` holds of the events received, or panics after `secs`.
    fn wait(&self, secs: u64, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let events = self.events();
            if enough(&events) {
                return events;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "waited {secs} s; received {events:#?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A config file with one endpoint `ci` at `port` (watching `team/**`), retrying at most `backoff_max` seconds apart.
fn config(dir: &Path, port: u16, backoff_max: u32) -> PathBuf {
    let path = dir.join("wharf.toml");
    let text = format!(
        "[notifications]\nlease_secs = 4\ntimeout_secs = 1\nbackoff_min_secs = 1\nbackoff_max_secs = {backoff_max}\n\
         [[notifications.endpoint]]\nname = \"ci\"\nurl = \"http://127.0.0.1:{port}/hook?token=t0ken\"\n\
         secret = \"{SECRET}\"\nactions = [\"push\", \"pull\", \"delete\", \"tag\", \"trust_publish\"]\n\
         repositories = [\"team/**\"]\nheaders = {{ X-Team = \"registry\" }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("WHARF_CONFIG", config.to_str().unwrap())];
    env.extend_from_slice(extra);
    Server::start(&env)
}

/// Pushes a two-blob image whose layer is seeded by `seed`; the blob digests and the manifest's.
fn push(s: &Server, repo: &str, tag: &str, seed: u8) -> (Vec<String>, String) {
    let http = reqwest::blocking::Client::new();
    let mut descs = Vec::new();
    for blob in [br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), common::data(4_000, seed)] {
        let d = common::sha256(&blob);
        let r = http.post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}"))).body(blob.clone()).send().unwrap();
        assert_eq!(r.status(), 201);
        descs.push(serde_json::json!({ "digest": d, "size": blob.len() }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": descs[0]["digest"], "size": descs[0]["size"] },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": descs[1]["digest"], "size": descs[1]["size"] }],
    })
    .to_string();
    let r = http
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("content-type", MANIFEST)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    (descs.iter().map(|d| d["digest"].as_str().unwrap().to_owned()).collect(), common::sha256(manifest.as_bytes()))
}

/// The manifest events (and deletes) as `action repository tag digest`, in arrival order.
fn manifest_events(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["target"]["mediaType"] == MANIFEST || e["action"] == "delete")
        .map(|e| {
            let t = &e["target"];
            let s = |k: &str| t[k].as_str().unwrap_or("-").to_owned();
            format!("{} {} {} {}", e["action"].as_str().unwrap(), s("repository"), s("tag"), s("digest"))
        })
        .collect()
}

/// Each event id once, and every signature valid.
fn check_once_and_signed(events: &[Value]) {
    let mut ids = HashSet::new();
    for e in events {
        assert_eq!(e["_signature_ok"], true, "{e}");
        assert!(ids.insert(e["id"].as_str().unwrap().to_owned()), "event delivered twice: {e}");
    }
}

fn outbox(s: &Server) -> Value {
    serde_json::from_str(&s.admin(&["events", "list", "--json"], "")).unwrap()
}

#[test]
fn a_receiver_gets_each_event_once_in_order_signed_in_distributions_format() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(tmp.path(), 0, false);
    let s = start(&config(tmp.path(), rx.port, 2), &[]);
    let (blobs, d1) = push(&s, "team/app", "v1", 1);
    let (_, d2) = push(&s, "team/app", "v2", 2);
    push(&s, "other/app", "v1", 3);
    let http = reqwest::blocking::Client::new();
    let r = http.get(s.url("/v2/team/app/manifests/v1")).header("accept", MANIFEST).send().unwrap();
    assert_eq!(r.status(), 200);
    // The pull is recorded off the request path: wait for it, so the deletes come after it.
    rx.wait(20, |ev| ev.iter().any(|e| e["action"] == "pull"));
    assert_eq!(http.delete(s.url("/v2/team/app/manifests/v2")).send().unwrap().status(), 202);
    assert_eq!(http.delete(s.url(&format!("/v2/team/app/manifests/{d1}"))).send().unwrap().status(), 202);

    let expected = [
        format!("push team/app v1 {d1}"),
        format!("push team/app v2 {d2}"),
        format!("pull team/app v1 {d1}"),
        format!("delete team/app v2 {d2}"),
        format!("delete team/app - {d1}"),
    ];
    let events = rx.wait(20, |ev| manifest_events(ev).len() >= expected.len());
    // Nothing more comes (each event once), and the outbox is empty.
    std::thread::sleep(Duration::from_millis(1500));
    let events_later = rx.events();
    assert_eq!(events_later.len(), events.len(), "more events arrived: {events_later:#?}");
    assert_eq!(manifest_events(&events), expected);
    check_once_and_signed(&events);
    assert_eq!(outbox(&s)["deliveries"], serde_json::json!([]));

    let instance = events[0]["source"]["instanceID"].as_str().unwrap();
    assert!(!instance.is_empty());
    for e in &events {
        assert_eq!(e["target"]["repository"].as_str().unwrap().split('/').next(), Some("team"), "filtered: {e}");
        assert_eq!(e["request"]["addr"], "127.0.0.1", "{e}");
        assert_eq!(e["source"]["instanceID"], instance);
        assert!(!e["source"]["addr"].as_str().unwrap().is_empty(), "{e}");
        assert!(chrono_like(e["timestamp"].as_str().unwrap()), "{e}");
        assert!(e.get("actor").is_some());
    }
    let push1 = events.iter().find(|e| e["action"] == "push" && e["target"]["digest"] == d1).unwrap();
    assert_eq!(push1["request"]["method"], "PUT");
    assert_eq!(push1["target"]["length"], push1["target"]["size"]);
    let url = push1["target"]["url"].as_str().unwrap();
    assert_eq!(url, format!("http://{}/v2/team/app/manifests/{d1}", s.addr));
    // The blob pushes: application/octet-stream, with their sizes.
    for b in &blobs {
        let e = events.iter().find(|e| e["action"] == "push" && e["target"]["digest"] == b.as_str());
        let e = e.unwrap_or_else(|| panic!("no push event for blob {b}"));
        assert_eq!(e["target"]["mediaType"], "application/octet-stream");
        assert_eq!(e["request"]["method"], "POST");
    }
}

/// An RFC 3339 time in UTC, as Distribution's `timestamp` is.
fn chrono_like(t: &str) -> bool {
    t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T' && t.ends_with('Z')
}

#[test]
fn a_receiver_down_for_a_while_then_up_gets_every_event_and_retry_makes_failures_due() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    // Retries up to a minute apart: the retry command, not the backoff, brings them back quickly.
    let s = start(&config(tmp.path(), port, 60), &[]);
    let digests: Vec<String> = (1..=3).map(|i| push(&s, "team/down", &format!("v{i}"), 10 + i).1).collect();
    std::thread::sleep(Duration::from_millis(3500));
    let o = outbox(&s);
    let ci = &o["endpoints"][0];
    assert_eq!(ci["endpoint"], "ci");
    assert!(ci["pending"].as_i64().unwrap() >= 9, "{o:#}");
    assert_eq!(ci["failing"], 1, "only the head fails: {o:#}");
    let head = &o["deliveries"][0];
    assert!(head["attempts"].as_i64().unwrap() >= 1, "{o:#}");
    let error = head["last_error"].as_str().unwrap();
    assert!(!error.is_empty() && !error.contains("t0ken"), "{error}");

    let rx = Receiver::start(tmp.path(), port, false);
    let retried = s.admin(&["events", "retry", "--endpoint", "ci"], "");
    assert!(retried.starts_with("1 failing deliveries due now"), "{retried}");
    let events = rx.wait(10, |ev| manifest_events(ev).len() >= 3);
    let pushes: Vec<String> = (1..=3).map(|i| format!("push team/down v{i} {}", digests[i - 1])).collect();
    assert_eq!(manifest_events(&events), pushes);
    check_once_and_signed(&events);
    rx.wait(10, |ev| ev.len() >= 9);
}

#[test]
fn sigkill_with_events_pending_loses_none_after_the_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s = start(&config(tmp.path(), port, 2), &[]);
    let digests: Vec<String> = (1..=3).map(|i| push(&s, "team/crash", &format!("v{i}"), 20 + i).1).collect();
    assert!(outbox(&s)["endpoints"][0]["pending"].as_i64().unwrap() >= 3);
    s.kill();
    let rx = Receiver::start(tmp.path(), port, false);
    s.restart();
    // The dead process's lease runs out (4 s), then the new one delivers.
    let events = rx.wait(30, |ev| manifest_events(ev).len() >= 3);
    let pushes: Vec<String> = (1..=3).map(|i| format!("push team/crash v{i} {}", digests[i - 1])).collect();
    assert_eq!(manifest_events(&events), pushes);
    check_once_and_signed(&events);
}

#[test]
fn two_replicas_deliver_each_event_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(tmp.path(), 0, false);
    let file = config(tmp.path(), rx.port, 2);
    let shared = common::shared_stack();
    let mut env: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("WHARF_CONFIG", file.to_str().unwrap()));
    let (mut a, b) = (Server::start(&env), Server::start(&env));
    let mut expected = Vec::new();
    for i in 1..=4u8 {
        let s = if i % 2 == 1 { &a } else { &b };
        expected.push(format!("push team/both v{i} {}", push(s, "team/both", &format!("v{i}"), 30 + i).1));
    }
    let events = rx.wait(20, |ev| manifest_events(ev).len() >= 4);
    assert_eq!(manifest_events(&events), expected);
    // Everything sent (nothing in flight), then one replica dies: the other takes its endpoints over.
    let started = Instant::now();
    while outbox(&b)["deliveries"] != serde_json::json!([]) {
        assert!(started.elapsed() < Duration::from_secs(20), "the outbox never emptied");
        std::thread::sleep(Duration::from_millis(200));
    }
    a.kill();
    for i in 5..=6u8 {
        expected.push(format!("push team/both v{i} {}", push(&b, "team/both", &format!("v{i}"), 30 + i).1));
    }
    let events = rx.wait(30, |ev| manifest_events(ev).len() >= 6);
    std::thread::sleep(Duration::from_millis(1500));
    let events_later = rx.events();
    assert_eq!(events_later.len(), events.len(), "more events arrived: {events_later:#?}");
    assert_eq!(manifest_events(&events), expected);
    check_once_and_signed(&events);
}

#[test]
fn a_receiver_that_hangs_does_not_slow_pushes() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(tmp.path(), 0, true);
    let with = start(&config(tmp.path(), rx.port, 2), &[]);
    let without = Server::start(&[]);
    let (mut t_with, mut t_without) = (Vec::new(), Vec::new());
    // Measured side by side, alternating, so the machine's load falls on both alike.
    for i in 0..10u8 {
        for (s, times) in [(&with, &mut t_with), (&without, &mut t_without)] {
            let started = Instant::now();
            push(s, "team/hang", &format!("v{i}"), 40 + i);
            times.push(started.elapsed());
        }
    }
    t_with.sort();
    t_without.sort();
    let (m_with, m_without) = (t_with[5], t_without[5]);
    println!("median push: {m_with:?} with a hanging endpoint, {m_without:?} without");
    assert!(m_with <= m_without * 2 + Duration::from_millis(100), "{m_with:?} against {m_without:?}");
    // The endpoint was being tried meanwhile: its head delivery times out, and nothing went.
    let started = Instant::now();
    let o = loop {
        let o = outbox(&with);
        if o["deliveries"][0]["last_error"].is_string() || started.elapsed() > Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(o["endpoints"][0]["pending"].as_i64().unwrap() >= 30, "{o:#}");
    let error = o["deliveries"][0]["last_error"].as_str().unwrap_or("");
    assert!(error.contains("timed out") || error.contains("timeout"), "{o:#}");
}
