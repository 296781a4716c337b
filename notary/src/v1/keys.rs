//! The server-held timestamp and snapshot keys of Notary v1 collections: ed25519 (as notary-server's signer makes
//! them), sealed under the trust service's key-encryption key like the TUF 1.0 service keys, and kept across
//! restarts and collection deletions. A replaced key keeps signing until a root that names its successor arrives.

use rand_core::{OsRng, RngCore};
use wharf_format::notary::{Gun, Key, Root, Signer};
use wharf_format::seal::Kek;
use wharf_storage::{Metadata, UnixTime, V1KeyRow};

use crate::error::V1Error;

/// A held key, unsealed for signing.
#[derive(Debug, Clone)]
pub struct HeldKey {
    pub role: String,
    pub id: String,
    pub signer: Signer,
    pub created_at: UnixTime,
}

fn aad(gun: &Gun, role: &str, key_id: &str) -> Vec<u8> {
    format!("wharf-notary-v1-key\0{gun}\0{role}\0{key_id}").into_bytes()
}

/// Every held key of the collection, oldest first.
pub async fn load(meta: &Metadata, kek: &Kek, gun: &Gun) -> Result<Vec<HeldKey>, V1Error> {
    let mut out = Vec::new();
    for row in meta.notary_v1().keys(gun).await? {
        let secret = kek.open(&row.sealed_private, &aad(gun, &row.role, &row.key_id))?;
        let bytes: [u8; 32] = secret.try_into().map_err(|_| V1Error::Internal("sealed key has a bad length"))?;
        out.push(HeldKey {
            role: row.role,
            id: row.key_id,
            signer: Signer::ed25519(&bytes),
            created_at: row.created_at,
        });
    }
    Ok(out)
}

/// Makes and stores a new key for `role`, newer than every earlier one.
pub async fn create(
    meta: &Metadata,
    kek: &Kek,
    gun: &Gun,
    role: &str,
    held: &[HeldKey],
    now: UnixTime,
    journal: &wharf_storage::Journal,
) -> Result<HeldKey, V1Error> {
    let now = held.iter().filter(|k| k.role == role).map(|k| k.created_at + 1).fold(now, i64::max);
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let signer = Signer::ed25519(&secret);
    let public = signer.public();
    let id = public.id();
    let row = V1KeyRow {
        role: role.into(),
        key_id: id.clone(),
        public_key: serde_json::to_string(&public).map_err(V1Error::Encode)?,
        sealed_private: kek.seal(&secret, &aad(gun, role, &id)),
        created_at: now,
    };
    secret.fill(0);
    meta.notary_v1().add_key_recorded(gun, &row, journal).await?;
    Ok(HeldKey { role: role.into(), id, signer, created_at: now })
}

/// The held keys `root` lists for `role`, newest first: the ones that sign it.
pub fn signers<'a>(held: &'a [HeldKey], root: &Root, role: &str) -> Vec<&'a HeldKey> {
    let named = root.roles.get(role).map(|r| r.keyids.as_slice()).unwrap_or_default();
    let mut out: Vec<&HeldKey> = held.iter().filter(|k| k.role == role && named.contains(&k.id)).collect();
    out.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    out
}

/// What `GET <role>.key` answers: the newest held key the current root lists for the role, else the newest held
/// key for the role (one a client may be about to put in a root), else none (the caller creates one).
pub fn current<'a>(held: &'a [HeldKey], root: Option<&Root>, role: &str) -> Option<&'a HeldKey> {
    root.and_then(|r| signers(held, r, role).into_iter().next())
        .or_else(|| held.iter().filter(|k| k.role == role).max_by_key(|k| k.created_at))
}

/// The key's JSON as notary-server answers it: `{"keytype","keyval":{"public","private":null}}`.
pub fn public_json(k: &HeldKey) -> Vec<u8> {
    let Key { keytype, keyval } = k.signer.public();
    format!(r#"{{"keytype":"{keytype}","keyval":{{"public":"{}","private":null}}}}"#, keyval.public).into_bytes()
}
