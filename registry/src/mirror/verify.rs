//! The verifying mirror: in a mirrored namespace that a `[[policy]]` rule covers, upstream content is served only
//! once the rule's decision allows it, made from the upstream's own trust data and signatures
//! ([`crate::policy::upstream`]) by the one [`Enforcer`].
//!
//! What a client can read there, and why:
//! - a manifest **by tag**: the manifest the tag resolves to upstream, if the rule allows that tag at that digest (a
//!   TUF target signs the tag for exactly this digest, or a signature names the digest). A tag moved upstream under
//!   its signature resolves to a digest the signature does not name: `403 DENIED`;
//! - a manifest **by digest**: one this mirror allowed (through a tag or on its own), a manifest an allowed index
//!   lists, or one whose digest satisfies the rule by itself (`tag: None`: a TUF tag signed for it, a signature
//!   over it). So the image behind a denied tag is not served by digest either, unless it is signed some other way;
//! - a **blob**: only one an allowed manifest references (its config and layers). A client that learned the layer
//!   digests of a denied image elsewhere gets `403 DENIED`, even when the blob is cached;
//! - signature manifests (cosign's `.sig` tags, signature referrers), judged on their content as the registry's
//!   own enforcement does ([`crate::policy::exempt`]), their blobs, and trust data, referrers and tag lists: always,
//!   since they are what verifiers read and they hold nothing an engine can run.
//!
//! Verdicts are cached in memory per (repository, tag, digest) for the policy's version, and reused for the
//! entry's freshness time (`tag_freshness_secs`): the time the mirror also trusts a cached tag and a cached
//! `timestamp.json`, so a verdict never outlives the trust data it was made from by more than the tag itself. A
//! warm pull therefore costs a table lookup per request. The allowed digests are kept in memory too (bounded):
//! after a restart an engine's pull by tag admits them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use wharf_format::policy::{Material, Policy, Rule, Subject, Verdict};
use wharf_format::{Digest, ParsedManifest, RepositoryName, Tag};
use wharf_storage::ManifestRecord;

use super::Route;
use crate::error::{ApiError, Kind};
use crate::policy::exempt;
use crate::policy::upstream::{pinned_notary_root, pinned_tuf_root, KeptTrust, UpstreamSource};
use crate::policy::Enforcer;
use crate::AppState;

/// Entries in each in-memory table before it is emptied (a bound on memory fed by requests).
const MAX_ENTRIES: usize = 100_000;

/// The rules, their material, and what was decided under them.
pub struct Verifier {
    enforcer: Enforcer,
    material: Material,
    /// A hash of the policy and every file it names: a verdict is reused only under the policy it was made by.
    version: String,
    verdicts: Mutex<HashMap<VerdictKey, (Arc<Verdict>, i64)>>,
    /// (kind, repository, digest) of manifests (`Allowed::Manifest`) and blobs (`Allowed::Blob`) allowed under
    /// `version`, with when. Two kinds, so that a blob a manifest lists (a config digest, say) never admits a read
    /// of a manifest by that digest.
    allowed: Mutex<HashMap<(Allowed, String, String), i64>>,
    kept: KeptTrust,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerdictKey {
    repo: String,
    tag: Option<String>,
    digest: String,
    version: String,
}

impl Verifier {
    pub fn new(policy: Policy, material: Material) -> Verifier {
        let version = policy_version(&policy, &material);
        Verifier {
            enforcer: Enforcer::new(policy, material.clone()),
            material,
            version,
            verdicts: Mutex::default(),
            allowed: Mutex::default(),
            kept: KeptTrust::default(),
        }
    }

