//! The four top-level roles' metadata and delegated targets, as typed views of `signed`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{format_time, parse_time, KeyId, PublicKey, TufError};

/// The specification version Wharf writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// A top-level role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }
}

/// A role name: a top-level role, or a delegated role named `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` (so that it can
/// appear in a metadata file name without escaping).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleName {
    TopLevel(Role),
    Delegated(String),
}

impl RoleName {
    /// The four top-level roles as role names, for code that names one in a constant place (no parse, no
    /// `expect`).
    pub const ROOT: RoleName = RoleName::TopLevel(Role::Root);
    pub const TARGETS: RoleName = RoleName::TopLevel(Role::Targets);
    pub const SNAPSHOT: RoleName = RoleName::TopLevel(Role::Snapshot);
    pub const TIMESTAMP: RoleName = RoleName::TopLevel(Role::Timestamp);

    pub fn as_str(&self) -> &str {
        match self {
            RoleName::TopLevel(r) => r.as_str(),
            RoleName::Delegated(s) => s,
        }
    }
}

impl From<Role> for RoleName {
    fn from(role: Role) -> RoleName {
        RoleName::TopLevel(role)
    }
}

impl FromStr for RoleName {
    type Err = TufError;

    fn from_str(s: &str) -> Result<Self, TufError> {
        Ok(match s {
            "root" => RoleName::TopLevel(Role::Root),
            "targets" => RoleName::TopLevel(Role::Targets),
            "snapshot" => RoleName::TopLevel(Role::Snapshot),
            "timestamp" => RoleName::TopLevel(Role::Timestamp),
            _ => {
                let b = s.as_bytes();
                let ok = !b.is_empty()
                    && b.len() <= 64
                    && b[0].is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
                    && !s.ends_with(".json");
                if !ok {
                    return Err(TufError::UnknownRole(s.chars().take(80).collect()));
                }
                RoleName::Delegated(s.to_string())
            }
        })
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expiry as Unix seconds, written as `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expires(pub i64);

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(self.0))
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).map(Expires).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub version: u64,
    pub expires: Expires,
    pub keys: BTreeMap<KeyId, PublicKey>,
    pub roles: BTreeMap<String, RoleKeys>,
}

impl Root {
    /// The keys and threshold root gives a top-level role.
    pub fn role(&self, role: Role) -> Result<&RoleKeys, TufError> {
        self.roles.get(role.as_str()).ok_or_else(|| TufError::BadRole {
            role: "root".into(),
            reason: format!("does not define the {} role", role.as_str()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: Expires,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: Expires,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
    #[serde(default)]
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
}

/// Delegations: named roles with paths, or (TAP 15) `succinct_roles`, hash bins that share keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<KeyId, PublicKey>,
    #[serde(default)]
    pub roles: Vec<DelegatedRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
}

impl Delegations {
    /// The keys and threshold of the delegated role `name`, if this delegates to it.
    pub fn role_keys(&self, name: &str) -> Option<(&[KeyId], u32)> {
        if let Some(r) = self.roles.iter().find(|r| r.name == name) {
            return Some((&r.keyids, r.threshold));
        }
        let s = self.succinct_roles.as_ref().filter(|s| s.is_delegated_role(name))?;
        Some((&s.keyids, s.threshold))
    }

    /// The roles to search for `target`, in order, each with whether it is terminating (5.6.7.2). A succinct
    /// delegation names exactly one bin, which is terminating.
    pub fn roles_for_target(&self, target: &str) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = self
            .roles
            .iter()
            .filter(|r| super::path_delegated(r, target))
            .map(|r| (r.name.clone(), r.terminating))
            .collect();
        if let Some(s) = &self.succinct_roles {
            out.push((s.role_for_target(target), true));
        }
        out
    }
}

/// TAP 15 hash-bin delegation: `2^bit_length` roles named `<name_prefix>-<hex bin>`, sharing keys and threshold;
/// a target belongs to the bin its sha256's first `bit_length` bits select.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
    pub bit_length: u32,
    pub name_prefix: String,
}

impl SuccinctRoles {
    /// Whether the parameters are usable: `bit_length` in 1..=32.
    pub fn valid(&self) -> bool {
        (1..=32).contains(&self.bit_length)
    }

    fn suffix_len(&self) -> usize {
        let last = (1u64 << self.bit_length.clamp(1, 32)) - 1;
        format!("{last:x}").len()
    }

    /// The bin role responsible for `target`.
    pub fn role_for_target(&self, target: &str) -> String {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(target.as_bytes());
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let bin = u64::from(first) >> (32 - self.bit_length.clamp(1, 32));
        format!("{}-{:0width$x}", self.name_prefix, bin, width = self.suffix_len())
    }

    /// Whether `name` is one of the bins.
    pub fn is_delegated_role(&self, name: &str) -> bool {
        let Some(suffix) = name.strip_prefix(&self.name_prefix).and_then(|s| s.strip_prefix('-')) else {
            return false;
        };
        self.valid()
            && suffix.len() == self.suffix_len()
            && suffix.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < (1u64 << self.bit_length))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: Expires,
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
}

impl Targets {
    pub fn delegated_role(&self, name: &str) -> Option<&DelegatedRole> {
        self.delegations.as_ref()?.roles.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::SuccinctRoles;

    #[test]
    fn succinct_bins_match_python_tuf() {
        let s = SuccinctRoles { keyids: vec![], threshold: 1, bit_length: 8, name_prefix: "bin".into() };
        // python-tuf's SuccinctRoles(bit_length=8, name_prefix="bin").get_role_for_target("bins/app.tar").
        assert_eq!(s.role_for_target("bins/app.tar"), "bin-28");
        assert!(s.is_delegated_role("bin-00") && s.is_delegated_role("bin-ff"));
        assert!(!s.is_delegated_role("bin-100") && !s.is_delegated_role("bin-0") && !s.is_delegated_role("bn-01"));
        let wide = SuccinctRoles { bit_length: 10, ..s.clone() };
        assert!(wide.is_delegated_role("bin-3ff") && !wide.is_delegated_role("bin-400"));
        let bad = SuccinctRoles { bit_length: 33, ..s };
        assert!(!bad.valid());
    }
}
