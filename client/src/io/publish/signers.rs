//! Delegated signers: signing as one, and adding or revoking one in the top-level targets.

use std::collections::BTreeMap;

use serde_json::json;

use super::{target_file, PublishError, Publisher, SignOptions, TARGETS_LIFETIME};
use crate::io::trust::{refresh, TrustError};
use crate::io::tuf::local::Memory;
use crate::io::tuf::updater::Options;
use wharf_format::tuf::{DelegatedRole, Delegations, Envelope, Expires, PublicKey, Targets, SPEC_VERSION};

impl Publisher {
    /// Signs `opts.tag` into the delegated role `signer` with the local key of that name.
    pub(super) async fn sign_as(&self, signer: &str, opts: &SignOptions<'_>) -> Result<u64, PublishError> {
        let (pass, now) = (opts.pass, opts.now);
        let state = self.state()?;
        let key_id = self.keys.find(&format!("signer:{signer}")).ok_or_else(|| PublishError::NoKey {
            role: format!("signer {signer}"),
            repo: self.repo.to_string(),
            dir: self.keys.dir().display().to_string(),
        })?;
        let key = self.keys.load(&key_id, pass)?;
        let mut u =
            refresh(&self.transport, &self.repo, &state.root.to_bytes()?, Memory::default(), &Options::new(now))
                .await?;
        // A signer the snapshot does not list has signed nothing yet.
        let current = match u.trusted().snapshot_entry(signer) {
            Ok(_) => {
                u.load_delegated(signer, "targets").await.map_err(TrustError::from)?;
                u.trusted().delegated(signer).cloned()
            }
            Err(_) => None,
        };
        let mut t = current.unwrap_or(Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: Expires(0),
            targets: BTreeMap::new(),
            delegations: None,
        });
        t.targets.insert(opts.tag.to_string(), target_file(opts.manifest));
        t.version += 1;
        t.expires = Expires(now + TARGETS_LIFETIME);
        let body = json!({"delegations": {signer: Envelope::sign(&t, &[&key])?}});
        self.post(&format!("/v2/{}/_tuf/publish", self.repo), Some(&body)).await?;
        Ok(t.version)
    }

    /// Delegates every tag to a signer's key (`trust signer add`), or adds the key to an existing signer.
    pub async fn add_signer(&self, name: &str, key: &PublicKey, pass: &[u8], now: i64) -> Result<u64, PublishError> {
        let (state, mut t) = self.current_targets(now).await?;
        let d = t.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            succinct_roles: None,
        });
        d.keys.insert(key.key_id(), key.clone());
        match d.roles.iter_mut().find(|r| r.name == name) {
            Some(r) if !r.keyids.contains(&key.key_id()) => r.keyids.push(key.key_id()),
            Some(_) => {}
            None => d.roles.push(DelegatedRole {
                name: name.into(),
                keyids: vec![key.key_id()],
                threshold: 1,
                terminating: false,
                paths: Some(vec!["*".into()]),
                path_hash_prefixes: None,
            }),
        }
        self.publish_targets(&state, t, pass, now).await
    }

    /// Revokes a signer's delegation (`trust signer remove`): its signatures stop counting at once.
    pub async fn remove_signer(&self, name: &str, pass: &[u8], now: i64) -> Result<u64, PublishError> {
        let (state, mut t) = self.current_targets(now).await?;
        let d = t.delegations.as_mut().ok_or_else(|| PublishError::NoSigner(name.into()))?;
        let before = d.roles.len();
        d.roles.retain(|r| r.name != name);
        if d.roles.len() == before {
            return Err(PublishError::NoSigner(name.into()));
        }
        let used: std::collections::BTreeSet<String> = d.roles.iter().flat_map(|r| r.keyids.clone()).collect();
        d.keys.retain(|k, _| used.contains(k));
        self.publish_targets(&state, t, pass, now).await
    }
}
