use super::*;

#[test]
fn layering() {
    let mut c: Config = toml::from_str(
        "addr = \"127.0.0.1:6000\"\ndata_dir = \"/srv/w\"\n[limits]\nmax_blob_size = 10\n[log]\nformat = \"json\"",
    )
    .unwrap();
    c.apply_env(|k| (k == "WHARF_MAX_BLOB_SIZE").then(|| "20".to_string())).unwrap();
    let s = c.settings(Overrides { addr: Some("127.0.0.1:7000".into()), ..Overrides::default() }).unwrap();
    assert_eq!(s.addr.port(), 7000);
    assert_eq!(s.upload.max_blob_size, 20);
    assert!(s.log_json);
    assert_eq!(s.storage_url.as_str(), "file:///srv/w/store/");
    assert_eq!(s.database_url, "sqlite:///srv/w/wharf.db");
}

#[test]
fn refusals() {
    assert!(toml::from_str::<Config>("bogus = 1").is_err());
    let mut c = Config::default();
    assert!(c.apply_env(|k| (k == "WHARF_MAX_BLOB_SIZE").then(|| "big".to_string())).is_err());
    let c = Config { addr: Some("nope".into()), ..Config::default() };
    assert!(c.settings(Overrides::default()).is_err());
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
