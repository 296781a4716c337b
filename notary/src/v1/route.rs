//! The Notary v1 paths, parsed by one pure function: `/v2/<gun>/_trust/tuf/…`, `/v2/<gun>/_trust/changefeed` and
//! `/v2/_trust/changefeed`. The GUN holds slashes and a colon and appears unescaped.

use wharf_format::notary::{Gun, RoleName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V1Path {
    /// `<role>.json`: the current version.
    Current(RoleName),
    /// `<role>.<hex digest>.json`: by SHA-256 of the stored bytes (other digest lengths are routed and not found).
    ByHash(RoleName, String),
    /// `<N>.<role>.json`.
    ByVersion(RoleName, i64),
    /// `timestamp.key` or `snapshot.key`.
    Key(RoleName),
    /// `…/_trust/tuf/`: the upload (POST) and the whole collection (DELETE).
    Collection,
    /// `…/_trust/changefeed`.
    Changefeed,
}

/// Whether the path tail after `/v2/` addresses the Notary v1 API.
pub fn is_v1(tail: &str) -> bool {
    tail.starts_with("_trust/") || tail.contains("/_trust/")
}

/// Parses the tail after `/v2/`: `None` when it is not a Notary v1 endpoint. The GUN is `None` only for the
/// global changefeed.
pub fn parse(tail: &str) -> Option<(Option<Gun>, V1Path)> {
    if tail == "_trust/changefeed" {
        return Some((None, V1Path::Changefeed));
    }
    let (gun, rest) = tail.split_once("/_trust/")?;
    let gun: Gun = gun.parse().ok()?;
    // A collection is a repository's: a GUN that names none here is no endpoint (nor a way past access control).
    gun.repository()?;
    if rest == "changefeed" {
        return Some((Some(gun), V1Path::Changefeed));
    }
    let file = rest.strip_prefix("tuf/")?;
    if file.is_empty() {
        return Some((Some(gun), V1Path::Collection));
    }
    if let Some(role) = file.strip_suffix(".key") {
        if !matches!(role, "timestamp" | "snapshot") {
            return None;
        }
        return Some((Some(gun), V1Path::Key(role.parse().ok()?)));
    }
    let stem = file.strip_suffix(".json")?;
    let path = match stem.split('.').collect::<Vec<_>>()[..] {
        [role] => V1Path::Current(role.parse().ok()?),
        [v, role] if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            V1Path::ByVersion(role.parse().ok()?, v.parse().ok().filter(|v| *v >= 1)?)
        }
        [role, hex] if matches!(hex.len(), 64 | 96 | 128) && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            V1Path::ByHash(role.parse().ok()?, hex.to_ascii_lowercase())
        }
        _ => return None,
    };
    Some((Some(gun), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let g = "127.0.0.1:5000/library/app";
        let p = |rest: &str| parse(&format!("{g}/_trust/{rest}")).map(|(_, p)| p);
        let role = |r: &str| r.parse::<RoleName>().unwrap();
        assert_eq!(p("tuf/root.json"), Some(V1Path::Current(role("root"))));
        assert_eq!(p("tuf/targets/releases.json"), Some(V1Path::Current(role("targets/releases"))));
        let hex = "AB".repeat(32);
        assert_eq!(p(&format!("tuf/targets.{hex}.json")), Some(V1Path::ByHash(role("targets"), hex.to_lowercase())));
        assert_eq!(p("tuf/2.root.json"), Some(V1Path::ByVersion(role("root"), 2)));
        assert_eq!(p("tuf/timestamp.key"), Some(V1Path::Key(role("timestamp"))));
        assert_eq!(p("tuf/"), Some(V1Path::Collection));
        assert_eq!(p("changefeed"), Some(V1Path::Changefeed));
        assert_eq!(parse("_trust/changefeed"), Some((None, V1Path::Changefeed)));
        assert_eq!(parse(&format!("{g}/_trust/tuf/root.json")).unwrap().0.unwrap().as_str(), g);
        for bad in ["tuf/root.key", "tuf/bogus.json", "tuf/root", "tuf/0.root.json", "tuf/root.abc.json", "x"] {
            assert_eq!(p(bad), None, "{bad}");
        }
        assert!(parse("a*b/_trust/tuf/root.json").is_none());
        assert!(parse("127.0.0.1:5000/Team/App/_trust/tuf/").is_none(), "a GUN naming no repository");
        assert!(is_v1(&format!("{g}/_trust/tuf/root.json")) && is_v1("_trust/changefeed") && !is_v1("a/_tuf/x"));
    }
}
