//! The effective configuration (the file, then `WHARF_*` variables, then defaults) as TOML, with secrets masked:
//! what `wharf config check` prints, in the file's own form, so it can be read back.

use toml::{Table, Value};

use super::{KekSource, Secs, Settings};

/// What a masked secret reads as.
pub const MASK: &str = "********";

/// Whether secrets are printed or masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Mask,
    /// For tests that read the output back.
    Show,
}

/// `settings` as a TOML document. `written` is the table the settings came from (the file with the variables
/// applied): the `[insecure]` switches and the arrays of tables (`[[retention]]`, `[[mirror]]`, `[[policy]]`,
/// `[[auth.trusted_issuers]]`) are printed as written, since validation keeps them in another form. Keys that do
/// not apply (the blob cache without S3, the redirect's expiry without the redirect, `[auth]` keys with access
/// control off) are left out.
pub fn render(settings: &Settings, written: &Table, secrets: Secrets) -> Table {
    let mut t = Table::new();
    t.insert("addr".into(), settings.addr.to_string().into());
    t.insert("data_dir".into(), settings.data_dir.display().to_string().into());
    t.insert("storage".into(), storage(settings, secrets).into());
    t.insert("database".into(), section([("url", url(&settings.database_url, secrets).into())]).into());
    t.insert("limits".into(), limits(settings).into());
    let format = if settings.log_json { "json" } else { "text" };
    t.insert("log".into(), section([("format", format.into()), ("level", settings.log_level.clone().into())]).into());
    t.insert("trust".into(), trust(settings, secrets).into());
    if let Some((cert, key)) = &settings.tls {
        let paths = [("cert", cert.display().to_string().into()), ("key", key.display().to_string().into())];
        t.insert("tls".into(), section(paths).into());
    }
    t.insert("auth".into(), auth(settings, written).into());
    t.insert("insecure".into(), insecure(written).into());
    t.insert("gc".into(), gc(settings).into());
    t.insert("check".into(), check(settings).into());
    for array in ["retention", "mirror", "policy"] {
        if let Some(v) = written.get(array) {
            t.insert(array.into(), v.clone());
        }
    }
    if secrets == Secrets::Mask {
        mask_mirrors(&mut t);
    }
    t
}

/// The rendered table as text, with a header saying what it is.
pub fn text(table: &Table, source: &str, admin_password: bool) -> Result<String, toml::ser::Error> {
    let mut out = format!(
        "# The effective configuration: {source}, then WHARF_* variables, then defaults. Secrets are masked.\n"
    );
    if admin_password {
        out.push_str("# WHARF_ADMIN_PASSWORD is set (the first administrator's password).\n");
    }
    out.push_str(&toml::to_string(table)?);
    Ok(out)
}

fn section<const N: usize>(pairs: [(&str, Value); N]) -> Table {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn duration(d: std::time::Duration) -> Value {
    Secs::from_std(d).to_string().into()
}

fn secs(n: i64) -> Value {
    duration(std::time::Duration::from_secs(n.unsigned_abs()))
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn secret(s: &str, secrets: Secrets) -> Value {
    match secrets {
        Secrets::Mask => MASK.into(),
        Secrets::Show => s.into(),
    }
}

/// A URL with its password (if any) masked.
fn url(text: &str, secrets: Secrets) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if secrets == Secrets::Mask && u.password().is_some() => match u.set_password(Some(MASK)) {
            Ok(()) => u.to_string(),
            Err(()) => MASK.to_owned(),
        },
        _ => text.to_owned(),
    }
}

fn storage(s: &Settings, secrets: Secrets) -> Table {
    let mut t = section([
        ("url", url(s.storage_url.as_str(), secrets).into()),
        ("path_style", s.s3.path_style.into()),
        ("redirect", s.redirect.is_some().into()),
    ]);
    let optional = [("endpoint", &s.s3.endpoint), ("region", &s.s3.region), ("access_key_id", &s.s3.access_key_id)];
    for (k, v) in optional {
        if let Some(v) = v {
            t.insert(k.into(), v.clone().into());
        }
    }
    if let Some(k) = &s.s3.secret_access_key {
        t.insert("secret_access_key".into(), secret(k, secrets));
    }
    if let Some(expiry) = s.redirect {
        t.insert("redirect_expiry_secs".into(), duration(expiry));
    }
    if s.storage_url.scheme() == "s3" {
        let retry = s.s3.retry_timeout.unwrap_or(wharf_storage::remote::S3_RETRY_TIMEOUT);
        t.insert("retry_timeout_secs".into(), duration(retry));
        let stall = s.s3.stall_timeout.unwrap_or(wharf_storage::remote::S3_STALL_TIMEOUT);
        t.insert("stall_timeout_secs".into(), duration(stall));
    }
    if let Some((dir, max)) = &s.blob_cache {
        t.insert("cache_dir".into(), dir.display().to_string().into());
        t.insert("cache_max_bytes".into(), int(*max));
    } else if s.storage_url.scheme() == "s3" {
        t.insert("cache_max_bytes".into(), int(0));
    }
    t
}

