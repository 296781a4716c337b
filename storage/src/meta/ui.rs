//! What the web interface reads: repository and tag pages, each a bounded number of statements whatever the page
//! holds (the registry's `ui` module renders them).
//!
//! TODO(ui-lists): repository summaries (search, paging, size, tag count, last push, trust formats) and tag pages
//! (sort, filter, paging, joined with their manifests).

use crate::meta::Metadata;

// The administration pages' reads and `docker search`'s name query (the `ui-admin` work), apart from the lists.
mod admin;
mod search;

pub use admin::{AccountSummary, AuditPage};

/// The web interface's reads: [`Metadata::ui`].
#[derive(Clone, Copy, Debug)]
pub struct Ui<'a>(pub(super) &'a Metadata);

impl Ui<'_> {
    /// The metadata this view reads from.
    pub fn meta(&self) -> &Metadata {
        self.0
    }
}
