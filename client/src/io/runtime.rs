//! From a pulled image to a running container: unpack its layers into a bundle's `rootfs`, write the OCI runtime
//! `config.json` from the image config, and hand the bundle to an installed runtime (runc, else crun).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::io::snapshot::{SnapshotError, SnapshotStore};
use crate::io::store::ContentStore;
use crate::io::unpack::UnpackOptions;
use wharf_format::digest::Digest;
use wharf_format::image_ref::ImageRef;
use wharf_format::manifest::{Descriptor, ParsedManifest};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0} is not in the local content store: pull it first")]
    NotPulled(String),
    #[error("stored manifest {digest}: {reason}")]
    Manifest { digest: Digest, reason: String },
    #[error("stored manifest {digest}")]
    ManifestParse {
        digest: Digest,
        #[source]
        source: wharf_format::manifest::ManifestError,
    },
    #[error("stored image config {digest}: not JSON")]
    Config {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("local content store")]
    Io(#[from] std::io::Error),
    #[error("image user: {0}")]
    User(String),
    #[error("no OCI runtime found (install runc or crun)")]
    NoRuntime,
}

/// The image manifest (for the platform) and its config, from the local store.
pub fn local_image(
    store: &ContentStore,
    image: &ImageRef,
    platform: &(String, String),
) -> Result<(Descriptor, Vec<Descriptor>), RuntimeError> {
    let top = store.get_ref(image).ok_or_else(|| RuntimeError::NotPulled(image.to_string()))?;
    let parse = |d: &Digest| -> Result<ParsedManifest, RuntimeError> {
        let bytes = store.read(d).map_err(|_| RuntimeError::NotPulled(image.to_string()))?;
        ParsedManifest::parse_inferred(&bytes)
            .map_err(|source| RuntimeError::ManifestParse { digest: d.clone(), source })
    };
    let mut m = parse(&top)?;
    if m.media_type.is_index() {
        let child = m
            .manifests
            .iter()
            .find(|c| {
                c.platform
                    .as_ref()
                    .is_some_and(|p| p["os"] == platform.0.as_str() && p["architecture"] == platform.1.as_str())
            })
            .ok_or_else(|| RuntimeError::Manifest {
                digest: top.clone(),
                reason: format!("no {}/{} image", platform.0, platform.1),
            })?
            .digest
            .clone();
        m = parse(&child)?;
    }
    let config = m.config.clone().ok_or_else(|| RuntimeError::Manifest { digest: top, reason: "no config".into() })?;
    Ok((config, m.layers))
}

/// Builds a flattened tree of the image in `dir` (new or empty) from its snapshots, extracting the missing ones.
pub fn unpack_image(
    store: &ContentStore,
    config: &Descriptor,
    layers: &[Descriptor],
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<(), RuntimeError> {
    let snaps = {
        let _lock = crate::io::images::StoreLock::shared(store)?;
        SnapshotStore::open(store)?.prepare(store, config, layers, opts)?.0
    };
    crate::io::snapshot::flatten(&snaps, dir)?;
    Ok(())
}

/// The OCI runtime configuration for the image config `cfg` (its `config` object), with extra `args` replacing Cmd.
pub fn runtime_config(cfg: &Value, rootfs: &Path, args: &[String]) -> Result<Value, RuntimeError> {
    let c = &cfg["config"];
    // An absent Entrypoint, Cmd or Env is empty by the image-spec's definition, not a failure.
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let mut argv = strings(&c["Entrypoint"]);
    argv.extend(if args.is_empty() { strings(&c["Cmd"]) } else { args.to_vec() });
    if argv.is_empty() {
        argv.push("/bin/sh".into());
    }
    let mut env = strings(&c["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let cwd = c["WorkingDir"].as_str().filter(|s| !s.is_empty()).unwrap_or("/");
    let (uid, gid) = user(c["User"].as_str().unwrap_or(""), rootfs)?;
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": argv,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "wharf",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    }))
}

/// `User` of an image config: `uid[:gid]` numerically, or names looked up in the rootfs's `/etc/passwd` and
/// `/etc/group`. A name the image does not define is an error, never a silent fallback to root.
fn user(spec: &str, rootfs: &Path) -> Result<(u32, u32), RuntimeError> {
    let (u, g) = spec.split_once(':').map_or((spec, None), |(u, g)| (u, Some(g)));
    let unknown = |what: &str, name: &str| RuntimeError::User(format!("{what} {name:?} is not defined in the image"));
    // Fields 2 and 3 of the line whose first field is `name`, as numbers.
    let lookup = |file: &str, name: &str| -> Result<Option<(u32, Option<u32>)>, RuntimeError> {
        let text = match std::fs::read_to_string(rootfs.join(file)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RuntimeError::Io(e)),
        };
        Ok(text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[0] == name)
                .then(|| f[2].parse().ok().map(|id| (id, f.get(3).and_then(|g| g.parse().ok()))))?
        }))
    };
    let (uid, primary_gid) = match u {
        "" => (0, 0),
        n if n.bytes().all(|b| b.is_ascii_digit()) => {
            let id: u32 = n.parse().map_err(|_| unknown("user", n))?;
            (id, id)
        }
        name => match lookup("etc/passwd", name)? {
            Some((id, Some(gid))) => (id, gid),
            _ => return Err(unknown("user", name)),
        },
    };
    let gid = match g {
        None | Some("") => primary_gid,
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => n.parse().map_err(|_| unknown("group", n))?,
        Some(name) => lookup("etc/group", name)?.map(|(id, _)| id).ok_or_else(|| unknown("group", name))?,
    };
    Ok((uid, gid))
}

