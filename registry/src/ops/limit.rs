//! Rate limits per client address and per account, as token buckets ([`bucket`]), from `[rate_limit]`.
//!
//! - [`by_address`] runs before the gate, so a flood is refused before any credential is checked; the address is
//!   the one access control and the audit log use (through `auth.trusted_proxies`), and an IPv6 client is one /64
//!   (an attacker holding a /64 does not get 2^64 buckets).
//! - [`by_account`] runs after it, on the verified caller; anonymous callers are limited by address only.
//! - Each has a request bucket (every request costs one) and a pull bucket (a blob `GET` costs the bytes it answers
//!   with, charged when the answer starts: the bucket may go into debt, and the next pull waits it out).
//! - `/healthz`, `/readyz`, `/metrics` are never limited; nor are the accounts in `exempt` (per-account limits)
//!   and the networks in `exempt_addresses` (per-address limits).
//!
//! Over the rate: `429` with `Retry-After` (whole seconds, rounded up) and `TOOMANYREQUESTS`. The buckets live in
//! memory by default (bounded: see [`bucket::Table`]); with `shared = true` in the database (one conditional upsert
//! per decision), and each replica remembers a refusal until its `Retry-After` so that a refused flood does not
//! reach the database.

mod bucket;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use wharf_storage::Metadata;

use super::Ops;
use crate::auth::policy::Principal;
use crate::auth::{Caller, ClientAddr};
use crate::endpoint::Endpoint;
use crate::error::{ApiError, Kind};
use crate::route::{Classified, Route};
use bucket::{Cell, Decision, Table};

/// A rate: units per second, and how many a full bucket holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

/// The limits of one scope (an address, an account): requests, and bytes of blob pulls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scoped {
    pub requests: Option<Rate>,
    pub bytes: Option<Rate>,
}

/// `[rate_limit]`.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub address: Scoped,
    pub account: Scoped,
    /// Accounts (and `robot$…`, and external subjects) free of the per-account limits.
    pub exempt: Vec<String>,
    /// Networks free of the per-address limits.
    pub exempt_addresses: Vec<IpNet>,
    /// `auth.trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Buckets in the database, shared by replicas.
    pub shared: bool,
    /// Buckets kept in memory at most.
    pub max_buckets: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            address: Scoped::default(),
            account: Scoped::default(),
            exempt: Vec::new(),
            exempt_addresses: Vec::new(),
            trusted_proxies: Vec::new(),
            shared: false,
            max_buckets: 100_000,
        }
    }
}

impl RateLimitSettings {
    /// The same limits behind these proxies (`auth.trusted_proxies`).
    pub fn behind(mut self, proxies: Vec<IpNet>) -> RateLimitSettings {
        self.trusted_proxies = proxies;
        self
    }
}

/// Whose bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    Address(IpAddr),
    Account(Arc<str>),
    External(Arc<str>),
}

/// Which of its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Measure {
    Requests,
    Bytes,
}

type Key = (Who, Measure);

/// A scope's buckets as cells.
#[derive(Debug, Clone, Copy, Default)]
struct Cells {
    requests: Option<Cell>,
    bytes: Option<Cell>,
}

impl Cells {
    fn of(s: &Scoped) -> Cells {
        let cell = |r: &Rate| Cell::new(r.per_sec, r.burst);
        Cells { requests: s.requests.as_ref().map(cell), bytes: s.bytes.as_ref().map(cell) }
    }

    fn any(&self) -> bool {
        self.requests.is_some() || self.bytes.is_some()
    }
}

/// How often a replica deletes the full buckets of the shared table, in nanoseconds.
const SWEEP_EVERY_NS: i64 = 60_000_000_000;

/// The buckets.
pub struct Limiter {
    settings: RateLimitSettings,
    address: Cells,
    account: Cells,
    /// In memory: each bucket's `tat`. Shared: until when a refusal stands, so it is answered here.
    table: Mutex<Table<Key>>,
    /// The origin of the in-memory clock (monotonic).
    epoch: Instant,
    /// The database, when `shared`.
    meta: OnceLock<Metadata>,
    last_sweep: AtomicI64,
}

