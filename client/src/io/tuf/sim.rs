//! An in-memory TUF repository for the updater's tests, like go-tuf's and python-tuf's `RepositorySimulator`:
//! documents held as values, signed and served as files by name on [`Sim::publish`], with statuses to serve
//! instead of files and a log of what was fetched. It implements [`Fetcher`], so the whole workflow runs without
//! HTTP.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::fetch::Fetcher;
use crate::io::transport::TransportError;
use wharf_format::digest::Digest;
use wharf_format::tuf::{
    DelegatedRole, Delegations, Envelope, Expires, MetaFile, RoleKeys, Root, SigningKey, Snapshot, TargetFile, Targets,
    Timestamp, SPEC_VERSION,
};

/// The clock every test reads, and a day later (the default expiry).
pub const NOW: i64 = 1_900_000_000;
pub const LATER: i64 = NOW + 86_400;

/// Key `n` (the same bytes every run): 1 root, 2 targets, 3 snapshot, 4 timestamp by default.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub struct Sim {
    /// Root as it will next be signed ([`Sim::publish_root`]), and the keys that sign it.
    pub root: Root,
    pub root_signers: Vec<u8>,
    pub timestamp: Timestamp,
    pub snapshot: Snapshot,
    pub targets: Targets,
    /// Delegated roles by name, each with the key that signs it.
    pub delegated: BTreeMap<String, (Targets, u8)>,
    /// The key that signs each of timestamp, snapshot and targets.
    pub signer: BTreeMap<&'static str, u8>,
    /// A length for snapshot in the timestamp's meta (none by default, as in python-tuf's simulator).
    pub snapshot_length: Option<u64>,
    /// What is served, by file name; a status here is served instead of the file.
    pub files: BTreeMap<String, Vec<u8>>,
    pub statuses: BTreeMap<String, u16>,
    /// Every file name asked for, in order.
    pub log: Mutex<Vec<String>>,
}

fn role_keys(keys: &[u8], threshold: u32) -> RoleKeys {
    RoleKeys { keyids: keys.iter().map(|k| key(*k).key_id().clone()).collect(), threshold }
}

/// An empty targets document of `version`.
pub fn targets_doc(version: u64) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires(LATER),
        targets: BTreeMap::new(),
        delegations: None,
    }
}

/// A target file of `content`.
pub fn target_file(content: &[u8]) -> TargetFile {
    let sha256 = Digest::sha256_of(content).hex().to_string();
    TargetFile { length: content.len() as u64, hashes: BTreeMap::from([("sha256".into(), sha256)]), custom: None }
}

