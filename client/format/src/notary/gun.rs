//! Names in Notary v1: the collection's Globally Unique Name and role names.

use std::fmt;
use std::str::FromStr;

use super::is_valid_role;
use crate::RepositoryName;

/// A collection's Globally Unique Name, as it appears after `/v2/` and as root certificates' common name:
/// usually `host[:port]/repository` (`127.0.0.1:5000/library/app`, `docker.io/library/alpine`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gun(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GUN")]
pub struct GunError;

impl FromStr for Gun {
    type Err = GunError;

    /// Printable ASCII without `*` or spaces, at most 255 bytes, `/`-separated segments that are neither empty nor
    /// `.` or `..`.
    fn from_str(s: &str) -> Result<Gun, GunError> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.bytes().all(|b| b.is_ascii_graphic() && b != b'*' && b != b'\\')
            && s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if ok {
            Ok(Gun(s.to_owned()))
        } else {
            Err(GunError)
        }
    }
}

impl Gun {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry repository the collection signs: the GUN without its host when the first segment names one
    /// (has a `.` or `:`, or is `localhost`), else the whole GUN; `None` if that is not a repository name.
    pub fn repository(&self) -> Option<RepositoryName> {
        let repo = match self.0.split_once('/') {
            Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
            _ => &self.0,
        };
        repo.parse().ok()
    }
}

impl fmt::Display for Gun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Notary role name: a base role or a delegation `targets/…` ([`is_valid_role`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(String);

impl FromStr for RoleName {
    type Err = GunError;

    fn from_str(s: &str) -> Result<RoleName, GunError> {
        if is_valid_role(s) {
            Ok(RoleName(s.to_owned()))
        } else {
            Err(GunError)
        }
    }
}

impl RoleName {
    /// The four base roles, for code that names one in a constant place (no parse, no `expect`).
    pub fn root() -> RoleName {
        RoleName("root".into())
    }

    pub fn targets() -> RoleName {
        RoleName("targets".into())
    }

    pub fn snapshot() -> RoleName {
        RoleName("snapshot".into())
    }

    pub fn timestamp() -> RoleName {
        RoleName("timestamp".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_targets(&self) -> bool {
        self.0 == "targets" || self.0.starts_with("targets/")
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guns() {
        let g: Gun = "127.0.0.1:5000/library/app".parse().unwrap();
        assert_eq!(g.repository().unwrap().as_str(), "library/app");
        let g: Gun = "docker.io/library/alpine".parse().unwrap();
        assert_eq!(g.repository().unwrap().as_str(), "library/alpine");
        assert_eq!("team/app".parse::<Gun>().unwrap().repository().unwrap().as_str(), "team/app");
        for bad in ["", "a/*", "a//b", "a/../b", "a b", "/a"] {
            assert!(bad.parse::<Gun>().is_err(), "{bad}");
        }
    }
}
