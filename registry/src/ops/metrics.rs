//! Prometheus metrics: the families, what feeds them, and `/metrics` ([`scrape`]).
//!
//! Every family is named `wharf_*`, with its unit in its name; label values come from enums (route kinds, methods,
//! reasons) or from names the operator chose (repositories with trust data, quota patterns), never from a request's
//! raw path. Request metrics are fed by [`super::access`], the outermost layer; the mirror, the collector and the
//! gate's refusals feed theirs where they happen; trust renewals and expiries are read from the notary and the
//! trust tables when a scraper asks. The encoding is `prometheus-client`'s (OpenMetrics text).

pub mod check;
pub mod labels;
pub mod scrape;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use labels::{
    Backend, ByKind, ByRoute, Expiry, Format, GcLabels, MirrorLabels, MirrorObject, MirrorOutcome, QuotaLabels,
    ReasonLabels, RequestLabels, ThrottleLabels, TrustLabels,
};

/// `[metrics]`, validated.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub enabled: bool,
    /// The bearer token a scrape must present, if any.
    pub token: Option<MetricsToken>,
    /// Networks a scrape may come from (the peer's address).
    pub allow: Vec<ipnet::IpNet>,
    /// A listener of its own for `/metrics`.
    pub addr: Option<SocketAddr>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        let loopback = ["127.0.0.0/8", "::1/128"];
        // Literal networks: parsing them cannot fail.
        let allow = loopback.iter().filter_map(|n| n.parse().ok()).collect();
        MetricsSettings { enabled: true, token: None, allow, addr: None }
    }
}

/// The scrape token: compared in constant time, never printed.
#[derive(Clone)]
pub struct MetricsToken(pub String);

impl MetricsToken {
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        // Equal lengths first (the length of a token is not the secret), then every byte in constant time.
        self.0.len() == presented.len() && bool::from(self.0.as_bytes().ct_eq(presented))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(********)")
    }
}

/// Request latency buckets, in seconds: half a millisecond to a minute.
const LATENCY: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

fn latency() -> Histogram {
    Histogram::new(LATENCY)
}

/// The server's metrics.
pub struct Metrics {
    pub settings: MetricsSettings,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ByRoute, Histogram, fn() -> Histogram>,
    received: Family<ByKind, Counter>,
    sent: Family<ByKind, Counter>,
    uploads: Gauge,
    backend_errors: Family<Backend, Counter>,
    mirror: Family<MirrorLabels, Counter>,
    upstream_faults: Counter,
    auth_refusals: Family<ReasonLabels, Counter>,
    throttled: Family<ThrottleLabels, Counter>,
    gc_runs: Counter,
    gc_removed: Family<GcLabels, Counter>,
    gc_bytes: Counter,
    quota_used: Family<QuotaLabels, Gauge>,
    quota_limit: Family<QuotaLabels, Gauge>,
    renewals: Family<TrustLabels, Counter>,
    renewal_failures: Family<TrustLabels, Counter>,
    expiry: Family<Expiry, Gauge>,
    /// The notary's renewal counts, read at each scrape (set once the notary is built).
    trust: OnceLock<Arc<wharf_notary::TrustCounters>>,
    /// The scheduled store checks'.
    pub check: check::CheckMetrics,
    /// Held while a scrape refreshes the scrape-time families and encodes (never across an await).
    scraping: Mutex<()>,
}

