//! The file system as policy material needs it ([`wharf_format::policy::Files`]), read once at start.

use std::path::Path;

use wharf_format::policy::Files;

/// The largest key, trusted root, trust policy or certificate read.
const MAX_FILE: u64 = 4 << 20;
/// The most files taken from one trust store directory, and the deepest directory walked.
const MAX_STORE_FILES: usize = 1_000;
const MAX_DEPTH: usize = 8;

/// `std::fs`, with bounds: a policy names files an administrator controls, but a mistyped path (`/`) must not
/// make the server read a whole disk.
pub struct StdFiles;

impl Files for StdFiles {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        let len = std::fs::metadata(path)?.len();
        if len > MAX_FILE {
            return Err(std::io::Error::other(format!("{len} bytes, more than the {MAX_FILE} a policy file may have")));
        }
        std::fs::read(path)
    }

    fn walk(&self, dir: &str) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        walk(Path::new(dir), "", 0, &mut out)?;
        out.sort();
        Ok(out)
    }
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other(format!("{} is nested deeper than {MAX_DEPTH}", dir.display())));
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        // Symbolic links are followed as the trust store's own layout (Notation's) allows them.
        let meta = std::fs::metadata(entry.path())?;
        if meta.is_dir() {
            walk(&entry.path(), &rel, depth + 1, out)?;
        } else if meta.is_file() {
            if out.len() >= MAX_STORE_FILES {
                return Err(std::io::Error::other(format!("more than {MAX_STORE_FILES} files in a trust store")));
            }
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_trust_store_and_refuses_what_is_too_big() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("x509/ca/acme")).unwrap();
        std::fs::write(root.join("x509/ca/acme/root.pem"), b"pem").unwrap();
        std::fs::write(root.join("top.txt"), b"t").unwrap();
        let files = StdFiles.walk(root.to_str().unwrap()).unwrap();
        assert_eq!(files, ["top.txt", "x509/ca/acme/root.pem"]);
        assert_eq!(StdFiles.read(root.join("top.txt").to_str().unwrap()).unwrap(), b"t");
        let big = root.join("big");
        std::fs::write(&big, vec![0u8; (MAX_FILE + 1) as usize]).unwrap();
        let err = StdFiles.read(big.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        assert_eq!(StdFiles.read("/nonexistent/key.pub").unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
}
