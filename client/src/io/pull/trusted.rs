//! A tag resolved through trust data: which format a repository is held to (its recorded or pinned root, else
//! first use), and the TUF 1.0 workflow against each source in turn. A repository held to one format never falls
//! back to the other: a missing or failing document of its format is a verification failure.

use std::path::Path;

use super::{origin, PullError, PullOptions};
use crate::io::source::{Failure, Failures, Source};
use crate::io::store::ContentStore;
use crate::io::trust::{find_target, refresh, Recorded, RepoUpdater, SignedTarget, TrustError, TrustFormat};
use crate::io::tuf::updater::Options;
use crate::io::tuf::Limits;
use wharf_format::tuf::Envelope;

/// What a repository's trust data is held to before anything is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// A root of this format is recorded in the local store or pinned (`--trust-root`, `config.toml`).
    Pinned(TrustFormat),
    /// Nothing recorded or pinned: the first use decides (TUF 1.0 first, then a Notary v1 collection).
    FirstUse,
}

/// The format the image's repository is held to: a recorded root (TUF 1.0 when both are recorded), else the
/// pinned root's format. A pinned root of the other format than the recorded one is refused, not obeyed.
pub fn anchor(store: &ContentStore, opts: &PullOptions) -> Result<Anchor, PullError> {
    let dir = store.trust_dir(&opts.image.host, &opts.image.repository);
    let recorded = if dir.join("root.json").exists() {
        Some(TrustFormat::Tuf)
    } else if crate::io::notary_v1::recorded(store, opts) {
        Some(TrustFormat::NotaryV1)
    } else {
        None
    };
    let pinned = opts.trust.pinned_root.as_deref().map(|r| {
        if crate::io::notary_v1::is_notary_root(r) {
            TrustFormat::NotaryV1
        } else {
            TrustFormat::Tuf
        }
    });
    match (recorded, pinned) {
        (Some(r), Some(p)) if r != p => {
            Err(PullError::FormatConflict { repo: repo_name(opts), recorded: r, pinned: p })
        }
        (Some(f), _) | (None, Some(f)) => Ok(Anchor::Pinned(f)),
        (None, None) => Ok(Anchor::FirstUse),
    }
}

/// Refreshes trust data (mirrors first) and finds the tag; records what was trusted for the next pull.
pub(super) async fn resolve_signed(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    tag: &str,
) -> Result<SignedTarget, PullError> {
    match anchor(store, opts)? {
        Anchor::Pinned(TrustFormat::NotaryV1) => crate::io::notary_v1::resolve_for_pull(store, srcs, opts, tag).await,
        Anchor::Pinned(TrustFormat::Tuf) => resolve_tuf(store, srcs, opts, tag).await,
        // Nothing is trusted yet, so a repository signed only with `docker trust` / `notary` (a Notary v1
        // collection and no TUF 1.0 data) may be found here.
        Anchor::FirstUse => match resolve_tuf(store, srcs, opts, tag).await {
            Err(PullError::NoTrustData(name)) => {
                match crate::io::notary_v1::resolve_for_pull(store, srcs, opts, tag).await {
                    Err(PullError::NoTrustData(_)) => Err(PullError::NoTrustData(name)),
                    other => other,
                }
            }
            other => other,
        },
    }
}

async fn resolve_tuf(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    tag: &str,
) -> Result<SignedTarget, PullError> {
    let owned = tag.to_string();
    let (_, t) = refresh_trusted(store, srcs, opts, move |mut u| {
        let tag = owned.clone();
        Box::pin(async move {
            let t = find_target(&mut u, &tag).await?;
            Ok((u, t))
        })
    })
    .await?;
    Ok(t)
}

/// A refreshed updater over one source, with the trusted state it will record.
pub type Refreshed = RepoUpdater<Recorded>;

type Step<T> = futures::future::BoxFuture<'static, Result<(Refreshed, T), TrustError>>;