fn limits(s: &Settings) -> Table {
    section([
        ("max_blob_size", int(s.upload.max_blob_size)),
        ("max_manifest_size", int(s.limits.max_manifest_size as u64)),
        ("upload_idle_timeout_secs", secs(s.upload.idle_timeout_secs)),
    ])
}

fn trust(s: &Settings, secrets: Secrets) -> Table {
    let t = &s.trust;
    let mut out = section([
        ("timestamp_lifetime_secs", secs(t.timestamp_lifetime)),
        ("snapshot_lifetime_secs", secs(t.snapshot_lifetime)),
        ("max_metadata_size", int(t.max_metadata_size as u64)),
        ("renew_check_secs", duration(std::time::Duration::from_secs(t.renew_check_secs))),
        ("notary_timestamp_lifetime_secs", secs(t.notary_timestamp_lifetime)),
    ]);
    match &s.kek {
        KekSource::Secret(k) => out.insert("key_encryption_key".into(), secret(k, secrets)),
        KekSource::File(f) => out.insert("key_encryption_key_file".into(), f.display().to_string().into()),
        KekSource::DataDir => None,
    };
    out
}

fn auth(s: &Settings, written: &Table) -> Table {
    let Some(a) = &s.auth else { return section([("enabled", false.into())]) };
    let mut t = section([
        ("enabled", true.into()),
        ("service", a.service.clone().into()),
        ("issuer", a.issuer.clone().into()),
        ("token_lifetime_secs", secs(a.token_lifetime_secs)),
        ("refresh_lifetime_secs", secs(a.refresh_lifetime_secs)),
        ("throttle_after", int(a.throttle_after.into())),
        ("throttle_address_after", int(a.throttle_address_after.into())),
        ("throttle_base_ms", duration(a.throttle_base)),
        ("throttle_max_secs", duration(a.throttle_max)),
        ("verify_per_account", int(a.verify_per_account.into())),
        ("verify_per_address", int(a.verify_per_address.into())),
        ("verify_max", int(a.verify_max.into())),
        ("trusted_proxies", Value::Array(a.trusted_proxies.iter().map(|p| p.to_string().into()).collect())),
    ]);
    if let Some(realm) = &a.realm {
        t.insert("realm".into(), realm.clone().into());
    }
    if let Some(issuers) = written.get("auth").and_then(|a| a.get("trusted_issuers")) {
        t.insert("trusted_issuers".into(), issuers.clone());
    }
    t
}

fn insecure(written: &Table) -> Table {
    let flag = |k: &str| written.get("insecure").and_then(|i| i.get(k)).and_then(Value::as_bool).unwrap_or(false);
    section([
        ("listen_without_tls", flag("listen_without_tls").into()),
        ("listen_without_auth", flag("listen_without_auth").into()),
    ])
}

fn gc(s: &Settings) -> Table {
    let g = &s.gc;
    section([
        ("interval_secs", duration(g.interval.unwrap_or_default())),
        ("grace_secs", secs(g.grace_secs)),
        ("reconcile_every_secs", duration(g.reconcile_every.unwrap_or_default())),
        ("orphan_age_secs", secs(g.orphan_age_secs)),
        ("reconcile_rate", int(g.reconcile_rate.into())),
        ("delete_rate", int(g.delete_rate.into())),
    ])
}

fn check(s: &Settings) -> Table {
    let c = &s.check;
    let mut t = section([("interval", duration(c.interval.unwrap_or_default())), ("repair", c.repair.into())]);
    // No rate: unlimited, which no value says.
    if let Some(r) = c.rate {
        t.insert("rate".into(), int(r));
    }
    t
}

fn mask_mirrors(t: &mut Table) {
    let Some(Value::Array(mirrors)) = t.get_mut("mirror") else { return };
    for m in mirrors.iter_mut().filter_map(Value::as_table_mut) {
        if let Some(p) = m.get_mut("password") {
            *p = MASK.into();
        }
    }
}
