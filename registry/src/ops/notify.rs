//! Webhooks: configured endpoints, the deliveries a change makes (Distribution's event envelope), and the outbox
//! deliverer. (Skeleton: no endpoints; issue 23's webhook work fills it.)

use wharf_storage::{Change, EventRow, Origin, UnixTime};

/// `[notifications]`.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {}

/// The deliveries `change` makes: one per endpoint whose filters want it.
pub fn events(_settings: &NotifySettings, _origin: &Origin, _change: &Change, _now: UnixTime) -> Vec<EventRow> {
    Vec::new()
}
