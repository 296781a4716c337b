use super::schema::Kind;
use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn config(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"), &vars(pairs))
}

#[test]
fn layering() {
    let c = config(
        "addr = \"127.0.0.1:6000\"\ndata_dir = \"/srv/w\"\n[limits]\nmax_blob_size = 10\n[log]\nformat = \"json\"",
        &[("WHARF_MAX_BLOB_SIZE", "20")],
    )
    .unwrap();
    let s = c.settings(Overrides { addr: Some("127.0.0.1:7000".into()), ..Overrides::default() }).unwrap();
    assert_eq!(s.addr.port(), 7000);
    assert_eq!(s.upload.max_blob_size, 20);
    assert!(s.log_json);
    assert_eq!(s.storage_url.as_str(), "file:///srv/w/store/");
    assert_eq!(s.database_url, "sqlite:///srv/w/wharf.db");
}

#[test]
fn every_key_has_its_variable_and_durations_take_units() {
    let pairs = [
        ("WHARF_LIMITS_MAX_BLOB_SIZE", "30"),
        ("WHARF_AUTH_ENABLED", "true"),
        ("WHARF_AUTH_ISSUER", "me"),
        ("WHARF_AUTH_THROTTLE_BASE_MS", "250"),
        ("WHARF_AUTH_THROTTLE_MAX_SECS", "1h"),
        ("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", "2d"),
        ("WHARF_GC_RECONCILE_RATE", "7"),
        ("WHARF_STORAGE_CACHE_DIR", "/c"),
        ("WHARF_ADMIN_PASSWORD", "pw"),
    ];
    let s = config("", &pairs).unwrap().settings(Overrides::default()).unwrap();
    let auth = s.auth.unwrap();
    assert_eq!(s.upload.max_blob_size, 30);
    assert_eq!((auth.issuer.as_str(), auth.admin_password.as_deref()), ("me", Some("pw")));
    assert_eq!(auth.throttle_base, std::time::Duration::from_millis(250));
    assert_eq!(auth.throttle_max, std::time::Duration::from_secs(3600));
    assert_eq!(s.trust.timestamp_lifetime, 2 * 86_400);
    assert_eq!(s.gc.reconcile_rate, 7);
    let s = config("[trust]\ntimestamp_lifetime_secs = \"1w\"\n[auth]\nthrottle_base_ms = \"2s\"\nenabled = true", &[])
        .unwrap()
        .settings(Overrides::default())
        .unwrap();
    assert_eq!(s.trust.timestamp_lifetime, 7 * 86_400);
    assert_eq!(s.auth.unwrap().throttle_base, std::time::Duration::from_secs(2));
}

#[test]
fn refusals() {
    let refused = |text: &str, pairs: &[(&str, &str)]| match config(text, pairs) {
        Ok(c) => c.settings(Overrides::default()).err().map(|e| format!("{e:#}")),
        Err(e) => Some(format!("{e}: {:?}", std::error::Error::source(&e).map(ToString::to_string))),
    };
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let rows: [Row; 8] = [
        ("bogus = 1", &[], "unknown field"),
        ("", &[("WHARF_MAX_BLOB_SIZE", "big")], "WHARF_MAX_BLOB_SIZE"),
        ("", &[("WHARF_GC_GRACE_SECS", "soon")], "WHARF_GC_GRACE_SECS"),
        ("", &[("WHARF_AUTH_THROTTLE_AFTER", "99999999999")], "WHARF_AUTH_THROTTLE_AFTER"),
        ("", &[("WHARF_TLS_CERTIFICATE", "x")], "no such configuration key"),
        ("addr = \"nope\"", &[], "HOST:PORT"),
        ("[trust]\ntimestamp_lifetime_secs = 0.5", &[], "whole seconds"),
        ("[trust]\ntimestamp_lifetime_secs = -1", &[], "negative"),
    ];
    for (text, pairs, want) in rows {
        let err = refused(text, pairs).unwrap_or_else(|| panic!("{text:?} {pairs:?} was accepted"));
        assert!(err.contains(want), "{text:?} {pairs:?}: {err}");
    }
}

