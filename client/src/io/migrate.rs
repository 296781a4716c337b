//! `wharf trust migrate`: the way out of Docker Content Trust. A repository's Notary v1 collection is read and
//! verified (the client's Notary v1 workflow, [`crate::io::notary_v1`]), each signed tag is compared with what the
//! registry serves under it, and the tags that agree are published again as TUF 1.0 targets and/or keyed cosign
//! signatures by the caller. A tag whose registry digest differs from its signed digest, or that the registry
//! does not have, is refused and reported: migrating it would sign what the publisher never signed, or sign a
//! digest nobody can pull.
//!
//! The publisher's keys come from docker's trust directory ([`DockerTrustDir`]): the collection's trusted root
//! that docker recorded (`tuf/<GUN>/metadata/root.json`), and the private keys (`private/*.key`, encrypted PKCS#8
//! PEM whose headers name the role and the GUN).

use std::path::{Path, PathBuf};

use crate::io::cosign::{KeyError, Pem, SigstoreKey};
use crate::io::publish::SignedManifest;
use crate::io::pull::{sources, PullError, PullOptions, MANIFEST_ACCEPT, MAX_MANIFEST};
use crate::io::store::ContentStore;
use crate::io::transport::{Transport, TransportError};
use crate::io::trust::SignedTarget;
use wharf_format::digest::Digest;
use wharf_format::name::Tag;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("reading docker's trust directory {}", path.display())]
    TrustDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {role} key for {gun} in {}: is this the publisher's docker trust directory?", dir.display())]
    NoKey { role: String, gun: String, dir: PathBuf },
    #[error("the key file {}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    /// Tags not migrated because the registry disagrees with their signature (listed as `TAG: reason`).
    #[error("{} tag(s) not migrated: {}", .0.len(), .0.join("; "))]
    Refused(Vec<String>),
}

impl MigrateError {
    /// The class of this failure (for the exit code): a refused tag is a verification failure.
    pub fn failure(&self) -> crate::io::source::Failure {
        use crate::io::source::Failure;
        match self {
            MigrateError::Pull(e) => e.failure(),
            MigrateError::Transport(e) => e.failure(),
            MigrateError::Refused(_) => Failure::Verification,
            MigrateError::TrustDir { .. } | MigrateError::NoKey { .. } | MigrateError::Key { .. } => Failure::Other,
        }
    }
}

/// What becomes of one signed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The registry serves the signed manifest: publish it again.
    Migrate(SignedManifest),
    /// The registry serves another manifest under the tag.
    Mismatch { registry: Digest },
    /// The registry has no manifest under the tag (or the tag is not a valid tag name).
    Missing(String),
}

/// One signed tag of the collection, and its fate.
#[derive(Debug, Clone)]
pub struct TagPlan {
    pub signed: SignedTarget,
    pub decision: Decision,
}

impl TagPlan {
    /// Why the tag is not migrated, or `None` when it is.
    pub fn refusal(&self) -> Option<String> {
        match &self.decision {
            Decision::Migrate(_) => None,
            Decision::Mismatch { registry } => Some(format!(
                "{}: the registry serves {registry}, the signature names {}",
                self.signed.name, self.signed.digest
            )),
            Decision::Missing(why) => Some(format!("{}: {why}", self.signed.name)),
        }
    }
}

/// Every signed tag of the image's Notary v1 collection (verified from the root `opts` trusts), each compared
/// with the manifest the registry serves under it now.
pub async fn plan(store: &ContentStore, opts: &PullOptions) -> Result<Vec<TagPlan>, MigrateError> {
    let srcs = sources(opts)?;
    let signed = crate::io::notary_v1::signed_tags(store, &srcs, opts).await?;
    let t = Transport::new(&opts.image.host, &opts.insecure)?;
    let mut out = Vec::with_capacity(signed.len());
    for s in signed {
        let decision = match s.name.parse::<Tag>() {
            Err(_) => Decision::Missing("not a valid tag name".into()),
            Ok(tag) => match registry_manifest(&t, opts, &tag).await {
                Ok(m) if m.digest == s.digest && m.length == s.length => Decision::Migrate(m),
                Ok(m) => Decision::Mismatch { registry: m.digest },
                Err(e) if e.is_not_found() => Decision::Missing("the registry has no manifest under it".into()),
                Err(e) => return Err(e.into()),
            },
        };
        out.push(TagPlan { signed: s, decision });
    }
    Ok(out)
}