impl Metrics {
    pub fn new(settings: &MetricsSettings) -> Metrics {
        let mut r = Registry::default();
        let requests = Family::default();
        r.register("wharf_http_requests", "Requests by route kind, method and status", requests.clone());
        let latency = Family::new_with_constructor(latency as fn() -> Histogram);
        r.register(
            "wharf_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer's body, by route kind and method",
            latency.clone(),
        );
        let received = Family::default();
        r.register("wharf_http_received_bytes", "Request body bytes received, by route kind", received.clone());
        let sent = Family::default();
        r.register("wharf_http_sent_bytes", "Response body bytes sent, by route kind", sent.clone());
        let uploads = Gauge::default();
        r.register("wharf_uploads_in_progress", "Blob upload requests being received now", uploads.clone());
        let backend_errors = Family::default();
        r.register(
            "wharf_backend_errors",
            "Requests answered 500 because the object store or the database failed",
            backend_errors.clone(),
        );
        let mirror = Family::default();
        r.register(
            "wharf_mirror_requests",
            "Mirrored manifest and blob reads: hit (held here), miss (fetched upstream), coalesced (joined a fetch)",
            mirror.clone(),
        );
        let upstream_faults = Counter::default();
        r.register(
            "wharf_mirror_upstream_faults",
            "Upstream fetches that failed or were refused",
            upstream_faults.clone(),
        );
        let auth_refusals = Family::default();
        r.register("wharf_auth_refusals", "Requests access control refused, by reason", auth_refusals.clone());
        let throttled = Family::default();
        r.register(
            "wharf_throttled",
            "Requests answered 429: login (failed-login lock-outs) or rate (rate limits)",
            throttled.clone(),
        );
        let gc_runs = Counter::default();
        r.register("wharf_gc_runs", "Garbage collection runs of this server", gc_runs.clone());
        let gc_removed = Family::default();
        r.register("wharf_gc_removed", "What garbage collection removed: tags, manifests, blobs", gc_removed.clone());
        let gc_bytes = Counter::default();
        r.register("wharf_gc_removed_bytes", "Blob bytes garbage collection removed", gc_bytes.clone());
        let quota_used = Family::default();
        r.register("wharf_quota_used_bytes", "Bytes a quota's repositories hold", quota_used.clone());
        let quota_limit = Family::default();
        r.register("wharf_quota_limit_bytes", "A quota's limit in bytes", quota_limit.clone());
        let renewals = Family::default();
        r.register("wharf_trust_renewals", "Server-signed trust metadata renewed, by format", renewals.clone());
        let renewal_failures = Family::default();
        r.register("wharf_trust_renewal_failures", "Trust metadata renewals that failed", renewal_failures.clone());
        let expiry = Family::default();
        r.register(
            "wharf_trust_expiry_seconds",
            "Seconds until each repository's current timestamp and snapshot expire (negative: expired)",
            expiry.clone(),
        );
        let check = check::CheckMetrics::register(&mut r);
        let version = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        r.register("wharf_build", "The running build", version);
        Metrics {
            settings: settings.clone(),
            registry: r,
            requests,
            latency,
            received,
            sent,
            uploads,
            backend_errors,
            mirror,
            upstream_faults,
            auth_refusals,
            throttled,
            gc_runs,
            gc_removed,
            gc_bytes,
            quota_used,
            quota_limit,
            renewals,
            renewal_failures,
            expiry,
            trust: OnceLock::new(),
            check,
            scraping: Mutex::new(()),
        }
    }

    /// The counter of request body bytes received for a route kind (for the body wrapper to add to as it streams).
    pub fn received(&self, route: crate::route::Kind) -> Counter {
        self.received.get_or_create(&ByKind { route }).clone()
    }

    /// The counter of response body bytes sent for a route kind.
    pub fn sent(&self, route: crate::route::Kind) -> Counter {
        self.sent.get_or_create(&ByKind { route }).clone()
    }

    /// The gauge of upload requests being received.
    pub fn uploads(&self) -> &Gauge {
        &self.uploads
    }

