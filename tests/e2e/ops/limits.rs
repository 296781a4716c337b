//! Rate limits (issue 23, item 6): `429` with `Retry-After` and `TOOMANYREQUESTS` over the rate, through after
//! waiting that long; the per-address limit before the gate, the per-account limit across addresses, pull bytes per
//! second, and buckets shared by replicas through the database.

use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};

use crate::common::{self, Server};

const ALICE: &str = "alice-pass-1";

fn http() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A refusal's `Retry-After`, after checking it is the rate limiter's `429`.
fn refused(r: Response, scope: &str) -> u64 {
    assert_eq!(r.status(), 429);
    let after = r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("rate limit") && message.contains(scope), "{message}");
    after
}

fn statuses(reqs: impl Iterator<Item = RequestBuilder>) -> Vec<u16> {
    reqs.map(|r| r.send().unwrap().status().as_u16()).collect()
}

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_and_gets_through_after_waiting() {
    let s = Server::start(&[
        ("WHARF_RATE_LIMIT_ADDRESS_REQUESTS_PER_SECOND", "1"),
        ("WHARF_RATE_LIMIT_ADDRESS_BURST", "2"),
    ]);
    let http = http();
    let base = || http.get(s.url("/v2/"));
    assert_eq!(statuses((0..2).map(|_| base())), [200, 200], "the burst");
    let after = refused(base().send().unwrap(), "address");
    assert_eq!(after, 1, "one request per second: the next credit is under a second away");
    // Health checks are never limited, even with the bucket empty.
    assert_eq!(statuses((0..5).map(|_| http.get(s.url("/healthz")))), [200; 5]);
    assert_ne!(http.get(s.url("/metrics")).send().unwrap().status(), 429);
    std::thread::sleep(Duration::from_secs(after));
    assert_eq!(base().send().unwrap().status(), 200, "through after Retry-After");
    assert_eq!(base().send().unwrap().status(), 429, "and the bucket is empty again");
}

#[test]
fn the_address_limit_refuses_a_flood_before_any_password_is_checked() {
    let s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", "admin-pass-1"),
        ("WHARF_AUTH_THROTTLE_AFTER", "3"),
        ("WHARF_AUTH_THROTTLE_BASE_MS", "60000"),
        ("WHARF_RATE_LIMIT_ADDRESS_REQUESTS_PER_SECOND", "1"),
        ("WHARF_RATE_LIMIT_ADDRESS_BURST", "2"),
    ]);
    s.admin(&["user", "add", "alice", "--password-stdin"], &format!("{ALICE}\n"));
    let http = http();
    // Anonymous: the burst reaches the gate (401), the rest is refused before it.
    let anon = statuses((0..10).map(|_| http.get(s.url("/v2/"))));
    assert_eq!(anon, [[401, 401].as_slice(), &[429; 8]].concat());
    std::thread::sleep(Duration::from_millis(2_500));
    // Twenty wrong passwords: two are checked (below the login throttle's three), eighteen are refused unchecked.
    let wrong = (0..20).map(|_| http.get(s.url("/v2/")).basic_auth("alice", Some("guess"))).collect::<Vec<_>>();
    let mut counts = (0, 0);
    for r in wrong {
        let r = r.send().unwrap();
        match r.status().as_u16() {
            401 => counts.0 += 1,
            429 => {
                refused(r, "address");
                counts.1 += 1
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(counts, (2, 18));
    std::thread::sleep(Duration::from_millis(2_500));
    // Had the flood reached the login throttle, alice would be locked out now (its own 429).
    let ok = http.get(s.url("/v2/")).basic_auth("alice", Some(ALICE)).send().unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().unwrap_or_default());
}

#[test]
fn the_account_limit_follows_the_account_across_addresses() {
    let s = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", "admin-pass-1"),
        ("WHARF_AUTH_TRUSTED_PROXIES", "127.0.0.1"),
        ("WHARF_RATE_LIMIT_ACCOUNT_REQUESTS_PER_SECOND", "0.2"),
        ("WHARF_RATE_LIMIT_ACCOUNT_BURST", "3"),
        ("WHARF_RATE_LIMIT_EXEMPT", "admin"),
    ]);
    s.admin(&["user", "add", "alice", "--password-stdin"], &format!("{ALICE}\n"));
    std::thread::sleep(Duration::from_millis(1_500));
    let http = http();
    let from = |ip: String| http.get(s.url("/v2/")).header("x-forwarded-for", ip);
    let alice = (1..=3).map(|i| from(format!("203.0.113.{i}")).basic_auth("alice", Some(ALICE)));
    assert_eq!(statuses(alice), [200, 200, 200], "the burst, from three addresses");
    let r = from("198.51.100.7".into()).basic_auth("alice", Some(ALICE)).send().unwrap();
    let after = refused(r, "account");
    assert!((1..=5).contains(&after), "one request per 5 s: {after}");
    // Others are not touched by alice's bucket: anonymous callers (limited by address only) and the exempt admin.
    assert_eq!(from("198.51.100.7".into()).send().unwrap().status(), 401);
    let admin = (0..6).map(|i| from(format!("192.0.2.{i}")).basic_auth("admin", Some("admin-pass-1")));
    assert_eq!(statuses(admin), [200; 6], "exempt");
}

