//! The deliverer: one task per endpoint, started by `serve::run`. Under the endpoint's lease (so one replica
//! delivers an endpoint at a time, and another takes over once a dead one's lease runs out), it reads the head of
//! the endpoint's outbox, POSTs it as one envelope, and deletes what was sent. A failure marks the head row with
//! its attempts, next attempt (exponential backoff with jitter, capped) and error; nothing behind it is sent
//! before it, so an endpoint sees its events in order.
//!
//! Exactly once under the lease, except in one window: a replica that dies after the endpoint answered and before
//! the rows are deleted leaves them to be sent again by the next holder (at least once).

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wharf_storage::meta::Delivery;
use wharf_storage::{Clock, Metadata, SystemClock, UnixTime};

use super::{Endpoint, NotifySettings};

/// The envelope's media type, as Distribution sends it.
pub const MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// How often an idle endpoint's outbox is looked at.
const POLL: Duration = Duration::from_millis(500);
/// The longest an error message kept in the outbox.
const ERROR_CHARS: usize = 400;

/// Starts one delivering task per configured endpoint.
pub fn spawn(meta: Metadata, settings: &NotifySettings) -> Vec<tokio::task::JoinHandle<()>> {
    let holder = Arc::new(settings.instance_id.clone());
    settings
        .endpoints
        .iter()
        .map(|e| {
            let job = Job {
                meta: meta.clone(),
                endpoint: e.clone(),
                holder: Arc::clone(&holder),
                lease: settings.lease_secs,
            };
            tokio::spawn(job.run())
        })
        .collect()
}

/// The envelope of `rows`' events: `{"events":[...]}` (each payload is one event's JSON, as written).
pub fn envelope(rows: &[Delivery]) -> String {
    let events: Vec<&str> = rows.iter().map(|r| r.payload.as_str()).collect();
    format!("{{\"events\":[{}]}}", events.join(","))
}

/// `X-Wharf-Signature`'s value: `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`: `min` doubled per failure, capped at `max`, then a random part of its
/// second half taken off (jitter, so endpoints coming back are not hit by every replica at once).
pub fn backoff(e: &Endpoint, attempts: i64, jitter: f64) -> i64 {
    let doubled = e.backoff_min_secs.saturating_mul(1i64 << attempts.clamp(1, 30).saturating_sub(1));
    let capped = doubled.min(e.backoff_max_secs).max(1);
    let off = (capped as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as i64;
    (capped - off).max(1)
}

struct Job {
    meta: Metadata,
    endpoint: Endpoint,
    holder: Arc<String>,
    lease: i64,
}

impl Job {
    async fn run(self) {
        let client = match reqwest::Client::builder()
            .timeout(self.endpoint.timeout)
            .connect_timeout(self.endpoint.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(endpoint = %self.endpoint.name, error = %e, "webhook endpoint: no HTTP client");
                return;
            }
        };
        let name = format!("notify:{}", self.endpoint.name);
        let mut held_until: UnixTime = 0;
        loop {
            let now = SystemClock.now();
            // Renewed while more than a request's time is left, so the lease never runs out during a POST.
            if held_until - now <= self.endpoint.timeout.as_secs() as i64 + 1 {
                match self.meta.leases().acquire(&name, &self.holder, now, now + self.lease).await {
                    Ok(true) => held_until = now + self.lease,
                    Ok(false) => {
                        held_until = 0;
                        tokio::time::sleep(Duration::from_secs((self.lease / 3).clamp(1, 10) as u64)).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %self.endpoint.name, error = %e, "webhook lease");
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                }
            }
            if !self.step(&client, now).await {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Sends the head of the outbox if it is due. True if something was sent (look again at once).
    async fn step(&self, client: &reqwest::Client, now: UnixTime) -> bool {
        let e = &self.endpoint;
        let rows = match self.meta.events().head(&e.name, e.batch as i64).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(endpoint = %e.name, error = %err, "reading the webhook outbox");
                return false;
            }
        };
        let (Some(head), Some(last)) = (rows.first(), rows.last()) else { return false };
        if head.next_attempt > now {
            return false;
        }
        match post(client, e, envelope(&rows)).await {
            Ok(()) => match self.meta.events().delivered(&e.name, last.id).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(endpoint = %e.name, error = %err, "removing delivered webhook events");
                    false
                }
            },
            Err(error) => {
                let jitter = f64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng)) / f64::from(u32::MAX);
                let next = now + backoff(e, head.attempts + 1, jitter);
                tracing::warn!(endpoint = %e.name, url = %e.shown_url(), %error, attempts = head.attempts + 1,
                    "webhook delivery failed");
                if let Err(err) = self.meta.events().failed(head.id, next, &error).await {
                    tracing::warn!(endpoint = %e.name, error = %err, "marking a webhook delivery failed");
                }
                false
            }
        }
    }
}

/// POSTs `body` to `e`; any 2xx answer is a delivery. The error says what went wrong without the URL (its query
/// may hold a token).
async fn post(client: &reqwest::Client, e: &Endpoint, body: String) -> Result<(), String> {
    let mut req = client.post(e.url.0.clone()).header("content-type", MEDIA_TYPE);
    for (name, value) in &e.headers {
        req = req.header(name, value.0.clone());
    }
    if let Some(key) = &e.secret {
        req = req.header("x-wharf-signature", signature(&key.0, body.as_bytes()));
    }
    let answer = req.body(body).send().await.map_err(|err| describe(&err.without_url()))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// An error and its causes, on one line, shortened.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(ERROR_CHARS).collect()
}
