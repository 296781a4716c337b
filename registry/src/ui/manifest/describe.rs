//! Pure helpers of the manifest page: platforms, the names of known artifact types, and the pull commands (with the
//! host the browser reached, validated before it is put in a command people copy).

use axum::http::header;
use axum::http::request::Parts;
use wharf_format::{Digest, RepositoryName, Tag};

/// An index child's platform as `os/architecture[/variant]` (the `data-platform` attribute), from its descriptor's
/// `platform` object; `unknown` when it has none.
pub fn platform(p: Option<&serde_json::Value>) -> String {
    let field = |k: &str| p.and_then(|p| p.get(k)).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    match (field("os"), field("architecture"), field("variant")) {
        (Some(os), Some(arch), Some(v)) => format!("{os}/{arch}/{v}"),
        (Some(os), Some(arch), None) => format!("{os}/{arch}"),
        _ => "unknown".into(),
    }
}

/// What kind of referrer an artifact type is, for people: its name and its group (signature, SBOM, attestation).
pub fn artifact_kind(artifact_type: &str) -> (&'static str, &'static str) {
    const KNOWN: [(&str, &str, &str); 12] = [
        ("application/vnd.dev.cosign.artifact.sig.v1+json", "cosign signature", "signature"),
        ("application/vnd.dev.cosign.simplesigning.v1+json", "cosign signature", "signature"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "Sigstore bundle", "signature"),
        ("application/vnd.dev.sigstore.bundle+json", "Sigstore bundle", "signature"),
        ("application/vnd.cncf.notary.signature", "Notation signature", "signature"),
        ("application/spdx+json", "SPDX SBOM", "SBOM"),
        ("text/spdx", "SPDX SBOM", "SBOM"),
        ("application/vnd.cyclonedx+json", "CycloneDX SBOM", "SBOM"),
        ("application/vnd.cyclonedx+xml", "CycloneDX SBOM", "SBOM"),
        ("application/vnd.cyclonedx", "CycloneDX SBOM", "SBOM"),
        ("application/vnd.in-toto+json", "in-toto attestation", "attestation"),
        ("application/vnd.dsse.envelope.v1+json", "DSSE attestation", "attestation"),
    ];
    KNOWN
        .iter()
        .find(|(t, _, _)| *t == artifact_type)
        .map_or(("Other artifact", "other"), |(_, name, group)| (name, group))
}

/// The host the viewer reached this registry at (the `Host` header, or the authority of an HTTP/2 request), if it
/// has only the characters of a host and port (`[A-Za-z0-9.:-]`, and `[]` around IPv6): it goes into commands
/// people paste into a shell.
pub fn host(req: &Parts) -> Option<String> {
    let h = match req.headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        Some(h) => h.to_owned(),
        None => req.uri.authority()?.as_str().to_owned(),
    };
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        && !h.starts_with('-');
    ok.then_some(h)
}

/// One way to pull: a label (`by digest`, `by tag v1`) and the command of each client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCommands {
    pub label: String,
    pub docker: String,
    pub podman: String,
    pub wharf: String,
}

/// The pull commands for `repo` at `host`: by digest, and by `tag` when one points here. Over plain HTTP podman
/// and `wharf` are told so (docker takes it from its daemon's `insecure-registries`).
pub fn pull_commands(
    host: &str,
    tls: bool,
    repo: &RepositoryName,
    digest: &Digest,
    tag: Option<&Tag>,
) -> Vec<PullCommands> {
    let (podman_flag, wharf_flag) = if tls {
        (String::new(), String::new())
    } else {
        ("--tls-verify=false ".into(), format!("--insecure-registry {host} "))
    };
    let one = |label: String, reference: String| PullCommands {
        label,
        docker: format!("docker pull {reference}"),
        podman: format!("podman pull {podman_flag}{reference}"),
        wharf: format!("wharf pull {wharf_flag}{reference}"),
    };
    let mut out = vec![one("By digest".into(), format!("{host}/{repo}@{digest}"))];
    if let Some(t) = tag {
        out.push(one(format!("By tag {t}"), format!("{host}/{repo}:{t}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder().uri("/ui/r/a/-/manifest/x");
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hosts_are_only_host_characters() {
        let check = |h: &str, want: Option<&str>| assert_eq!(host(&parts(Some(h))).as_deref(), want, "{h:?}");
        check("registry.example:5000", Some("registry.example:5000"));
        check("[::1]:8443", Some("[::1]:8443"));
        check("127.0.0.1", Some("127.0.0.1"));
        for bad in ["a b", "a;rm -rf /", "a$(x)", "a`x`", "-oProxy", "a/b", "a\"b", "a'b", ""] {
            check(bad, None);
        }
        check(&"a".repeat(256), None);
        assert_eq!(host(&parts(None)), None);
    }

    #[test]
    fn platforms_and_artifact_kinds() {
        let v = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert_eq!(platform(Some(&v)), "linux/arm64/v8");
        assert_eq!(platform(Some(&serde_json::json!({"os": "linux", "architecture": "amd64"}))), "linux/amd64");
        assert_eq!(platform(Some(&serde_json::json!({"os": "linux"}))), "unknown");
        assert_eq!(platform(None), "unknown");
        assert_eq!(artifact_kind("application/vnd.cncf.notary.signature"), ("Notation signature", "signature"));
        assert_eq!(artifact_kind("application/spdx+json"), ("SPDX SBOM", "SBOM"));
        assert_eq!(artifact_kind("application/vnd.in-toto+json"), ("in-toto attestation", "attestation"));
        assert_eq!(artifact_kind("application/x.mine"), ("Other artifact", "other"));
    }

    #[test]
    fn pull_commands_by_digest_and_tag() {
        let repo: RepositoryName = "team/app".parse().unwrap();
        let d = Digest::sha256_of(b"m");
        let tag: Tag = "v1".parse().unwrap();
        let secure = pull_commands("r.example", true, &repo, &d, Some(&tag));
        assert_eq!(secure.len(), 2);
        assert_eq!(secure[0].docker, format!("docker pull r.example/team/app@{d}"));
        assert_eq!(secure[1].podman, "podman pull r.example/team/app:v1");
        assert_eq!(secure[1].wharf, "wharf pull r.example/team/app:v1");
        let plain = pull_commands("h:5000", false, &repo, &d, None);
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].podman, format!("podman pull --tls-verify=false h:5000/team/app@{d}"));
        assert_eq!(plain[0].wharf, format!("wharf pull --insecure-registry h:5000 h:5000/team/app@{d}"));
    }
}
