//! The `wharf` client as a user runs it: its own content store and configuration directory, passphrases from the
//! environment.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use super::wharf_bin;

pub struct Client {
    pub store: tempfile::TempDir,
    pub config: tempfile::TempDir,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client { store: tempfile::tempdir().unwrap(), config: tempfile::tempdir().unwrap() }
    }

    pub fn wharf(&self, args: &[&str]) -> Output {
        Command::new(wharf_bin())
            .args(args)
            .env("WHARF_STORE", self.store.path())
            .env("WHARF_CONFIG_DIR", self.config.path())
            .env("WHARF_ROOT_PASSPHRASE", "root secret")
            .env("WHARF_REPOSITORY_PASSPHRASE", "repo secret")
            .env("WHARF_LOG", "warn")
            .output()
            .expect("run wharf")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.wharf(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "wharf {args:?} failed ({:?}):\n{text}", out.status.code());
        text
    }

    pub fn root_of(&self, host: &str, repo: &str) -> PathBuf {
        self.config.path().join("trust/repos").join(host.replace(':', "_")).join(format!("{repo}.root.json"))
    }
}
