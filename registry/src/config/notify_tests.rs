use std::net::SocketAddr;

use super::*;

fn settings(text: &str) -> Result<NotifySettings, ConfigError> {
    #[derive(Deserialize)]
    struct File {
        notifications: NotificationsConfig,
    }
    let file: File = toml::from_str(text).map_err(|e| ConfigError::Invalid { name: "toml", reason: e.to_string() })?;
    let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!());
    file.notifications.settings(addr, false)
}

const ONE: &str = "[notifications]\n[[notifications.endpoint]]\nname = \"ci\"\nurl = \"https://ci.example/hook\"\n";

/// One row per refusal: the endpoint's extra lines, and what the error says.
#[test]
fn refusals() {
    let rows: &[(&str, &str)] = &[
        ("[[notifications.endpoint]]\nname = \"ci\"\nurl = \"https://other.example/\"", "two endpoints are named"),
        ("url2 = 1", "unknown field"),
        ("actions = [\"push\", \"mount\"]", "unknown action \"mount\""),
        ("repositories = [\"team/[a]\"]", "only `*` and `**` are special"),
        ("headers = { \"bad header\" = \"x\" }", "is not a header name"),
        ("headers = { X-Ok = \"line\\nbreak\" }", "is not a header value"),
        ("secret = \"\"", "the secret is empty"),
        ("secret = \"a\"\nsecret_file = \"/nonexistent\"", "not both"),
        ("secret_file = \"/nonexistent/secret\"", "reading /nonexistent/secret"),
        ("timeout_secs = 0", "timeout_secs"),
        ("backoff_min_secs = 10\nbackoff_max_secs = 5", "backoff"),
        ("batch = 0", "batch 0"),
        ("timeout_secs = 60", "notifications.lease_secs"),
    ];
    for (extra, expected) in rows {
        let text = format!("{ONE}{extra}\n");
        let err = settings(&text).map(|_| ()).expect_err(extra).to_string();
        let err = match settings(&text) {
            Err(ConfigError::Invalid { reason, .. }) => format!("{err}: {reason}"),
            Err(ConfigError::File { path, .. }) => format!("{err}: {}", path.display()),
            _ => err,
        };
        assert!(err.contains(expected), "{extra:?}: {err:?} should say {expected:?}");
    }
    for (url, expected) in [("ftp://ci.example/", "http:// or https://"), ("not a url", "is not a URL")] {
        let text = format!("[notifications]\n[[notifications.endpoint]]\nname = \"ci\"\nurl = \"{url}\"\n");
        let err = settings(&text).map(|_| ()).expect_err(url);
        let text = match err {
            ConfigError::Invalid { reason, .. } => reason,
            e => e.to_string(),
        };
        assert!(text.contains(expected), "{url}: {text}");
    }
    let bad_name = "[notifications]\n[[notifications.endpoint]]\nname = \"c i\"\nurl = \"https://ci.example/\"\n";
    assert!(settings(bad_name).is_err());
}

#[test]
fn defaults_and_overrides() {
    let s = settings(ONE).unwrap();
    let e = &s.endpoints[0];
    assert_eq!(e.actions, Action::defaults());
    assert!(!e.actions.contains(&Action::Pull));
    assert_eq!((e.timeout.as_secs(), e.backoff_min_secs, e.backoff_max_secs, e.batch), (10, 1, 300, 10));
    assert!(e.secret.is_none() && e.repositories.is_empty());
    assert_eq!(s.lease_secs, 30);
    assert!(s.source_addr.ends_with(":5000"));
    let text = "[notifications]\ntimeout_secs = 2\nbatch = 3\nlease_secs = 10\n\
                [[notifications.endpoint]]\nname = \"a\"\nurl = \"http://a.example/\"\nsecret = \"k\"\n\
                actions = [\"pull\"]\nrepositories = [\"team/**\"]\nheaders = { Authorization = \"Bearer T\" }\n\
                [[notifications.endpoint]]\nname = \"b\"\nurl = \"http://b.example/\"\ntimeout_secs = 5\nbatch = 1\n";
    let s = settings(text).unwrap();
    let (a, b) = (&s.endpoints[0], &s.endpoints[1]);
    assert_eq!((a.timeout.as_secs(), a.batch, b.timeout.as_secs(), b.batch), (2, 3, 5, 1));
    assert!(a.wants(Action::Pull, "team/x/y") && !a.wants(Action::Pull, "other/x") && !a.wants(Action::Push, "team/x"));
    assert!(b.wants(Action::Push, "anything") && !b.wants(Action::Pull, "anything"));
    // Secrets and header values never print.
    let shown = format!("{s:?}");
    assert!(!shown.contains("Bearer T") && !shown.contains("\"k\""), "{shown}");
}
