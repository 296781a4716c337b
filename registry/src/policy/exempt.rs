//! What a protected namespace serves without a verdict: signatures, so that verifiers can find them.
//!
//! Exemption is decided on the manifest's content, never on a name or a field alone, because both are the pusher's
//! choice: a tag named `sha256-<hex>.sig` or an image with a `subject` and a signature `artifactType` could
//! otherwise carry a runnable image past the rule. A manifest is a signature only if it is an image manifest (never
//! an index, whose children would be fetched by digest) with at least one layer and every layer of a signature
//! payload type: nothing in it is a filesystem layer an engine could unpack and run.

use wharf_format::{ParsedManifest, Tag};

/// Layer media types that hold signatures or attestations, never a filesystem.
const SIGNATURE_LAYERS: &[&str] = &[
    wharf_format::sigstore::SIMPLE_SIGNING_MEDIA_TYPE,
    wharf_format::sigstore::BUNDLE_MEDIA_TYPE,
    wharf_format::notation::JWS_MEDIA_TYPE,
    wharf_format::notation::COSE_MEDIA_TYPE,
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
];

/// Artifact types of signature referrers (OCI 1.1 `artifactType`, or the config's media type without one).
const SIGNATURE_ARTIFACTS: &[&str] = &[
    wharf_format::sigstore::BUNDLE_MEDIA_TYPE,
    wharf_format::notation::ARTIFACT_TYPE,
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dsse.envelope.v1+json",
];

/// The largest layer a signature manifest may declare. Signatures, bundles and envelopes are kilobytes; the bound
/// keeps a filesystem from riding under a signature media type to an engine that does not check layer types.
const MAX_SIGNATURE_LAYER: u64 = 1 << 20;

/// Whether `m` can only be a signature: an OCI image manifest (never Docker's schema 2, which classic engines
/// unpack whatever its layers claim to be) whose layers are all small signature payloads.
pub fn is_signature_shaped(m: &ParsedManifest) -> bool {
    m.media_type.as_str() == wharf_format::media_type::OCI_MANIFEST
        && m.manifests.is_empty()
        && !m.layers.is_empty()
        && m.layers.iter().all(|l| SIGNATURE_LAYERS.contains(&l.media_type.as_str()) && l.size <= MAX_SIGNATURE_LAYER)
}

