//! Operating the registry: what it tells its operators and what it holds its users to.
//!
//! - [`origin`]: who made each request, from where (after access control), for every record below;
//! - [`record`]: the one [`wharf_storage::Recorder`]: what each change writes in its own transaction (an audit row
//!   from [`audit`], webhook deliveries from [`notify`]);
//! - [`metrics`]: the Prometheus registry and `/metrics`; [`access`]: the access log and request metrics, outermost;
//! - [`notify`]: webhook endpoints, Distribution's event envelope, the outbox deliverer;
//! - [`audit`]: audit rows, their retention, `wharf admin audit`;
//! - [`quota`]: storage quotas per repository pattern;
//! - [`limit`]: rate limits per account and per client address.

pub mod access;
pub mod audit;
pub mod limit;
pub mod metrics;
pub mod notify;
pub mod origin;
pub mod quota;
pub mod record;

use std::sync::Arc;

use wharf_storage::{Change, Journal, Origin};

/// Everything operating needs at run time, built once from [`OpsSettings`].
pub struct Ops {
    pub settings: OpsSettings,
    pub recorder: Arc<record::Record>,
    pub metrics: metrics::Metrics,
    pub limits: limit::Limiter,
    /// Webhook events of reads and blob pushes, recorded off the request path.
    pub later: notify::Later,
}

/// The validated operating settings (from `[metrics]`, `[notifications]`, `[audit]`, `[rate_limit]`, `[log]`).
#[derive(Debug, Clone, Default)]
pub struct OpsSettings {
    pub metrics: metrics::MetricsSettings,
    pub notifications: notify::NotifySettings,
    pub audit: audit::AuditSettings,
    pub rate_limit: limit::RateLimitSettings,
    /// `auth.trusted_proxies`, read with access control off too: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// One `info` line per request (`log.access`, default on).
    pub access_log: bool,
}

impl Ops {
    pub fn new(settings: OpsSettings) -> Ops {
        let recorder = Arc::new(record::Record::new(&settings));
        Ops {
            metrics: metrics::Metrics::new(&settings.metrics),
            limits: limit::Limiter::new(&settings.rate_limit),
            later: notify::Later::new(&settings.notifications),
            recorder,
            settings,
        }
    }

    /// What `change`, made by `origin`, records.
    pub fn journal(&self, origin: &Origin, change: &Change, now: wharf_storage::UnixTime) -> Journal {
        wharf_storage::Recorder::journal(&*self.recorder, origin, change, now)
    }
}
