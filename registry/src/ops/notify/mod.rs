//! Webhooks: the configured endpoints, the deliveries a change makes (one event in Distribution's notification
//! format per endpoint that wants it), and the outbox's deliverer.
//!
//! - [`event`]: what a [`Change`] becomes: `notify::events`, called by the recorder inside the change's transaction;
//! - [`later`]: reads and blob pushes, which commit no transaction a delivery can join, recorded off the request
//!   path in batches;
//! - [`deliver`]: per endpoint, under a lease, the outbox's rows sent in id order, signed, retried with backoff.

pub mod deliver;
pub mod event;
pub mod later;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use wharf_format::policy::Pattern;

pub use event::events;
pub use later::Later;

/// An event's action: Distribution's `push`, `pull` and `delete`, and Wharf's own `tag` (a tag pointed at a
/// manifest), `trust_publish`, `trust_delete` and `key_rotation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Push,
    Pull,
    Delete,
    Tag,
    TrustPublish,
    TrustDelete,
    KeyRotation,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Push,
        Action::Pull,
        Action::Delete,
        Action::Tag,
        Action::TrustPublish,
        Action::TrustDelete,
        Action::KeyRotation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Delete => "delete",
            Action::Tag => "tag",
            Action::TrustPublish => "trust_publish",
            Action::TrustDelete => "trust_delete",
            Action::KeyRotation => "key_rotation",
        }
    }

    /// The actions an endpoint gets when it names none: all but `pull` (a pull is the most frequent request, and
    /// most consumers want changes).
    pub fn defaults() -> Vec<Action> {
        Action::ALL.into_iter().filter(|a| *a != Action::Pull).collect()
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Action, String> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown action {s:?} (one of {})", names.join(", "))
        })
    }
}

/// A secret (the HMAC key, a header's value): kept, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Masked<T>(pub T);

impl<T> fmt::Debug for Masked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One `[[notifications.endpoint]]`, validated.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    /// Printed as `scheme://host:port/path` only: a query or user information may hold a token.
    pub url: Masked<url::Url>,
    pub headers: Vec<(HeaderName, Masked<HeaderValue>)>,
    /// The HMAC-SHA256 key of `X-Wharf-Signature` (none: no signature).
    pub secret: Option<Masked<Vec<u8>>>,
    pub actions: Vec<Action>,
    /// Repository patterns (`team/*`, `team/**`); empty: every repository.
    pub repositories: Vec<Pattern>,
    /// The whole request's timeout (connecting included).
    pub timeout: Duration,
    /// The first retry's delay and the longest, in seconds (each failure doubles it, with jitter).
    pub backoff_min_secs: i64,
    pub backoff_max_secs: i64,
    /// Events sent in one envelope at most.
    pub batch: usize,
}

impl Endpoint {
    /// Whether this endpoint wants `action` on `repository`.
    pub fn wants(&self, action: Action, repository: &str) -> bool {
        self.actions.contains(&action)
            && (self.repositories.is_empty() || self.repositories.iter().any(|p| p.matches_str(repository)))
    }

    /// The URL without user information or query, for messages.
    pub fn shown_url(&self) -> String {
        let u = &self.url.0;
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{port}{}", u.scheme(), u.host_str().unwrap_or(""), u.path())
    }
}

/// `[notifications]`, validated.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub endpoints: Vec<Endpoint>,
    /// How long a replica holds an endpoint's delivery lease before renewing it (a dead replica's endpoints are
    /// taken over after at most this).
    pub lease_secs: i64,
    /// The event's `source`: this node's host name and port, and an id that changes at every start.
    pub source_addr: String,
    pub instance_id: String,
    /// Whether the server speaks HTTPS (the scheme of the events' `target.url`).
    pub tls: bool,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            endpoints: Vec::new(),
            lease_secs: 30,
            source_addr: String::new(),
            instance_id: random_id(),
            tls: false,
        }
    }
}

impl NotifySettings {
    /// Whether some endpoint wants `action` at all (a cheap check before building a read's change).
    pub fn wants_any(&self, action: Action) -> bool {
        self.endpoints.iter().any(|e| e.actions.contains(&action))
    }
}

/// A random id in the UUID form (version 4), as Distribution's event ids are.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
