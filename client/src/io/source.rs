//! The places a pull reads from, mirrors first and the origin last, and how their failures are told apart.
//!
//! Every failure of a source has a [`Failure`] class. When every source failed, the most serious class decides what
//! the pull reports, and the `wharf` exit code: a verification failure outranks a denial, a denial outranks an
//! outage. A mirror that fails is reported once per pull (at warn level, naming the source the pull goes on from);
//! one that could not be reached, refused access or served something that failed verification is not asked again
//! in the same pull.

use std::sync::{Arc, Mutex};

use url::Url;

use crate::io::transport::{SpeedLimit, Transport, TransportError};
use wharf_format::name::RepositoryName;

/// What went wrong at a source, least serious first (the order decides which failure a pull reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// Anything else: an unexpected status, content the registry does not have, a local problem.
    Other,
    /// The source could not be reached: refused, unresolvable, TLS failure, a connection that broke, a source
    /// that stalled or trickled, or a server that answered it cannot serve now (`5xx`).
    Unreachable,
    /// The source refused access: `401` without usable credentials, or `403`.
    Denied,
    /// What the source served failed verification: a signature, digest, length or trust document is wrong, or
    /// missing where the repository's trusted format requires it.
    Verification,
}

impl Failure {
    /// The few words a message leads with.
    pub fn headline(self) -> &'static str {
        match self {
            Failure::Verification => "verification failed",
            Failure::Denied => "access denied",
            Failure::Unreachable => "could not connect",
            Failure::Other => "failed",
        }
    }
}

/// The failures of every source tried for one object, each with its class.
#[derive(Debug, Clone, Default)]
pub struct Failures(Vec<(Failure, String)>);

impl Failures {
    /// Records that `s` failed with `kind` (`message` names the source and the cause), and reports it once if
    /// `s` is a mirror.
    pub fn record(&mut self, s: &Source, kind: Failure, message: String) {
        s.failed(kind, &message);
        self.push(kind, message);
    }

    /// Adds a failure without reporting it (a mirror given up earlier, see [`Source::given_up`]).
    pub fn push(&mut self, kind: Failure, message: String) {
        self.0.push((kind, message));
    }