#[test]
fn pulls_are_limited_in_bytes_per_second_and_a_pull_may_go_into_debt() {
    let s = Server::start(&[
        ("WHARF_RATE_LIMIT_ADDRESS_PULL_BYTES_PER_SECOND", "100000"),
        ("WHARF_RATE_LIMIT_ADDRESS_PULL_BURST_BYTES", "100000"),
    ]);
    let blob = common::data(300_000, 7);
    let digest = common::oci::Oci::new(&s).ensure_blob("lim/pull", &blob, None);
    let http = http();
    let url = s.url(&format!("/v2/lim/pull/blobs/{digest}"));
    let started = Instant::now();
    // Three times the burst: the first pull passes whole, and the bucket owes two seconds.
    let first = http.get(&url).send().unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().unwrap().len(), blob.len());
    let after = refused(http.get(&url).send().unwrap(), "address");
    assert!((2..=3).contains(&after), "200 kB of debt at 100 kB/s: {after}");
    // Only blob bytes count: a HEAD, the manifest API and pushes pass.
    assert_eq!(http.head(&url).send().unwrap().status(), 200);
    std::thread::sleep(Duration::from_secs(after));
    let again = http.get(&url).send().unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().unwrap().len(), blob.len());
    assert!(started.elapsed() >= Duration::from_secs(2), "300 kB at 100 kB/s took {:?}", started.elapsed());
}

#[test]
fn shared_buckets_span_replicas() {
    let shared = common::shared_stack();
    let mut env: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend([
        ("WHARF_RATE_LIMIT_SHARED", "true"),
        ("WHARF_RATE_LIMIT_ADDRESS_REQUESTS_PER_SECOND", "0.2"),
        ("WHARF_RATE_LIMIT_ADDRESS_BURST", "4"),
    ]);
    let (a, b) = (Server::start(&env), Server::start(&env));
    let http = http();
    // Alternating replicas: four requests pass in all, not four on each.
    let got = statuses((0..8).map(|i| http.get(if i % 2 == 0 { a.url("/v2/") } else { b.url("/v2/") })));
    assert_eq!(got, [200, 200, 200, 200, 429, 429, 429, 429]);
    let after = refused(http.get(a.url("/v2/")).send().unwrap(), "address");
    assert!((1..=5).contains(&after), "{after}");
    // The other replica, which last refused on its own, agrees after asking the database.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(http.get(b.url("/v2/")).send().unwrap().status(), 200);
    assert_eq!(http.get(a.url("/v2/")).send().unwrap().status(), 429);
}