    /// The policy's version (a hash), for logs and tests.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Admits `record`, read by `tag` (or by digest when `None`), or answers `403 DENIED` naming the rule and what
    /// is missing. A repository no rule covers is admitted as before.
    pub async fn admit(
        &self,
        st: &AppState,
        route: &Route,
        repo: &RepositoryName,
        tag: Option<&Tag>,
        record: &ManifestRecord,
    ) -> Result<(), ApiError> {
        let Some(rule) = self.enforcer.rule_for(repo) else { return Ok(()) };
        let parsed = ParsedManifest::parse_inferred(&record.content)
            .map_err(|e| ApiError::new(Kind::Denied, format!("policy {:?}: manifest: {e}", rule.display_name())))?;
        let exempt = match tag {
            Some(t) => exempt::exempt_by_tag(t, &parsed),
            None => exempt::exempt_by_digest(&parsed),
        };
        // By digest, a manifest allowed within the freshness time (itself, or listed by an allowed index) is
        // served as it was allowed; after that it is judged again, so a revocation upstream reaches it.
        let now = st.clock.now();
        let freshness = route.upstream.settings.freshness.as_secs() as i64;
        let fresh = |at: i64| now - at < freshness;
        if exempt || (tag.is_none() && self.allowed_at(Allowed::Manifest, repo, &record.digest).is_some_and(fresh)) {
            self.allow(repo, &record.digest, &parsed, now);
            return Ok(());
        }
        let verdict = self.verdict(st, route, repo, rule, tag, &record.digest).await;
        if !verdict.allowed {
            tracing::info!(repository = %repo, tag = ?tag.map(Tag::as_str), digest = %record.digest, verdict = %verdict.summary(), "mirror denied upstream content");
            return Err(denied(&verdict));
        }
        self.allow(repo, &record.digest, &parsed, now);
        Ok(())
    }

    /// A blob of a covered repository is served only as part of an allowed manifest (at any time since: a long pull
    /// of many layers outlasts the freshness time, and a blob is reached only through its manifest).
    pub fn admit_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<(), ApiError> {
        let Some(rule) = self.enforcer.rule_for(repo) else { return Ok(()) };
        if self.allowed_at(Allowed::Blob, repo, digest).is_some() {
            return Ok(());
        }
        Err(ApiError::new(
            Kind::Denied,
            format!(
                "policy {:?}: blob {digest} is not part of a manifest this mirror verified; pull the image by a tag \
                 or digest that satisfies the policy first",
                rule.display_name()
            ),
        ))
    }

    async fn verdict(
        &self,
        st: &AppState,
        route: &Route,
        repo: &RepositoryName,
        rule: &Rule,
        tag: Option<&Tag>,
        digest: &Digest,
    ) -> Arc<Verdict> {
        let now = st.clock.now();
        let freshness = route.upstream.settings.freshness.as_secs() as i64;
        let key = VerdictKey {
            repo: repo.to_string(),
            tag: tag.map(|t| t.to_string()),
            digest: digest.to_string(),
            version: self.version.clone(),
        };
        let cached = self.verdicts.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some((v, _)) = cached.filter(|(_, at)| now - at < freshness) {
            return v;
        }
        let file = |path: Option<&str>| path.and_then(|p| self.material.files.get(p)).map(Vec::as_slice);
        let (tuf_root, notary_root) = (file(pinned_tuf_root(&rule.require)), file(pinned_notary_root(&rule.require)));
        let source = UpstreamSource { st, route, repo, tuf_root, notary_root, kept: &self.kept, now };
        let subject = Subject { repository: repo.clone(), tag: tag.cloned(), digest: digest.clone(), host: None };
        let verdict = Arc::new(self.enforcer.decide(&source, rule, &subject, now).await);
        let mut table = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ENTRIES {
            table.clear();
        }
        table.insert(key, (Arc::clone(&verdict), now));
        verdict
    }

    /// When `digest` was last allowed in `repo` as `kind`, if it was.
    fn allowed_at(&self, kind: Allowed, repo: &RepositoryName, digest: &Digest) -> Option<i64> {
        let key = (kind, repo.to_string(), digest.to_string());
        self.allowed.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied()
    }

