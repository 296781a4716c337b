//! Progress of long transfers, reported to whoever shows it (the command line draws a bar on a terminal).

use std::sync::Arc;

pub trait Progress: Send + Sync {
    /// `total` more bytes are about to move.
    fn start(&self, total: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// An optional progress sink.
pub type ProgressSink = Option<Arc<dyn Progress>>;
