//! How the collector's statements are grouped into transactions.

use crate::meta::{Backend, Metadata, Tx};
use crate::Result;

/// The statements of one step of a sweep (up to a page of rows, a statement per 500): one transaction on SQLite,
/// where there is one writer and each commit is an fsync and another wait for the write lock (pulls touching
/// blobs take it too); one transaction per statement on PostgreSQL, so that row locks are held briefly and never
/// across repositories or quotas (a push holds them in the other order: a longer transaction could deadlock).
pub(super) struct Batch<'m> {
    meta: &'m Metadata,
    tx: Option<Tx<'static>>,
    whole: bool,
}

impl<'m> Batch<'m> {
    pub(super) fn new(meta: &'m Metadata) -> Batch<'m> {
        Batch { meta, tx: None, whole: meta.backend() == Backend::Sqlite }
    }

    /// The transaction the next statement runs in.
    pub(super) async fn tx(&mut self) -> Result<&mut Tx<'static>> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.meta.writer().begin().await?,
        };
        Ok(self.tx.insert(tx))
    }

    /// After each statement (with what goes with it, such as quota usage): commits it on PostgreSQL.
    pub(super) async fn statement_done(&mut self) -> Result<()> {
        if !self.whole {
            self.finish_open().await?;
        }
        Ok(())
    }

    /// Commits what is open.
    pub(super) async fn finish(mut self) -> Result<()> {
        self.finish_open().await
    }

    async fn finish_open(&mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(())
    }
}
