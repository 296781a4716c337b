//! Validation of image manifests and indexes (OCI and Docker schema 2) into the facts a registry needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media_type::MediaType;

/// A content descriptor: what a manifest says about content it references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: MediaType,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The body does not parse. Not a `#[source]`: the parser's words are part of this message, which the registry
    /// sends as is (as [`crate::name::NameError::Digest`] does).
    #[error("manifest is not valid JSON for its media type: {0}")]
    Json(serde_json::Error),
    /// It parses, but lacks (or has) a field its media type requires (or forbids).
    #[error("manifest is not valid JSON for its media type: {0}")]
    Malformed(String),
    #[error("manifest media type is missing: set Content-Type or the mediaType field")]
    MissingMediaType,
    #[error("manifest media type {0} is not supported")]
    UnsupportedMediaType(String),
    #[error("Content-Type {header} does not match the manifest's mediaType {body}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("unsupported schemaVersion {0} (expected 2)")]
    SchemaVersion(u64),
}

/// What a valid manifest or index references, with its effective media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    pub media_type: MediaType,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// `artifactType`, or for an image manifest without one, its config's media type (as the referrers API reports).
    pub artifact_type: Option<MediaType>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: u64,
    #[serde(default)]
    media_type: Option<MediaType>,
    #[serde(default)]
    artifact_type: Option<MediaType>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

impl ParsedManifest {
    /// Parses `body` sent with `content_type` (the request's `Content-Type`, if any).
    pub fn parse(body: &[u8], content_type: Option<&MediaType>) -> Result<ParsedManifest, ManifestError> {
        let raw: Raw = serde_json::from_slice(body).map_err(ManifestError::Json)?;
        if raw.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(raw.schema_version));
        }
        let media_type = match (content_type, raw.media_type) {
            (Some(h), Some(b)) if *h != b && is_manifest_type(h) => {
                return Err(ManifestError::MediaTypeMismatch { header: h.to_string(), body: b.to_string() })
            }
            (_, Some(b)) => b,
            (Some(h), None) => h.clone(),
            (None, None) => return Err(ManifestError::MissingMediaType),
        };
        let malformed = |what: &str| ManifestError::Malformed(format!("{what} for {media_type}"));
        if media_type.is_image_manifest() {
            let config = raw.config.ok_or_else(|| malformed("missing config"))?;
            let layers = raw.layers.ok_or_else(|| malformed("missing layers"))?;
            if raw.manifests.is_some() {
                return Err(malformed("unexpected manifests"));
            }
            let artifact_type = raw.artifact_type.or_else(|| Some(config.media_type.clone()));
            Ok(ParsedManifest {
                media_type,
                config: Some(config),
                layers,
                manifests: Vec::new(),
                subject: raw.subject,
                artifact_type,
                annotations: raw.annotations,
            })
        } else if media_type.is_index() {
            let manifests = raw.manifests.ok_or_else(|| malformed("missing manifests"))?;
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(malformed("unexpected config or layers"));
            }
            Ok(ParsedManifest {
                media_type,
                config: None,
                layers: Vec::new(),
                manifests,
                subject: raw.subject,
                artifact_type: raw.artifact_type,
                annotations: raw.annotations,
            })
        } else {
            Err(ManifestError::UnsupportedMediaType(media_type.to_string()))
        }
    }

    /// Parses a manifest whose media type may be given by neither header nor body (OCI allows omitting
    /// `mediaType`): an object with `manifests` is an OCI index, one with `config` an OCI image manifest.
    pub fn parse_inferred(body: &[u8]) -> Result<ParsedManifest, ManifestError> {
        match ParsedManifest::parse(body, None) {
            Err(ManifestError::MissingMediaType) => {
                let v: serde_json::Value = serde_json::from_slice(body).map_err(ManifestError::Json)?;
                let inferred = if v.get("manifests").is_some() {
                    crate::media_type::OCI_INDEX
                } else {
                    crate::media_type::OCI_MANIFEST
                };
                let mt: MediaType = inferred.parse().map_err(|_| ManifestError::MissingMediaType)?;
                ParsedManifest::parse(body, Some(&mt))
            }
            other => other,
        }
    }

    /// Blobs (config and layers) the registry must already hold for this manifest to be accepted.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }
}

fn is_manifest_type(m: &MediaType) -> bool {
    m.is_image_manifest() || m.is_index()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]{extra}}}"#,
            d('a'),
            d('b')
        )
    }

    fn check(body: &str, ct: Option<&str>) -> Result<ParsedManifest, ManifestError> {
        let ct = ct.map(|c| c.parse::<MediaType>().unwrap());
        ParsedManifest::parse(body.as_bytes(), ct.as_ref())
    }

    #[test]
    fn image_manifest() {
        let m = check(&image(""), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.blobs().count(), 2);
        assert_eq!(m.artifact_type.unwrap().as_str(), "application/vnd.oci.image.config.v1+json");
        let with_subject = image(&format!(
            r#","artifactType":"application/x.sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}}"#,
            d('c')
        ));
        let m = check(&with_subject, None).unwrap();
        assert_eq!(m.subject.unwrap().digest.to_string(), d('c'));
        assert_eq!(m.artifact_type.unwrap().as_str(), "application/x.sig");
    }

    #[test]
    fn refusals() {
        assert!(matches!(check("{", None), Err(ManifestError::Json(_))));
        assert!(matches!(check(&image(""), Some(DOCKER_MANIFEST)), Err(ManifestError::MediaTypeMismatch { .. })));
        assert!(matches!(check(r#"{"schemaVersion":1}"#, None), Err(ManifestError::SchemaVersion(1))));
        assert!(matches!(check(r#"{"schemaVersion":2}"#, None), Err(ManifestError::MissingMediaType)));
        assert!(matches!(
            check(r#"{"schemaVersion":2,"mediaType":"application/x-foo","layers":[]}"#, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let bad_digest = image("").replace(&d('b'), "sha256:xyz");
        assert!(matches!(check(&bad_digest, None), Err(ManifestError::Json(_))));
        let index_with_layers =
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"layers":[]}}"#);
        assert!(matches!(check(&index_with_layers, None), Err(ManifestError::Malformed(_))));
        let index = r#"{"schemaVersion":2,"manifests":[]}"#.to_string();
        assert_eq!(check(&index, Some(OCI_INDEX)).unwrap().manifests.len(), 0);
    }
}