impl Limiter {
    pub fn new(settings: &RateLimitSettings) -> Limiter {
        Limiter {
            address: Cells::of(&settings.address),
            account: Cells::of(&settings.account),
            table: Mutex::new(Table::new(settings.max_buckets)),
            epoch: Instant::now(),
            meta: OnceLock::new(),
            last_sweep: AtomicI64::new(0),
            settings: settings.clone(),
        }
    }

    /// Gives the limiter its database: the buckets move there when `shared` is set.
    pub fn share(&self, meta: Metadata) {
        if self.settings.shared {
            let _ = self.meta.set(meta);
        }
    }

    /// Nanoseconds on the monotonic clock.
    fn mono(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table<Key>> {
        // A panic while holding the lock leaves only numbers behind: keep using them.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `cost` (needing `need`) from a bucket: `Ok`, or `Err(nanoseconds to wait)`.
    async fn take(&self, key: Key, cell: Cell, need: i64, cost: i64) -> Result<Result<(), i64>, ApiError> {
        let mono = self.mono();
        let Some(meta) = self.meta.get() else {
            return Ok(match self.table().take(&key, mono, need, cost, cell.burst) {
                Decision::Allow { .. } => Ok(()),
                Decision::Wait { ns } => Err(ns),
            });
        };
        let blocked = self.table().tat(&key);
        if blocked > mono {
            return Ok(Err(blocked - mono));
        }
        let now = wall_ns();
        let name = db_key(&key);
        self.sweep(meta, now);
        if meta.buckets().take(&name, now, need, cost, cell.burst).await? {
            return Ok(Ok(()));
        }
        let tat = meta.buckets().tat(&name).await?;
        // Refused a moment ago; if it would pass now, another replica's sweep raced: ask again next time.
        let wait = match bucket::decide(tat, now, need, cost, cell.burst) {
            Decision::Wait { ns } => ns,
            Decision::Allow { .. } => 1,
        };
        self.table().set(&key, mono.saturating_add(wait), mono);
        Ok(Err(wait))
    }

    /// Whether a bucket holds any credit (no charge): in memory, its state; shared, a refusal remembered here.
    fn peek(&self, key: &Key, cell: Cell) -> Result<(), i64> {
        let mono = self.mono();
        let t = self.table().tat(key);
        if self.meta.get().is_some() {
            return if t > mono { Err(t - mono) } else { Ok(()) };
        }
        match bucket::decide(t, mono, 1, 0, cell.burst) {
            Decision::Allow { .. } => Ok(()),
            Decision::Wait { ns } => Err(ns),
        }
    }

    /// Deletes the shared table's full buckets, at most once a minute per replica, off the request's path.
    fn sweep(&self, meta: &Metadata, now: i64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now - last < SWEEP_EVERY_NS
            || self.last_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let meta = meta.clone();
        tokio::spawn(async move {
            if let Err(e) = meta.buckets().sweep(now).await {
                tracing::warn!(error = %e, "deleting full rate limit buckets");
            }
        });
    }

    /// The client's address as its buckets know it: through trusted proxies; IPv6 by its /64.
    fn address(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.extensions().get::<ClientAddr>()?.0.ip();
        let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let ip = crate::auth::proxy::client_ip(peer, forwarded, &self.settings.trusted_proxies);
        Some(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (!0u128 << 64))),
            },
            v4 => v4,
        })
    }

    /// Runs `req` under `who`'s buckets: its request, then (a blob `GET`) the bytes it answers with.
    async fn limit(&self, cells: Cells, who: Who, req: Request, next: Next) -> Response {
        if let Some(cell) = cells.requests {
            match self.take((who.clone(), Measure::Requests), cell, cell.cost(1), cell.cost(1)).await {
                Ok(Ok(())) => {}
                Ok(Err(wait)) => return throttled(wait, Measure::Requests, &who),
                Err(e) => return e.into_response(),
            }
        }
        let pull = cells.bytes.filter(|_| blob_get(&req));
        let Some(cell) = pull else { return next.run(req).await };
        let key = (who.clone(), Measure::Bytes);
        if let Err(wait) = self.peek(&key, cell) {
            return throttled(wait, Measure::Bytes, &who);
        }
        let resp = next.run(req).await;
        if !matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
            return resp;
        }
        let len = resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        // Charged when the answer starts: the bucket may go into debt; a pull refused here sends none of its body.
        match self.take(key, cell, 1, cell.cost(len.unwrap_or(0))).await {
            Ok(Ok(())) => resp,
            Ok(Err(wait)) => throttled(wait, Measure::Bytes, &who),
            Err(e) => e.into_response(),
        }
    }
}