/// Runs the TUF workflow against each source in turn (mirrors first) from the recorded, pinned or first-use root,
/// then `step` on the refreshed set; the first source that passes both wins, and what it proved is recorded.
/// Once a root is trusted, a document the origin does not have is a verification failure, never "no trust data".
pub async fn refresh_trusted<T, F>(
    store: &ContentStore,
    srcs: &[Source],
    opts: &PullOptions,
    step: F,
) -> Result<(Refreshed, T), PullError>
where
    F: Fn(Refreshed) -> Step<T>,
{
    let repo = &opts.image.repository;
    let dir = store.trust_dir(&opts.image.host, repo);
    crate::io::modes::create_dir_all(&dir)?;
    let limits = Limits::default();
    let root = match (read_recorded(&dir.join("root.json"))?, &opts.trust.pinned_root) {
        (Some(r), _) => r,
        (None, Some(p)) => p.clone(),
        (None, None) => first_use_root(srcs, opts, &dir, &limits).await?,
    };
    let mut failures = Failures::default();
    let mut missing = false;
    for s in srcs {
        if let Some((kind, why)) = s.given_up() {
            failures.push(kind, why);
            continue;
        }
        // What this source proves is staged, and recorded only once the step passed.
        let result = match refresh(&s.transport, &s.repo, &root, Recorded::new(&dir), &Options::new(opts.now)).await {
            Ok(u) => step(u).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((u, t)) => {
                u.local().commit(u.trusted().root_bytes())?;
                return Ok((u, t));
            }
            Err(TrustError::NotSigned(t)) if srcs.len() == 1 => return Err(TrustError::NotSigned(t).into()),
            Err(e) => {
                let not_found = matches!(&e, TrustError::Transport(t) if t.is_not_found());
                missing |= not_found && !s.is_mirror();
                // A mirror without trust data (one that does not pass `/_tuf/` through) may still serve content.
                let kind = if not_found && s.is_mirror() { Failure::Other } else { e.failure() };
                failures.record(s, kind, format!("{}: {}", s.name, crate::io::transport::report(&e)));
            }
        }
    }
    if missing {
        return Err(PullError::TrustMissing { repo: repo_name(opts), format: TrustFormat::Tuf, failures });
    }
    Err(PullError::TrustSources { repo: repo_name(opts), failures })
}

/// The repository's current root as its origin serves it, with `--trust-on-first-use`; otherwise the error that
/// says what to do ("no trust data" when the registry has none to pin).
async fn first_use_root(
    srcs: &[Source],
    opts: &PullOptions,
    dir: &Path,
    limits: &Limits,
) -> Result<Vec<u8>, PullError> {
    let repo = &opts.image.repository;
    let fetched = origin(srcs)?.transport.get_bounded(&format!("/v2/{repo}/_tuf/1.root.json"), limits.root).await;
    match fetched {
        Err(e) if e.is_not_found() => Err(PullError::NoTrustData(repo_name(opts))),
        Err(e) if opts.trust.trust_on_first_use => Err(e.into()),
        Ok(r) if opts.trust.trust_on_first_use => {
            let env = Envelope::parse(&r).map_err(TrustError::from)?;
            let ids: Vec<String> = env.signatures.iter().map(|s| s.keyid.chars().take(12).collect()).collect();
            tracing::warn!(repository = %repo, keys = ?ids, recorded = %dir.display(), "trusting the repository's root on first use; it is recorded and enforced from now on");
            Ok(r.to_vec())
        }
        _ => Err(PullError::NoTrustedRoot(opts.image.to_string())),
    }
}

/// A recorded file, or `None` when there is none (any other error reading it is an error, never "not recorded").
fn read_recorded(path: &Path) -> Result<Option<Vec<u8>>, PullError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PullError::Io(e)),
    }
}

pub(super) fn repo_name(opts: &PullOptions) -> String {
    format!("{}/{}", opts.image.host, opts.image.repository)
}
