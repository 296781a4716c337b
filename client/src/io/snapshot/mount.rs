//! Mounting snapshots as an overlayfs: the layers read-only below, a fresh upper directory per container above.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::Snapshot;

/// A mounted overlay; unmounted (lazily) when dropped.
#[derive(Debug)]
pub struct OverlayMount {
    pub target: PathBuf,
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = unmount(&self.target);
    }
}

/// Escapes the characters overlayfs' option parser treats specially in a path.
fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Mounts `layers` (bottom first) with `upper` and `work` (empty directories on one file system) at `target`.
/// `userxattr` when the snapshots carry `user.overlay.*` attributes (extracted without root).
pub fn mount_overlay(
    layers: &[Snapshot],
    upper: &Path,
    work: &Path,
    target: &Path,
    userxattr: bool,
) -> std::io::Result<OverlayMount> {
    let lower: Vec<String> = layers.iter().rev().map(|s| escape(&s.fs)).collect();
    let mut data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), escape(upper), escape(work));
    if userxattr {
        data.push_str(",userxattr");
    }
    // The kernel reads at most one page of mount options.
    if data.len() >= 4096 {
        return Err(std::io::Error::other(format!(
            "{} layers need {} bytes of overlay mount options, more than the kernel's 4,096",
            layers.len(),
            data.len()
        )));
    }
    let data = CString::new(data).map_err(std::io::Error::other)?;
    rustix::mount::mount("overlay", target, "overlay", rustix::mount::MountFlags::empty(), data.as_c_str()).map_err(
        |e| crate::io::error::IoContext::wrap(format_args!("mounting overlayfs at {}", target.display()), e),
    )?;
    Ok(OverlayMount { target: target.to_path_buf() })
}

/// Detaches a mount (lazily: a process still inside keeps it until it leaves).
pub fn unmount(target: &Path) -> std::io::Result<()> {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH).map_err(std::io::Error::from)
}
