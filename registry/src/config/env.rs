//! `WHARF_*` variables: one for every key, named from its TOML path (`limits.max_blob_size` is
//! `WHARF_LIMITS_MAX_BLOB_SIZE`, `auth.enabled` is `WHARF_AUTH_ENABLED`), applied to the file's table before it is
//! read into [`Config`].
//!
//! The names older releases used stay as aliases ([`ALIASES`]). A variable that names a section (`WHARF_AUTH_…`,
//! `WHARF_GC_…`) but no key of it is refused, so a misspelt `WHARF_AUTH_ENABLD` cannot leave access control off
//! unnoticed. Other `WHARF_*` variables (the client's `WHARF_STORE`, `WHARF_CONFIG_DIR` and passphrases, `WHARF_LOG`
//! as the client's filter, `WHARF_BIN` and `WHARF_TEST_*` of the tests) are not configuration and are left alone.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::schema::{Key, Kind};
use super::{Config, ConfigError};

/// The variables of older releases, each beside the key's own variable that it stands for.
pub const ALIASES: &[(&str, &str)] = &[
    ("WHARF_AUTH", "WHARF_AUTH_ENABLED"),
    ("WHARF_LOG", "WHARF_LOG_LEVEL"),
    ("WHARF_MAX_BLOB_SIZE", "WHARF_LIMITS_MAX_BLOB_SIZE"),
    ("WHARF_MAX_MANIFEST_SIZE", "WHARF_LIMITS_MAX_MANIFEST_SIZE"),
    ("WHARF_UPLOAD_IDLE_TIMEOUT_SECS", "WHARF_LIMITS_UPLOAD_IDLE_TIMEOUT_SECS"),
];

/// Variables that set something no file may hold: the first administrator's password.
pub const ENV_ONLY: &[&str] = &["WHARF_ADMIN_PASSWORD"];

/// The `WHARF_*` variables of a process (or of a test), by name.
pub type Vars = BTreeMap<String, String>;

/// Every key a variable can set, with its variable.
pub fn settable() -> Vec<(Key, String)> {
    super::schema::keys::<Config>().into_iter().filter(Key::settable).map(|k| (k, k.variable())).collect()
}

/// Sets each key that a variable names in `table` (the file's, or an empty one). Refuses a variable naming a
/// section but no key, a value that is not of the key's kind, and a key set under two names with two values.
pub fn apply(table: &mut toml::Table, vars: &Vars) -> Result<(), ConfigError> {
    let keys = settable();
    refuse_unknown(&keys, vars)?;
    for (key, variable) in &keys {
        if let Some((name, text)) = lookup(variable, vars)? {
            set(table, key, value(key, name, text)?);
            // Read the table now, so that a value the key refuses (a number out of range, a bad duration) is
            // blamed on this variable.
            Config::deserialize(toml::Value::Table(table.clone()))
                .map_err(|source| ConfigError::VariableValue { name: name.to_owned(), source: Box::new(source) })?;
        }
    }
    Ok(())
}

/// The value of `variable` or of its alias, and the name it was found under.
fn lookup<'a>(variable: &str, vars: &'a Vars) -> Result<Option<(&'a str, &'a str)>, ConfigError> {
    let alias = ALIASES.iter().find(|(_, key)| *key == variable).map(|(alias, _)| *alias);
    let own = vars.get_key_value(variable);
    let old = alias.and_then(|a| vars.get_key_value(a));
    match (own, old) {
        (Some((n, a)), Some((m, b))) if a != b => Err(ConfigError::Variable {
            name: n.clone(),
            reason: format!("{m} (its older name) is also set, to another value: set one"),
        }),
        (Some((n, v)), _) | (None, Some((n, v))) => Ok(Some((n, v))),
        (None, None) => Ok(None),
    }
}

/// Refuses `WHARF_<SECTION>_…` variables that are no key's.
fn refuse_unknown(keys: &[(Key, String)], vars: &Vars) -> Result<(), ConfigError> {
    let sections: Vec<String> = super::schema::keys::<Config>()
        .iter()
        .filter(|k| k.kind == Kind::Table)
        .map(|k| format!("WHARF_{}_", k.name.to_ascii_uppercase()))
        .collect();
    for name in vars.keys() {
        let known = keys.iter().any(|(_, v)| v == name)
            || ALIASES.iter().any(|(a, _)| a == name)
            || ENV_ONLY.contains(&name.as_str());
        if !known && sections.iter().any(|s| name.starts_with(s.as_str())) {
            return Err(ConfigError::Variable {
                name: name.clone(),
                reason: "no such configuration key (`wharf config check` lists them all with their variables)".into(),
            });
        }
    }
    Ok(())
}