impl Sim {
    /// Version 1 of everything, published: one key per top-level role (threshold 1), consistent snapshots, and
    /// top-level targets signing `file`.
    pub fn new() -> Sim {
        let mut root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: true,
            version: 1,
            expires: Expires(LATER),
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
        };
        for (role, k) in [("root", 1), ("targets", 2), ("snapshot", 3), ("timestamp", 4)] {
            root.roles.insert(role.into(), role_keys(&[k], 1));
        }
        let meta = |v| MetaFile { version: v, length: None, hashes: None };
        let mut targets = targets_doc(1);
        targets.targets.insert("file".into(), target_file(b"content"));
        let mut sim = Sim {
            root,
            root_signers: vec![1],
            timestamp: Timestamp {
                type_: "timestamp".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires: Expires(LATER),
                meta: BTreeMap::from([("snapshot.json".into(), meta(1))]),
            },
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires: Expires(LATER),
                meta: BTreeMap::new(),
            },
            targets,
            delegated: BTreeMap::new(),
            signer: BTreeMap::from([("targets", 2), ("snapshot", 3), ("timestamp", 4)]),
            snapshot_length: None,
            files: BTreeMap::new(),
            statuses: BTreeMap::new(),
            log: Mutex::new(Vec::new()),
        };
        sim.publish_root();
        sim.publish();
        sim
    }

    /// Signs `root` with `root_signers` and serves it as `<version>.root.json`.
    pub fn publish_root(&mut self) {
        self.sync_root_keys();
        let signers: Vec<SigningKey> = self.root_signers.iter().map(|k| key(*k)).collect();
        let refs: Vec<&SigningKey> = signers.iter().collect();
        let bytes = sign(&self.root, &refs);
        self.files.insert(format!("{}.root.json", self.root.version), bytes);
    }

    /// Gives `role` the keys `keys` with `threshold` in the root signed next.
    pub fn set_role(&mut self, role: &str, keys: &[u8], threshold: u32) {
        self.root.roles.insert(role.into(), role_keys(keys, threshold));
    }

    /// Makes the root role `keys` with `threshold`, signed next by `signers`, at the next version.
    pub fn rotate_root(&mut self, keys: &[u8], threshold: u32, signers: &[u8]) {
        self.root.version += 1;
        self.root.roles.insert("root".into(), role_keys(keys, threshold));
        self.root_signers = signers.to_vec();
        self.publish_root();
    }

    /// Signs and serves targets, every delegated role, snapshot (listing their versions) and timestamp (naming
    /// the snapshot's version), in that order.
    pub fn publish(&mut self) {
        let targets = sign(&self.targets, &[&key(self.signer["targets"])]);
        self.files.insert(format!("{}.targets.json", self.targets.version), targets);
        let mut meta = BTreeMap::from([("targets.json".to_string(), self.meta(self.targets.version))]);
        for (name, (doc, k)) in &self.delegated {
            self.files.insert(format!("{}.{name}.json", doc.version), sign(doc, &[&key(*k)]));
            meta.insert(format!("{name}.json"), self.meta(doc.version));
        }
        self.snapshot.meta = meta;
        let snapshot = sign(&self.snapshot, &[&key(self.signer["snapshot"])]);
        let mut m = self.meta(self.snapshot.version);
        m.length = self.snapshot_length;
        self.timestamp.meta = BTreeMap::from([("snapshot.json".to_string(), m)]);
        self.files.insert(format!("{}.snapshot.json", self.snapshot.version), snapshot);
        let timestamp = sign(&self.timestamp, &[&key(self.signer["timestamp"])]);
        self.files.insert("timestamp.json".into(), timestamp);
    }

    /// Bumps timestamp, snapshot and top-level targets by one version each (a new release), and publishes.
    pub fn release(&mut self) {
        self.targets.version += 1;
        self.snapshot.version += 1;
        self.timestamp.version += 1;
        self.publish();
    }

    /// Adds a delegation from `delegator` (`targets` or a delegated role) to `name`, signed by key `k`, for
    /// `paths`; `name` starts empty at version 1.
    pub fn delegate(&mut self, delegator: &str, name: &str, k: u8, paths: &[&str], terminating: bool) {
        let parent = if delegator == "targets" {
            &mut self.targets
        } else {
            &mut self.delegated.get_mut(delegator).expect("the delegator is added first").0
        };
        let d = parent.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            succinct_roles: None,
        });
        d.keys.insert(key(k).key_id().clone(), key(k).public().clone());
        d.roles.push(DelegatedRole {
            name: name.into(),
            keyids: vec![key(k).key_id().clone()],
            threshold: 1,
            terminating,
            paths: Some(paths.iter().map(|p| p.to_string()).collect()),
            path_hash_prefixes: None,
        });
        self.delegated.insert(name.into(), (targets_doc(1), k));
    }

    /// The names fetched since the last call.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("the log lock is never poisoned in tests"))
    }

    fn meta(&self, version: u64) -> MetaFile {
        MetaFile { version, length: None, hashes: None }
    }

    /// Lists every key a role of root names in `root.keys`.
    fn sync_root_keys(&mut self) {
        let ids: Vec<u8> = (1..=40).collect();
        self.root.keys = ids
            .iter()
            .map(|k| key(*k))
            .filter(|k| self.root.roles.values().any(|r| r.keyids.contains(k.key_id())))
            .map(|k| (k.key_id().clone(), k.public().clone()))
            .collect();
    }

    fn serve(&self, name: &str, max: u64) -> Result<Bytes, TransportError> {
        self.log.lock().expect("the log lock is never poisoned in tests").push(name.to_string());
        if let Some(status) = self.statuses.get(name) {
            return Err(TransportError::Status { url: name.into(), status: *status });
        }
        let bytes = self.files.get(name).ok_or(TransportError::Status { url: name.into(), status: 404 })?;
        if bytes.len() as u64 > max {
            return Err(TransportError::TooLarge { url: name.into(), max });
        }
        Ok(Bytes::from(bytes.clone()))
    }
}

fn sign<T: serde::Serialize>(doc: &T, keys: &[&SigningKey]) -> Vec<u8> {
    Envelope::sign(doc, keys).and_then(|e| e.to_bytes()).expect("test documents sign")
}

impl Fetcher for &Sim {
    async fn metadata(&self, name: &str, max: u64) -> Result<Bytes, TransportError> {
        self.serve(name, max)
    }

    async fn target(&self, path: &str, max: u64) -> Result<Bytes, TransportError> {
        self.serve(&format!("targets/{path}"), max)
    }
}
