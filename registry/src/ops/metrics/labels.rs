//! The label sets of the metric families, from enums wherever the value is one of a known few.

use std::fmt::Write;

use axum::http::Method as HttpMethod;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::route::Kind;

/// Label values written by name.
macro_rules! named {
    ($t:ty, $($v:path => $s:literal),* $(,)?) => {
        impl $t {
            pub fn as_str(&self) -> &'static str {
                match self { $($v => $s),* }
            }
        }
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

named!(Kind,
    Kind::Base => "base",
    Kind::Catalog => "catalog",
    Kind::Tags => "tags",
    Kind::Referrers => "referrers",
    Kind::ManifestRead => "manifest_read",
    Kind::ManifestWrite => "manifest_write",
    Kind::ManifestDelete => "manifest_delete",
    Kind::BlobRead => "blob_read",
    Kind::BlobWrite => "blob_write",
    Kind::BlobDelete => "blob_delete",
    Kind::UploadStart => "upload_start",
    Kind::Upload => "upload",
    Kind::TufRead => "tuf_read",
    Kind::TufWrite => "tuf_write",
    Kind::NotaryV1Read => "notary_v1_read",
    Kind::NotaryV1Write => "notary_v1_write",
    Kind::Changefeed => "changefeed",
    Kind::MirrorRead => "mirror_read",
    Kind::MirrorWrite => "mirror_write",
    Kind::MirrorDelete => "mirror_delete",
    Kind::MirrorTufRead => "mirror_tuf_read",
    Kind::MirrorTufWrite => "mirror_tuf_write",
    Kind::Token => "token",
    Kind::Health => "health",
    Kind::Metrics => "metrics",
    Kind::Ui => "ui",
    Kind::UiForm => "ui_form",
    Kind::Search => "search",
    Kind::Invalid => "invalid",
);

/// A request's method: the ones the APIs use, and `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Patch,
    Delete,
    Other,
}

impl From<&HttpMethod> for Method {
    fn from(m: &HttpMethod) -> Method {
        match *m {
            HttpMethod::GET => Method::Get,
            HttpMethod::HEAD => Method::Head,
            HttpMethod::PUT => Method::Put,
            HttpMethod::POST => Method::Post,
            HttpMethod::PATCH => Method::Patch,
            HttpMethod::DELETE => Method::Delete,
            _ => Method::Other,
        }
    }
}

named!(Method,
    Method::Get => "GET",
    Method::Head => "HEAD",
    Method::Put => "PUT",
    Method::Post => "POST",
    Method::Patch => "PATCH",
    Method::Delete => "DELETE",
    Method::Other => "other",
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Kind,
    pub method: Method,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ByRoute {
    pub route: Kind,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ByKind {
    pub route: Kind,
}

/// Which backend failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Backend {
    pub backend: crate::error::Fault,
}

impl From<crate::error::Fault> for Backend {
    fn from(backend: crate::error::Fault) -> Backend {
        Backend { backend }
    }
}

named!(crate::error::Fault,
    crate::error::Fault::Storage => "storage",
    crate::error::Fault::Database => "database",
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorObject {
    Manifest,
    Blob,
}

named!(MirrorObject, MirrorObject::Manifest => "manifest", MirrorObject::Blob => "blob");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorOutcome {
    /// Served from what this server holds.
    Hit,
    /// Fetched from the upstream by this request.
    Miss,
    /// Joined a fetch another request started.
    Coalesced,
}

named!(MirrorOutcome,
    MirrorOutcome::Hit => "hit",
    MirrorOutcome::Miss => "miss",
    MirrorOutcome::Coalesced => "coalesced",
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MirrorLabels {
    pub object: MirrorObject,
    pub outcome: MirrorOutcome,
}

named!(crate::auth::gate::Reason,
    crate::auth::gate::Reason::Malformed => "malformed",
    crate::auth::gate::Reason::BadCredentials => "bad_credentials",
    crate::auth::gate::Reason::BadToken => "bad_token",
    crate::auth::gate::Reason::Unauthenticated => "unauthenticated",
    crate::auth::gate::Reason::NotGranted => "not_granted",
    crate::auth::gate::Reason::Throttled => "throttled",
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: crate::auth::gate::Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Login,
    Rate,
}

named!(Limit, Limit::Login => "login", Limit::Rate => "rate");

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ThrottleLabels {
    pub limit: Limit,
}

impl ThrottleLabels {
    pub fn new(login: bool) -> ThrottleLabels {
        ThrottleLabels { limit: if login { Limit::Login } else { Limit::Rate } }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GcWhat {
    Tags,
    Manifests,
    Blobs,
}

named!(GcWhat, GcWhat::Tags => "tags", GcWhat::Manifests => "manifests", GcWhat::Blobs => "blobs");

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GcLabels {
    pub what: GcWhat,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QuotaLabels {
    pub quota: String,
}

/// A trust format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Tuf,
    NotaryV1,
}

named!(Format, Format::Tuf => "tuf", Format::NotaryV1 => "notary_v1");

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TrustLabels {
    pub format: Format,
}

/// One repository's timestamp or snapshot (for Notary v1 the repository is the GUN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Expiry {
    pub format: Format,
    pub repository: String,
    pub role: String,
}
