//! What a change records beside itself: an audit row and webhook deliveries, written in the change's own
//! transaction, so that a change is never stored without its record nor recorded without being stored.
//!
//! The registry decides what a change records (which endpoints want it, what the audit row says) through a
//! [`Recorder`]; storage only writes the [`Journal`] it is handed, in the same transaction as the change. A write
//! method that records takes a `&Journal` (`Manifests::put_recorded`, ...); [`Journals::record`] writes a journal
//! alone, for what changes nothing else (a login, a pull).

use std::net::IpAddr;

use crate::meta::{Metadata, Tx};
use crate::{Result, UnixTime};

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No credentials, or an anonymous token.
    Anonymous,
    /// A user account.
    Account(String),
    /// A robot account.
    Robot(String),
    /// The subject of an external issuer's token.
    External(String),
    /// The server itself (the collector, retention, renewal) or an operator's `wharf admin` command.
    System(String),
}

impl Actor {
    /// The name recorded: the account, `anonymous`, or the job.
    pub fn name(&self) -> &str {
        match self {
            Actor::Anonymous => "anonymous",
            Actor::Account(n) | Actor::Robot(n) | Actor::External(n) | Actor::System(n) => n,
        }
    }

    /// The kind recorded beside the name.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Anonymous => "anonymous",
            Actor::Account(_) => "account",
            Actor::Robot(_) => "robot",
            Actor::External(_) => "external",
            Actor::System(_) => "system",
        }
    }
}

/// Where a change came from: who, from which address, in which request. Made once per request by the registry's
/// edge (after access control, so the actor is the verified one) and kept in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub actor: Actor,
    /// The client's address, through `trusted_proxies`; `None` for the server's own jobs.
    pub address: Option<IpAddr>,
    /// A random id of the request (the `request.id` of a webhook event).
    pub request_id: String,
    pub method: String,
    pub user_agent: Option<String>,
    /// The `Host` the request named (the `request.host` of a webhook event).
    pub host: Option<String>,
}

impl Origin {
    /// A change the server makes itself (`gc`, `retention`, `renewal`) or an operator's command (`admin`).
    pub fn system(job: &str) -> Origin {
        Origin {
            actor: Actor::System(job.to_owned()),
            address: None,
            request_id: String::new(),
            method: String::new(),
            user_agent: None,
            host: None,
        }
    }
}

/// Which trust format a publish was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustFormat {
    Tuf,
    NotaryV1,
}

impl TrustFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustFormat::Tuf => "tuf",
            TrustFormat::NotaryV1 => "notary_v1",
        }
    }
}

/// What changed (or was read, for events). Names and digests are the parsed values' text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A manifest stored, with the tag it was pushed to.
    ManifestPush { repository: String, digest: String, media_type: String, size: u64, tag: Option<String> },
    /// A blob upload committed (events only).
    BlobPush { repository: String, digest: String, size: u64 },
    /// A manifest read (events only).
    ManifestPull { repository: String, digest: String, media_type: String, size: u64, tag: Option<String> },
    /// A blob read (events only).
    BlobPull { repository: String, digest: String, size: u64 },
    /// A manifest deleted by digest.
    ManifestDelete { repository: String, digest: String },
    /// A blob's link deleted from a repository (`DELETE /v2/<name>/blobs/<digest>`).
    BlobDelete { repository: String, digest: String },
    /// A tag deleted; `digest` is what it pointed at, if known.
    TagDelete { repository: String, tag: String, digest: Option<String> },
    /// A tag pointed at `to`; `from` is what it pointed at before (`None`: a new tag).
    TagMove { repository: String, tag: String, from: Option<String>, to: String },
    /// Trust metadata published: the roles written.
    TrustPublish { repository: String, format: TrustFormat, roles: Vec<String> },
    /// A key rotated (a new server-held key, or a new root).
    KeyRotation { repository: String, format: TrustFormat, role: String },
    /// Trust data of a repository deleted.
    TrustDelete { repository: String, format: TrustFormat },
    /// A password login, successful or not; `account` is the name presented.
    Login { account: String, ok: bool },
    /// An account added, removed, or its secret changed (`action`: `add`, `remove`, `secret`).
    Account { action: String, account: String, kind: String },
    /// A grant given or taken (`action`: `grant`, `revoke`).
    Grant { action: String, account: String, pattern: String, actions: String },
    /// Something the collector or retention removed (`what`: `tag`, `manifest`, `blob`).
    Removal { what: String, repository: Option<String>, digest: String, tag: Option<String> },
    /// An operator's action through `wharf admin` that changes what the server does (quota set, event retry).
    Admin { action: String, detail: String },
}

/// One audit row, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at: UnixTime,
    /// `push`, `delete`, `tag`, `untag`, `trust_publish`, `key_rotation`, `login`, `login_failed`, ...
    pub action: String,
    pub actor: String,
    pub actor_kind: String,
    pub address: Option<String>,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub tag: Option<String>,
    /// Anything else, as JSON text.
    pub detail: Option<String>,
}

/// One webhook delivery to make: the event `payload` (one Distribution event, JSON) for `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub at: UnixTime,
    pub endpoint: String,
    pub action: String,
    pub repository: String,
    pub payload: String,
}

/// What one change records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    pub audit: Vec<AuditRow>,
    pub events: Vec<EventRow>,
}

impl Journal {
    pub fn is_empty(&self) -> bool {
        self.audit.is_empty() && self.events.is_empty()
    }

    /// Adds `other`'s rows after this one's.
    pub fn append(&mut self, other: Journal) {
        self.audit.extend(other.audit);
        self.events.extend(other.events);
    }
}

/// The journal of a tag move, given the digest the tag named before (`None`: a new tag); called inside the
/// transaction that moves it.
pub type OnTagMove<'a> = dyn Fn(Option<String>) -> Journal + Send + Sync + 'a;

/// Decides what a change records. The registry's implementation knows the configured endpoints and the audit
/// settings; [`Silent`] records nothing.
pub trait Recorder: Send + Sync {
    fn journal(&self, origin: &Origin, change: &Change, now: UnixTime) -> Journal;
}

/// Records nothing (tools and tests that run storage alone).
pub struct Silent;

impl Recorder for Silent {
    fn journal(&self, _: &Origin, _: &Change, _: UnixTime) -> Journal {
        Journal::default()
    }
}

/// Writing journals alone: [`Metadata::journals`].
#[derive(Clone, Copy, Debug)]
pub struct Journals<'a>(pub(super) &'a Metadata);

impl Journals<'_> {
    /// Writes `journal` in a transaction of its own (a login, a pull: nothing else changes).
    pub async fn record(&self, journal: &Journal) -> Result<()> {
        if journal.is_empty() {
            return Ok(());
        }
        let mut tx = self.0.writer().begin().await?;
        write(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes `journal` in the caller's transaction.
pub(super) async fn write(tx: &mut Tx<'_>, journal: &Journal) -> Result<()> {
    super::audit::insert(tx, &journal.audit).await?;
    super::events::insert(tx, &journal.events).await
}
