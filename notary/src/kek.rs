//! The key-encryption key: one per installation, derived from the operator's secret and a salt stored on first use.
//! It seals both services' server keys at rest (`tuf::keys`, `v1::keys`), each under its own associated data.

use wharf_format::seal::Kek;
use wharf_storage::Metadata;

use crate::Error;

/// Derives the key-encryption key from `secret` and the installation's salt (created on first use).
pub async fn derive(meta: &Metadata, secret: &[u8]) -> Result<Kek, Error> {
    let mut fresh = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut fresh);
    let salt = meta.settings().init("trust.kek_salt", &fresh).await?;
    let secret = secret.to_vec();
    // Argon2 is deliberately slow: keep it off the async workers.
    Ok(tokio::task::spawn_blocking(move || Kek::derive(&secret, &salt)).await.map_err(Error::Task)??)
}