/// A container's bundle: `config.json` and `rootfs`, an overlay of the image's snapshots with a fresh upper
/// directory (as root), or a flattened copy of them (otherwise). Unmounted and removed when dropped.
pub struct Bundle {
    pub dir: PathBuf,
    /// How many layers this bundle had to extract (the rest were shared snapshots).
    pub extracted: usize,
    mount: Option<crate::io::snapshot::OverlayMount>,
}

impl Drop for Bundle {
    fn drop(&mut self) {
        drop(self.mount.take());
        let _ = crate::io::snapshot::remove_tree(&self.dir);
    }
}

/// Writes a bundle for the image into `<store>/containers/<id>/`, recording the snapshots it uses so that `prune`
/// leaves them alone while the container runs.
pub fn make_bundle(
    store: &ContentStore,
    config: &Descriptor,
    layers: &[Descriptor],
    id: &str,
    args: &[String],
    unpack: &UnpackOptions,
) -> Result<Bundle, RuntimeError> {
    let lock = crate::io::images::StoreLock::shared(store)?;
    let (snaps, extracted) = SnapshotStore::open(store)?.prepare(store, config, layers, unpack)?;
    let dir = crate::io::images::containers_dir(store).join(id);
    // `containers/` and the bundle's directory are 0700, as containerd keeps them; the rootfs has the image's modes.
    crate::io::modes::create_dir_all(&dir)?;
    let mut bundle = Bundle { dir: dir.clone(), extracted, mount: None };
    let record = crate::io::images::ContainerRecord {
        pid: std::process::id(),
        snapshots: snaps.iter().map(|s| s.key.clone()).collect(),
    };
    crate::io::modes::write(
        &dir.join("container.json"),
        &serde_json::to_vec(&record).map_err(|source| RuntimeError::Encode { what: "container.json", source })?,
    )?;
    drop(lock);
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    if rustix::process::geteuid().is_root() {
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        std::fs::create_dir_all(&upper)?;
        std::fs::create_dir_all(&work)?;
        bundle.mount = Some(crate::io::snapshot::mount_overlay(&snaps, &upper, &work, &rootfs, false)?);
    } else {
        crate::io::snapshot::flatten(&snaps, &rootfs)?;
    }
    let cfg: Value = serde_json::from_slice(&store.read(&config.digest)?)
        .map_err(|source| RuntimeError::Config { digest: config.digest.clone(), source })?;
    let spec = runtime_config(&cfg, &rootfs, args)?;
    let bytes = serde_json::to_vec_pretty(&spec)
        .map_err(|source| RuntimeError::Encode { what: "the bundle's config.json", source })?;
    crate::io::modes::write(&dir.join("config.json"), &bytes)?;
    Ok(bundle)
}

/// Runs the bundle with runc (or crun) in the foreground; returns the container's exit code.
pub fn run_bundle(bundle: &Path, id: &str) -> Result<i32, RuntimeError> {
    let runtime = ["runc", "crun"].into_iter().find(|r| which(r)).ok_or(RuntimeError::NoRuntime)?;
    let status = Command::new(runtime).arg("run").arg("--bundle").arg(bundle).arg(id).status()?;
    Ok(status.code().unwrap_or(1))
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_users_resolve_or_fail_never_fall_back_to_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n")
            .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(user("", root).unwrap(), (0, 0));
        assert_eq!(user("nobody", root).unwrap(), (65534, 65533));
        assert_eq!(user("nobody:staff", root).unwrap(), (65534, 50));
        assert_eq!(user("1000:1001", root).unwrap(), (1000, 1001));
        assert!(matches!(user("ghost", root), Err(RuntimeError::User(_))));
        assert!(matches!(user("nobody:ghosts", root), Err(RuntimeError::User(_))));
        // No passwd at all: a named user is an error, not root.
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(user("nobody", empty.path()), Err(RuntimeError::User(_))));
    }
}
