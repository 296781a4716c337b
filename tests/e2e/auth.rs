//! Access control over HTTPS against the real server: the scope matrix (accounts × operations × repositories,
//! with Basic credentials and with tokens), the catalog filter, forged and expired tokens, malformed headers and
//! token requests, the failed-login throttle, and nothing secret in the log.

mod auth_limits;
use crate::common::auth_support;
mod auth_tokens;
use crate::common;

use std::collections::BTreeMap;

use auth_support::{Call, Env, Op, ADMIN_PASSWORD, REPOS};

/// What each account may do, written out by hand from the grants `Env::start` makes (not from the server's code).
fn table(account: &str, repo: &str) -> &'static [&'static str] {
    const ALL: &[&str] = &["pull", "push", "delete", "sign"];
    match (account, repo) {
        ("admin", _) => ALL,
        ("writer", "team/app") => ALL,
        ("reader", "team/app") => &["pull"],
        ("robot$ci", "ci/build") => &["pull", "push"],
        ("robot$old", _) => &[],
        (_, "pub/y") => &["pull"],
        _ => &[],
    }
}

/// The status `op` must get from `account` on `repo`.
fn expected(account: &str, repo: &str, op: Op) -> u16 {
    let has = |a: &str| table(account, repo).contains(&a);
    let allowed = op.needs().iter().all(|a| has(a));
    if allowed {
        return match op {
            Op::Mount if table(account, "other/x").contains(&"pull") => 201,
            op => op.success(),
        };
    }
    match account {
        // No identity (no credentials, or an anonymous token): a challenge, so docker asks for a login.
        "anonymous" => 401,
        // An expired robot's password no longer counts.
        "robot$old" => 401,
        _ => 403,
    }
}

const ACCOUNTS: [&str; 6] = ["admin", "writer", "reader", "robot$ci", "robot$old", "anonymous"];

fn run_matrix(env: &Env, bearer: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut cells = 0;
    for account in ACCOUNTS {
        if bearer && account == "robot$old" {
            // An expired robot gets no token at all.
            let status = env.token_status(&env.call_for(account), "repository:pub/y:pull");
            if status != 401 {
                wrong.push(format!("token for expired robot: {status}, expected 401"));
            }
            continue;
        }
        for repo in REPOS {
            for op in Op::ALL {
                let call = if bearer { env.bearer_for(account, repo, op) } else { env.call_for(account) };
                let got = env.perform(&call, repo, op);
                let want = expected(account, repo, op);
                cells += 1;
                if got != want {
                    wrong.push(format!("{account} {op:?} {repo}: got {got}, expected {want}"));
                }
            }
        }
    }
    assert!(cells >= 5 * 5 * 14, "only {cells} cells ran");
    wrong
}

#[test]
fn scope_matrix_with_basic_credentials_and_with_tokens() {
    let env = Env::start(&[]);
    let mut wrong = run_matrix(&env, false);
    wrong.extend(run_matrix(&env, true));
    assert!(wrong.is_empty(), "{} cells wrong:\n{}", wrong.len(), wrong.join("\n"));

    // The catalog lists only what each caller may pull.
    let mut want: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    want.insert("admin", REPOS.to_vec());
    want.insert("writer", vec!["pub/y", "team/app"]);
    want.insert("reader", vec!["pub/y", "team/app"]);
    want.insert("robot$ci", vec!["ci/build", "pub/y"]);
    for (account, repos) in &want {
        let (status, listed) = env.catalog(&env.call_for(account));
        let mut repos = repos.clone();
        repos.sort();
        assert_eq!((status, listed), (200, repos.iter().map(|s| s.to_string()).collect()), "catalog of {account}");
    }
    assert_eq!(env.catalog(&Call::Anonymous).0, 401, "anonymous catalog needs a token");
    assert_eq!(env.catalog(&env.call_for("robot$old")).0, 401);
    let anon = env.token(&Call::Anonymous, &["registry:catalog:*"]);
    assert_eq!(env.catalog(&Call::Bearer(anon)), (200, vec!["pub/y".to_string()]));
    // Paging over a filtered list: one name per page, each page only pullable names.
    let (_, first) = env.catalog_page(&env.call_for("writer"), "n=1");
    assert_eq!(first, vec!["pub/y".to_string()]);
    let (_, second) = env.catalog_page(&env.call_for("writer"), "n=1&last=pub/y");
    assert_eq!(second, vec!["team/app".to_string()]);

    // Nothing secret reaches the log: no password, no robot secret, no token.
    let log = std::fs::read_to_string(&env.log).expect("log");
    assert!(log.contains("access refused"), "refusals are logged");
    assert!(log.contains("account=writer") || log.contains("account=\"writer\""), "with the account");
    for secret in env.secrets() {
        assert!(!log.contains(&secret), "a secret reached the log");
    }
}

