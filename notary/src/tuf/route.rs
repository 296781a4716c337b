//! The notary's paths under `/v2/<repository>/_tuf/`, parsed by one pure function.

use wharf_format::tuf::RoleName;
use wharf_format::RepositoryName;

/// The path component that marks trust data. It cannot be a repository name component (names start with
/// `[a-z0-9]`), so `/v2/<name>/_tuf/...` is never ambiguous.
pub const MARKER: &str = "_tuf";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPath {
    /// `root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, `<role>.json`: the newest version.
    Latest(RoleName),
    /// `<N>.<role>.json`: a given version.
    Version(RoleName, u64),
    /// `targets/<sha256 hex>.<target name>`: a target's bytes (the manifest).
    Target {
        sha256: String,
        name: String,
    },
    Keys,
    RotateKey(RoleName),
    Publish,
    History,
    /// The repository's trust data as a whole (`DELETE /v2/<name>/_tuf/`).
    Repository,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("not a trust path")]
    NotTrust,
    #[error("invalid repository name")]
    Name,
    #[error("no such trust endpoint")]
    NotFound,
}

/// Whether the path tail after `/v2/` addresses the TUF 1.0 service: it has a `/_tuf/` segment followed by a slash.
/// (A bare `_tuf` at the end may be a tag, as in `/v2/app/manifests/_tuf`; a tag cannot contain a slash.)
pub fn is_tuf(tail: &str) -> bool {
    tail.contains("/_tuf/")
}

/// Parses the path tail after `/v2/`.
pub fn parse(tail: &str) -> Result<(RepositoryName, TrustPath), RouteError> {
    let (name, rest) = tail.split_once("/_tuf/").ok_or(RouteError::NotTrust)?;
    let repo: RepositoryName = name.parse().map_err(|_| RouteError::Name)?;
    let path = match rest {
        "" => TrustPath::Repository,
        "keys" => TrustPath::Keys,
        "publish" => TrustPath::Publish,
        "history" => TrustPath::History,
        _ => {
            if let Some(role) = rest.strip_prefix("keys/").and_then(|r| r.strip_suffix("/rotate")) {
                TrustPath::RotateKey(role.parse().map_err(|_| RouteError::NotFound)?)
            } else if let Some(file) = rest.strip_prefix("targets/") {
                let (hash, name) = file.split_once('.').ok_or(RouteError::NotFound)?;
                // Target names are tags (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`): no slash, no `%`, nothing a URL
                // library could resolve or decode when the name is forwarded.
                if hash.len() != 64
                    || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    || name.parse::<wharf_format::Tag>().is_err()
                {
                    return Err(RouteError::NotFound);
                }
                TrustPath::Target { sha256: hash.into(), name: name.into() }
            } else if let Some(stem) = rest.strip_suffix(".json") {
                match stem.split_once('.') {
                    Some((n, role)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => TrustPath::Version(
                        role.parse().map_err(|_| RouteError::NotFound)?,
                        n.parse().map_err(|_| RouteError::NotFound)?,
                    ),
                    _ => TrustPath::Latest(stem.parse().map_err(|_| RouteError::NotFound)?),
                }
            } else {
                return Err(RouteError::NotFound);
            }
        }
    };
    Ok((repo, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tail: &str, expect: &str) {
        let got = match parse(tail) {
            Ok((r, p)) => format!("{r} {p:?}"),
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(got, expect, "{tail}");
    }

    #[test]
    fn table() {
        let h = "ab".repeat(32);
        check("lib/app/_tuf/root.json", "lib/app Latest(TopLevel(Root))");
        check("app/_tuf/3.root.json", "app Version(TopLevel(Root), 3)");
        check("app/_tuf/timestamp.json", "app Latest(TopLevel(Timestamp))");
        check("app/_tuf/12.targets.json", "app Version(TopLevel(Targets), 12)");
        check("app/_tuf/2.release-team.json", "app Version(Delegated(\"release-team\"), 2)");
        check(&format!("app/_tuf/targets/{h}.v1.0"), &format!("app Target {{ sha256: \"{h}\", name: \"v1.0\" }}"));
        check("app/_tuf/keys", "app Keys");
        check("app/_tuf/keys/timestamp/rotate", "app RotateKey(TopLevel(Timestamp))");
        check("app/_tuf/publish", "app Publish");
        check("app/_tuf/history", "app History");
        check("app/_tuf/", "app Repository");
        check("app/_tuf", "NotTrust");
        check("App/_tuf/root.json", "Name");
        check("app/_tuf/../root.json", "NotFound");
        check("app/_tuf/targets/xyz.v1", "NotFound");
        check(&format!("app/_tuf/targets/{h}.x/_trust/y"), "NotFound");
        check(&format!("app/_tuf/targets/{h}.x/../../other"), "NotFound");
        check(&format!("app/_tuf/targets/{h}.%2e%2e"), "NotFound");
        check(&format!("app/_tuf/targets/{h}."), "NotFound");
        check("app/_tuf/nope", "NotFound");
        check("app/_tufx/root.json", "NotTrust");
        assert!(is_tuf("a/_tuf/root.json"));
        assert!(!is_tuf("a/manifests/_tuf"));
        assert!(!is_tuf("a/_tufx/b"));
    }
}