    /// Records `digest` and the manifests it lists (an index's children) as allowed manifests in `repo`, and its
    /// config and layers (and the manifest itself, which a client may fetch as a blob) as allowed blobs.
    fn allow(&self, repo: &RepositoryName, digest: &Digest, m: &ParsedManifest, now: i64) {
        let mut set = self.allowed.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= MAX_ENTRIES {
            set.clear();
        }
        let r = repo.to_string();
        for d in std::iter::once(digest).chain(m.manifests.iter().map(|d| &d.digest)) {
            set.insert((Allowed::Manifest, r.clone(), d.to_string()), now);
            set.insert((Allowed::Blob, r.clone(), d.to_string()), now);
        }
        for d in m.blobs() {
            set.insert((Allowed::Blob, r.clone(), d.digest.to_string()), now);
        }
    }
}

/// What a digest was allowed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Allowed {
    Manifest,
    Blob,
}

/// `403 DENIED` with the rule and what is missing.
fn denied(v: &Verdict) -> ApiError {
    ApiError::new(Kind::Denied, format!("DENIED by the verifying mirror: {}", v.summary()))
}

/// SHA-256 over the policy (as JSON) and every file and trust store it names.
fn policy_version(policy: &Policy, material: &Material) -> String {
    let mut h = Sha256::new();
    // Debug output names every field of every rule: infallible, unlike a serializer.
    h.update(format!("{policy:?}").as_bytes());
    for (path, bytes) in &material.files {
        h.update(path.as_bytes());
        h.update(Sha256::digest(bytes));
    }
    for (dir, files) in &material.trust_stores {
        for (rel, bytes) in files {
            h.update(format!("{dir}/{rel}").as_bytes());
            h.update(Sha256::digest(bytes));
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml_text: &str) -> Policy {
        toml::from_str(toml_text).unwrap()
    }

    const RULES: &str = r#"
        [[policy]]
        name = "upstream-signed"
        repositories = ["library/**"]
        require = { tuf = { root = "/pins/library.json" } }
    "#;

    fn material(root: &[u8]) -> Material {
        let mut m = Material::default();
        m.files.insert("/pins/library.json".into(), root.to_vec());
        m
    }

    #[test]
    fn blobs_are_served_only_as_part_of_an_allowed_manifest() {
        let v = Verifier::new(policy(RULES), material(b"root"));
        let d = |c: char| -> Digest { format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap() };
        let repo = |n: &str| -> RepositoryName { n.parse().unwrap() };
        let manifest = ParsedManifest::parse_inferred(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
                "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1}},
                "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":1}}]}}"#,
                d('c'),
                d('d')
            )
            .as_bytes(),
        )
        .unwrap();
        v.allow(&repo("library/app"), &d('e'), &manifest, 100);
        // (repository, blob, served)
        let rows = [
            ("library/app", 'c', true),
            ("library/app", 'd', true),
            ("library/app", 'e', true),
            ("library/app", 'f', false),
            // Allowed in one repository is not allowed in another.
            ("library/other", 'd', false),
            // A repository no rule covers is served as before.
            ("team/app", 'f', true),
        ];
        for (r, blob, served) in rows {
            let got = v.admit_blob(&repo(r), &d(blob));
            assert_eq!(got.is_ok(), served, "{r} {blob}");
            if let Err(e) = got {
                assert_eq!(e.kind, Kind::Denied);
                assert!(e.message.contains("\"upstream-signed\""), "{}", e.message);
            }
        }
        assert_eq!(v.allowed_at(Allowed::Blob, &repo("library/app"), &d('d')), Some(100));
        // A config or layer digest never admits a manifest read by that digest (a signature manifest could list
        // any digest as its config); the manifest and its index children do.
        assert_eq!(v.allowed_at(Allowed::Manifest, &repo("library/app"), &d('c')), None);
        assert_eq!(v.allowed_at(Allowed::Manifest, &repo("library/app"), &d('e')), Some(100));
    }

    #[test]
    fn the_policy_version_changes_with_the_rules_and_every_file_they_name() {
        let base = Verifier::new(policy(RULES), material(b"root v1")).version().to_string();
        let rows = [
            (RULES, b"root v1".as_slice(), true),
            (RULES, b"root v2".as_slice(), false),
            (&*RULES.replace("library/**", "library/*"), b"root v1".as_slice(), false),
        ];
        for (rules, root, same) in rows {
            let v = Verifier::new(policy(rules), material(root));
            assert_eq!(v.version() == base, same, "{rules} {root:?}");
        }
    }
}