/// Whether `tag` is one of cosign's tags for the signatures or attestations of a digest (`sha256-<hex>.sig`,
/// `.att`).
pub fn is_cosign_tag(tag: &Tag) -> bool {
    let t = tag.as_str();
    let Some(rest) = t.strip_prefix("sha256-") else { return false };
    let Some((hex, suffix)) = rest.split_once('.') else { return false };
    matches!(suffix, "sig" | "att") && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A read or push by `tag` of `m` that the rule does not judge: a cosign signature tag holding a signature.
pub fn exempt_by_tag(tag: &Tag, m: &ParsedManifest) -> bool {
    is_cosign_tag(tag) && is_signature_shaped(m)
}

/// A read by digest of `m` that the rule does not judge: an OCI 1.1 signature referrer (a `subject`, a signature
/// artifact type, and signature layers only).
pub fn exempt_by_digest(m: &ParsedManifest) -> bool {
    m.subject.is_some()
        && m.artifact_type.as_ref().is_some_and(|t| SIGNATURE_ARTIFACTS.contains(&t.as_str()))
        && is_signature_shaped(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const SIG: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
    const NOTATION: &str = "application/vnd.cncf.notary.signature";
    const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

    fn manifest(artifact: Option<&str>, layers: &[&str], subject: bool) -> ParsedManifest {
        let desc = |mt: &str| json!({"mediaType": mt, "digest": D, "size": 1});
        let mut v = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json"),
            "layers": layers.iter().map(|l| desc(l)).collect::<Vec<_>>(),
        });
        if let Some(a) = artifact {
            v["artifactType"] = a.into();
        }
        if subject {
            v["subject"] = desc("application/vnd.oci.image.manifest.v1+json");
        }
        ParsedManifest::parse_inferred(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn index(artifact: &str) -> ParsedManifest {
        let desc = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 1});
        let v = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "artifactType": artifact, "manifests": [desc.clone()], "subject": desc});
        ParsedManifest::parse_inferred(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn tag(t: &str) -> Tag {
        t.parse().unwrap()
    }

    /// One row per way to be, or to fake, a signature.
    #[test]
    fn exemptions() {
        let hex = "a".repeat(64);
        let sig_tag = tag(&format!("sha256-{hex}.sig"));
        let att_tag = tag(&format!("sha256-{hex}.att"));
        let rows: Vec<(&str, bool, bool)> = vec![
            // (case, exempt by tag, exempt by digest)
            ("cosign .sig with a simple-signing layer", exempt_by_tag(&sig_tag, &manifest(None, &[SIG], false)), true),
            ("cosign .att with a DSSE layer", exempt_by_tag(&att_tag, &manifest(None, &[DSSE], false)), true),
            ("a .sig tag over a runnable image", exempt_by_tag(&sig_tag, &manifest(None, &[LAYER], false)), false),
            (
                "a .sig tag over signature + filesystem layers",
                exempt_by_tag(&sig_tag, &manifest(None, &[SIG, LAYER], false)),
                false,
            ),
            ("a .sig tag over an index", exempt_by_tag(&sig_tag, &index(NOTATION)), false),
            ("a .sig tag with no layers", exempt_by_tag(&sig_tag, &manifest(None, &[], false)), false),
            ("a signature under an ordinary tag", exempt_by_tag(&tag("latest"), &manifest(None, &[SIG], false)), false),
            (
                "a near-miss tag",
                exempt_by_tag(&tag(&format!("sha256-{}.sig", "a".repeat(63))), &manifest(None, &[SIG], false)),
                false,
            ),
            ("a .sbom tag", exempt_by_tag(&tag(&format!("sha256-{hex}.sbom")), &manifest(None, &[SIG], false)), false),
            ("Notation referrer", exempt_by_digest(&manifest(Some(NOTATION), &["application/jose+json"], true)), true),
            (
                "sigstore bundle referrer",
                exempt_by_digest(&manifest(
                    Some(wharf_format::sigstore::BUNDLE_MEDIA_TYPE),
                    &[wharf_format::sigstore::BUNDLE_MEDIA_TYPE],
                    true,
                )),
                true,
            ),
            (
                "image with a subject and a signature artifact type",
                exempt_by_digest(&manifest(Some(NOTATION), &[LAYER], true)),
                false,
            ),
            (
                "signature layers but no subject",
                exempt_by_digest(&manifest(Some(NOTATION), &["application/jose+json"], false)),
                false,
            ),
            (
                "signature layers, other artifact type",
                exempt_by_digest(&manifest(Some("application/vnd.example"), &["application/jose+json"], true)),
                false,
            ),
            ("an index with a subject", exempt_by_digest(&index(NOTATION)), false),
        ];
        for (case, got, want) in rows {
            assert_eq!(got, want, "{case}");
        }
    }

    /// A filesystem labelled as a signature: under Docker's schema 2, or larger than any signature, it is judged.
    #[test]
    fn disguised_filesystems_are_not_signatures() {
        let hex = "a".repeat(64);
        let sig_tag = tag(&format!("sha256-{hex}.sig"));
        let layer = json!({"mediaType": SIG, "digest": D, "size": 1});
        let docker = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": D, "size": 1},
            "layers": [layer]});
        let docker = ParsedManifest::parse_inferred(&serde_json::to_vec(&docker).unwrap()).unwrap();
        assert!(!exempt_by_tag(&sig_tag, &docker), "Docker schema 2 is never a signature");
        let big = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 1},
            "layers": [{"mediaType": SIG, "digest": D, "size": (1u64 << 20) + 1}]});
        let big = ParsedManifest::parse_inferred(&serde_json::to_vec(&big).unwrap()).unwrap();
        assert!(!exempt_by_tag(&sig_tag, &big), "a layer over 1 MiB is not a signature");
        assert!(exempt_by_tag(&sig_tag, &manifest(None, &[SIG], false)));
    }
}
