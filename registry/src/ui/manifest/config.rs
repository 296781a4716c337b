//! An image's config as the manifest page shows it: read through the blob store (at most [`MAX_CONFIG`] bytes,
//! checked against its digest before a byte is parsed), then the few fields people look at.

use std::collections::BTreeMap;

use serde::Deserialize;
use wharf_format::{Descriptor, MediaType, RepositoryName};

use crate::error::ApiError;
pub use crate::ui::image::MAX_CONFIG;
use crate::ui::image::{read_config, Unread};
use crate::Registry;

/// The media types of image configs (OCI and Docker): others (an artifact's config) are not parsed.
const IMAGE_CONFIGS: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// Whether a config of `media_type` is an image's (the others are artifacts' configs).
pub fn is_image_config(media_type: &MediaType) -> bool {
    IMAGE_CONFIGS.contains(&media_type.as_str())
}

/// What became of reading the config.
pub enum Read {
    Parsed(Box<ImageConfig>),
    /// Not an image config, too large, absent (a mirror fetches configs when pulled), or not what its digest says:
    /// the sentence the page shows instead.
    Unavailable(String),
}

/// The fields of an image config the page shows (OCI image-spec `config.md`; Docker's is the same shape).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub created: Option<String>,
    pub author: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub variant: Option<String>,
    pub config: Option<RunConfig>,
    pub history: Option<Vec<History>>,
}

/// The `config` object: how a container of the image runs.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RunConfig {
    pub user: Option<String>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub stop_signal: Option<String>,
}

/// One `history` entry: how a layer (or an empty step) was made.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct History {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: Option<bool>,
}

impl ImageConfig {
    /// `os/architecture[/variant]`, when the config names them.
    pub fn platform(&self) -> Option<String> {
        let (os, arch) = (self.os.as_deref()?, self.architecture.as_deref()?);
        Some(match self.variant.as_deref() {
            Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
            _ => format!("{os}/{arch}"),
        })
    }

    /// The environment as `(name, value)` pairs, split at the first `=`.
    pub fn env(&self) -> Vec<(String, String)> {
        let vars = self.config.as_ref().and_then(|c| c.env.as_ref());
        vars.into_iter()
            .flatten()
            .map(|v| match v.split_once('=') {
                Some((k, val)) => (k.to_owned(), val.to_owned()),
                None => (v.clone(), String::new()),
            })
            .collect()
    }
}

/// Parses config bytes already checked against their digest.
pub fn parse(bytes: &[u8]) -> Result<ImageConfig, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("the config does not parse as an image config: {e}"))
}

/// Reads and parses `config`, the config descriptor of an image manifest in `repo`.
pub async fn read(st: &Registry, repo: &RepositoryName, config: &Descriptor) -> Result<Read, ApiError> {
    if !is_image_config(&config.media_type) {
        return Ok(Read::Unavailable(format!("The config is {}, not an image config.", config.media_type)));
    }
    let Some((size, location)) = st.meta.blobs().get(repo, &config.digest).await? else {
        return Ok(Read::Unavailable("The config is not stored in this registry (yet).".into()));
    };
    if size > MAX_CONFIG {
        return Ok(Read::Unavailable(format!("The config is {size} bytes, more than this page reads ({MAX_CONFIG}).")));
    }
    let bytes = match read_config(st, &config.digest, location.as_deref()).await {
        Ok(b) => b,
        Err(Unread::Unknown) => {
            return Ok(Read::Unavailable("The config is not stored in this registry (yet).".into()))
        }
        Err(Unread::TooLarge) => {
            return Ok(Read::Unavailable(format!("The config is more than this page reads ({MAX_CONFIG} bytes).")))
        }
        Err(Unread::Mismatch) => {
            tracing::error!(digest = %config.digest, %repo, "a stored config does not match its digest");
            return Ok(Read::Unavailable("The stored config does not match its digest: it is not shown.".into()));
        }
        Err(Unread::Store(e)) => return Err(e.into()),
    };
    Ok(match parse(&bytes) {
        Ok(c) => Read::Parsed(Box::new(c)),
        Err(why) => Read::Unavailable(why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_with_nulls_and_missing_fields() {
        let c = parse(
            br#"{"architecture":"arm64","os":"linux","variant":"v8","created":"2026-01-02T03:04:05Z",
                 "config":{"Env":["PATH=/usr/bin","EMPTY=","A=b=c","BARE"],"Entrypoint":["/app"],"Cmd":null,
                           "WorkingDir":"/srv","User":"1000","Labels":{"org.example":"x"}},
                 "history":[{"created_by":"COPY app /app"},{"created_by":"ENV A=b","empty_layer":true}]}"#,
        )
        .unwrap();
        assert_eq!(c.platform().as_deref(), Some("linux/arm64/v8"));
        let env = c.env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("PATH", "/usr/bin"), ("EMPTY", ""), ("A", "b=c"), ("BARE", "")]);
        let run = c.config.as_ref().unwrap();
        assert_eq!(run.entrypoint.as_deref(), Some(&["/app".to_string()][..]));
        assert!(run.cmd.is_none());
        assert_eq!(run.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.history.as_ref().unwrap()[1].empty_layer, Some(true));

        let bare = parse(br#"{"config":null,"history":null}"#).unwrap();
        assert!(bare.platform().is_none() && bare.env().is_empty());
        assert!(parse(b"[1,2]").unwrap_err().contains("does not parse"));
        assert!(parse(br#"{"config":{"Env":"PATH=/bin"}}"#).is_err(), "a wrong type is refused, not guessed");
    }
}