    /// The most serious failure (`Other` when none was recorded).
    pub fn worst(&self) -> Failure {
        self.0.iter().map(|(k, _)| *k).max().unwrap_or(Failure::Other)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.worst().headline())?;
        for (i, (_, m)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(m)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--mirror {url}: {reason}")]
    BadMirror { url: String, reason: String },
    #[error("--mirror {url}: prefix {prefix:?} and repository {repo} make no repository name")]
    MirrorPrefix {
        url: String,
        prefix: String,
        repo: String,
        #[source]
        source: wharf_format::name::NameError,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A place content and trust data can come from: a mirror or the origin registry.
#[derive(Debug, Clone)]
pub struct Source {
    /// `mirror URL` or `registry HOST`, for messages.
    pub name: String,
    pub transport: Transport,
    /// The repository as this source names it: a mirror's prefix (the path of its URL) and the repository.
    pub repo: RepositoryName,
    /// The source a pull goes on from when this one fails (`None` for the origin).
    next: Option<String>,
    health: Arc<Mutex<Health>>,
}

#[derive(Debug, Default)]
struct Health {
    reported: bool,
    /// Set once a mirror is not to be asked again in this pull: the failure that decided it.
    given_up: Option<Failure>,
}

impl Source {
    /// The origin registry at `host`, serving `repo` under its own name.
    pub fn origin(
        host: &str,
        insecure: &[String],
        repo: &RepositoryName,
        speed: SpeedLimit,
    ) -> Result<Source, SourceError> {
        let transport = Transport::new(host, insecure)?.with_speed_limit(speed);
        Ok(Source::new(format!("registry {host}"), transport, repo.clone(), None))
    }

    /// A mirror at `url`: its path, if any, is the prefix under which it serves the upstream's repositories
    /// (`https://m.example/example` serves `team/app` as `example/team/app`). `next` names the source after it.
    pub fn mirror(url: &Url, repo: &RepositoryName, speed: SpeedLimit, next: &str) -> Result<Source, SourceError> {
        let bad = |reason: &str| SourceError::BadMirror { url: url.to_string(), reason: reason.into() };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a mirror URL is SCHEME://HOST[:PORT][/PREFIX], without a query or fragment"));
        }
        let prefix = url.path().trim_matches('/');
        let repo = if prefix.is_empty() {
            repo.clone()
        } else {
            format!("{prefix}/{repo}").parse().map_err(|source| SourceError::MirrorPrefix {
                url: url.to_string(),
                prefix: prefix.into(),
                repo: repo.to_string(),
                source,
            })?
        };
        let mut origin = url.clone();
        origin.set_path("/");
        let transport = Transport::with_origin(origin)?.with_speed_limit(speed);
        Ok(Source::new(format!("mirror {url}"), transport, repo, Some(next.to_string())))
    }

    fn new(name: String, transport: Transport, repo: RepositoryName, next: Option<String>) -> Source {
        Source { name, transport, repo, next, health: Arc::default() }
    }

    pub fn is_mirror(&self) -> bool {
        self.next.is_some()
    }

    /// If this mirror is not to be asked again in this pull: the failure that decided it, and a line for the
    /// caller's list of failures.
    pub fn given_up(&self) -> Option<(Failure, String)> {
        let kind = self.health.lock().ok()?.given_up?;
        Some((kind, format!("{}: not asked again after an earlier failure ({})", self.name, kind.headline())))
    }

    /// Notes a failure: a mirror's first is reported, with the source the pull goes on from. The origin's failures
    /// are the caller's to report (they end the pull).
    fn failed(&self, kind: Failure, message: &str) {
        let Some(next) = &self.next else { return };
        let Ok(mut h) = self.health.lock() else { return };
        if kind != Failure::Other {
            h.given_up.get_or_insert(kind);
        }
        if std::mem::replace(&mut h.reported, true) {
            tracing::debug!(error = %message, "mirror failed again");
        } else {
            tracing::warn!(error = %message, "skipping source ({}); going on from {next}", kind.headline());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expect: Result<(&str, &str), &str>) {
        let repo: RepositoryName = "team/app".parse().unwrap();
        let got = Source::mirror(&url.parse().unwrap(), &repo, SpeedLimit::default(), "registry r")
            .map(|s| (s.transport.url("/v2/"), s.repo.to_string()));
        match (got, expect) {
            (Ok((u, r)), Ok((eu, er))) => assert_eq!((u.as_str(), r.as_str()), (eu, er), "{url}"),
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{url}: {e}"),
            (got, expect) => panic!("{url}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn mirror_urls() {
        check("http://m.example:5000", Ok(("http://m.example:5000/v2/", "team/app")));
        check("http://m.example:5000/", Ok(("http://m.example:5000/v2/", "team/app")));
        check("https://m.example/example", Ok(("https://m.example/v2/", "example/team/app")));
        check("https://m.example/example/", Ok(("https://m.example/v2/", "example/team/app")));
        check("https://m.example/a/b-c", Ok(("https://m.example/v2/", "a/b-c/team/app")));
        check("https://m.example/Upper", Err("make no repository name"));
        check("https://m.example/a//b", Err("make no repository name"));
        check("https://m.example/?x=1", Err("without a query"));
        check(&format!("https://m.example/{}", "a".repeat(250)), Err("make no repository name"));
    }

    #[test]
    fn the_most_serious_failure_wins() {
        let rows: &[(&[Failure], Failure)] = &[
            (&[], Failure::Other),
            (&[Failure::Other, Failure::Unreachable], Failure::Unreachable),
            (&[Failure::Unreachable, Failure::Denied], Failure::Denied),
            (&[Failure::Denied, Failure::Unreachable], Failure::Denied),
            (&[Failure::Verification, Failure::Unreachable], Failure::Verification),
            (&[Failure::Denied, Failure::Verification, Failure::Other], Failure::Verification),
        ];
        for (kinds, worst) in rows {
            let f = Failures(kinds.iter().map(|k| (*k, String::new())).collect());
            assert_eq!(f.worst(), *worst, "{kinds:?}");
        }
    }
}