/// The TOML value a variable's text stands for, by the key's kind.
fn value(key: &Key, name: &str, text: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::Variable { name: name.to_owned(), reason: format!("{text:?} is not {what}") };
    Ok(match key.kind {
        Kind::Bool => toml::Value::Boolean(boolean(text).ok_or_else(|| bad("true or false"))?),
        Kind::Integer => toml::Value::Integer(text.trim().parse().map_err(|_| bad("a whole number"))?),
        Kind::Float => toml::Value::Float(text.trim().parse().map_err(|_| bad("a number"))?),
        Kind::Strings => {
            toml::Value::Array(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.into()).collect())
        }
        Kind::String | Kind::Any | Kind::Table | Kind::Tables => toml::Value::String(text.to_owned()),
    })
}

/// `1`, `true`, `yes`, `on`; `0`, `false`, `no`, `off` or empty.
pub fn boolean(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn set(table: &mut toml::Table, key: &Key, value: toml::Value) {
    let table = match key.section {
        None => table,
        Some(section) => {
            let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            // A section the file gave as a scalar was refused when the file was read alone.
            let Some(t) = entry.as_table_mut() else { return };
            t
        }
    };
    table.insert(key.name.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn applied(pairs: &[(&str, &str)]) -> Result<toml::Table, String> {
        let mut t = toml::Table::new();
        apply(&mut t, &vars(pairs)).map_err(|e| e.to_string())?;
        Ok(t)
    }

    #[test]
    fn names_come_from_paths() {
        let names: Vec<String> = settable().into_iter().map(|(_, v)| v).collect();
        for v in ["WHARF_ADDR", "WHARF_LIMITS_MAX_BLOB_SIZE", "WHARF_AUTH_ENABLED", "WHARF_GC_RECONCILE_RATE"] {
            assert!(names.iter().any(|n| n == v), "{v} in {names:?}");
        }
        for (alias, key) in ALIASES {
            assert!(names.iter().any(|n| n == key), "{alias} stands for {key}, which is no key's variable");
        }
        assert!(!names.iter().any(|n| n.starts_with("WHARF_MIRROR") || n.starts_with("WHARF_RETENTION")));
    }

    #[test]
    fn rows() {
        let t = applied(&[("WHARF_AUTH", "1"), ("WHARF_AUTH_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(t["auth"]["enabled"].as_bool(), Some(true));
        assert_eq!(t["auth"]["trusted_proxies"].as_array().map(Vec::len), Some(2));
        let t = applied(&[("WHARF_LIMITS_MAX_BLOB_SIZE", "20"), ("WHARF_GC_GRACE_SECS", "2h")]).unwrap();
        assert_eq!(t["limits"]["max_blob_size"].as_integer(), Some(20));
        assert_eq!(t["gc"]["grace_secs"].as_str(), Some("2h"));
        assert!(applied(&[("WHARF_AUTH", "1"), ("WHARF_AUTH_ENABLED", "1")]).is_ok(), "same value twice");
        let refusals = [
            (&[("WHARF_AUTH_ENABLD", "1")][..], "no such configuration key"),
            (&[("WHARF_AUTH", "1"), ("WHARF_AUTH_ENABLED", "0")], "older name"),
            (&[("WHARF_MAX_BLOB_SIZE", "big")], "whole number"),
            (&[("WHARF_STORAGE_REDIRECT", "maybe")], "true or false"),
        ];
        for (pairs, want) in refusals {
            let err = applied(pairs).unwrap_err();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
        let others = [("WHARF_BIN", "x"), ("WHARF_TEST_TOOLS", "x"), ("WHARF_STORE", "x"), ("WHARF_CONFIG_DIR", "x")];
        assert_eq!(applied(&others).unwrap(), toml::Table::new(), "not configuration");
        assert!(applied(&[("WHARF_ADMIN_PASSWORD", "x"), ("WHARF_LOG", "debug")]).is_ok());
    }
}