#[test]
fn forged_and_misused_tokens_are_refused() {
    let env = Env::start(&[]);
    let writer = env.call_for("writer");
    let token = env.token(&writer, &["repository:team/app:pull"]);
    assert_eq!(env.perform(&Call::Bearer(token.clone()), "team/app", Op::GetManifest), 200);
    // A changed payload (other/x instead of team/app) under the original signature.
    let forged = auth_tokens::tamper_payload(&token, "team/app", "other/x");
    assert_eq!(env.perform(&Call::Bearer(forged), "other/x", Op::GetManifest), 401);
    // A token signed by another key, claiming everything.
    let foreign = auth_tokens::sign_foreign(&auth_tokens::claims("wharf", "wharf", "admin", 0, 300, "other/x"));
    assert_eq!(env.perform(&Call::Bearer(foreign), "other/x", Op::GetManifest), 401);
    // alg: none.
    let none = auth_tokens::unsigned(&auth_tokens::claims("wharf", "wharf", "admin", 0, 300, "other/x"));
    assert_eq!(env.perform(&Call::Bearer(none), "other/x", Op::GetManifest), 401);
    // A token for team/app used on other/x, and a pull token used to push.
    assert_eq!(env.perform(&Call::Bearer(token.clone()), "other/x", Op::GetManifest), 403);
    // The writer could get push: the answer asks for a better token.
    let (status, challenge) = env.perform_with_challenge(&Call::Bearer(token), "team/app", Op::StartUpload);
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("repository:team/app:pull,push"));
    // The reader could not: refused.
    let reader_token = env.token(&env.call_for("reader"), &["repository:team/app:pull,push"]);
    assert_eq!(env.perform(&Call::Bearer(reader_token), "team/app", Op::StartUpload), 403);
    // A challenge names exactly what the request needs; a mount asks for pull on its source too.
    let (status, challenge) = env.perform_with_challenge(&Call::Anonymous, "team/app", Op::Mount);
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer realm=\"https://"), "{challenge}");
    assert!(challenge.contains(",service=\"wharf\""), "{challenge}");
    assert!(challenge.contains("scope=\"repository:team/app:pull,push repository:other/x:pull\""), "{challenge}");
    // A refresh token is not an access token.
    let refresh = env.refresh_token(&writer);
    assert_eq!(env.perform(&Call::Bearer(refresh), "team/app", Op::GetManifest), 401);
}

