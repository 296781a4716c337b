//! The publisher's side of trust: private keys kept sealed under a passphrase, `trust init` (root and targets
//! keys, the service's timestamp and snapshot keys, the first metadata), and signing or revoking tags by
//! publishing new targets metadata. Signing an index signs the index digest.

mod keys;
mod signers;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use keys::KeyStore;

use crate::io::transport::{Transport, TransportError};
use crate::io::trust::{refresh, TrustError};
use crate::io::tuf::local::Memory;
use crate::io::tuf::updater::Options;
use wharf_format::digest::Digest;
use wharf_format::name::{RepositoryName, Tag};
use wharf_format::seal::SealError;
use wharf_format::tuf::{
    Envelope, Expires, PublicKey, RoleKeys, Root, SigningKey, TargetFile, Targets, TufError, SPEC_VERSION,
};

/// Lifetimes of what the publisher signs: root one year, targets 90 days.
const ROOT_LIFETIME: i64 = 365 * 86_400;
const TARGETS_LIFETIME: i64 = 90 * 86_400;

/// What publishing can fail on. The trust service's own refusal stays its text ([`PublishError::Refused`]); every
/// other cause is kept as a typed source.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("key store")]
    Io(#[from] std::io::Error),
    #[error("no {role} key for {repo} in {dir}: run `wharf trust init` first")]
    NoKey { role: String, repo: String, dir: String },
    #[error("a private key would not open: wrong passphrase?")]
    Passphrase(#[from] SealError),
    #[error("private key file {path} is damaged")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: keys::KeyFileError,
    },
    #[error("the publisher's record {path} is damaged")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the trust service's answer: {what} is not as expected")]
    Answer {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The service's answer to a refused request, as it wrote it.
    #[error("the trust service refused: {0}")]
    Refused(String),
    #[error("the trust service has no targets metadata for the repository")]
    NoTargets,
    #[error("no signer {0}")]
    NoSigner(String),
    #[error("unknown role {0}: root, targets, timestamp or snapshot")]
    UnknownRole(String),
    #[error("the current root defines no {0} role")]
    NoRole(String),
    #[error("{0} is already initialised (its root is in {1})")]
    AlreadyInitialised(String, String),
}

impl PublishError {
    /// The class of this failure (for the exit code).
    pub fn failure(&self) -> crate::io::source::Failure {
        use crate::io::source::Failure;
        match self {
            PublishError::Transport(e) => e.failure(),
            PublishError::Trust(e) => e.failure(),
            PublishError::Tuf(_) => Failure::Verification,
            PublishError::Io(_)
            | PublishError::NoKey { .. }
            | PublishError::Passphrase(_)
            | PublishError::KeyFile { .. }
            | PublishError::State { .. }
            | PublishError::Encode { .. }
            | PublishError::Answer { .. }
            | PublishError::Refused(_)
            | PublishError::NoTargets
            | PublishError::NoSigner(_)
            | PublishError::UnknownRole(_)
            | PublishError::NoRole(_)
            | PublishError::AlreadyInitialised(..) => Failure::Other,
        }
    }
}

/// What the publisher records per repository: its key ids and the newest root it signed.
#[derive(Serialize, Deserialize)]
struct RepoState {
    root_key: String,
    targets_key: String,
    root: Envelope,
}

pub struct Publisher {
    pub transport: Transport,
    pub host: String,
    pub repo: RepositoryName,
    pub keys: KeyStore,
    /// `<config>/trust/repos`
    pub state_dir: PathBuf,
}

/// Passphrases for root keys and for repository (targets) keys.
pub struct Passphrases {
    pub root: Vec<u8>,
    pub repository: Vec<u8>,
}

impl Publisher {
    fn state_path(&self) -> PathBuf {
        let host = crate::io::store::host_dir(&self.host);
        self.state_dir.join(host).join(format!("{}.json", self.repo))
    }

    fn state(&self) -> Result<RepoState, PublishError> {
        let p = self.state_path();
        let text = std::fs::read(&p).map_err(|_| PublishError::NoKey {
            role: "targets".into(),
            repo: self.repo.to_string(),
            dir: p.display().to_string(),
        })?;
        serde_json::from_slice(&text).map_err(|source| PublishError::State { path: p, source })
    }

    fn write_state(&self, state: &RepoState) -> Result<(), PublishError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|source| PublishError::Encode { what: "the publisher's record", source })?;
        Ok(std::fs::write(self.state_path(), bytes)?)
    }

    /// The path of the root this publisher trusts, for pinning (`--trust-root`).
    pub fn root_path(&self) -> PathBuf {
        self.state_path().with_extension("root.json")
    }

    async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, PublishError> {
        let url = self.transport.url(path);
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|source| PublishError::Encode { what: "the request", source })?;
        let make = || {
            let req = self.transport.http().post(&url);
            match &body {
                Some(b) => req.header("content-type", "application/json").body(b.clone()),
                None => req,
            }
        };
        let resp = self.transport.send(make).await?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(TransportError::Denied { url, status }.into());
        }
        let ok = resp.status().is_success();
        let text = resp.text().await.unwrap_or_else(|e| format!("(the answer could not be read: {e})"));
        if !ok {
            return Err(PublishError::Refused(text));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `trust init`: root and targets keys, the service's keys, root v1 and an empty targets v1.
    pub async fn init(&self, pass: &Passphrases, now: i64) -> Result<PathBuf, PublishError> {
        if self.state_path().exists() {
            return Err(PublishError::AlreadyInitialised(
                self.repo.to_string(),
                self.root_path().display().to_string(),
            ));
        }
        let svc = self.post(&format!("/v2/{}/_tuf/keys", self.repo), None).await?;
        let service_key = |role: &str| -> Result<PublicKey, PublishError> {
            serde_json::from_value(svc[role][0]["key"].clone())
                .map_err(|source| PublishError::Answer { what: "the service keys", source })
        };
        let (ts, snap) = (service_key("timestamp")?, service_key("snapshot")?);
        let root_key = self.keys.generate("root", &pass.root)?;
        let targets_key = self.keys.generate("targets", &pass.repository)?;
        let role = |k: &PublicKey| RoleKeys { keyids: vec![k.key_id()], threshold: 1 };
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: true,
            version: 1,
            expires: Expires(now + ROOT_LIFETIME),
            keys: [root_key.public(), targets_key.public(), &ts, &snap]
                .iter()
                .map(|k| (k.key_id(), (*k).clone()))
                .collect(),
            roles: BTreeMap::from([
                ("root".into(), role(root_key.public())),
                ("targets".into(), role(targets_key.public())),
                ("timestamp".into(), role(&ts)),
                ("snapshot".into(), role(&snap)),
            ]),
        };
        let targets = Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: Expires(now + TARGETS_LIFETIME),
            targets: BTreeMap::new(),
            delegations: None,
        };
        let root_env = Envelope::sign(&root, &[&root_key])?;
        let body = json!({"root": root_env, "targets": Envelope::sign(&targets, &[&targets_key])?});
        self.post(&format!("/v2/{}/_tuf/publish", self.repo), Some(&body)).await?;
        let state = RepoState {
            root_key: root_key.key_id().clone(),
            targets_key: targets_key.key_id().clone(),
            root: root_env.clone(),
        };
        let p = self.state_path();
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        self.write_state(&state)?;
        std::fs::write(self.root_path(), root_env.to_bytes()?)?;
        Ok(self.root_path())
    }

    /// The current targets, verified through the full workflow from the publisher's own root.
    async fn current_targets(&self, now: i64) -> Result<(RepoState, Targets), PublishError> {
        let state = self.state()?;
        let u = refresh(&self.transport, &self.repo, &state.root.to_bytes()?, Memory::default(), &Options::new(now))
            .await?;
        let t = u.trusted().targets().cloned().ok_or(PublishError::NoTargets)?;
        Ok((state, t))
    }

    async fn publish_targets(
        &self,
        state: &RepoState,
        mut t: Targets,
        pass: &[u8],
        now: i64,
    ) -> Result<u64, PublishError> {
        t.version += 1;
        t.expires = Expires(now + TARGETS_LIFETIME);
        let key = self.keys.load(&state.targets_key, pass)?;
        let body = json!({"targets": Envelope::sign(&t, &[&key])?});
        self.post(&format!("/v2/{}/_tuf/publish", self.repo), Some(&body)).await?;
        Ok(t.version)
    }

    /// Signs `opts.tag` as `opts.manifest`, into top-level targets or, with `opts.signer`, into that delegated
    /// role with the local key of that name; returns the new version of the role signed.
    pub async fn sign(&self, opts: &SignOptions<'_>) -> Result<u64, PublishError> {
        match opts.signer {
            Some(signer) => self.sign_as(signer, opts).await,
            None => {
                let (state, mut t) = self.current_targets(opts.now).await?;
                t.targets.insert(opts.tag.to_string(), target_file(opts.manifest));
                self.publish_targets(&state, t, opts.pass, opts.now).await
            }
        }
    }

    /// Signs every tag of `tags` into top-level targets, in one new targets version (`trust migrate`).
    pub async fn sign_all(&self, tags: &[(Tag, SignedManifest)], pass: &[u8], now: i64) -> Result<u64, PublishError> {
        let (state, mut t) = self.current_targets(now).await?;
        for (tag, m) in tags {
            t.targets.insert(tag.to_string(), target_file(m));
        }
        self.publish_targets(&state, t, pass, now).await
    }

    /// Whether this machine holds the publisher's keys and record for the repository (`trust init` ran here).
    pub fn is_initialised(&self) -> bool {
        self.state_path().exists()
    }

    /// The manifest `tag` names on the registry now, as it would be signed: its length, digest and media type.
    pub async fn fetch_manifest(&self, tag: &Tag) -> Result<SignedManifest, PublishError> {
        let path = format!("/v2/{}/manifests/{tag}", self.repo);
        let resp = self.transport.get(&path, &[("accept", crate::io::pull::MANIFEST_ACCEPT.to_string())]).await?;
        let media_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let url = self.transport.url(&path);
        let body = self.transport.read_bounded(resp, &url, crate::io::pull::MAX_MANIFEST).await?;
        Ok(SignedManifest { length: body.len() as u64, digest: Digest::sha256_of(&body), media_type })
    }

    /// Rotates a role's key (`trust key rotate`): a new root (version + 1, signed by the old and the new root keys)
    /// names the new key; for targets, the targets metadata is re-signed with it in the same publish; timestamp and
    /// snapshot keys are rotated by the service.
    pub async fn rotate(&self, role: &str, pass: &Passphrases, now: i64) -> Result<u64, PublishError> {
        let mut state = self.state()?;
        let (_, targets) = self.current_targets(now).await?;
        let mut root: Root = state.root.decode()?;
        let old_root_key = self.keys.load(&state.root_key, &pass.root)?;
        let mut signers = vec![old_root_key.clone()];
        let mut new_targets = None;
        let new_key: PublicKey = match role {
            "root" => {
                let k = self.keys.generate("root", &pass.root)?;
                state.root_key = k.key_id().clone();
                signers.push(k.clone());
                k.public().clone()
            }
            "targets" => {
                let k = self.keys.generate("targets", &pass.repository)?;
                state.targets_key = k.key_id().clone();
                let mut t = targets.clone();
                t.version += 1;
                t.expires = Expires(now + TARGETS_LIFETIME);
                new_targets = Some(Envelope::sign(&t, &[&k])?);
                k.public().clone()
            }
            "timestamp" | "snapshot" => {
                let v = self.post(&format!("/v2/{}/_tuf/keys/{role}/rotate", self.repo), None).await?;
                serde_json::from_value(v["key"].clone())
                    .map_err(|source| PublishError::Answer { what: "the rotated key", source })?
            }
            other => return Err(PublishError::UnknownRole(other.into())),
        };
        let old_ids =
            root.roles.get(role).map(|r| r.keyids.clone()).ok_or_else(|| PublishError::NoRole(role.into()))?;
        root.keys.retain(|id, _| {
            !old_ids.contains(id) || root.roles.iter().any(|(n, r)| n != role && r.keyids.contains(id))
        });
        root.keys.insert(new_key.key_id(), new_key.clone());
        root.roles.insert(role.into(), RoleKeys { keyids: vec![new_key.key_id()], threshold: 1 });
        root.version += 1;
        root.expires = Expires(now + ROOT_LIFETIME);
        let refs: Vec<&SigningKey> = signers.iter().collect();
        let env = Envelope::sign(&root, &refs)?;
        let mut body = json!({"root": env});
        if let Some(t) = new_targets {
            body["targets"] =
                serde_json::to_value(t).map_err(|source| PublishError::Encode { what: "the targets", source })?;
        }
        self.post(&format!("/v2/{}/_tuf/publish", self.repo), Some(&body)).await?;
        state.root = env;
        self.write_state(&state)?;
        std::fs::write(self.root_path(), state.root.to_bytes()?)?;
        Ok(root.version)
    }

    /// Removes `tag` from the signed targets.
    pub async fn revoke(&self, tag: &str, pass: &[u8], now: i64) -> Result<u64, PublishError> {
        let (state, mut t) = self.current_targets(now).await?;
        if t.targets.remove(tag).is_none() {
            return Err(PublishError::Trust(TrustError::NotSigned(tag.into())));
        }
        self.publish_targets(&state, t, pass, now).await
    }
}

/// A tag's target: the manifest's length and sha256, and its media type.
fn target_file(m: &SignedManifest) -> TargetFile {
    TargetFile {
        length: m.length,
        hashes: BTreeMap::from([("sha256".to_string(), m.digest.hex().to_string())]),
        custom: Some(json!({ "mediaType": m.media_type })),
    }
}

/// A manifest as it is signed: length, digest (sha256) and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    pub length: u64,
    pub digest: Digest,
    pub media_type: String,
}

/// What `trust sign` signs, and with what.
pub struct SignOptions<'a> {
    pub tag: &'a Tag,
    pub manifest: &'a SignedManifest,
    /// A delegated signer's name; `None` signs into top-level targets.
    pub signer: Option<&'a str>,
    pub pass: &'a [u8],
    pub now: i64,
}
