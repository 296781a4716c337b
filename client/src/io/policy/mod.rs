//! The client's side of the signature policy (`wharf policy check`, and `wharf pull`/`run` with a policy): the
//! material a policy names, read through [`StdFiles`]; the evidence for an image, gathered ([`trust`] for TUF 1.0
//! and Notary v1 through the verified workflows, [`signatures`] for sigstore and Notation candidates); and the
//! decision of which digest a reference may be pulled as, made by the one `wharf_format::policy::evaluate`.
//!
//! A tag has candidate digests: those its trust data signs (TUF 1.0, then Notary v1, when the rule needs them),
//! then the digest the registry serves for it. The first candidate the rule accepts is pulled, by digest; when
//! none is accepted the pull is refused with every verdict.

mod files;
pub mod signatures;
pub mod trust;

pub use files::StdFiles;

use crate::io::pull::{sources, PullError, PullOptions, MANIFEST_ACCEPT, MAX_MANIFEST};
use crate::io::source::{Failure, Source};
use crate::io::store::ContentStore;
use crate::io::transport::TransportError;
use crate::io::trust::SignedTarget;
use wharf_format::digest::Digest;
use wharf_format::name::Reference;
use wharf_format::policy::{evaluate, Evidence, Material, Requirement, Rule, Subject, Verdict};

/// What the policy accepted: the digest to pull, the rule's verdict for it, and the signed target when trust
/// data signed it (its length bounds the manifest).
#[derive(Debug, Clone)]
pub struct Decision {
    pub digest: Digest,
    pub verdict: Verdict,
    pub signed: Option<SignedTarget>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// No candidate digest satisfied the rule: each candidate's verdict.
    #[error("{image}: {}", denied(.verdicts))]
    Denied { image: String, verdicts: Vec<Verdict> },
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

fn denied(verdicts: &[Verdict]) -> String {
    if verdicts.is_empty() {
        return "refused by the policy: the registry serves no such tag and no trust data signs it".into();
    }
    verdicts.iter().map(Verdict::summary).collect::<Vec<_>>().join("; ")
}

impl PolicyError {
    /// The class of this failure: a refusal by the policy is a verification failure (exit code 3).
    pub fn failure(&self) -> Failure {
        match self {
            PolicyError::Denied { .. } => Failure::Verification,
            PolicyError::Pull(e) => e.failure(),
            PolicyError::Transport(e) => e.failure(),
        }
    }
}

/// The rule without a policy (or where no rule matches): the tag is signed in the repository's TUF 1.0 or
/// Notary v1 trust data, whichever it is held to (its recorded or pinned root), either on first use.
pub fn default_rule() -> Rule {
    Rule {
        name: Some("default (a verified TUF 1.0 or Notary v1 tag)".into()),
        repositories: Vec::new(),
        require: Requirement::AnyOf(vec![
            Requirement::Tuf(Default::default()),
            Requirement::NotaryV1(Default::default()),
        ]),
        by_digest: false,
        immutable_tags: false,
    }
}

/// Decides `rule` for the image `opts` names: gathers what the rule needs, evaluates each candidate digest at
/// `opts.now`, and returns the first accepted.
pub async fn decide(
    store: &ContentStore,
    opts: &PullOptions,
    rule: &Rule,
    material: &Material,
) -> Result<Decision, PolicyError> {
    let srcs = sources(opts)?;
    let origin = srcs.last().ok_or(PullError::Invariant("no sources to pull from"))?;
    let needs = rule.require.needs();
    let (tag, want) = match &opts.image.reference {
        Reference::Tag(t) => (Some(t.clone()), trust::Want::Tag(t.as_str())),
        Reference::Digest(d) => (None, trust::Want::Digest(d)),
    };
    let mut evidence = Evidence::default();
    // Candidates in order: the digest pulled by, else what trust data signs, then what the registry serves.
    let mut candidates: Vec<(Digest, Option<SignedTarget>)> = Vec::new();
    if needs.tuf {
        let f = trust::tuf(store, &srcs, opts, want).await?;
        candidates.extend(f.targets.into_iter().map(|t| (t.digest.clone(), Some(t))));
        evidence.tuf = Some(f.finding);
    }
    if needs.notary_v1 {
        let f = trust::notary_v1(store, &srcs, opts, want).await?;
        candidates.extend(f.targets.into_iter().map(|t| (t.digest.clone(), Some(t))));
        evidence.notary_v1 = Some(f.finding);
    }
    if let trust::Want::Digest(d) = want {
        candidates = vec![(d.clone(), None)];
    }
    let pinned = tag.is_none();
    let mut verdicts = Vec::new();
    let mut tried: Vec<Digest> = Vec::new();
    let mut registry_asked = pinned;
    loop {
        let next = candidates.iter().position(|(d, _)| !tried.contains(d));
        let (digest, signed) = match next {
            Some(i) => candidates.remove(i),
            None if !registry_asked => {
                registry_asked = true;
                match served_digest(origin, opts).await? {
                    Some(d) if !tried.contains(&d) => (d, None),
                    _ => break,
                }
            }
            None => break,
        };
        tried.push(digest.clone());
        let subject = Subject {
            repository: opts.image.repository.clone(),
            tag: tag.clone(),
            digest: digest.clone(),
            host: Some(opts.image.host.clone()),
        };
        if needs.sigstore {
            evidence.sigstore = signatures::sigstore(&origin.transport, &origin.repo, &digest).await?;
        }
        if needs.notation {
            evidence.notation = signatures::notation(&origin.transport, &origin.repo, &digest).await?;
        }
        let verdict = evaluate(rule, &subject, &evidence, material, opts.now);
        if verdict.allowed {
            return Ok(Decision { digest, verdict, signed });
        }
        verdicts.push(verdict);
    }
    Err(PolicyError::Denied { image: opts.image.to_string(), verdicts })
}

/// The digest the registry serves for the image's tag (unverified: the policy decides about it), or `None` when
/// it has no such tag.
async fn served_digest(origin: &Source, opts: &PullOptions) -> Result<Option<Digest>, PolicyError> {
    let path = format!("/v2/{}/manifests/{}", origin.repo, opts.image.reference);
    let resp = match origin.transport.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The digest of the bytes, never the registry's header: the bytes are what a pull by digest checks.
    let body = origin.transport.read_bounded(resp, &origin.transport.url(&path), MAX_MANIFEST).await?;
    Ok(Some(Digest::sha256_of(&body)))
}
