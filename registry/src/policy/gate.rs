//! Where the manifest handlers ask the policy, in a namespace a rule protects:
//!
//! - a read by tag (and by digest when the rule has `by_digest`) of a manifest that does not satisfy the rule is
//!   `DENIED`, with the rule and what is missing; signatures ([`super::exempt`]) are served without a verdict, and
//!   a manifest read by digest is also allowed as a child of an index that satisfies the rule;
//! - a push by tag is refused when the manifest does not satisfy the rule, when the tag is signed (TUF or Notary
//!   v1) for another digest, or when `immutable_tags` holds and the tag names another digest; a push by digest is
//!   always allowed (publishers upload before they sign);
//! - deleting a tag is refused under `immutable_tags`.
//!
//! Read verdicts are cached ([`super::cache`]); pushes are always decided afresh.

use std::sync::Arc;

use wharf_format::policy::{Rule, Subject, TrustFinding};
use wharf_format::{Digest, ParsedManifest, Reference, RepositoryName, Tag};
use wharf_storage::ManifestRecord;

use super::exempt::{exempt_by_digest, exempt_by_tag};
use super::{Decision, EvidenceSource, LocalEvidence};
use crate::error::{ApiError, Kind};
use crate::Registry;

/// The most indexes looked at for a manifest read by digest.
const MAX_PARENTS: i64 = 8;

/// A read of `record` in `repo` by `r`: allowed, or `DENIED` with the reason.
pub async fn check_read(
    st: &Registry,
    repo: &RepositoryName,
    r: &Reference,
    record: &ManifestRecord,
) -> Result<(), ApiError> {
    let Some(enforcer) = &st.policy else { return Ok(()) };
    let Some(rule) = enforcer.rule_for(repo) else { return Ok(()) };
    let tag = match r {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) if rule.by_digest => None,
        Reference::Digest(_) => return Ok(()),
    };
    let cache = enforcer.cache();
    let decision = match cache.get(repo, tag, &record.digest, enforcer.version()) {
        Some(d) => d,
        None => {
            // The epoch is read before the evidence, so a write during the decision leaves this entry stale.
            let epoch = cache.epoch(repo);
            let d = Arc::new(decide_read(st, rule, repo, tag, record).await);
            cache.put((repo.clone(), tag.cloned(), record.digest.clone()), epoch, enforcer.version(), Arc::clone(&d));
            d
        }
    };
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::new(Kind::Denied, decision.message.clone()))
    }
}

/// A push of `parsed` (digest `digest`) to `repo` by `r`: allowed, or `DENIED` with the reason.
pub async fn check_put(
    st: &Registry,
    repo: &RepositoryName,
    r: &Reference,
    digest: &Digest,
    parsed: &ParsedManifest,
) -> Result<(), ApiError> {
    let Some(enforcer) = &st.policy else { return Ok(()) };
    let Some(rule) = enforcer.rule_for(repo) else { return Ok(()) };
    let Reference::Tag(tag) = r else { return Ok(()) };
    if exempt_by_tag(tag, parsed) {
        return Ok(());
    }
    let name = rule.display_name();
    if rule.immutable_tags {
        if let Some(existing) = st.meta.manifests().by_tag(repo, tag).await? {
            if existing.digest != *digest {
                let why = format!("policy {name:?}: tag {tag} is immutable; it names {}", existing.digest);
                return Err(ApiError::new(Kind::Denied, why));
            }
        }
    }
    let now = st.clock.now();
    let src = LocalEvidence { registry: st, now };
    let subject = Subject { repository: repo.clone(), tag: Some(tag.clone()), digest: digest.clone(), host: None };
    for (format, finding) in [("TUF", src.tuf(&subject).await), ("Notary v1", src.notary_v1(&subject).await)] {
        if let Some(why) = disagreement(&name, tag, digest, format, &finding) {
            return Err(ApiError::new(Kind::Denied, why));
        }
    }
    let verdict = enforcer.decide(&src, rule, &subject, now).await;
    if !verdict.allowed {
        return Err(ApiError::new(Kind::Denied, format!("push refused: {}", verdict.summary())));
    }
    Ok(())
}

