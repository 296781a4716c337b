//! Access control, in one place: every request under `/v2/` passes [`gate::check`] before any handler runs, and
//! tokens come from [`endpoint`]. Handlers never look at credentials; the catalog alone reads the [`Caller`] the
//! gate leaves in the request, to list only what the caller may pull.
//!
//! - [`scope`]: pure vocabulary (actions, patterns, token scopes);
//! - [`need`]: what a classified request ([`crate::route`]) needs;
//! - [`policy`]: accounts and grants in memory, reloaded within a second of any change in SQL;
//! - [`credentials`]: the `Authorization` header, Argon2id, the verified-credential cache;
//! - [`login`]: checking a user name and password; [`throttle`]: the lock-outs and bounds it runs under;
//! - [`token`]: JWT issue and verification (own sealed key, external issuers' JWKS).

pub mod credentials;
pub mod endpoint;
pub mod gate;
mod login;
pub mod need;
pub mod policy;
pub mod proxy;
pub mod scope;
pub mod session;
pub mod throttle;
pub mod token;
mod visible;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use wharf_format::seal::Kek;
use wharf_storage::{AccountKind, AccountRow, Clock, GrantRow, Metadata};

use credentials::BasicCache;
use policy::{Policy, Principal};
use scope::{Actions, Resource, Scope};
use throttle::{Limits, Slots, Throttle};
use token::{Claims, TokenKeys, TrustedIssuer};

/// The administrator account created at the first start with auth on.
pub const FIRST_ADMIN: &str = "admin";

/// The peer address of a connection, put in each request's extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The `service` of challenges and the `aud` of tokens.
    pub service: String,
    /// The `iss` of tokens.
    pub issuer: String,
    /// The token endpoint's URL in challenges; default: this server's `/auth/token` at the request's host.
    pub realm: Option<String>,
    pub token_lifetime_secs: i64,
    pub refresh_lifetime_secs: i64,
    /// Failed logins of one account from one address before their lock-out.
    pub throttle_after: u32,
    /// Failed logins from one address, over all accounts, before the address's lock-out.
    pub throttle_address_after: u32,
    pub throttle_base: Duration,
    pub throttle_max: Duration,
    /// Password verifications (Argon2id, 19 MiB each) under way at once: per account, per address, in all.
    pub verify_per_account: u32,
    pub verify_per_address: u32,
    pub verify_max: u32,
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Proxies whose `X-Forwarded-For` names the client (for the address throttle).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The first administrator's password (`WHARF_ADMIN_PASSWORD`); `None`: a random one, printed once.
    pub admin_password: Option<String>,
    /// How long a web interface session lasts (`[ui] session_lifetime`).
    pub web_session_secs: i64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            service: "wharf".into(),
            issuer: "wharf".into(),
            realm: None,
            token_lifetime_secs: 300,
            refresh_lifetime_secs: 30 * 86_400,
            throttle_after: 5,
            throttle_address_after: 10,
            throttle_base: Duration::from_secs(1),
            throttle_max: Duration::from_secs(900),
            verify_per_account: 2,
            verify_per_address: 2,
            verify_max: std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
            trusted_issuers: Vec::new(),
            trusted_proxies: Vec::new(),
            admin_password: None,
            web_session_secs: 12 * 3600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("storage")]
    Storage(#[from] wharf_storage::Error),
    #[error(transparent)]
    Token(#[from] token::TokenError),
    #[error("{0}")]
    Other(String),
}

/// A verified bearer token: its claims, whether an external issuer signed it, and the scopes it grants (parsed
/// once, at verification, not per request).
pub struct Verified {
    pub claims: Claims,
    pub external: bool,
    pub granted: Arc<Vec<Scope>>,
}

/// Verified bearer tokens, so that signatures are checked once per token, not per request.
type TokenCache = Mutex<HashMap<String, Arc<Verified>>>;

pub struct Auth {
    pub settings: AuthSettings,
    meta: Metadata,
    keys: TokenKeys,
    policy: RwLock<Arc<Policy>>,
    basic: BasicCache,
    tokens: TokenCache,
    throttle: Arc<Throttle>,
    slots: Arc<Slots>,
    flights: login::Flights,
    clock: Box<dyn Clock>,
    /// Whether the server speaks HTTPS (for the default realm's scheme).
    pub tls: bool,
    /// What a login records (its audit row); silent until the server sets its recorder.
    pub recorder: Arc<dyn wharf_storage::Recorder>,
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadCredentials,
    /// Locked out, or too many verifications under way: retry after this many seconds.
    Throttled(u64),
}

impl Auth {
    /// The client's address for the throttle: the connection's peer, or behind a trusted proxy the address it
    /// forwarded (see `proxy`).
    pub fn client_ip(&self, req: &axum::extract::Request) -> Option<std::net::IpAddr> {
        let peer = req.extensions().get::<ClientAddr>()?.0.ip();
        let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        Some(proxy::client_ip(peer, forwarded, &self.settings.trusted_proxies))
    }

    /// Loads keys and policy, and creates the first administrator if there is no account.
    pub async fn open(
        meta: Metadata,
        kek: &Kek,
        settings: AuthSettings,
        clock: Box<dyn Clock>,
        tls: bool,
    ) -> Result<Auth, AuthError> {
        let keys = TokenKeys::load(&meta, kek, &settings.issuer, &settings.service, &settings.trusted_issuers).await?;
        let limits = Limits {
            after: settings.throttle_after,
            address_after: settings.throttle_address_after,
            base: settings.throttle_base,
            max: settings.throttle_max,
        };
        let throttle = Arc::new(Throttle::new(limits));
        let slots = Arc::new(Slots::new(settings.verify_per_account, settings.verify_per_address, settings.verify_max));
        let auth = Auth {
            settings,
            meta,
            keys,
            policy: RwLock::new(Arc::new(Policy::default())),
            basic: BasicCache::new(Duration::from_secs(300)),
            tokens: Mutex::new(HashMap::new()),
            throttle,
            slots,
            flights: login::Flights::default(),
            clock,
            tls,
            recorder: Arc::new(wharf_storage::meta::Silent),
        };
        auth.first_admin().await?;
        auth.reload().await?;
        Ok(auth)
    }

    async fn first_admin(&self) -> Result<(), AuthError> {
        if !self.meta.accounts().list().await?.is_empty() {
            return Ok(());
        }
        let (password, shown) = match &self.settings.admin_password {
            Some(p) => (p.clone(), false),
            None => (random_secret(), true),
        };
        let hash = tokio::task::spawn_blocking(move || credentials::hash_secret(&password).map(|h| (h, password)))
            .await
            .map_err(|e| AuthError::Other(e.to_string()))?
            .map_err(AuthError::Other)?;
        let now = self.clock.now();
        let row = AccountRow {
            name: FIRST_ADMIN.into(),
            kind: AccountKind::User,
            secret_hash: hash.0,
            expires_at: None,
            created_at: now,
        };
        let grant = GrantRow { account: FIRST_ADMIN.into(), pattern: "**".into(), actions: "admin".into() };
        if self.meta.accounts().add_first(&row, &[grant], now).await? {
            tracing::warn!(account = FIRST_ADMIN, "created the first administrator");
            if shown {
                // Shown once, on the terminal, never in the log.
                eprintln!(
                    "wharf: created administrator {FIRST_ADMIN:?} with password {} (shown only now; change it with \
                     `wharf admin user passwd {FIRST_ADMIN}`)",
                    hash.1
                );
            }
        }
        Ok(())
    }

    /// Rebuilds the policy from SQL if its generation changed.
    pub async fn reload(&self) -> Result<(), AuthError> {
        let generation = self.meta.accounts().generation().await?;
        if generation == self.policy().generation && self.policy().has_accounts() {
            return Ok(());
        }
        let (policy, problems) =
            Policy::build(generation, self.meta.accounts().list().await?, self.meta.accounts().grants().await?);
        for p in problems {
            tracing::error!(problem = %p, "ignoring a stored grant");
        }
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }

    /// Reloads the policy every second while the server runs.
    pub fn spawn_reload(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let auth = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = auth.reload().await {
                    tracing::error!(error = %crate::error::chain(&e), "reloading accounts and grants");
                }
            }
        })
    }

    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Verifies a bearer token (cached per token); `None` if invalid, expired or its account is gone.
    pub fn bearer(&self, token: &str) -> Option<Arc<Verified>> {
        let now = self.clock.now();
        let cached = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        let verified = match cached {
            Some(v) => v,
            None => {
                let (claims, external) = self.keys.verify(token).ok()?;
                let granted = Arc::new(claims.granted());
                let v = Arc::new(Verified { claims, external, granted });
                let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= 16 * 1024 {
                    map.clear();
                }
                map.insert(token.to_owned(), Arc::clone(&v));
                v
            }
        };
        let (claims, external) = (&verified.claims, verified.external);
        if claims.is_refresh() || now >= claims.exp + 5 || now + 5 < claims.nbf {
            return None;
        }
        if !external && claims.sub != policy::ANONYMOUS && self.policy().active(&claims.sub, now).is_none() {
            return None;
        }
        Some(verified)
    }

    /// What `who` is granted of `wanted`: each scope's actions cut to what the policy allows. The catalog is
    /// granted to everyone: its listing is filtered by pull rights.
    pub fn grant(&self, who: &Principal, wanted: &[Scope]) -> Vec<Scope> {
        let policy = self.policy();
        wanted
            .iter()
            .filter_map(|s| {
                let actions = match &s.resource {
                    Resource::Catalog => Actions::ALL,
                    Resource::Repository(n) => s.actions.intersect(policy.actions(who, n)),
                };
                (!actions.is_empty()).then(|| Scope { resource: s.resource.clone(), actions })
            })
            .collect()
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }
}