#[test]
fn external_issuer_tokens_are_checked_for_time_audience_and_issuer() {
    let (jwks, key) = auth_tokens::external_issuer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks).unwrap();
    std::fs::write(
        &path,
        format!(
            "[auth]\nenabled = true\n[[auth.trusted_issuers]]\nissuer = \"idp\"\njwks = \"{}\"\n",
            jwks_path.display()
        ),
    )
    .unwrap();
    let env = Env::start(&[("WHARF_CONFIG", path.to_str().unwrap())]);
    let sign = |iss: &str, aud: &str, nbf_offset: i64, lifetime: i64, repo: &str| {
        Call::Bearer(auth_tokens::sign_with(
            &key,
            &auth_tokens::claims(iss, aud, "ext-user", nbf_offset, lifetime, repo),
        ))
    };
    assert_eq!(env.perform(&sign("idp", "wharf", 0, 300, "other/x"), "other/x", Op::GetManifest), 200, "valid");
    assert_eq!(env.perform(&sign("idp", "wharf", 0, 300, "other/x"), "team/app", Op::GetManifest), 403, "scope");
    assert_eq!(env.perform(&sign("idp", "wharf", -7200, 3600, "other/x"), "other/x", Op::GetManifest), 401, "expired");
    assert_eq!(
        env.perform(&sign("idp", "wharf", 3600, 300, "other/x"), "other/x", Op::GetManifest),
        401,
        "not yet valid"
    );
    assert_eq!(env.perform(&sign("idp", "elsewhere", 0, 300, "other/x"), "other/x", Op::GetManifest), 401, "audience");
    assert_eq!(env.perform(&sign("wharf", "wharf", 0, 300, "other/x"), "other/x", Op::GetManifest), 401, "issuer");
}

#[test]
fn own_tokens_expire() {
    let env = Env::start(&[("WHARF_AUTH_TOKEN_LIFETIME_SECS", "10")]);
    let token = env.token(&env.call_for("reader"), &["repository:team/app:pull"]);
    assert_eq!(env.perform(&Call::Bearer(token.clone()), "team/app", Op::GetManifest), 200);
    // Ten seconds of life and five of leeway for clock skew between replicas.
    std::thread::sleep(std::time::Duration::from_secs(16));
    assert_eq!(env.perform(&Call::Bearer(token), "team/app", Op::GetManifest), 401);
}

#[test]
fn malformed_headers_and_token_requests_get_400_or_401() {
    let env = Env::start(&[]);
    let headers: [&[u8]; 7] =
        [b"Basic !!!notbase64", b"Basic Zm9v", b"Bearer", b"Bearer a b", b"Digest x", b"Basic", b"Basic \xff\xfe"];
    for header in headers {
        let status = env.raw_status("/v2/team/app/tags/list", Some(header));
        assert_eq!(status, 401, "Authorization: {:?}", String::from_utf8_lossy(header));
    }
    // Four times the gate's 8 KiB limit: answered by the gate on HTTP/1.1 and HTTP/2 alike. (Header blocks beyond what
    // HTTP/2 framing takes are refused by the protocol layer, REFUSED_STREAM; beyond hyper's HTTP/1.1 buffer, 431.)
    let huge = format!("Bearer {}", "a".repeat(32 * 1024));
    assert_eq!(env.raw_status("/v2/team/app/tags/list", Some(huge.as_bytes())), 401);
    for query in [
        "service=wharf&scope=repository",
        "service=wharf&scope=repository:team/app",
        "service=wharf&scope=repository:UPPER/x:pull",
        "service=other&scope=repository:team/app:pull",
    ] {
        assert_eq!(env.raw_status(&format!("/auth/token?{query}"), None), 400, "{query}");
    }
    let long_scope = format!("service=wharf&scope=repository:{}:pull", "a/".repeat(5000));
    assert_eq!(env.raw_status(&format!("/auth/token?{long_scope}"), None), 400);
    assert_eq!(env.raw_status("/auth/token?service=wharf", Some(b"Basic !!!")), 400);
    assert_eq!(env.raw_status("/auth/token?service=wharf", Some(b"Bearer abc")), 400);
    assert_eq!(env.post_form("grant_type=password&username=writer"), 400);
    assert_eq!(env.post_form("grant_type=magic"), 400);
    assert_eq!(env.post_form(""), 400);
    assert_eq!(env.post_form("grant_type=refresh_token&refresh_token=abc.def.ghi"), 401);
    assert_eq!(env.post_form(&"x=y&".repeat(20_000)), 413);
    assert_eq!(
        env.post_form(&format!("grant_type=password&username=writer&password={}", auth_support::WRITER_PASSWORD)),
        200
    );
    assert_eq!(
        env.post_form(&format!(
            "grant_type=password&username=admin&password={ADMIN_PASSWORD}&scope=repository:team/app:pull"
        )),
        200
    );
}