/// The manifest the registry serves under `tag`: its length, digest and media type.
async fn registry_manifest(t: &Transport, opts: &PullOptions, tag: &Tag) -> Result<SignedManifest, TransportError> {
    let path = format!("/v2/{}/manifests/{tag}", opts.image.repository);
    let resp = t.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await?;
    let media_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = t.read_bounded(resp, &t.url(&path), MAX_MANIFEST).await?;
    Ok(SignedManifest { length: body.len() as u64, digest: Digest::sha256_of(&body), media_type })
}

/// docker's trust directory: `$DOCKER_CONFIG/trust`, or `~/.docker/trust`.
#[derive(Debug, Clone)]
pub struct DockerTrustDir(pub PathBuf);

impl DockerTrustDir {
    /// The directory docker uses in this environment, unless one is named.
    pub fn locate(named: Option<PathBuf>) -> DockerTrustDir {
        let dir = named
            .or_else(|| std::env::var_os("DOCKER_CONFIG").map(|d| PathBuf::from(d).join("trust")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/trust")))
            .unwrap_or_else(|| PathBuf::from(".docker/trust"));
        DockerTrustDir(dir)
    }

    /// The collection's root as docker last trusted it, if docker recorded one.
    pub fn trusted_root(&self, gun: &str) -> Option<PathBuf> {
        let p = self.0.join("tuf").join(gun).join("metadata/root.json");
        p.is_file().then_some(p)
    }

    /// The private key of `role` (`targets` for the repository key, or a signer's name) for `gun`: the first key
    /// file whose headers name that role and, when they name a GUN, this one.
    pub fn key(&self, gun: &str, role: &str) -> Result<(PathBuf, Pem), MigrateError> {
        let dir = self.0.join("private");
        let mut files = Vec::new();
        collect_keys(&dir, &mut files, 0)?;
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| MigrateError::TrustDir { path: path.clone(), source })?;
            // A file that is not a PEM key is not one of docker's keys: skipped, like docker skips it.
            let Ok(pem) = Pem::parse(&text) else { continue };
            let role_ok = pem.headers.get("role").is_some_and(|r| r == role);
            let gun_ok = pem.headers.get("gun").is_none_or(|g| g == gun);
            if role_ok && gun_ok {
                return Ok((path, pem));
            }
        }
        Err(MigrateError::NoKey { role: role.into(), gun: gun.into(), dir })
    }
}

/// The `*.key` files under `dir` (docker keeps them flat; older releases kept `root_keys/` and `tuf_keys/<GUN>/`).
fn collect_keys(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), MigrateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(MigrateError::TrustDir { path: dir.into(), source }),
    };
    for entry in entries {
        let path = entry.map_err(|source| MigrateError::TrustDir { path: dir.into(), source })?.path();
        if path.is_dir() && depth < 6 {
            collect_keys(&path, out, depth + 1)?;
        } else if path.extension().is_some_and(|e| e == "key") {
            out.push(path);
        }
    }
    Ok(())
}

/// Opens a key file: `pass` is asked for only when the key is encrypted.
pub fn open_key(path: &Path, pem: &Pem, pass: impl FnOnce() -> Option<Vec<u8>>) -> Result<SigstoreKey, MigrateError> {
    let pass = if pem.is_encrypted() { pass() } else { None };
    SigstoreKey::from_pem(pem, pass.as_deref()).map_err(|source| MigrateError::Key { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(dir: &Path, name: &str, headers: &str) {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let key = p256::ecdsa::SigningKey::from_slice(&[name.len() as u8 + 1; 32]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let with_headers = pem.replacen("-----\n", &format!("-----\n{headers}\n"), 1);
        std::fs::write(dir.join(format!("{name}.key")), with_headers).unwrap();
    }

    #[test]
    fn keys_are_found_by_role_and_gun() {
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("private");
        std::fs::create_dir_all(private.join("tuf_keys")).unwrap();
        write_key(&private, "a", "role: root\n");
        write_key(&private, "bb", "gun: example.com/other\nrole: targets\n");
        write_key(&private.join("tuf_keys"), "ccc", "gun: example.com/app\nrole: targets\n");
        write_key(&private, "dddd", "role: alice\n");
        std::fs::write(private.join("junk.key"), "not a key").unwrap();
        let d = DockerTrustDir(tmp.path().to_path_buf());
        let rows = [("targets", Some("ccc.key")), ("alice", Some("dddd.key")), ("root", Some("a.key")), ("bob", None)];
        for (role, expected) in rows {
            let got = d.key("example.com/app", role).ok().and_then(|(p, _)| p.file_name().map(|n| n.to_owned()));
            assert_eq!(got.as_deref().and_then(|n| n.to_str()), expected, "{role}");
        }
        assert!(matches!(d.key("example.com/app", "bob"), Err(MigrateError::NoKey { .. })));
    }
}
