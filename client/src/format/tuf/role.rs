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
    pub fn as_str(&self) -> &str {
        match self {
            RoleName::TopLevel(r) => r.as_str(),
            RoleName::Delegated(s) => s,
        }
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<KeyId, PublicKey>,
    pub roles: Vec<DelegatedRole>,
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
