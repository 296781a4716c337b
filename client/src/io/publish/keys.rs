//! The publisher's private keys: one file per key id, each sealed under a passphrase.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PublishError;
use wharf_format::seal::Kek;
use wharf_format::tuf::{PublicKey, SigningKey};

/// What is wrong with a private key file that exists.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("not a sealed key")]
    Json(#[from] serde_json::Error),
    #[error("its salt or sealed key is not hex")]
    Hex(#[from] hex::FromHexError),
    #[error("the key opened to {0} bytes, not 32")]
    Length(usize),
}

#[derive(Serialize, Deserialize)]
struct SealedKey {
    role: String,
    public: PublicKey,
    salt: String,
    sealed: String,
}

/// Private keys under `dir`, one file per key id, each sealed with a passphrase (Argon2id + XChaCha20-Poly1305).
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Where the keys are kept.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn open(dir: &Path) -> std::io::Result<KeyStore> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(KeyStore { dir: dir.to_path_buf() })
    }

    /// Generates a key for `role` and stores it sealed under `passphrase`.
    pub fn generate(&self, role: &str, passphrase: &[u8]) -> Result<SigningKey, PublishError> {
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        let key = SigningKey::from_bytes(&secret);
        secret.fill(0);
        let mut salt = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
        let kek = Kek::derive(passphrase, &salt)?;
        let sealed = kek.seal(&key.secret_bytes(), key.key_id().as_bytes());
        let file = SealedKey {
            role: role.into(),
            public: key.public().clone(),
            salt: hex::encode(salt),
            sealed: hex::encode(sealed),
        };
        let path = self.dir.join(format!("{}.key", key.key_id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        std::io::Write::write_all(
            &mut opts.open(path)?,
            &serde_json::to_vec_pretty(&file)
                .map_err(|source| PublishError::Encode { what: "a private key", source })?,
        )?;
        Ok(key)
    }

    /// The id of the newest key stored for `role` (e.g. `signer:alice`), if any.
    pub fn find(&self, role: &str) -> Option<String> {
        let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let file: SealedKey = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                let when = e.metadata().and_then(|m| m.modified()).ok()?;
                (file.role == role).then(|| (when, file.public.key_id()))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, id)| id)
    }

    pub fn load(&self, key_id: &str, passphrase: &[u8]) -> Result<SigningKey, PublishError> {
        let path = self.dir.join(format!("{key_id}.key"));
        let text = std::fs::read(&path)?;
        let damaged = |source: KeyFileError| PublishError::KeyFile { path: path.clone(), source };
        let file: SealedKey = serde_json::from_slice(&text).map_err(|e| damaged(e.into()))?;
        let salt = hex::decode(&file.salt).map_err(|e| damaged(e.into()))?;
        let sealed = hex::decode(&file.sealed).map_err(|e| damaged(e.into()))?;
        let secret = Kek::derive(passphrase, &salt)?.open(&sealed, key_id.as_bytes())?;
        let bytes: [u8; 32] = secret.try_into().map_err(|s: Vec<u8>| damaged(KeyFileError::Length(s.len())))?;
        Ok(SigningKey::from_bytes(&bytes))
    }
}