    /// One answered request, once its body has been sent (or abandoned).
    pub fn request(&self, labels: RequestLabels, seconds: f64) {
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&ByRoute { route: labels.route, method: labels.method }).observe(seconds);
    }

    /// A server fault of the object store or the database.
    pub fn backend_error(&self, fault: crate::error::Fault) {
        self.backend_errors.get_or_create(&Backend::from(fault)).inc();
    }

    /// A refusal of access control.
    pub fn auth_refusal(&self, reason: crate::auth::gate::Reason) {
        self.auth_refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A `429`: `login` for failed-login lock-outs, otherwise a rate limit.
    pub fn throttled(&self, login: bool) {
        self.throttled.get_or_create(&ThrottleLabels::new(login)).inc();
    }

    /// A mirrored read's outcome.
    pub fn mirror(&self, object: MirrorObject, outcome: MirrorOutcome) {
        self.mirror.get_or_create(&MirrorLabels { object, outcome }).inc();
    }

    /// An upstream fetch that failed (unreachable, refused, or sent content that did not verify).
    pub fn upstream_fault(&self) {
        self.upstream_faults.inc();
    }

    /// A garbage collection run of this server (not a dry run).
    pub fn gc_run(&self, report: &crate::gc::Report) {
        self.gc_runs.inc();
        let add = |what, n: u64| {
            self.gc_removed.get_or_create(&GcLabels { what }).inc_by(n);
        };
        add(labels::GcWhat::Tags, report.tags_removed);
        add(labels::GcWhat::Manifests, report.manifests_removed);
        add(labels::GcWhat::Blobs, report.blobs_removed + report.orphans_removed);
        self.gc_bytes.inc_by(report.bytes_removed + report.orphan_bytes_removed);
    }

    /// The usage and limit of the quota named `name` (a repository pattern), in bytes. For the quota module to call
    /// whenever it learns a quota's usage (after a push, a collection, a recount) and when a quota is set; a quota
    /// that no longer exists is dropped with [`Metrics::remove_quota`].
    pub fn set_quota(&self, name: &str, used: u64, limit: u64) {
        let labels = QuotaLabels { quota: name.to_owned() };
        self.quota_used.get_or_create(&labels).set(i64::try_from(used).unwrap_or(i64::MAX));
        self.quota_limit.get_or_create(&labels).set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Every quota's usage and limit at once, as the database holds them now (read at each scrape, since quotas
    /// change from `wharf admin` and from other replicas): quotas no longer there go.
    pub fn set_quotas(&self, rows: &[wharf_storage::meta::QuotaRow]) {
        self.quota_used.clear();
        self.quota_limit.clear();
        for q in rows {
            self.set_quota(&q.pattern, q.usage, q.limit);
        }
    }

    /// Forgets the quota named `name`.
    pub fn remove_quota(&self, name: &str) {
        let labels = QuotaLabels { quota: name.to_owned() };
        self.quota_used.remove(&labels);
        self.quota_limit.remove(&labels);
    }

    /// Connects the notary's renewal counts (once, when the services are built).
    pub fn attach_trust(&self, counters: Arc<wharf_notary::TrustCounters>) {
        let _ = self.trust.set(counters);
    }

    /// The text of a scrape, with the trust expiries `expiries` (read by the caller from the database).
    pub fn encode(&self, expiries: &[(Format, String, String, i64)]) -> Result<String, std::fmt::Error> {
        let _held = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = self.trust.get() {
            use std::sync::atomic::Ordering::Relaxed;
            let catch_up = |family: &Family<TrustLabels, Counter>, format, now: u64| {
                let c = family.get_or_create(&TrustLabels { format });
                c.inc_by(now.saturating_sub(c.get()));
            };
            catch_up(&self.renewals, Format::Tuf, t.tuf_renewals.load(Relaxed));
            catch_up(&self.renewals, Format::NotaryV1, t.v1_renewals.load(Relaxed));
            catch_up(&self.renewal_failures, Format::Tuf, t.tuf_failures.load(Relaxed));
            catch_up(&self.renewal_failures, Format::NotaryV1, t.v1_failures.load(Relaxed));
        }
        self.expiry.clear();
        for (format, repository, role, seconds) in expiries {
            let labels = Expiry { format: *format, repository: repository.clone(), role: role.clone() };
            self.expiry.get_or_create(&labels).set(*seconds);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&MetricsSettings::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Kind;

    fn text(m: &Metrics, expiries: &[(Format, String, String, i64)]) -> String {
        m.encode(expiries).unwrap()
    }

    #[test]
    fn families_encode_with_their_names_units_and_labels() {
        let m = Metrics::default();
        let labels = RequestLabels { route: Kind::ManifestRead, method: labels::Method::Get, status: 200 };
        m.request(labels, 0.003);
        m.received(Kind::UploadStart).inc_by(7);
        m.backend_error(crate::error::Fault::Database);
        m.auth_refusal(crate::auth::gate::Reason::BadCredentials);
        m.throttled(true);
        m.mirror(MirrorObject::Blob, MirrorOutcome::Coalesced);
        m.set_quota("team/**", 10, 100);
        let counters = Arc::new(wharf_notary::TrustCounters::default());
        counters.tuf_renewals.store(3, std::sync::atomic::Ordering::Relaxed);
        m.attach_trust(Arc::clone(&counters));
        let report = crate::gc::Report { blobs_removed: 2, bytes_removed: 30, ..Default::default() };
        m.gc_run(&report);
        let t = text(&m, &[(Format::Tuf, "team/app".into(), "timestamp".into(), 42)]);
        for line in [
            "wharf_http_requests_total{route=\"manifest_read\",method=\"GET\",status=\"200\"} 1",
            "wharf_http_request_duration_seconds_count{route=\"manifest_read\",method=\"GET\"} 1",
            "wharf_http_received_bytes_total{route=\"upload_start\"} 7",
            "wharf_backend_errors_total{backend=\"database\"} 1",
            "wharf_auth_refusals_total{reason=\"bad_credentials\"} 1",
            "wharf_throttled_total{limit=\"login\"} 1",
            "wharf_mirror_requests_total{object=\"blob\",outcome=\"coalesced\"} 1",
            "wharf_quota_used_bytes{quota=\"team/**\"} 10",
            "wharf_quota_limit_bytes{quota=\"team/**\"} 100",
            "wharf_trust_renewals_total{format=\"tuf\"} 3",
            "wharf_gc_runs_total 1",
            "wharf_gc_removed_total{what=\"blobs\"} 2",
            "wharf_gc_removed_bytes_total 30",
            "wharf_trust_expiry_seconds{format=\"tuf\",repository=\"team/app\",role=\"timestamp\"} 42",
            "wharf_build_info{version=",
        ] {
            assert!(t.contains(line), "{line} in\n{t}");
        }
        // Renewals catch up with the notary's count, never count twice; expiries are this scrape's only.
        counters.tuf_renewals.store(5, std::sync::atomic::Ordering::Relaxed);
        let t = text(&m, &[]);
        assert!(t.contains("wharf_trust_renewals_total{format=\"tuf\"} 5"), "{t}");
        assert!(!t.contains("repository=\"team/app\""), "{t}");
        m.remove_quota("team/**");
        assert!(!text(&m, &[]).contains("team/**"));
    }

    #[test]
    fn the_token_matches_only_itself() {
        let t = MetricsToken("abc".into());
        for (presented, want) in [(&b"abc"[..], true), (b"abd", false), (b"ab", false), (b"abcd", false), (b"", false)]
        {
            assert_eq!(t.matches(presented), want, "{presented:?}");
        }
        assert!(!format!("{t:?}").contains("abc"));
    }
}
