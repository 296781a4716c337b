//! Media types, validated against RFC 6838's restricted-name grammar.

use std::fmt;
use std::str::FromStr;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A media type such as `application/vnd.oci.image.manifest.v1+json`, without parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid media type {0:?}")]
pub struct MediaTypeError(String);

impl MediaType {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a `Content-Type` header value, dropping any `; param=...` part.
    pub fn from_header(value: &str) -> Result<MediaType, MediaTypeError> {
        value.split(';').next().unwrap_or("").trim().parse()
    }

    pub fn is_index(&self) -> bool {
        self.0 == OCI_INDEX || self.0 == DOCKER_MANIFEST_LIST
    }

    pub fn is_image_manifest(&self) -> bool {
        self.0 == OCI_MANIFEST || self.0 == DOCKER_MANIFEST
    }
}

/// `restricted-name` of RFC 6838: up to 127 characters, starting alphanumeric.
fn restricted_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
}

impl FromStr for MediaType {
    type Err = MediaTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((t, sub)) if restricted_name(t) && restricted_name(sub) => Ok(MediaType(s.to_ascii_lowercase())),
            _ => Err(MediaTypeError(s.chars().take(64).collect())),
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert!(OCI_MANIFEST.parse::<MediaType>().unwrap().is_image_manifest());
        assert!(MediaType::from_header("application/vnd.oci.image.index.v1+json; charset=utf-8").unwrap().is_index());
        for bad in ["", "text", "/x", "a/", "a/b c", "a/b/c"] {
            assert!(bad.parse::<MediaType>().is_err(), "{bad:?}");
        }
    }
}
