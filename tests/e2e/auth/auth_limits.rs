//! The login throttle and verification bounds, accounts added while the server runs, and the catalog among many
//! hidden repositories: against the real server.

use std::sync::{Arc, Barrier};

use crate::common::auth_support::{Call, Env};

const SCOPE: &str = "repository:team/app:pull";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{user}:{password}"))
    )
}

#[test]
fn concurrent_wrong_passwords_are_counted_when_they_start() {
    let env = Env::start(&[("WHARF_AUTH_THROTTLE_AFTER", "5"), ("WHARF_AUTH_THROTTLE_BASE_MS", "60000")]);
    let n = 30;
    let url = env.url("/auth/token?service=wharf&scope=repository%3Ateam%2Fapp%3Apull");
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            // A connection of its own, open before the race (an anonymous request checks no password).
            let http = env.client_from(None);
            assert_eq!(http.get(env.url("/v2/")).send().unwrap().status(), 401);
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let r = http.get(url).basic_auth("writer", Some("wrong")).send().unwrap();
                let after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                (r.status().as_u16(), after)
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let refused = results.iter().filter(|(s, _)| *s == 429).count();
    let checked = results.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(refused + checked, n, "{results:?}");
    // At most `throttle_after` passwords were checked: each attempt counted when it started.
    assert!(checked <= 5, "{checked} wrong passwords checked: {results:?}");
    assert!(results.iter().all(|(s, after)| *s != 429 || after.is_some()), "429 with Retry-After");
}

#[test]
fn parallel_first_logins_with_the_same_credentials_share_one_check() {
    // One check at a time per account and address: more parallel requests with the same (right) credentials wait for the one
    // under way instead of being refused.
    let env = Env::start(&[("WHARF_AUTH_VERIFY_PER_ACCOUNT", "1"), ("WHARF_AUTH_VERIFY_PER_ADDRESS", "1")]);
    let n = 12;
    let url = env.url("/auth/token?service=wharf&scope=repository%3Ateam%2Fapp%3Apull");
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let http = env.client_from(None);
            assert_eq!(http.get(env.url("/v2/")).send().unwrap().status(), 401);
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let r = http.get(url).basic_auth("reader", Some(crate::common::auth_support::READER_PASSWORD)).send();
                r.unwrap().status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [200; 12]);
}

#[test]
fn wrong_passwords_lock_the_account_only_from_the_address_that_guessed() {
    let env = Env::start(&[("WHARF_AUTH_THROTTLE_AFTER", "5"), ("WHARF_AUTH_THROTTLE_BASE_MS", "2000")]);
    let wrong = Call::Basic("writer".into(), "not-the-password".into());
    let statuses: Vec<u16> = (0..20).map(|_| env.token_status(&wrong, SCOPE)).collect();
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(&statuses[5..], &[429; 15], "{statuses:?}");
    // Locked from this address, the right password too (on the token endpoint and on registry endpoints).
    let right = env.call_for("writer");
    let (status, retry_after) = env.token_status_retry_after(&right, SCOPE);
    assert_eq!(status, 429);
    let wait: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let header = basic("writer", crate::common::auth_support::WRITER_PASSWORD);
    assert_eq!(env.raw_status("/v2/team/app/tags/list", Some(header.as_bytes())), 429);
    // Not from an address that has not failed, and not for other accounts from this one (under the address bound).
    assert_eq!(env.token_status_from("127.0.0.2", &right, SCOPE), 200, "the account from another address");
    assert_eq!(env.token_status(&env.call_for("reader"), SCOPE), 200, "another account from this address");
    // One address spraying guesses over accounts is locked out for every account (twice `throttle_after`).
    for i in 0..10 {
        env.token_status_from("127.0.0.3", &Call::Basic(format!("nobody{i}"), "guess".into()), SCOPE);
    }
    assert_eq!(env.token_status_from("127.0.0.3", &env.call_for("reader"), SCOPE), 429, "the spraying address");
    assert_eq!(env.token_status_from("127.0.0.2", &env.call_for("reader"), SCOPE), 200);
    std::thread::sleep(std::time::Duration::from_secs(wait) + std::time::Duration::from_millis(300));
    assert_eq!(env.token_status(&right, SCOPE), 200, "works again after the delay");
}

#[test]
fn an_account_added_with_wharf_admin_logs_in_at_once() {
    let env = Env::start(&[]);
    env.s.admin(&["user", "add", "newcomer", "--password-stdin"], "newcomer-pass-1\n");
    // No wait for the policy's poll: a failing credential first checks whether the accounts changed.
    let header = basic("newcomer", "newcomer-pass-1");
    assert_eq!(env.raw_status("/v2/", Some(header.as_bytes())), 200);
    env.s.admin(&["user", "add", "second", "--password-stdin"], "second-pass-1\n");
    assert_eq!(env.token_status(&Call::Basic("second".into(), "second-pass-1".into()), SCOPE), 200);
    // A wrong password is still refused, and cached credentials keep working.
    assert_eq!(env.raw_status("/v2/", Some(basic("newcomer", "nope").as_bytes())), 401);
    assert_eq!(env.raw_status("/v2/", Some(header.as_bytes())), 200);
}

#[test]
fn the_catalog_lists_the_few_visible_repositories_among_many_hidden() {
    let env = Env::start(&[("WHARF_LOG_FORMAT", "json"), ("WHARF_LOG", "warn,wharf_registry::listing=debug")]);
    for i in 0..1500 {
        env.mount_into(&format!("hidden/r{i:04}"));
    }
    // Around `pub/` in byte order: `pub`, `pub-x` before it, `pub0`, `puba` after.
    for repo in ["pub", "pub-x", "pub0", "puba", "pub/a", "pub/z/deep"] {
        env.mount_into(repo);
    }
    let anonymous = Call::Bearer(env.token(&Call::Anonymous, &["registry:catalog:*"]));
    let (status, all, link) = env.catalog_link(&anonymous, "");
    assert_eq!((status, all, link), (200, vec!["pub/a".into(), "pub/y".into(), "pub/z/deep".into()], None));
    let (_, first, link) = env.catalog_link(&anonymous, "n=2");
    assert_eq!(first, ["pub/a", "pub/y"]);
    assert_eq!(link.as_deref(), Some("</v2/_catalog?last=pub%2Fy&n=2>; rel=\"next\""));
    let (_, second, link) = env.catalog_link(&anonymous, "last=pub%2Fy&n=2");
    assert_eq!((second, link), (vec!["pub/z/deep".to_string()], None), "the last page has no Link");
    // The reader's grants (`team/app`, and the anonymous `pub/**`), merged in name order.
    let (_, reader, _) = env.catalog_link(&env.call_for("reader"), "n=10");
    assert_eq!(reader, ["pub/a", "pub/y", "pub/z/deep", "team/app"]);
    let (_, page, link) = env.catalog_link(&env.call_for("reader"), "n=1&last=pub%2Fz%2Fdeep");
    assert_eq!((page, link), (vec!["team/app".to_string()], None));
    // The work done: each listing read only rows its grants span, never the 1,500 hidden ones.
    let log = std::fs::read_to_string(&env.log).unwrap();
    let reads: Vec<(u64, u64)> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "catalog")
        .map(|v| (v["fields"]["rows"].as_u64().unwrap(), v["fields"]["listed"].as_u64().unwrap()))
        .collect();
    assert_eq!(reads, [(3, 3), (3, 2), (1, 1), (4, 4), (1, 1)]);
}