/// A deletion in `repo` by `r`: a tag of a rule with `immutable_tags` stays.
pub fn check_delete(st: &Registry, repo: &RepositoryName, r: &Reference) -> Result<(), ApiError> {
    let Some(rule) = st.policy.as_ref().and_then(|e| e.rule_for(repo)) else { return Ok(()) };
    match r {
        Reference::Tag(tag) if rule.immutable_tags => Err(ApiError::new(
            Kind::Denied,
            format!("policy {:?}: tag {tag} is immutable and cannot be deleted", rule.display_name()),
        )),
        _ => Ok(()),
    }
}

/// Records a write to `repo` that verdicts read (a manifest, a tag, a referrer, trust metadata), if a rule
/// protects it.
pub fn changed(st: &Registry, repo: &RepositoryName) {
    if let Some(e) = st.policy.as_ref().filter(|e| e.rule_for(repo).is_some()) {
        e.cache().touch(repo);
    }
}

/// Why pushing `digest` to `tag` would make the tag disagree with its signature in `finding`, if it would.
fn disagreement(rule: &str, tag: &Tag, digest: &Digest, format: &str, finding: &TrustFinding) -> Option<String> {
    let TrustFinding::Signed(signed) = finding else { return None };
    let other = signed.iter().find(|s| s.tag == tag.as_str() && s.digest != *digest)?;
    Some(format!(
        "policy {rule:?}: tag {tag} is signed for {} in the {format} trust data; pushing {digest} would make the tag \
         disagree with its signature",
        other.digest
    ))
}

async fn decide_read(
    st: &Registry,
    rule: &Rule,
    repo: &RepositoryName,
    tag: Option<&Tag>,
    record: &ManifestRecord,
) -> Decision {
    let allow = |why: &str| Decision { allowed: true, message: why.into() };
    if let Ok(m) = ParsedManifest::parse(&record.content, Some(&record.media_type)) {
        let exempt = match tag {
            Some(t) => exempt_by_tag(t, &m),
            None => exempt_by_digest(&m),
        };
        if exempt {
            return allow("a signature");
        }
    }
    let Some(enforcer) = &st.policy else { return allow("no policy") };
    let now = st.clock.now();
    let src = LocalEvidence { registry: st, now };
    let subject = Subject { repository: repo.clone(), tag: tag.cloned(), digest: record.digest.clone(), host: None };
    let verdict = enforcer.decide(&src, rule, &subject, now).await;
    if verdict.allowed {
        return allow(&verdict.summary());
    }
    if tag.is_none() {
        // A platform manifest is read by digest after its index: it is part of an index that satisfies the rule.
        let parents = match st.meta.manifests().parents(repo, &record.digest, MAX_PARENTS).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), %repo, "reading the indexes of a manifest");
                Vec::new()
            }
        };
        for parent in parents {
            let s = Subject { repository: repo.clone(), tag: None, digest: parent.clone(), host: None };
            if enforcer.decide(&src, rule, &s, now).await.allowed {
                return allow(&format!("part of {parent}, which satisfies the policy"));
            }
        }
    }
    Decision { allowed: false, message: verdict.summary() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_format::policy::SignedTag;

    /// One row per finding a push over a tag meets.
    #[test]
    fn a_push_may_not_make_a_signed_tag_disagree() {
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let tag: Tag = "v1".parse().unwrap();
        let signed = |t: &str, d: &Digest| {
            TrustFinding::Signed(vec![SignedTag {
                tag: t.into(),
                digest: d.clone(),
                role: "targets".into(),
                keys: vec![],
            }])
        };
        let rows = [
            ("signed for the pushed digest", signed("v1", &a), false),
            ("signed for another digest", signed("v1", &b), true),
            ("another tag signed for another digest", signed("v2", &b), false),
            ("no trust data", TrustFinding::NoData, false),
            ("trust data that does not verify", TrustFinding::Failed("expired".into()), false),
        ];
        for (case, finding, refused) in rows {
            let got = disagreement("r", &tag, &a, "TUF", &finding);
            assert_eq!(got.is_some(), refused, "{case}: {got:?}");
            if let Some(why) = got {
                assert!(why.contains(&b.to_string()) && why.contains("disagree"), "{case}: {why}");
            }
        }
    }
}