#[test]
fn secure_by_default() {
    let open = |toml: &str| toml::from_str::<Config>(toml).unwrap().settings(Overrides::default());
    let err = open("addr = \"0.0.0.0:5000\"").unwrap_err().to_string();
    assert!(err.contains("listen_without_tls"), "{err}");
    let err = open("addr = \"0.0.0.0:5000\"\n[tls]\ncert = \"c\"\nkey = \"k\"").unwrap_err().to_string();
    assert!(err.contains("[auth] enabled"), "{err}");
    assert!(open("addr = \"0.0.0.0:5000\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n[auth]\nenabled = true").is_ok());
    assert!(open("addr = \"0.0.0.0:5000\"\n[insecure]\nlisten_without_tls = true\nlisten_without_auth = true").is_ok());
    assert!(open("[tls]\ncert = \"c\"").is_err());
    assert!(open("addr = \"127.0.0.1:5000\"").unwrap().auth.is_none());
}

#[test]
fn a_shared_database_needs_a_shared_key_encryption_key() {
    let open = |toml: &str| toml::from_str::<Config>(toml).unwrap().settings(Overrides::default());
    let err = open("[database]\nurl = \"postgres://db/wharf\"").unwrap_err().to_string();
    assert!(err.contains("key_encryption_key"), "{err}");
    let s = open("[database]\nurl = \"postgres://db/wharf\"\n[trust]\nkey_encryption_key_file = \"/run/secrets/kek\"");
    assert!(matches!(s.unwrap().kek, KekSource::File(_)));
    assert!(open("[database]\nurl = \"mysql://x\"").is_err());
}

/// The README's server configuration examples: the first TOML block of each section that shows one (the others
/// are other programs' files). The first is the `## Configuration` block.
fn readme_blocks() -> Vec<String> {
    let sections = ["## Configuration", "## Running a mirror", "## Trust service (TUF 1.0)"];
    let readme = include_str!("../../../README.md");
    let mut blocks = vec![String::new(); sections.len()];
    let mut section = None;
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") {
            section = sections.iter().position(|s| *s == line);
        }
        if line.trim() == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            if let Some(i) = section.take() {
                blocks[i] = block.join("\n");
            }
        }
    }
    for (block, section) in blocks.iter().zip(sections) {
        assert!(!block.is_empty(), "README's {section} has no toml block");
    }
    blocks
}

/// The README's configuration block names every key, parses, and validates into `Settings` (less the entries that
/// name files this test does not have).
#[test]
fn the_readme_configuration_block_is_complete_and_valid() {
    let all = readme_blocks();
    let block = all[0].clone();
    // Keys shown commented out (`# key_encryption_key_file = ...`, one of two that exclude each other) count too.
    let is_key =
        |l: &&str| l.split_once(" = ").is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    let uncommented: Vec<&str> = block.lines().map(|l| l.strip_prefix("# ").filter(is_key).unwrap_or(l)).collect();
    let uncommented = uncommented.join("\n");
    config(&uncommented, &[]).unwrap_or_else(|e| panic!("the block, uncommented, does not parse: {e:#?}"));
    let table: toml::Table = toml::from_str(&uncommented).unwrap();
    for key in schema::keys::<Config>() {
        let present = match key.section {
            None => table.contains_key(key.name),
            Some(section) => match &table[section] {
                toml::Value::Table(t) => t.contains_key(key.name),
                toml::Value::Array(a) => a.iter().any(|t| t.get(key.name).is_some()),
                _ => false,
            },
        };
        assert!(present, "README's configuration block misses {}", key.path());
    }
    for text in &all {
        config(text, &[]).unwrap_or_else(|e| panic!("a README toml block does not parse ({e:#?}):\n{text}"));
    }
    let mut table: toml::Table = toml::from_str(&block).unwrap();
    table["auth"].as_table_mut().unwrap().remove("trusted_issuers");
    table.remove("mirror");
    let text = toml::to_string(&table).unwrap();
    config(&text, &[]).unwrap().settings(Overrides::default()).unwrap();
}

/// Each key's doc comment names its variable.
#[test]
fn every_variable_is_documented_beside_its_key() {
    let sources = [
        include_str!("mod.rs"),
        include_str!("auth.rs"),
        include_str!("gc.rs"),
        include_str!("check.rs"),
        include_str!("notify.rs"),
        include_str!("metrics.rs"),
        include_str!("ratelimit.rs"),
        include_str!("audit.rs"),
        include_str!("ui.rs"),
    ]
    .concat();
    for key in schema::keys::<Config>() {
        if key.kind == Kind::Table {
            continue;
        }
        let named = if key.settable() { format!("`{}`", key.variable()) } else { "no variable".to_owned() };
        let field = format!("pub {}:", key.name);
        let at = sources
            .lines()
            .collect::<Vec<_>>()
            .windows(8)
            .any(|w| w.last().is_some_and(|l| l.trim_start().starts_with(&field)) && w.concat().contains(&named));
        assert!(at, "{}: the doc comment above `{field}` should say {named}", key.path());
    }
}

