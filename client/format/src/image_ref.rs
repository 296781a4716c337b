//! Image references as users write them: `HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]`.

use std::fmt;
use std::str::FromStr;

use crate::name::{NameError, Reference, RepositoryName, Tag};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]` of the registry.
    pub host: String,
    pub repository: RepositoryName,
    pub reference: Reference,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("{0:?} names no registry host: write HOST[:PORT]/REPOSITORY[:TAG]")]
    NoHost(String),
    #[error("invalid image reference {input:?}")]
    Invalid { input: String, source: NameError },
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |source| ImageRefError::Invalid { input: s.to_string(), source };
        let (host, rest) = s.split_once('/').ok_or_else(|| ImageRefError::NoHost(s.into()))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(ImageRefError::NoHost(s.into()));
        }
        let (repo, reference) = if let Some((r, d)) = rest.split_once('@') {
            (r, Reference::Digest(d.parse().map_err(|e| invalid(NameError::Digest(e)))?))
        } else {
            match rest.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r, Reference::Tag(t.parse().map_err(invalid)?)),
                _ => (rest, Reference::Tag(Tag::from_str("latest").map_err(invalid)?)),
            }
        };
        Ok(ImageRef { host: host.into(), repository: repo.parse().map_err(invalid)?, reference })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "{}/{}:{}", self.host, self.repository, t),
            Reference::Digest(d) => write!(f, "{}/{}@{}", self.host, self.repository, d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let r: ImageRef = "127.0.0.1:5000/team/app:v1".parse().unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.reference.to_string().as_str()),
            ("127.0.0.1:5000", "team/app", "v1")
        );
        let r: ImageRef = "localhost/app".parse().unwrap();
        assert_eq!(r.reference.to_string(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r: ImageRef = format!("reg.example/app@{d}").parse().unwrap();
        assert_eq!(r.reference.to_string(), d);
        assert!(matches!("app:v1".parse::<ImageRef>(), Err(ImageRefError::NoHost(_))));
        assert!(matches!("team/app:v1".parse::<ImageRef>(), Err(ImageRefError::NoHost(_))));
        assert!(matches!("reg.example/App:v1".parse::<ImageRef>(), Err(ImageRefError::Invalid { .. })));
        assert_eq!("reg.example:5000/a/b:c".parse::<ImageRef>().unwrap().to_string(), "reg.example:5000/a/b:c");
    }
}
