//! Checking a user name and password (or a robot's name and secret) under the throttle and the verification slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

use tokio::sync::watch;
use wharf_storage::{AccountKind, Actor, Change, Origin};

use super::policy::Principal;
use super::throttle::{Slot, BUSY_RETRY_SECS};
use super::{credentials, random_secret, Auth, Refusal};

/// An Argon2id hash of a random secret: verifying against it costs what a real check costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| credentials::hash_secret(&random_secret()).unwrap_or_default());

impl Auth {
    /// Checks a user name and password. A credential verified before (in this policy generation) is answered from
    /// the cache; otherwise the attempt counts against the throttle from the moment it starts, and the Argon2id
    /// check runs only if a verification slot is free (else `429` at once). A secret that does not match is a
    /// failure only once the accounts are known to be current: an account added or a password changed a moment
    /// ago (by `wharf admin`, on any replica) is read from SQL before the attempt counts.
    pub async fn login(&self, user: &str, password: &str, addr: Option<IpAddr>) -> Result<Principal, Refusal> {
        self.throttle.check(user, addr).map_err(Refusal::Throttled)?;
        let key = credentials::fingerprint(user, password);
        // Joining the flights is one step under one lock: of parallel requests with the same credentials exactly
        // one leads (checks the secret), the others wait for its answer and take no slot of their own. A follower
        // whose leader did not succeed makes its own attempt, counted like any other.
        let mut followed = false;
        let (mut policy, _lead) = loop {
            let policy = self.policy();
            if let Some(name) = self.basic.get(&key, policy.generation) {
                if policy.active(&name, self.clock.now()).is_some() {
                    return Ok(Principal::Account(name));
                }
            }
            match self.flights.join(key) {
                Joined::Lead(lead) => break (policy, Some(lead)),
                Joined::Follow(_) if followed => break (policy, None),
                Joined::Follow(mut done) => {
                    let _ = done.changed().await;
                    followed = true;
                }
            }
        };
        let attempt = self.throttle.begin(user, addr).map_err(Refusal::Throttled)?;
        let Some(slot) = self.slots.try_take(user, addr) else {
            attempt.void();
            tracing::warn!(account = %user, addr = ?addr, "login refused: too many verifications under way");
            return Err(Refusal::Throttled(BUSY_RETRY_SECS));
        };
        let hash = policy.account(user).map(|a| a.secret_hash.clone());
        let (mut ok, mut slot) = verify(password, hash.clone(), slot).await;
        if !ok {
            if let Err(e) = self.reload().await {
                tracing::error!(error = %crate::error::chain(&e), "reloading accounts and grants");
            }
            let current = self.policy();
            let fresh = current.account(user).map(|a| a.secret_hash.clone());
            let changed = current.generation != policy.generation && fresh.is_some() && fresh != hash;
            if let (true, Some(s)) = (changed, slot.take()) {
                policy = current;
                (ok, slot) = verify(password, fresh, s).await;
            }
        }
        drop(slot);
        let expired = policy.account(user).is_some_and(|a| a.expires_at.is_some_and(|t| self.clock.now() >= t));
        // One audit row per verification that ran (never for a cached credential, a lock-out or a busy refusal):
        // the throttle and the verification slots bound them, so a flood of failures is not a flood of writes.
        self.record_login(user, ok && !expired, addr, &policy).await;
        if ok && expired {
            // The right secret of an expired robot: refused, but not a guess, so no strike.
            attempt.void();
            tracing::warn!(account = %user, addr = ?addr, "login refused: the account has expired");
            Err(Refusal::BadCredentials)
        } else if ok {
            self.basic.put(key, user.to_owned(), policy.generation);
            attempt.succeed();
            Ok(Principal::Account(user.to_owned()))
        } else {
            attempt.fail();
            tracing::warn!(account = %user, addr = ?addr, "login failed");
            Err(Refusal::BadCredentials)
        }
    }
}

impl Auth {
    /// Writes the audit row of a verified (or refused) password, with the client's address. A failure to write is
    /// logged, not answered: the login's outcome stands.
    async fn record_login(&self, user: &str, ok: bool, addr: Option<IpAddr>, policy: &super::policy::Policy) {
        let actor = match policy.account(user).map(|a| a.kind) {
            _ if !ok => Actor::Anonymous,
            Some(AccountKind::Robot) => Actor::Robot(user.to_owned()),
            _ => Actor::Account(user.to_owned()),
        };
        let origin = Origin { address: addr, ..Origin::system("login") };
        let origin = Origin { actor, ..origin };
        let change = Change::Login { account: user.to_owned(), ok };
        let journal = self.recorder.journal(&origin, &change, self.clock.now());
        if let Err(e) = self.meta.journals().record(&journal).await {
            tracing::error!(error = %crate::error::chain(&e), "recording a login in the audit log");
        }
    }
}

/// Verifications under way, by credential fingerprint, so that requests with the same credentials wait for the
/// first one's answer instead of each taking a verification slot.
#[derive(Default)]
pub struct Flights(Mutex<HashMap<[u8; 32], watch::Receiver<()>>>);

/// A verification under way; dropped (after the verified credential is cached), it wakes the requests waiting.
pub struct Lead<'a> {
    flights: &'a Flights,
    key: [u8; 32],
    _done: watch::Sender<()>,
}

/// Either the verification of these credentials is this request's to do, or one is under way to wait for.
enum Joined<'a> {
    Lead(Lead<'a>),
    Follow(watch::Receiver<()>),
}

impl Flights {
    /// Leads the verification of `key`, or follows the one under way: decided under one lock, so that two
    /// requests cannot both find no leader and both lead.
    fn join(&self, key: [u8; 32]) -> Joined<'_> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = map.get(&key) {
            return Joined::Follow(done.clone());
        }
        let (done, waiting) = watch::channel(());
        map.insert(key, waiting);
        Joined::Lead(Lead { flights: self, key, _done: done })
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.flights.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// Checks `secret` against `hash` on the blocking pool; the slot is held by the blocking task, so that it is
/// released when the work ends, even if the request went away. With no hash (an unknown account), the same work
/// against a dummy hash, so that timing does not tell which names exist.
async fn verify(secret: &str, hash: Option<String>, slot: Slot) -> (bool, Option<Slot>) {
    let secret = secret.to_owned();
    let work = tokio::task::spawn_blocking(move || {
        let ok = match hash {
            Some(h) => credentials::verify_secret(&secret, &h),
            None => {
                let _ = credentials::verify_secret(&secret, &DUMMY_HASH);
                false
            }
        };
        (ok, slot)
    });
    match work.await {
        Ok((ok, slot)) => (ok, Some(slot)),
        Err(_) => (false, None),
    }
}
