//! Keyed cosign signatures, made and pushed as cosign does, so that admission tools (cosign, Kyverno, sigstore's
//! policy-controller) verify Wharf-signed images: a simple-signing payload naming the manifest digest, signed
//! with a local key, stored as a layer (`application/vnd.dev.cosign.simplesigning.v1+json`, the signature in its
//! `dev.cosignproject.cosign/signature` annotation) of the manifest tagged `sha256-<hex>.sig` in the same
//! repository.
//!
//! cosign keeps every signature of a digest as one layer of that manifest, so signing appends: the existing
//! manifest's layers (whatever made them, their annotations kept byte for byte) come first, and a layer that is
//! already there (same payload, same signature) is not added twice. As with cosign, two signers appending at the
//! same moment can lose one of the two layers (the registry has no compare-and-swap on tags).

mod key;

pub use key::{KeyError, Pem, SigstoreKey};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::io::transport::{Transport, TransportError};
use wharf_format::digest::Digest;
use wharf_format::name::RepositoryName;
use wharf_format::sigstore::{signature_tag, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The largest `.sig` manifest read back before appending to it.
const MAX_SIG_MANIFEST: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{what}: the registry answered {status}: {body}")]
    Refused { what: String, status: u16, body: String },
    #[error("the existing signature manifest {tag} is not an OCI image manifest")]
    Existing {
        tag: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("encoding {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl CosignError {
    /// The class of this failure (for the exit code).
    pub fn failure(&self) -> crate::io::source::Failure {
        use crate::io::source::Failure;
        match self {
            CosignError::Transport(e) => e.failure(),
            CosignError::Refused { status: 401 | 403, .. } => Failure::Denied,
            CosignError::Refused { .. } | CosignError::Existing { .. } | CosignError::Encode { .. } => Failure::Other,
        }
    }
}

/// cosign's simple-signing payload for `digest`, pushed as `docker_reference` (`HOST/REPOSITORY`), with its keys in
/// cosign's order.
pub fn payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest.to_string() },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    // Serializing a `Value` built from literals cannot fail.
    v.to_string().into_bytes()
}

/// What [`attach`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The `.sig` tag written (or found already holding this signature).
    pub tag: String,
    /// The digest of the `.sig` manifest now under the tag.
    pub manifest: Digest,
    /// How many signatures the manifest holds.
    pub signatures: usize,
    /// False when the same signature was there already (nothing was pushed).
    pub added: bool,
}

/// Signs `digest` with `key` and appends the signature to its `.sig` manifest in `repo` on `t`.
pub async fn attach(
    t: &Transport,
    repo: &RepositoryName,
    docker_reference: &str,
    digest: &Digest,
    key: &SigstoreKey,
) -> Result<Attached, CosignError> {
    let tag = signature_tag(digest);
    let body = payload(docker_reference, digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&body));
    let layer_digest = Digest::sha256_of(&body);
    let mut layers = existing_layers(t, repo, &tag).await?;
    let already = layers.iter().any(|l| {
        l["digest"].as_str() == Some(&layer_digest.to_string())
            && l["annotations"][SIGNATURE_ANNOTATION].as_str() == Some(signature.as_str())
    });
    if !already {
        upload_blob(t, repo, &body).await?;
        layers.push(json!({
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "size": body.len(),
            "digest": layer_digest.to_string(),
            "annotations": { SIGNATURE_ANNOTATION: signature },
        }));
    }
    let manifest = manifest_for(&layers)?;
    let manifest_digest = Digest::sha256_of(&manifest.bytes);
    if !already {
        upload_blob(t, repo, &manifest.config).await?;
        let url = t.url(&format!("/v2/{repo}/manifests/{tag}"));
        let resp =
            t.send(|| t.http().put(&url).header("content-type", OCI_MANIFEST).body(manifest.bytes.clone())).await?;
        refused(resp, &format!("signature manifest {tag}")).await?;
    }
    Ok(Attached { tag, manifest: manifest_digest, signatures: layers.len(), added: !already })
}

/// The layers of the `.sig` manifest under `tag`, or none when there is no such tag yet.
async fn existing_layers(t: &Transport, repo: &RepositoryName, tag: &str) -> Result<Vec<Value>, CosignError> {
    let path = format!("/v2/{repo}/manifests/{tag}");
    let resp = match t.get(&path, &[("accept", OCI_MANIFEST.to_string())]).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let bytes = t.read_bounded(resp, &t.url(&path), MAX_SIG_MANIFEST).await?;
    let bad = |source| CosignError::Existing { tag: tag.to_string(), source };
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(Some(e)))?;
    v["layers"].as_array().cloned().ok_or_else(|| bad(None))
}

struct SigManifest {
    bytes: Vec<u8>,
    config: Vec<u8>,
}

/// The `.sig` manifest over `layers`, with the config cosign writes (an empty image whose root filesystem is the
/// layers).
fn manifest_for(layers: &[Value]) -> Result<SigManifest, CosignError> {
    let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
    let history: Vec<Value> = layers.iter().map(|_| json!({ "created": "0001-01-01T00:00:00Z" })).collect();
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": history,
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    });
    let encode = |what, v: &Value| serde_json::to_vec(v).map_err(|source| CosignError::Encode { what, source });
    let config = encode("the signature config", &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "size": config.len(), "digest": Digest::sha256_of(&config).to_string() },
        "layers": layers,
    });
    Ok(SigManifest { bytes: encode("the signature manifest", &manifest)?, config })
}

/// Uploads `bytes` as a blob unless the repository has it.
async fn upload_blob(t: &Transport, repo: &RepositoryName, bytes: &[u8]) -> Result<(), CosignError> {
    let digest = Digest::sha256_of(bytes);
    let head = t.url(&format!("/v2/{repo}/blobs/{digest}"));
    if t.send(|| t.http().head(&head)).await?.status().is_success() {
        return Ok(());
    }
    let start = t.url(&format!("/v2/{repo}/blobs/uploads/"));
    let resp = t.send(|| t.http().post(&start)).await?;
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
    let status = resp.status().as_u16();
    if status != 202 {
        refused(resp, "starting an upload").await?;
    }
    let no_location = || CosignError::Refused { what: "starting an upload".into(), status, body: "no Location".into() };
    let loc = location.ok_or_else(no_location)?;
    let loc = if loc.starts_with("http") { loc } else { t.url(&loc) };
    let url = format!("{loc}{}digest={digest}", if loc.contains('?') { '&' } else { '?' });
    let body = bytes.to_vec();
    let resp =
        t.send(|| t.http().put(&url).header("content-type", "application/octet-stream").body(body.clone())).await?;
    refused(resp, &format!("blob {digest}")).await
}

async fn refused(resp: reqwest::Response, what: &str) -> Result<(), CosignError> {
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_else(|e| format!("(unreadable: {e})")).chars().take(300).collect();
    Err(CosignError::Refused { what: what.into(), status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_cosigns() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let p = String::from_utf8(payload("example.com/team/app", &d)).unwrap();
        let expected = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"example.com/team/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert_eq!(p, expected);
    }

    #[test]
    fn the_manifest_lists_every_layer_in_its_config() {
        let layers = vec![json!({"digest": "sha256:aa", "size": 1}), json!({"digest": "sha256:bb", "size": 2})];
        let m = manifest_for(&layers).unwrap();
        let config: Value = serde_json::from_slice(&m.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
        assert_eq!(config["history"].as_array().map(Vec::len), Some(2));
        let manifest: Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(manifest["config"]["digest"], Digest::sha256_of(&m.config).to_string());
        assert_eq!(manifest["layers"], json!(layers));
    }
}
