//! The file system as policy material needs it ([`Files`]): keys, trusted roots and trust policies by path, trust
//! store directories walked, each bounded; and keys a containers `policy.json` carried inline (`keyData`), under
//! the names its mapping gave them.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use wharf_format::policy::Files;

/// The most bytes one policy file (a key, a root, a trust policy, a certificate) may have.
pub const MAX_FILE: u64 = 1 << 20;
/// The most files one trust store directory may hold.
pub const MAX_STORE_FILES: usize = 1024;

/// `std::fs`, with inline material first; a relative path is read from `base` (the policy file's directory).
#[derive(Debug, Clone, Default)]
pub struct StdFiles {
    pub inline: BTreeMap<String, Vec<u8>>,
    pub base: Option<std::path::PathBuf>,
}

impl StdFiles {
    fn path(&self, p: &str) -> std::path::PathBuf {
        match &self.base {
            Some(b) if Path::new(p).is_relative() => b.join(p),
            _ => Path::new(p).to_path_buf(),
        }
    }
}

impl Files for StdFiles {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        if let Some(b) = self.inline.get(path) {
            return Ok(b.clone());
        }
        let mut out = Vec::new();
        std::fs::File::open(self.path(path))?.take(MAX_FILE + 1).read_to_end(&mut out)?;
        if out.len() as u64 > MAX_FILE {
            return Err(std::io::Error::other(format!("more than {MAX_FILE} bytes")));
        }
        Ok(out)
    }

    fn walk(&self, dir: &str) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.path(dir), "", &mut out)?;
        out.sort();
        Ok(out)
    }
}

/// Regular files under `dir` (`prefix`: their path relative to the walk's start), symbolic links followed as the
/// trust store's owner wrote them; more than [`MAX_STORE_FILES`] is an error, not a truncation.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let meta = std::fs::metadata(e.path())?;
        if meta.is_dir() {
            // Depth is bounded by the count below and by the file system's own path limit.
            walk(&e.path(), &rel, out)?;
        } else if meta.is_file() {
            out.push(rel);
        }
        if out.len() > MAX_STORE_FILES {
            return Err(std::io::Error::other(format!("more than {MAX_STORE_FILES} files in a trust store")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inline_first_then_files_and_walks_stores() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(store.join("x509/ca/acme")).unwrap();
        std::fs::write(store.join("x509/ca/acme/root.pem"), b"root").unwrap();
        std::fs::write(store.join("x509/ca/acme/b.pem"), b"b").unwrap();
        std::fs::write(dir.path().join("key.pub"), b"key").unwrap();
        let inline = BTreeMap::from([("inline:k".to_string(), b"inline".to_vec())]);
        let f = StdFiles { inline, base: Some(dir.path().to_path_buf()) };
        assert_eq!(f.read("key.pub").unwrap(), b"key", "relative to the policy's directory");
        assert_eq!(f.read("inline:k").unwrap(), b"inline");
        assert_eq!(f.read(dir.path().join("key.pub").to_str().unwrap()).unwrap(), b"key");
        assert!(f.read(dir.path().join("missing").to_str().unwrap()).is_err());
        assert_eq!(f.walk(store.to_str().unwrap()).unwrap(), vec!["x509/ca/acme/b.pem", "x509/ca/acme/root.pem"]);
        let big = dir.path().join("big");
        std::fs::write(&big, vec![0u8; MAX_FILE as usize + 1]).unwrap();
        assert!(f.read(big.to_str().unwrap()).is_err());
    }
}
