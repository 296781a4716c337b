//! The service's timestamp and snapshot keys: created on request, sealed at rest, rotated on request. A replaced
//! key keeps signing until a root that no longer names it is published.

use rand_core::{OsRng, RngCore};
use wharf_format::tuf::{PublicKey, Role, Root, SigningKey};
use wharf_format::RepositoryName;
use wharf_storage::{Journal, KeyRow, Metadata, UnixTime};

use crate::Error;
use wharf_format::seal::Kek;

/// A service key, unsealed in memory for signing.
#[derive(Debug, Clone)]
pub struct ServiceKey {
    pub role: Role,
    pub key: SigningKey,
    pub created_at: UnixTime,
}

fn aad(repo: &RepositoryName, role: &str, key_id: &str) -> Vec<u8> {
    format!("wharf-trust-key\0{repo}\0{role}\0{key_id}").into_bytes()
}

/// Every service key of the repository, oldest first.
pub async fn load(meta: &Metadata, kek: &Kek, repo: &RepositoryName) -> Result<Vec<ServiceKey>, Error> {
    let rows = meta.trust().keys(repo).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let role = row.role;
        if !matches!(role, Role::Timestamp | Role::Snapshot) {
            continue;
        }
        let secret = kek.open(&row.sealed_private, &aad(repo, role.as_str(), &row.key_id))?;
        let bytes: [u8; 32] = secret.try_into().map_err(|_| Error::Internal("sealed key has a bad length"))?;
        out.push(ServiceKey { role, key: SigningKey::from_bytes(&bytes), created_at: row.created_at });
    }
    Ok(out)
}

/// Creates a new key for `role` (timestamp or snapshot) and stores it sealed. Its creation time is after every
/// earlier key's, so "newest" is never ambiguous.
pub async fn create(
    meta: &Metadata,
    kek: &Kek,
    repo: &RepositoryName,
    role: Role,
    now: UnixTime,
    journal: &Journal,
) -> Result<ServiceKey, Error> {
    let newest = meta.trust().keys(repo).await?.iter().filter(|k| k.role == role).map(|k| k.created_at).max();
    let now = newest.map_or(now, |n| now.max(n + 1));
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let key = SigningKey::from_bytes(&secret);
    secret.fill(0);
    let public = serde_json::to_string(key.public()).map_err(Error::Encode)?;
    let row = KeyRow {
        role,
        key_id: key.key_id().clone(),
        public_key: public,
        sealed_private: kek.seal(&key.secret_bytes(), &aad(repo, role.as_str(), key.key_id())),
        created_at: now,
    };
    meta.trust().add_key_recorded(repo, &row, journal).await?;
    Ok(ServiceKey { role, key, created_at: now })
}

/// The keys that sign `role` under `root`: the service keys root names for it, newest first.
pub fn signers<'a>(keys: &'a [ServiceKey], root: &Root, role: Role) -> Vec<&'a SigningKey> {
    // A root without the role names no key for it: the caller then finds no signer and says so.
    let named = root.roles.get(role.as_str()).map(|r| r.keyids.clone()).unwrap_or_default();
    let mut out: Vec<&ServiceKey> = keys.iter().filter(|k| k.role == role && named.contains(k.key.key_id())).collect();
    out.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    out.into_iter().map(|k| &k.key).collect()
}

/// The newest key per role, as the publisher needs them to write root.
pub fn newest(keys: &[ServiceKey], role: Role) -> Option<&ServiceKey> {
    keys.iter().filter(|k| k.role == role).max_by_key(|k| k.created_at)
}

/// The public description the API returns for a key.
pub fn describe(k: &ServiceKey) -> serde_json::Value {
    let public: &PublicKey = k.key.public();
    serde_json::json!({ "keyid": k.key.key_id(), "key": public, "created": wharf_format::tuf::format_time(k.created_at) })
}