/// 32 random bytes, base64url: robot secrets and generated passwords.
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
}

/// Who the gate let in, and what the catalog may list for them.
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    /// Token claims, when the caller presented a token.
    pub claims: Option<Arc<Vec<Scope>>>,
    pub policy: Arc<Policy>,
}

impl Caller {
    /// Whether the caller may do `actions` on `resource`.
    pub fn allows(&self, scope: &Scope) -> bool {
        match &self.claims {
            Some(claims) => claims.iter().any(|c| c.resource == scope.resource && c.actions.contains(scope.actions)),
            None => match &scope.resource {
                Resource::Catalog => self.principal != Principal::Anonymous,
                Resource::Repository(n) => self.policy.actions(&self.principal, n).contains(scope.actions),
            },
        }
    }

    /// Whether the caller administers the whole registry: an account granted every action on `**` (as the first
    /// administrator is). The web interface shows accounts, the audit log and quotas only to such callers.
    pub fn is_administrator(&self) -> bool {
        match &self.principal {
            Principal::Account(_) if self.claims.is_none() => self.policy.administers_all(&self.principal),
            _ => false,
        }
    }

    /// Whether the catalog shows `repo` to this caller.
    pub fn may_pull(&self, repo: &str) -> bool {
        match self.principal {
            Principal::External(_) => {
                self.allows(&Scope { resource: Resource::Repository(repo.into()), actions: Actions::PULL })
            }
            _ => self.policy.actions(&self.principal, repo).contains(Actions::PULL),
        }
    }
}