#[test]
fn the_address_throttle_believes_x_forwarded_for_only_from_a_trusted_proxy() {
    // 127.0.0.2 stands for the load balancer; 127.0.0.1 is any other peer.
    let env = Env::start(&[
        ("WHARF_AUTH_THROTTLE_AFTER", "3"),
        ("WHARF_AUTH_THROTTLE_BASE_MS", "60000"),
        ("WHARF_AUTH_TRUSTED_PROXIES", "127.0.0.2"),
    ]);
    let scope = "repository:team/app:pull";
    let guess = |i: usize| Call::Basic(format!("nobody{i}"), "guess".into());
    // Through the proxy: one forwarded client's guesses lock that client out, not the others behind the proxy.
    for i in 0..6 {
        env.token_status_forwarded("127.0.0.2", "203.0.113.1", &guess(i), scope);
    }
    let reader = env.call_for("reader");
    assert_eq!(env.token_status_forwarded("127.0.0.2", "203.0.113.1", &reader, scope), 429, "the guesser");
    assert_eq!(env.token_status_forwarded("127.0.0.2", "203.0.113.2", &reader, scope), 200, "another client");
    // A client behind the proxy that writes its own entries: only the proxy's (rightmost) entry counts.
    assert_eq!(env.token_status_forwarded("127.0.0.2", "203.0.113.2, 203.0.113.1", &reader, scope), 429);
    // From a peer that is not a trusted proxy the header is ignored: forged addresses do not escape the lock-out.
    for i in 0..6 {
        env.token_status_forwarded("127.0.0.1", &format!("198.51.100.{i}"), &guess(10 + i), scope);
    }
    assert_eq!(env.token_status_forwarded("127.0.0.1", "198.51.100.99", &reader, scope), 429, "address locked");
}

#[test]
fn admin_commands_change_what_the_server_accepts_within_a_second() {
    let env = Env::start(&[]);
    let writer = env.call_for("writer");
    let scope = "repository:team/app:pull";
    let refresh = env.refresh_token(&writer);
    assert_eq!(env.refresh_status(&refresh), 200);

    let users: serde_json::Value = serde_json::from_str(&env.s.admin(&["user", "list", "--json"], "")).unwrap();
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "reader", "writer"]);
    let w = users.as_array().unwrap().iter().find(|u| u["name"] == "writer").unwrap();
    assert_eq!(w["grants"], serde_json::json!([{ "pattern": "team/*", "actions": "push,delete,sign" }]));
    let robots: serde_json::Value = serde_json::from_str(&env.s.admin(&["robot", "list", "--json"], "")).unwrap();
    let robots = robots.as_array().unwrap();
    assert_eq!(robots.len(), 2);
    assert!(robots.iter().any(|r| r["name"] == "robot$old" && r["expires_at"].is_i64()));
    assert!(!env.s.admin(&["robot", "list", "--json"], "").contains("argon2"), "no hashes listed");

    env.s.admin(&["user", "passwd", "writer", "--password-stdin"], "new-writer-pass\n");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(env.token_status(&writer, scope), 401, "the old password");
    let new_writer = Call::Basic("writer".into(), "new-writer-pass".into());
    assert_eq!(env.token_status(&new_writer, scope), 200);
    assert_eq!(env.refresh_status(&refresh), 401, "a password change ends refresh tokens");

    env.s.admin(&["revoke", "writer", "team/*"], "");
    env.s.admin(&["user", "remove", "reader"], "");
    env.s.admin(&["robot", "remove", "ci"], "");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(env.perform(&new_writer, "team/app", Op::GetManifest), 403, "revoked");
    assert_eq!(env.perform(&new_writer, "pub/y", Op::GetManifest), 200, "public still");
    assert_eq!(env.perform(&env.call_for("reader"), "team/app", Op::GetManifest), 401, "removed user");
    assert_eq!(env.perform(&env.call_for("robot$ci"), "ci/build", Op::GetManifest), 401, "removed robot");
}

