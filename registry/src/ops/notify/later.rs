//! Events of requests that commit no transaction a delivery could join cheaply: manifest and blob reads (`pull`)
//! and blob upload commits (`push`). The handler hands the change over and answers at once; a task writes what
//! came in, in batches, each batch one transaction of [`wharf_storage::Journals::record`].
//!
//! The price: what is queued when the process dies (normally well under a second's worth) is not recorded, and a
//! blob's `push` event may reach the outbox after the manifest `push` that followed it. Nothing is queued unless
//! some endpoint wants the action.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::request::Parts;
use tokio::sync::mpsc;
use wharf_storage::{Change, EventRow, Journal, Metadata, UnixTime};

use super::{Action, NotifySettings};

/// Rows waiting to be written at most; beyond, new ones are dropped with a warning rather than holding requests.
const QUEUE: usize = 8192;
/// Rows written in one transaction at most.
const BATCH: usize = 512;

/// The queue of events recorded off the request path: [`crate::ops::Ops::later`].
pub struct Later {
    settings: Arc<NotifySettings>,
    queue: OnceLock<mpsc::Sender<EventRow>>,
}

impl Later {
    pub fn new(settings: &NotifySettings) -> Later {
        Later { settings: Arc::new(settings.clone()), queue: OnceLock::new() }
    }

    /// Queues the events of the change `make` builds, if some endpoint wants `action` and the writer runs
    /// ([`Later::spawn`]; not in `wharf admin` or in-process tests).
    pub fn record(&self, action: Action, parts: &Parts, now: UnixTime, make: impl FnOnce() -> Change) {
        let Some(queue) = self.queue.get() else { return };
        if !self.settings.wants_any(action) {
            return;
        }
        let origin = crate::ops::origin::from_parts(parts);
        for row in super::events(&self.settings, &origin, &make(), now) {
            if queue.try_send(row).is_err() {
                tracing::warn!(action = action.as_str(), "webhook events queue full: an event was dropped");
            }
        }
    }

    /// Starts the task that writes queued events (once; later calls return `None`).
    pub fn spawn(&self, meta: Metadata) -> Option<tokio::task::JoinHandle<()>> {
        if self.settings.endpoints.is_empty() {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        self.queue.set(tx).ok()?;
        Some(tokio::spawn(write(meta, rx)))
    }
}

async fn write(meta: Metadata, mut rx: mpsc::Receiver<EventRow>) {
    let mut events = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut events, BATCH).await > 0 {
        let journal = Journal { audit: Vec::new(), events: std::mem::take(&mut events) };
        // One retry after a pause: a busy database should not cost the batch.
        for attempt in 0..2 {
            match meta.journals().record(&journal).await {
                Ok(()) => break,
                Err(e) if attempt == 0 => {
                    tracing::warn!(error = %e, "recording webhook events; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => tracing::warn!(error = %e, dropped = journal.events.len(), "recording webhook events"),
            }
        }
    }
}
