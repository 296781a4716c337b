//! Issue 23: `/metrics` after a scripted workload (each counter moved by exactly what the workload did, the text
//! read by the Prometheus project's own parser), who may scrape, the listener of its own, and the access log.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::client::Client;
use crate::common::oci::Oci;
use crate::common::{data, Server};

const ADMIN: &str = "metrics-admin-pass-7f3a";

/// Every sample of a scrape, keyed `name{label="value",...}` (labels sorted), as Python's
/// `prometheus_client.parser.text_string_to_metric_families` reads it: a text it cannot parse fails the test.
type Samples = BTreeMap<String, f64>;

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;

fn parse(text: &str) -> Samples {
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused the scrape: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

fn scrape(url: &str) -> Samples {
    let r = http().get(url).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    parse(&r.text().unwrap())
}

fn at(s: &Samples, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

/// How much `key` moved between two scrapes.
fn moved(before: &Samples, after: &Samples, key: &str) -> f64 {
    at(after, key) - at(before, key)
}

/// Scrapes until `done` holds (or panics after a minute).
fn until(url: &str, what: &str, done: impl Fn(&Samples) -> bool) -> Samples {
    let start = Instant::now();
    loop {
        let s = scrape(url);
        if done(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: never happened; last scrape {s:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_scripted_workload_moves_each_counter_by_exactly_its_amount() {
    let tmp = tempfile::tempdir().unwrap();
    // The origin a mirror reads from, which also holds signed trust data renewed every few seconds.
    let origin = Server::start(&[("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", "20"), ("WHARF_TRUST_RENEW_CHECK_SECS", "1")]);
    let up = Oci::new(&origin).push("up/app", "v1", br#"{"os":"linux","n":1}"#, &[&data(3000, 1)], None).unwrap();
    let publisher = Client::new();
    publisher.ok(&["trust", "init", &format!("{}/up/app", origin.addr)]);
    publisher.ok(&["trust", "sign", &format!("{}/up/app:v1", origin.addr)]);

    let config = tmp.path().join("wharf.toml");
    std::fs::write(&config, format!("[[mirror]]\nupstream = \"{}\"\nprefix = \"mirror\"\n", origin.url(""))).unwrap();
    let s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", ADMIN),
        ("WHARF_CONFIG", config.to_str().unwrap()),
        ("WHARF_GC_INTERVAL_SECS", "1"),
        ("WHARF_GC_GRACE_SECS", "3"),
    ]);
    let url = s.url("/metrics");
    let before = scrape(&url);

    // Push (three blobs, monolithic, then the manifest) and pull, with Basic credentials.
    let oci = Oci::with_basic(&s, "admin", ADMIN);
    let (config_blob, l1, l2) = (br#"{"os":"linux","n":2}"#.to_vec(), data(10_000, 2), data(20_000, 3));
    let pushed = oci.push("team/app", "v1", &config_blob, &[&l1, &l2], None).unwrap();
    let sizes = (config_blob.len() + l1.len() + l2.len()) as f64;
    oci.pull("team/app", "v1").unwrap();
    // Two refused logins (the gate's and the token endpoint's) and a request without credentials.
    let h = http();
    assert_eq!(h.get(s.url("/v2/")).basic_auth("admin", Some("wrong")).send().unwrap().status(), 401);
    let token = h.get(s.url("/auth/token?service=wharf")).basic_auth("admin", Some("wrong")).send().unwrap();
    assert_eq!(token.status(), 401);
    assert_eq!(h.get(s.url("/v2/team/app/tags/list")).send().unwrap().status(), 401);
    // A mirror miss, then a hit, of the origin's manifest; a blob fetched through the mirror.
    for _ in 0..2 {
        let r = h.get(s.url(&format!("/v2/mirror/up/app/manifests/{}", up.digest))).basic_auth("admin", Some(ADMIN));
        assert_eq!(r.header("accept", "application/vnd.oci.image.manifest.v1+json").send().unwrap().status(), 200);
    }
    let b = h.get(s.url(&format!("/v2/mirror/up/app/blobs/{}", up.blobs[1]))).basic_auth("admin", Some(ADMIN));
    assert_eq!(b.send().unwrap().bytes().unwrap().len(), 3000);
    let after = scrape(&url);

    let req = |route: &str, method: &str, status: u16| {
        format!("wharf_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}")
    };
    for (key, want) in [
        (req("blob_read", "HEAD", 404), 3.0),
        (req("upload_start", "POST", 201), 3.0),
        (req("manifest_write", "PUT", 201), 1.0),
        (req("manifest_read", "GET", 200), 1.0),
        (req("blob_read", "GET", 200), 3.0),
        (req("base", "GET", 401), 1.0),
        (req("token", "GET", 401), 1.0),
        (req("tags", "GET", 401), 1.0),
        (req("mirror_read", "GET", 200), 3.0),
        ("wharf_http_received_bytes_total{route=\"upload_start\"}".into(), sizes),
        ("wharf_http_sent_bytes_total{route=\"blob_read\"}".into(), sizes),
        ("wharf_auth_refusals_total{reason=\"bad_credentials\"}".into(), 2.0),
        ("wharf_auth_refusals_total{reason=\"unauthenticated\"}".into(), 1.0),
        ("wharf_mirror_requests_total{object=\"manifest\",outcome=\"miss\"}".into(), 1.0),
        ("wharf_mirror_requests_total{object=\"manifest\",outcome=\"hit\"}".into(), 1.0),
        ("wharf_mirror_requests_total{object=\"blob\",outcome=\"miss\"}".into(), 1.0),
        ("wharf_mirror_upstream_faults_total{}".into(), 0.0),
        ("wharf_backend_errors_total{backend=\"storage\"}".into(), 0.0),
    ] {
        assert_eq!(moved(&before, &after, &key), want, "{key}");
    }
    let count = "wharf_http_request_duration_seconds_count{method=\"PUT\",route=\"manifest_write\"}";
    assert_eq!(moved(&before, &after, count), 1.0, "the latency histogram");
    assert_eq!(at(&after, "wharf_uploads_in_progress{}"), 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(at(&after, &format!("wharf_build_info{{version=\"{version}\"}}")), 1.0, "{after:#?}");

    // The server's own collector removes the deleted image's three blobs, once their grace period is over.
    assert_eq!(oci.delete("team/app", &pushed.digest), 202);
    let blobs = "wharf_gc_removed_total{what=\"blobs\"}";
    let gc = until(&url, "the collection", |m| moved(&before, m, blobs) >= 3.0);
    std::thread::sleep(Duration::from_millis(2500));
    let later = scrape(&url);
    assert_eq!(moved(&before, &later, blobs), 3.0, "exactly the image's blobs");
    assert_eq!(moved(&before, &later, "wharf_gc_removed_bytes_total{}"), sizes);
    assert_eq!(moved(&before, &later, "wharf_gc_removed_total{what=\"manifests\"}"), 0.0, "a DELETE is not gc");
    assert!(moved(&before, &gc, "wharf_gc_runs_total{}") >= 1.0);

    // The origin: seconds left on its timestamp and snapshot, and the renewals its short timestamps need.
    let o = until(&origin.url("/metrics"), "a renewal", |m| at(m, "wharf_trust_renewals_total{format=\"tuf\"}") >= 1.0);
    let left = |role: &str| {
        at(&o, &format!("wharf_trust_expiry_seconds{{format=\"tuf\",repository=\"up/app\",role=\"{role}\"}}"))
    };
    assert!(left("timestamp") > 0.0 && left("timestamp") <= 20.0, "{o:#?}");
    assert!(left("snapshot") > 20.0 && left("snapshot") <= 7.0 * 86_400.0, "{o:#?}");
    assert_eq!(at(&o, "wharf_trust_renewal_failures_total{format=\"tuf\"}"), 0.0);
}

/// A free port on loopback (nothing listens on it once this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn scrapes_answer_to_the_metrics_token_and_addresses_and_can_move_to_a_port_of_their_own() {
    let h = http();
    let status = |r: reqwest::blocking::RequestBuilder| r.send().unwrap().status().as_u16();
    // A token: none or a wrong one is 401, registry credentials do not stand in for it, the right one is 200
    // without any registry credentials.
    let s =
        Server::start(&[("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", ADMIN), ("WHARF_METRICS_TOKEN", "scrape-me")]);
    let url = s.url("/metrics");
    assert_eq!(status(h.get(&url)), 401);
    assert_eq!(status(h.get(&url).bearer_auth("scrape-mE")), 401);
    assert_eq!(status(h.get(&url).basic_auth("admin", Some(ADMIN))), 401);
    assert_eq!(status(h.get(&url).bearer_auth("scrape-me")), 200);
    drop(s);
    // Addresses: loopback outside `allow` is 403, whatever it presents.
    let s = Server::start(&[("WHARF_METRICS_ALLOW", "10.0.0.0/8"), ("WHARF_METRICS_TOKEN", "scrape-me")]);
    assert_eq!(status(h.get(s.url("/metrics")).bearer_auth("scrape-me")), 403);
    drop(s);
    let s = Server::start(&[("WHARF_METRICS_ALLOW", "127.0.0.1")]);
    assert_eq!(status(h.get(s.url("/metrics"))), 200);
    // Through a proxy on an allowed address, the client is not the proxy: without a token, refused.
    assert_eq!(status(h.get(s.url("/metrics")).header("x-forwarded-for", "203.0.113.9")), 403);
    assert_eq!(status(h.get(s.url("/metrics")).header("forwarded", "for=203.0.113.9")), 403);
    drop(s);
    // Off.
    let s = Server::start(&[("WHARF_METRICS_ENABLED", "false")]);
    assert_eq!(status(h.get(s.url("/metrics"))), 404);
    drop(s);
    // A port of its own: /metrics there only.
    let port = free_port();
    let s = Server::start(&[("WHARF_METRICS_ADDR", &format!("127.0.0.1:{port}"))]);
    assert_eq!(status(h.get(s.url("/metrics"))), 404, "not on the main port");
    let own = format!("http://127.0.0.1:{port}/metrics");
    let samples = until(&own, "the metrics port", |m| !m.is_empty());
    assert!(samples.keys().any(|k| k.starts_with("wharf_build_info")), "{samples:#?}");
    assert_eq!(status(h.get(format!("http://127.0.0.1:{port}/v2/"))), 404, "nothing else there");
}

#[test]
fn the_access_log_names_account_and_address_and_never_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let log_s = log.to_str().unwrap();
    let mut s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", ADMIN),
        ("WHARF_LOG", "info"),
        ("__stderr", log_s),
    ]);
    let oci = Oci::with_basic(&s, "admin", ADMIN);
    oci.push("team/app", "v1", br#"{"os":"linux"}"#, &[b"a layer"], None).unwrap();
    let h = http();
    let token: serde_json::Value = h
        .get(s.url("/auth/token?service=wharf&scope=registry:catalog:*"))
        .basic_auth("admin", Some(ADMIN))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let catalog = h.get(s.url("/v2/_catalog?n=5&last=QUERYSECRET")).bearer_auth(&token).send().unwrap();
    assert_eq!(catalog.status(), 200);
    let refused = h.get(s.url("/v2/team/app/tags/list")).basic_auth("mallory", Some("WRONGPASS-9x")).send().unwrap();
    assert_eq!(refused.status(), 401);
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("wharf::access")).collect();
    let find = |needle: &str| lines.iter().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}:\n{text}"));
    let put = find("method=PUT path=/v2/team/app/manifests/v1 ");
    for field in ["route=manifest_write", "repository=team/app", "status=201", "account=admin", "address=127.0.0.1"] {
        assert!(put.contains(field), "{field} in {put}");
    }
    assert!(find("path=/v2/_catalog ").contains("status=200"));
    let no = find("path=/v2/team/app/tags/list ");
    assert!(no.contains("status=401") && no.contains("account=mallory") && no.contains("address=127.0.0.1"), "{no}");
    let upload = format!("bytes_in={} ", b"a layer".len());
    assert!(lines.iter().any(|l| l.contains("method=POST path=/v2/team/app/blobs/uploads/ ") && l.contains(&upload)));
    for secret in [ADMIN, "WRONGPASS-9x", "QUERYSECRET", &token, "Basic ", "Bearer "] {
        assert!(!text.contains(secret), "{secret:?} in the log:\n{text}");
    }

    // `log.access = false`: no line at all (the log file starts afresh with the restart).
    s.set_env("WHARF_LOG_ACCESS", "false");
    s.restart();
    assert!(oci.pull("team/app", "v1").is_ok());
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving"), "the log is written: {text}");
    assert!(!text.contains("wharf::access"), "{text}");
}