/// `wharf config check` prints the effective settings in the file's form: read back, they give the same settings;
/// masked, no secret is left.
#[test]
fn the_effective_configuration_reads_back_and_masks_secrets() {
    use super::effective::{render, text, Secrets, MASK};
    let file = "[storage]\nurl = \"s3://bucket/p\"\nsecret_access_key = \"S3SECRET\"\n\
                [database]\nurl = \"postgres://u:DBPASS@db/w\"\n[trust]\nkey_encryption_key = \"KEKSECRET\"\n\
                [auth]\nenabled = true\nthrottle_base_ms = 250\n\
                [[mirror]]\nupstream = \"https://r.example\"\nprefix = \"x\"\nusername = \"u\"\npassword = \"MIRRORPASS\"\n\
                [[retention]]\nrepositories = \"**\"\nolder_than = \"30d\"\n";
    let none = Vars::new();
    let table = Config::table(file, Path::new("t.toml"), &none).unwrap();
    let settings = Config::from_table(table.clone(), &none).unwrap().settings(Overrides::default()).unwrap();
    let shown = render(&settings, &table, Secrets::Show);
    let again = config(&toml::to_string(&shown).unwrap(), &[]).unwrap().settings(Overrides::default()).unwrap();
    assert_eq!(render(&again, &shown, Secrets::Show), shown);
    assert_eq!(format!("{:?}", again.auth), format!("{:?}", settings.auth));
    let masked = text(&render(&settings, &table, Secrets::Mask), "t.toml", true).unwrap();
    for secret in ["S3SECRET", "DBPASS", "KEKSECRET", "MIRRORPASS"] {
        assert!(!masked.contains(secret), "{secret} in\n{masked}");
    }
    assert!(masked.contains(&format!("postgres://u:{MASK}@db/w")), "{masked}");
    assert!(masked.contains("throttle_base_ms = \"250ms\""), "{masked}");
}

/// `[[policy]]`: rules in order, refused when a rule names no repositories, a pattern is not one, a key is
/// unknown or a requirement is not one of the language's.
#[test]
fn policy_rules_are_read_in_order_and_bad_ones_refused() {
    let open = |text: &str| config(text, &[]).and_then(|c| c.settings(Overrides::default()));
    let s = open(
        "[[policy]]\nrepositories = [\"team/*\"]\nrequire = { tuf = { roles = [\"targets\"] } }\nimmutable_tags = true\n\
         [[policy]]\nname = \"rest\"\nrepositories = [\"**\"]\nrequire = \"accept\"\n",
    )
    .unwrap();
    assert_eq!(s.policy.len(), 2);
    assert!(s.policy[0].immutable_tags && !s.policy[0].by_digest);
    assert_eq!(s.policy[1].display_name(), "rest");
    let rows = [
        ("no repositories", "[[policy]]\nrepositories = []\nrequire = \"accept\"\n", "names no repositories"),
        ("a bad pattern", "[[policy]]\nrepositories = [\"team/[ab]\"]\nrequire = \"accept\"\n", "team/[ab]"),
        ("an unknown key", "[[policy]]\nrepositories = [\"a\"]\nrequire = \"accept\"\nby_tag = true\n", "by_tag"),
        ("an unknown requirement", "[[policy]]\nrepositories = [\"a\"]\nrequire = \"maybe\"\n", "maybe"),
    ];
    for (case, text, needle) in rows {
        let err = open(text).unwrap_err();
        let chain = format!("{err} {:?}", std::error::Error::source(&err).map(|s| s.to_string()));
        assert!(chain.contains(needle), "{case}: {chain}");
    }
}

/// Shared rate-limit buckets live in a PostgreSQL database; on SQLite the setting is refused, not ignored.
#[test]
fn shared_rate_limits_need_postgres() {
    let err = config("[rate_limit]\nshared = true\n", &[]).unwrap().settings(Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("rate_limit.shared"), "{err}");
    let pg = "[database]\nurl = \"postgres://u@localhost/db\"\n[trust]\nkey_encryption_key = \"k\"\n\
              [rate_limit]\nshared = true\n";
    assert!(config(pg, &[]).unwrap().settings(Overrides::default()).unwrap().ops.rate_limit.shared);
}
