//! Repository names, tags and references, per the OCI Distribution Spec grammar.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The longest repository name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// The longest tag accepted, in bytes.
pub const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name is empty")]
    Empty,
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("repository name component {0:?} does not match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*")]
    BadComponent(String),
    #[error("tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    BadTag,
    #[error("invalid digest: {0}")]
    // Not a `#[source]`: the digest error is part of this message, which the registry sends as is.
    Digest(DigestError),
}

impl From<DigestError> for NameError {
    fn from(e: DigestError) -> NameError {
        NameError::Digest(e)
    }
}

/// A repository name such as `library/busybox`: slash-separated lowercase components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator: ".", "_", "__" or one or more "-".
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

impl FromStr for RepositoryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if let Some(bad) = s.split('/').find(|c| !valid_component(c)) {
            return Err(NameError::BadComponent(bad.chars().take(64).collect()));
        }
        Ok(RepositoryName(s.to_owned()))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag such as `latest` or `v1.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let first_ok = b.first().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b.iter().skip(1).all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if first_ok && rest_ok && b.len() <= MAX_TAG_LEN {
            Ok(Tag(s.to_owned()))
        } else {
            Err(NameError::BadTag)
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = NameError;

    /// A reference containing ':' is a digest (tags cannot contain ':'); anything else is a tag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_name(input: &str, ok: bool) {
        assert_eq!(input.parse::<RepositoryName>().is_ok(), ok, "{input:?}");
    }

    #[test]
    fn repository_names() {
        for good in ["a", "library/busybox", "a.b_c__d---e/f0", "0/1/2", "my-org/sub.team/img_1"] {
            check_name(good, true);
        }
        for bad in [
            "", "Upper", "a/../b", "..", "/lead", "trail/", "a//b", "a___b", "-a", "a-", "a.", "_tuf", "a/_tuf/b",
            "a b", "a:b", "é",
        ] {
            check_name(bad, false);
        }
        check_name(&"a".repeat(255), true);
        assert_eq!("a".repeat(256).parse::<RepositoryName>(), Err(NameError::TooLong));
    }

    #[test]
    fn tags_and_references() {
        assert!("latest".parse::<Tag>().is_ok());
        assert!("_v1.2-rc".parse::<Tag>().is_ok());
        assert!(".hidden".parse::<Tag>().is_err());
        assert!("-x".parse::<Tag>().is_err());
        assert!("".parse::<Tag>().is_err());
        assert!("a".repeat(128).parse::<Tag>().is_ok());
        assert!("a".repeat(129).parse::<Tag>().is_err());
        let d = format!("sha256:{}", "b".repeat(64));
        assert!(matches!(d.parse::<Reference>(), Ok(Reference::Digest(_))));
        assert!(matches!("sha256:zz".parse::<Reference>(), Err(NameError::Digest(_))));
        assert!(matches!("v1".parse::<Reference>(), Ok(Reference::Tag(_))));
    }
}
