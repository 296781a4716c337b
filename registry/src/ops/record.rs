//! The registry's [`Recorder`]: an audit row ([`super::audit::rows`]) and the deliveries of the configured webhook
//! endpoints that want the change ([`super::notify::events`]), written by storage in the change's transaction.

use wharf_storage::{Change, Journal, Origin, Recorder, UnixTime};

use super::OpsSettings;

pub struct Record {
    audit: super::audit::AuditSettings,
    notify: super::notify::NotifySettings,
}

impl Record {
    pub fn new(settings: &OpsSettings) -> Record {
        Record { audit: settings.audit.clone(), notify: settings.notifications.clone() }
    }
}

impl Recorder for Record {
    fn journal(&self, origin: &Origin, change: &Change, now: UnixTime) -> Journal {
        Journal {
            audit: super::audit::rows(&self.audit, origin, change, now),
            events: super::notify::events(&self.notify, origin, change, now),
        }
    }
}