/// Nanoseconds since the Unix epoch: the shared buckets' clock (replicas' clocks agree to NTP's precision).
fn wall_ns() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A bucket's row in the shared table.
fn db_key((who, m): &Key) -> String {
    let m = match m {
        Measure::Requests => "requests",
        Measure::Bytes => "bytes",
    };
    match who {
        Who::Address(ip) => format!("address/{ip}/{m}"),
        Who::Account(n) => format!("account/{n}/{m}"),
        Who::External(n) => format!("external/{n}/{m}"),
    }
}

/// Paths never limited: health checks and metrics, which watchers poll.
fn exempt_path(req: &Request) -> bool {
    matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics" | "/_notary_server/health")
}

/// A blob `GET` (a pull of bytes), as classified.
fn blob_get(req: &Request) -> bool {
    req.method() == Method::GET
        && req.extensions().get::<Classified>().is_some_and(|c| matches!(c.route, Route::Registry(Endpoint::Blob(..))))
}

/// The refusal: `429`, `Retry-After` in whole seconds rounded up, `TOOMANYREQUESTS`.
fn throttled(wait_ns: i64, m: Measure, who: &Who) -> Response {
    let secs = bucket::retry_after_secs(wait_ns);
    let (what, scope) = match (m, who) {
        (Measure::Requests, Who::Address(_)) => ("requests", "address"),
        (Measure::Bytes, Who::Address(_)) => ("pulled bytes", "address"),
        (Measure::Requests, _) => ("requests", "account"),
        (Measure::Bytes, _) => ("pulled bytes", "account"),
    };
    let message = format!("rate limit: too many {what} from this {scope}; retry after {secs} s");
    let e = ApiError::new(Kind::Throttled, message).with_header("retry-after", secs.to_string());
    crate::with_api_version(e.into_response())
}

/// Before the gate: the limits of the client's address.
pub async fn by_address(State(ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    let l = &ops.limits;
    if !l.address.any() || exempt_path(&req) {
        return next.run(req).await;
    }
    let Some(ip) = l.address(&req) else { return next.run(req).await };
    if l.settings.exempt_addresses.iter().any(|n| n.contains(&ip)) {
        return next.run(req).await;
    }
    l.limit(l.address, Who::Address(ip), req, next).await
}

/// After the gate: the limits of the verified caller (anonymous callers have none here).
pub async fn by_account(State(ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    let l = &ops.limits;
    if !l.account.any() || exempt_path(&req) {
        return next.run(req).await;
    }
    let exempt = |n: &str| l.settings.exempt.iter().any(|e| e == n);
    let who = match req.extensions().get::<Caller>().map(|c| &c.principal) {
        Some(Principal::Account(n)) if !exempt(n) => Who::Account(Arc::from(n.as_str())),
        Some(Principal::External(n)) if !exempt(n) => Who::External(Arc::from(n.as_str())),
        _ => return next.run(req).await,
    };
    l.limit(l.account, who, req, next).await
}