#[test]
fn first_administrator_password_is_printed_once_and_works() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("first.log");
    let mut s = common::Server::start(&[("WHARF_AUTH", "1"), ("__stderr", log.to_str().unwrap())]);
    let text = std::fs::read_to_string(&log).unwrap();
    let password = text
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no password printed: {text}"))
        .to_owned();
    assert!(password.len() >= 32, "a random password: {password:?}");
    let http = reqwest::blocking::Client::new();
    let ok = http.get(s.url("/auth/token?service=wharf")).basic_auth("admin", Some(&password)).send().unwrap();
    assert_eq!(ok.status(), 200);
    let bad = http.get(s.url("/auth/token?service=wharf")).basic_auth("admin", Some("guess")).send().unwrap();
    assert_eq!(bad.status(), 401);
    // Not again on the next start (the log file starts afresh).
    s.restart();
    let again = http.get(s.url("/auth/token?service=wharf")).basic_auth("admin", Some(&password)).send().unwrap();
    assert_eq!(again.status(), 200);
    assert!(!std::fs::read_to_string(&log).unwrap().contains("with password"), "printed twice");
}

/// A credential helper speaking docker's protocol (`get`/`store`/`erase` on stdin and stdout), keeping one JSON
/// file per server, and logging each verb it was called with.
const HELPER: &str = r#"#!/bin/sh
dir="$HELPER_DIR"
read -r input
echo "$1" >> "$dir/calls"
case "$1" in
  store) host=$(printf '%s' "$input" | jq -r .ServerURL); printf '%s' "$input" > "$dir/$(echo "$host" | tr ':/' '__')" ;;
  get) f="$dir/$(echo "$input" | tr ':/' '__')"; [ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }; cat "$f" ;;
  erase) rm -f "$dir/$(echo "$input" | tr ':/' '__')" ;;
esac
"#;

#[test]
fn wharf_login_and_pushes_go_through_docker_credential_helpers() {
    let env = Env::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-wharftest");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let host = env.s.addr.clone();
    std::fs::write(docker.join("config.json"), format!("{{\"credHelpers\": {{\"{host}\": \"wharftest\"}}}}")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let wharf = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut c = std::process::Command::new(common::wharf_bin())
            .arg("--ca-cert")
            .arg(env.certs.join("ca.crt"))
            .args(args)
            .env("PATH", &path)
            .env("HELPER_DIR", tmp.path())
            .env("DOCKER_CONFIG", &docker)
            .env("WHARF_STORE", tmp.path().join("store"))
            .env("WHARF_CONFIG_DIR", tmp.path().join("config"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let image = format!("{host}/team/app@{}", env.image.digest);
    let (ok, err) = wharf(&["pull", &image], "");
    assert!(!ok, "pulled without a login");
    assert!(err.contains("access denied (HTTP 401)") && err.contains("wharf login"), "{err}");
    let (ok, err) =
        wharf(&["login", &host, "-u", "writer", "--password-stdin"], &format!("{}\n", auth_support::WRITER_PASSWORD));
    assert!(ok, "{err}");
    let config = std::fs::read_to_string(docker.join("config.json")).unwrap();
    assert!(!config.contains("auths"), "credentials went to config.json instead of the helper: {config}");
    let (ok, err) = wharf(&["pull", &image], "");
    assert!(ok, "{err}");
    let (ok, err) = wharf(&["logout", &host], "");
    assert!(ok, "{err}");
    let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert!(calls.starts_with(&["get", "store"]) && calls.contains(&"erase"), "{calls:?}");
    let stored: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("127.0.0.1"))
        .collect();
    assert!(stored.is_empty(), "the helper still holds credentials after logout");
}
